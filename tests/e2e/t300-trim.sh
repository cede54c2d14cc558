#!/bin/bash
# mfx trim: malloc_trim(0) in a live process whose heap is mostly free gives
# memory back, measured; JSON has the SPEC keys; the process runs on; the
# scripted experiment works; refusals are one line.  launch --trim-at-end
# records the trim in the run.
. "$(dirname "$0")/../lib.sh"
target_start
tdo "frag 64"			# 64 MiB in 1 KiB blocks, 63 of 64 freed
run_mfx trim --json "$TPID"
expect_eq "$MFX_RC" 0 "mfx trim exit"
j=$MFX_OUT
for k in pid rss_before_bytes rss_after_bytes released_bytes heap_rss_before_bytes \
	heap_rss_after_bytes pause_ns method; do
	jq -e "has(\"$k\")" "$j" >/dev/null || fail "no $k in $(cat "$j")"
done
expect_eq "$(jget "$j" .pid)" "$TPID" "pid"
expect_eq "$(jget "$j" .method)" ptrace "method"
expect_ge "$(jget "$j" .released_bytes)" $((40 << 20)) "released bytes"
expect_le "$(jget "$j" .heap_rss_after_bytes)" $(( $(jget "$j" .heap_rss_before_bytes) / 2 )) \
	"heap RSS after <= half of before"
expect_le "$(jget "$j" .pause_ns)" 2000000000 "pause (ns)"
tdo "run 100"
tdo "sleep 100"
# terminal form
run_mfx trim "$TPID"
expect_eq "$MFX_RC" 0 "mfx trim (text) exit"
grep -q "malloc_trim(0) released" "$MFX_OUT" || fail "text output: $(cat "$MFX_OUT")"
# the scripted experiment
scripts/trim-experiment.sh "$TPID" -o "$TMP/exp.jsonl" >"$TMP/exp.out" 2>&1 || fail "trim-experiment: $(cat "$TMP/exp.out")"
expect_eq "$(jq -s length "$TMP/exp.jsonl")" 1 "experiment JSON lines"
expect_eq "$(jq -r .pid "$TMP/exp.jsonl")" "$TPID" "experiment pid"
# refusals
run_mfx trim 4194000
expect_eq "$MFX_RC" 1 "no such process"
expect_one_error_line "$MFX_ERR" "cannot trim 4194000: no such process"
run_mfx trim
expect_eq "$MFX_RC" 2 "no pid: usage"
# attach --trim-at-end: the agent's own thread calls it, no thread paused
tdo "frag 32"
run_mfx attach --for 300ms --trim-at-end -q -o "$TMP/arun" "$TPID"
expect_eq "$MFX_RC" 0 "attach --trim-at-end exit"
expect_eq "$(jget "$TMP/arun/summary.json" .trim.method)" agent "attach trim method"
expect_ge "$(jget "$TMP/arun/summary.json" .trim.released_bytes)" $((15 << 20)) "attach: released"
# launch --trim-at-end: the program runs past the window
cat >"$TMP/p.c" <<'EOC'
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(void) {
	static void *v[65536];
	for (int i = 0; i < 65536; i++) memset(v[i] = malloc(1000), 1, 1000);
	for (int i = 0; i < 65536; i++) if (i % 64) free(v[i]);
	sleep(3);
	return 0;
}
EOC
cc -O1 -o "$TMP/p" "$TMP/p.c" || fail cc
run_mfx launch --for 1s --trim-at-end -o "$TMP/run" -- "$TMP/p"
expect_eq "$MFX_RC" 0 "launch exit"
expect_eq "$(jget "$TMP/run/summary.json" .trim.method)" ptrace "trim recorded in the run"
expect_ge "$(jget "$TMP/run/summary.json" .trim.released_bytes)" $((30 << 20)) "released at the end"
pass
