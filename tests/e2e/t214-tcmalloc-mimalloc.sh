#!/bin/bash
# Programs whose malloc is tcmalloc (LD_PRELOAD of Debian's
# libtcmalloc_minimal) or mimalloc (LD_PRELOAD of Debian's libmimalloc),
# launched and attached: mfx names the allocator, and its figures agree with
# what the program reads from its own allocator (alloc_target's "stats":
# MallocExtension_GetNumericProperty, mi_process_info) within 20%; trim
# calls that allocator's own release; mimalloc's in-use bytes are not known
# to an attach, so its heap is not measured and gets no verdict; neither is
# the heap of a program with an allocator of its own.
. "$(dirname "$0")/../lib.sh"
TC=$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 2>/dev/null)
MI=$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 2>/dev/null)
[ -n "$TC" ] && [ -n "$MI" ] || skip "libtcmalloc-minimal4 or libmimalloc2.0 not installed"
T=$TARGETS/alloc_target
stat_of() { grep '^stats' "$1" | tail -1 | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }
within() {	# got want pct what
	local d=$(( $1 > $2 ? $1 - $2 : $2 - $1 ))
	[ "$2" -gt 0 ] || fail "$4: reference is 0"
	if [ $(( d * 100 / $2 )) -le "$3" ]; then echo "ok: $4: $1 vs $2"; else fail "$4: $1 vs $2 (more than $3% apart)"; fi
}

# ---- tcmalloc, launched: heap from its own figures, live bytes from the trace
printf 'fill 48 1000\nfree half\nchurn 200\nstats\nquit\n' >"$TMP/cmds"
LD_PRELOAD=$TC "$MFX" launch -q -o "$TMP/tl" -- "$T" <"$TMP/cmds" >"$TMP/tl.out" 2>"$TMP/tl.err"
expect_eq "$?" 0 "tcmalloc launch: $(cat "$TMP/tl.err")"
s=$TMP/tl/summary.json
expect_eq "$(jget "$s" .allocator)" tcmalloc "launch: allocator"
expect_eq "$(jget "$s" .heap.heap_rss_from)/$(jget "$s" .heap.measured)" allocator/true "launch: heap measured from tcmalloc"
within "$(jget "$s" .heap_rss_bytes)" "$(stat_of "$TMP/tl.out" resident)" 20 \
	"launch: heap_rss_bytes against generic.total_physical_bytes"
within "$(jget "$s" .heap.allocator_figures.in_use_bytes)" "$(stat_of "$TMP/tl.out" in_use)" 20 \
	"launch: recorded in-use against generic.current_allocated_bytes"

# ---- tcmalloc, attached: live bytes too from its own figures
target_start env LD_PRELOAD="$TC" "$T"
tdo "fill 48 1000"
"$MFX" attach "$TPID" --for 1500ms -q -o "$TMP/ta" >"$TMP/ta.out" 2>"$TMP/ta.err" &
apid=$!
sleep 0.4
tdo "churn 600"
wait "$apid"
expect_eq "$?" 0 "tcmalloc attach: $(cat "$TMP/ta.err")"
tdo stats
s=$TMP/ta/summary.json
expect_eq "$(jget "$s" .allocator)" tcmalloc "attach: allocator"
expect_eq "$(jget "$s" .heap.live_bytes_from)" allocator "attach: live bytes from tcmalloc"
within "$(jget "$s" .heap_rss_bytes)" "$(stat_of "$TOUT" resident)" 20 "attach: heap_rss_bytes against the program's own"
within "$(jget "$s" .heap.live_bytes)" "$(stat_of "$TOUT" in_use)" 20 "attach: live bytes against the program's own"
# trim: free pages in the page heap go back
tdo "free first"
tdo stats
fb=$(stat_of "$TOUT" free)
run_mfx trim "$TPID" --json
expect_eq "$MFX_RC" 0 "tcmalloc trim: $(cat "$MFX_ERR")"
j=$MFX_OUT
expect_eq "$(jget "$j" .allocator)/$(jget "$j" .call)" "tcmalloc/MallocExtension_ReleaseFreeMemory()" "trim: tcmalloc's call"
within "$(jget "$j" .allocator_before.free_bytes)" "$fb" 20 "trim: free bytes before against the program's own"
tdo stats
expect_le "$(stat_of "$TOUT" free)" $((1 << 20)) "the program's own pageheap_free_bytes after the trim"
expect_ge "$(jget "$j" .released_bytes)" $(( fb / 2 )) "RSS released"
MFX_NO_DOORBELL=1 run_mfx trim "$TPID" --json
expect_eq "$MFX_RC/$(jget "$MFX_OUT" .method)/$(jget "$MFX_OUT" .allocator)" 0/ptrace/tcmalloc "trim through ptrace"
tdo "churn 50"
tcmd quit

# ---- mimalloc, launched: heap from smaps, at most what it committed
LD_PRELOAD=$MI "$MFX" launch -q -o "$TMP/ml" -- "$T" <"$TMP/cmds" >"$TMP/ml.out" 2>"$TMP/ml.err"
expect_eq "$?" 0 "mimalloc launch: $(cat "$TMP/ml.err")"
s=$TMP/ml/summary.json
expect_eq "$(jget "$s" .allocator)/$(jget "$s" .heap.measured)" mimalloc/true "launch: mimalloc, measured"
expect_le "$(jget "$s" .heap_rss_bytes)" "$(stat_of "$TMP/ml.out" committed)" "launch: heap RSS <= what mimalloc committed"
expect_ge "$(jget "$s" .heap_rss_bytes)" "$(jget "$s" .heap.live_bytes)" "launch: heap RSS >= live bytes"
within "$(jget "$s" .heap.allocator_figures.mapped_bytes)" "$(stat_of "$TMP/ml.out" committed)" 20 \
	"launch: recorded commit against mi_process_info"

# ---- mimalloc, attached: not measured, no verdict on the heap
target_start env LD_PRELOAD="$MI" "$T"
tdo "fill 48 1000"
run_mfx attach "$TPID" --for 500ms -o "$TMP/ma"
expect_eq "$MFX_RC" 0 "mimalloc attach: $(cat "$MFX_ERR")"
tdo stats
s=$TMP/ma/summary.json
expect_eq "$(jget "$s" .allocator)/$(jget "$s" .heap.measured)" mimalloc/false "attach: mimalloc, not measured"
expect_eq "$(jget "$s" .fragmentation_ratio)" null "attach: no fragmentation ratio"
expect_match "$(jget "$s" .verdict.kind)" '^(none|leak)$' "attach: no verdict on the heap"
grep -q "heap not measured" "$MFX_OUT" || fail "the summary does not say the heap was not measured"
within "$(jget "$s" .heap.allocator_figures.mapped_bytes)" "$(stat_of "$TOUT" committed)" 20 \
	"attach: recorded commit against mi_process_info"
run_mfx trim "$TPID" --json
expect_eq "$MFX_RC/$(jget "$MFX_OUT" .allocator)/$(jget "$MFX_OUT" .call)" "0/mimalloc/mi_collect(true)" "mimalloc trim"
run_mfx snapshot "$TPID" -o "$TMP/snap"
grep -q "allocator: mimalloc" "$MFX_OUT" || fail "snapshot: $(cat "$MFX_OUT")"
grep -q "committed" "$TMP/snap.mimalloc_stats.txt" || fail "no mimalloc statistics saved"
tdo "churn 50"

# ---- an allocator of the program's own: named "unknown", not measured,
# no verdict on the heap, and trim says it cannot
spawn "$TARGETS/own_malloc"
om=$SPAWNED
wait_grep ready "$SPAWN_OUT" 10
run_mfx attach "$om" --for 300ms -o "$TMP/om"
expect_eq "$MFX_RC" 0 "attach to own_malloc: $(cat "$MFX_ERR")"
s=$TMP/om/summary.json
expect_eq "$(jget "$s" .allocator)/$(jget "$s" .heap.measured)" unknown/false "own allocator: unknown, not measured"
expect_eq "$(jget "$s" .fragmentation_ratio)" null "own allocator: no fragmentation ratio"
expect_match "$(jget "$s" .heap.not_measured_because)" "own_malloc" "it says which module serves malloc"
run_mfx trim "$om"
expect_eq "$MFX_RC" 1 "trim of an unknown allocator"
expect_one_error_line "$MFX_ERR" "not one mfx knows how to trim"
kill -0 "$om" || fail "own_malloc died"
pass
