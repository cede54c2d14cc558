#!/bin/bash
# Threads with cross-thread frees: per-thread counts exact, every block freed
# by another thread matched to its allocation (nothing left live).
. "$(dirname "$0")/../lib.sh"

run_mfx launch -q -o "$TMP/run" -- "$TARGETS/mt_counts" 4 5000
expect_eq "$MFX_RC" 0 "exit status"
cp "$MFX_ERR" "$TMP/expected.json"; exp=$TMP/expected.json
s=$TMP/run/summary.json
expect_eq "$(jget "$s" .counts.malloc)" "$(jget "$exp" .malloc)" "malloc"
expect_eq "$(jget "$s" .counts.free)" "$(jget "$exp" .free)" "free"
# glibc callocs one DTV per pthread_create (the process's own call)
expect_eq "$(jget "$s" .counts.calloc)" 4 "calloc (thread DTVs)"
expect_eq "$(jget "$s" .threads)" 5 "threads (4 workers + main)"
expect_eq "$(jq '[.thread_stats[] | select(.allocations == 5000 and .frees == 5000)] | length' "$s")" 4 \
	"each worker: 5000 allocations, 5000 frees"
# what is left live is only the 4 DTVs
expect_le "$(jget "$s" .live_bytes_end)" 4096 "live at end"
expect_eq "$(jget "$s" .frees_of_unknown_blocks)" 0 "every free matched an allocation"

run_mfx launch -q -o "$TMP/churn" -- "$TARGETS/threads_churn" 64 2000
expect_eq "$MFX_RC" 0 "churn exit status"
expect_eq "$(jget "$TMP/churn/summary.json" .counts.malloc)" "$(jget "$MFX_ERR" .malloc)" "churn malloc"
expect_ge "$(jget "$TMP/churn/summary.json" .counts.free)" "$(jget "$MFX_ERR" .free)" "churn free"
expect_eq "$(jget "$TMP/churn/summary.json" .threads)" 65 "churn threads"
pass
