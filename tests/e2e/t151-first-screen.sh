#!/bin/bash
# The first screen names the culprit, by its own name and file:line:
#   - cxx_inline (C++ -O2 -g, the program of issue 14): remember(int)
#     leaks 1000 vectors of 10000 bytes (10,000,000 bytes, its own count),
#     add_session(int) grows a std::map freed only by its static destructor
#     at exit; the verdict is the leak, and the map's growth is told as
#     freed at exit;
#   - inline_c (C -O2 -g, recursion through two functions, its own static
#     inline wrappers named with --wrapper): tree_branch() holds the tree,
#     (2^12 - 1) nodes of 64 bytes, one site for every recursion depth.
. "$(dirname "$0")/../lib.sh"
# the first 15 lines of `mfx report RUN`
first15() { "$MFX" report "$1" | head -15; }

run_mfx launch -o "$TMP/cxx" -- "$TARGETS/cxx_inline"
expect_eq "$MFX_RC" 0 "cxx_inline exit status"
first15 "$TMP/cxx" >"$TMP/first"
sed 's/^/  | /' "$TMP/first"
grep -qE 'remember cxx_inline\.cc:[0-9]+' "$TMP/first" || fail "remember() not in the first 15 lines"
grep -qE 'add_session cxx_inline\.cc:[0-9]+.*freed at exit' "$TMP/first" ||
	fail "add_session() (freed at exit) not in the first 15 lines"
grep -q '^verdict: LEAK suspected: .*remember(int)' "$TMP/first" || fail "verdict is not remember's leak"
echo "ok: the first 15 lines name remember() and add_session()"
s=$TMP/cxx/summary.json
expect_eq "$(jq '[.leak_suspects[] | select(.function == "remember(int)") | .live_bytes] | add' "$s")" \
	10000000 "remember() leaks 1000 x 10000 bytes"
expect_eq "$(jq '[.top_sites_by_peak[] | select(.function == "add_session(int)")] | all(.freed_at_exit)' "$s")" \
	true "add_session()'s growth is freed at exit"
expect_eq "$(jget "$s" '.exit_began.how')" "main returned" "the exit mark"
expect_eq "$(jget "$s" '.exit_status')" 0 "exit status"
# terminal manners: C++ names short, full in JSON; lines cut to $COLUMNS
LANG=C LC_ALL= COLUMNS=200 run_mfx report "$TMP/cxx"
grep -q ' make_table<\.\.\.> cxx_inline\.cc:' "$MFX_OUT" || fail "no short C++ name: $(grep make_table "$MFX_OUT")"
jq -e '[.top_sites_by_allocations[] | select(.function == "std::unique_ptr<long [], std::default_delete<long []> > make_table<long>(unsigned long)")] | length == 1' \
	"$s" >/dev/null || fail "summary.json lacks the full C++ name"
LANG=C LC_ALL= COLUMNS=72 run_mfx report "$TMP/cxx"
expect_le "$(awk '{ print length($0) }' "$MFX_OUT" | sort -n | tail -1)" 72 "longest line with COLUMNS=72"
echo "ok: short names in the terminal, full ones in JSON, lines cut"

run_mfx launch -o "$TMP/c" --wrapper '^(checked_alloc|zero_block|dup_bytes)$' -- "$TARGETS/inline_c" 12
expect_eq "$MFX_RC" 0 "inline_c exit status"
first15 "$TMP/c" >"$TMP/first"
sed 's/^/  | /' "$TMP/first"
grep -qE '^ +[0-9]+\. .* tree_branch inline_c\.c:[0-9]+' "$TMP/first" || fail "tree_branch() not in the first 15 lines"
echo "ok: the first 15 lines name tree_branch()"
s=$TMP/c/summary.json
held=$(grep -o 'held [0-9]*' "$TMP/mfx.out" | cut -d' ' -f2)
expect_eq "$(jq '[.top_sites[] | select(.function == "tree_branch")] | length' "$s")" 1 \
	"one tree_branch site for every recursion depth"
expect_eq "$(jq '[.top_sites[] | select(.function == "tree_branch") | .live_bytes] | add' "$s")" \
	$(( (4096 - 1) * 64 )) "tree_branch() holds the tree"
# what the program says it holds, besides stdio's buffer for its own stdout
expect_eq "$(jq '[.top_sites[] | select(.stack | any(test("_IO_file_doallocate")) | not) | .live_bytes] | add' "$s")" \
	"$held" "live bytes at the end = what the program holds"
depth=$(jq '[.top_sites[] | select(.function == "tree_branch") | .callers | paths(type == "object") | length] | max / 2 | floor' "$s")
expect_ge "$depth" 10 "the call tree keeps the recursion"
expect_eq "$(jq -r '.wrappers | join(",")' "$s")" '^(checked_alloc|zero_block|dup_bytes)$' "--wrapper recorded"
# a later report without --wrapper uses the run's
run_mfx report "$TMP/c"
grep -qE '^ +[0-9]+\. .* tree_branch inline_c\.c:' "$MFX_OUT" || fail "mfx report forgot the run's --wrapper"
echo "ok: mfx report uses the run's --wrapper"
pass
