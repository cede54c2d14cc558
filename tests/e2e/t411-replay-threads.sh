#!/bin/bash
# mfx replay honours the original's concurrency: a thread-per-request
# program (3,000 short threads, never more than 4 request threads alive at
# once, as the program itself counts) is replayed with no more threads
# alive at once than it had, by both replayers, and its replay's RSS stays
# near the program's own (it was 24 MiB against 1-2 MiB when every thread
# was started at once).
. "$(dirname "$0")/../lib.sh"
run_mfx launch -q --no-report -o "$TMP/run" -- "$TARGETS/thread_per_request" 3000 4
expect_eq "$MFX_RC" 0 "launch"
alive=$(awk '/^threads_alive_max/ {print $2}' "$MFX_OUT")
hwm=$(awk '/^rss_anon_hwm/ {print $2}' "$MFX_OUT")
# (4 at most; how many ran at once is the scheduler's choice)
expect_ge "$alive" 1 "the program's own most request threads at once"
expect_le "$alive" 4 "the program's own most request threads at once"
run_mfx report -q --no-charts "$TMP/run"
run_mfx replay -q --allocator glibc --c-max-calls 200000 "$TMP/run"
expect_eq "$MFX_RC" 0 "replay: $(cat "$MFX_ERR")"
r=$TMP/run/replay.json
# every thread is replayed, unless mfx said it dropped events (a loaded
# machine: 3,000 threads' slots faster than the drain ran): then the
# threads the trace holds
if [ "$(jq .recording.complete "$TMP/run/summary.json")" = true ]; then
	expect_eq "$(jq '.runs[0].threads' "$r")" 3001 "threads replayed (the requests and main)"
else
	note "recording incomplete: $(jq -c .recording "$TMP/run/summary.json")"
	expect_eq "$(jq '.runs[0].threads' "$r")" "$(jq '.threads | length' "$TMP/run/summary.json")" \
		"threads replayed (those in the trace)"
fi
# the program's main thread allocates too (its RSS readings): it is the +1
expect_le "$(jq '.runs[0].threads_alive_max' "$r")" $((alive + 1)) "replay threads alive at once"
expect_le "$(jq '.runs[0].threads_alive_max' "$r")" "$(jq '.runs[0].threads_overlap_max' "$r")" \
	"alive at once <= the original's overlap"
# (frees of blocks the window never saw allocated - glibc's own thread
# bookkeeping - are left out of a replay)
expect_eq "$(jq '.runs[0].ops' "$r")" "$(jq '([.counts[]] | add) - .frees_of_unknown_blocks' "$TMP/run/summary.json")" \
	"calls replayed"
expect_eq "$(jq '.runs[0].peak_live_bytes' "$r")" "$(jq .peak_live_bytes "$TMP/run/summary.json")" "live peak"
expect_le "$(jq '.runs[0].rss_peak_bytes' "$r")" $((2 * hwm + 1048576)) \
	"native replay RSS peak against the program's own RssAnon ($hwm)"
n=$(jq '[.runs[] | select(.replayer == "replay.c")] | length' "$r")
expect_eq "$n" 1 "replay.c compiled and run"
expect_le "$(jq '.runs[] | select(.replayer == "replay.c") | .rss_peak_bytes' "$r")" $((2 * hwm + 1048576)) \
	"replay.c RSS peak"
pass
