#!/bin/bash
# Fault matrix: --for under a storm.  220 threads in tight malloc/free loops
# on this 2-core machine; `mfx attach --for 2s` must end the window on time
# (the agent stops recording within a second and a half of the deadline),
# keep the trace bounded (events it cannot drain in time are dropped and
# counted, not written at any cost: before, the trace reached 4 GB in 28 s
# and the window never ended), say how many were dropped, and leave every
# thread running with its blocks intact (storm_target checks them).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
need jq
nthreads=${STORM_THREADS:-220}
max_bytes=$((1024 * 1024 * 1024))
tries=$(matrix_tries 1)
for ((i = 0; i < tries; i++)); do
	run=$TMP/run$i err=$TMP/err$i why="" harm=""
	target_start "$TARGETS/storm_target" "$nthreads"
	t0=$(date +%s%N)
	"$MFX" attach --for 2s --no-report -o "$run" "$TPID" >/dev/null 2>"$err" &
	mpid=$!
	track $mpid
	for ((k = 0; k < 1800; k++)); do kill -0 $mpid 2>/dev/null || break; sleep 0.1; done
	kill -0 $mpid 2>/dev/null && { why="mfx still running after 180 s"; kill -KILL $mpid; }
	wait $mpid
	rc=$?
	secs=$((($(date +%s%N) - t0) / 1000000000))
	ans=$(answered $rc "$err" 0 1)
	# every thread still makes progress, and every block it holds is intact
	n0=$(grep -c '^alive' "$TOUT")
	tcmd check
	for ((k = 0; k < 300; k++)); do [ "$(grep -c '^alive\|STUCK' "$TOUT")" -gt "$n0" ] && break; sleep 0.05; done
	tail -1 "$TOUT" | grep -q '^alive' || harm="threads stopped: $(tail -1 "$TOUT")"
	tcmd quit
	for ((k = 0; k < 200; k++)); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.05; done
	wait "$TPID"
	trc=$?
	[ $trc = 0 ] && grep -q '^bye' "$TOUT" || harm="${harm:-target exit $trc: $(tail -1 "$TOUT")}"
	if [ $rc = 0 ]; then	# (the report once the storm is over: it is not the row)
		bytes=$(stat -c %s "$run/trace.mfx")
		[ "$bytes" -le $max_bytes ] || why="trace of $bytes bytes"
		"$MFX" report -q --no-charts "$run" >/dev/null 2>&1 || why="report failed"
		window=$(jq -r .duration_ns "$run/summary.json")
		[ "${window:-0}" -le 3500000000 ] || why="window of $window ns for --for 2s"
		dropped=$(jq -r .recording.dropped_events "$run/summary.json")
		kept=$(jq -r .events "$run/summary.json")
		note "try $i: window $((window / 1000000)) ms, trace $((bytes / 1048576)) MiB," \
			"$kept events kept, $dropped dropped, mfx took ${secs}s"
	else
		note "try $i: rc=$rc $(error_line "$err") (${secs}s)"
	fi
	[ -n "$why" ] && ans=0
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$ans" "$harm $why $(cat "$err")"
done
matrix_end storm-for
