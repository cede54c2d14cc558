#!/bin/bash
# Bad input: one "mfx:" line and exit 1 or 2, never a crash.
. "$(dirname "$0")/../lib.sh"

run_mfx launch -- /nonexistent/prog
expect_eq "$MFX_RC" 2 "missing program"
expect_one_error_line "$MFX_ERR" "cannot run '/nonexistent/prog': No such file"

printf 'not a program\n' >"$TMP/text"
run_mfx launch -- "$TMP/text"
expect_eq "$MFX_RC" 2 "non-executable"
expect_one_error_line "$MFX_ERR" "Permission denied|not an executable"

# build/tests/static_target is built with -static by the Makefile (a build
# without libc6-dev's libc.a fails there, not silently here)
[ -x "$TARGETS/static_target" ] || fail "build/tests/static_target missing (make all)"
run_mfx launch -- "$TARGETS/static_target"
expect_eq "$MFX_RC" 2 "static program"
expect_one_error_line "$MFX_ERR" "statically linked"

mkdir -p "$TMP/full" && touch "$TMP/full/something"
run_mfx launch -o "$TMP/full" -- /bin/true
expect_eq "$MFX_RC" 2 "non-empty output directory"
expect_one_error_line "$MFX_ERR" "not empty.*--force"
# --force removes what mfx writes, by its exact names, and nothing else
theirs="something notes.png smaps-old trace.txt trace-x.mfx trace-1.mfx.bak summary-old.json
report.html.bak my.mfx replay.sh smaps_replay.x .stop-not notes.png.tmp"
ours="trace-12.mfx trace-12.3.mfx summary-12.json report-12.3.html impact_memory_usage-7.png
sites_over_time.png mftrace_log.csv stacks.folded profile.pb.gz replay replay.c replay.ops
replay.json rss_comparison.png smaps_replay smaps_replay.2 .smaps-exit-99 .stop
summary.json.tmp trace.mfx.tmp"
for f in $theirs $ours; do touch "$TMP/full/$f"; done
run_mfx launch -q --force --no-report -o "$TMP/full" -- /bin/true
expect_eq "$MFX_RC" 0 "--force reuses it"
for f in $theirs; do [ -e "$TMP/full/$f" ] || fail "--force removed '$f', not mfx's"; done
for f in $ours; do [ ! -e "$TMP/full/$f" ] || fail "--force left '$f', mfx's own"; done
echo "ok: --force removed $(echo $ours | wc -w) files of mfx's, kept $(echo $theirs | wc -w) others"

run_mfx launch --bogus -- /bin/true
expect_eq "$MFX_RC" 2 "unknown option"
expect_one_error_line "$MFX_ERR" "unknown option '--bogus'.*--help"
run_mfx launch
expect_eq "$MFX_RC" 2 "no program"

# run directories without a usable trace
mkdir -p "$TMP/empty"
for cmd in "report" "export --csv" "export --folded"; do
	run_mfx $cmd "$TMP/empty"
	expect_eq "$MFX_RC" 1 "$cmd on a directory without a trace"
	expect_one_error_line "$MFX_ERR" "no trace"
done
run_mfx report "$TMP/nonexistent"
expect_eq "$MFX_RC" 1 "report on a missing directory"

# a real trace, damaged: truncated at many points, and overwritten
run_mfx launch -q -o "$TMP/good" -- "$TARGETS/counts_target" 2000
size=$(stat -c %s "$TMP/good/trace.mfx")
for cut in 0 100 4096 5000 $((size / 2)) $((size - 7)); do
	mkdir -p "$TMP/cut$cut"
	head -c $cut "$TMP/good/trace.mfx" >"$TMP/cut$cut/trace.mfx"
	run_mfx report -q "$TMP/cut$cut"
	[ $MFX_RC -eq 0 ] || [ $MFX_RC -eq 1 ] || fail "truncated at $cut: exit $MFX_RC"
	[ $MFX_RC -eq 0 ] || expect_one_error_line "$MFX_ERR" "^mfx: "
done
mkdir -p "$TMP/junk"
head -c 100000 /dev/urandom >"$TMP/junk/trace.mfx"
run_mfx report "$TMP/junk"
expect_eq "$MFX_RC" 1 "random bytes"
expect_one_error_line "$MFX_ERR" "corrupt"
pass
