#!/bin/bash
# Past 4,096 threads (the trace header's thread slots): every thread's
# events are recorded and counted - the summary has the program's own
# counts, and the "trace: N events" line says as many events as the trace
# holds (it used to count the first 4,096 threads only) - with the report
# (its count) and without (mfx reads the trace to count).
. "$(dirname "$0")/../lib.sh"
run_mfx launch -o "$TMP/run" -- "$TARGETS/threads_churn" 4200 3
expect_eq "$MFX_RC" 0 "exit status: $(tail -3 "$MFX_ERR")"
s=$TMP/run/summary.json
expect_eq "$(jget "$s" .counts.malloc)" 12600 "mallocs of 4200 threads (the program's count)"
expect_ge "$(jget "$s" .threads)" 4200 "threads"
events=$(jget "$s" .events)
shown=$(grep -o 'trace: [0-9.]*[kM]* events' "$MFX_ERR" | awk '{print $2}')
[ -n "$shown" ] || fail "no trace line: $(cat "$MFX_ERR")"
# the line rounds to three digits: 35.7k
val=$(awk -v s="$shown" 'BEGIN { m = 1; if (s ~ /k$/) m = 1e3; if (s ~ /M$/) m = 1e6; sub(/[kM]$/, "", s); printf "%d", s * m }')
diff=$(( val > events ? val - events : events - val ))
expect_le "$((diff * 1000))" "$events" "trace line ($shown) within 0.1% of the trace's $events events"
run_mfx launch --no-report -o "$TMP/nr" -- "$TARGETS/threads_churn" 4200 3
shown2=$(grep -o 'trace: [0-9.]*[kM]* events' "$MFX_ERR" | awk '{print $2}')
expect_eq "$shown2" "$shown" "the same line without the report"
pass
