#!/bin/bash
# Fault matrix: always stoppable.  The first SIGINT ends the window
# cleanly; a second one, while mfx finalises and reports, ends mfx at once
# (exit 130, one line naming the run directory); and when mfx cannot make
# progress after the first (odd tries: the target is SIGSTOPped, its agent
# cannot answer STOP) it goes on or gives up within about 5 s.  Either way
# the agent undoes its hooks (the trace stops changing, a new attach works
# with exact counts), the trace stays readable, and the target sees nothing.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
need jq
tries=$(matrix_tries 2)
for ((i = 0; i < tries; i++)); do
	run=$TMP/run$i err=$TMP/err$i why="" harm=""
	target_start
	"$MFX" attach -o "$run" "$TPID" >/dev/null 2>"$err" &
	mpid=$!
	track $mpid
	mfx_attached $mpid "$err" || fail "did not attach: $(cat "$err")"
	tdo_quiet "run 200000" || harm="the target did not finish: $(harmed_by)"
	want=$(last_done_json)
	t0=$(date +%s%N)
	if ((i % 2 == 0)); then
		kill -INT $mpid
		sleep 0.$((RANDOM % 5))
		kill -INT $mpid
		allowed="0 130"
	else
		kill -STOP "$TPID"
		kill -INT $mpid
		allowed="0 1"
	fi
	for ((k = 0; k < 300; k++)); do kill -0 $mpid 2>/dev/null || break; sleep 0.05; done
	kill -0 $mpid 2>/dev/null && why="mfx still running 15 s after the interrupt"
	kill -CONT "$TPID"
	wait $mpid
	rc=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	ans=$(answered $rc "$err" $allowed)
	# the hooks are undone: the trace does not change while the target allocates
	sleep 0.3
	sum=$(md5sum <"$run/trace.mfx")
	tdo_quiet "run 500" || harm="the target stopped answering: $(harmed_by)"
	[ "$(md5sum <"$run/trace.mfx")" = "$sum" ] || why="the agent still records after mfx ended"
	harm=${harm:-$(harmed_by)}
	# what was recorded is readable, and complete (the run ended before the
	# interrupt); only mfx ended at once between the agent's STOP and its
	# last drain may miss the last chunks, and then the summary must say so
	"$MFX" report -q "$run" >/dev/null 2>&1 || why="the trace is not readable"
	counts_match_or_dropped "$run" "$want" ||
		{ [ $rc = 130 ] && [ "$(jq -r .recording.complete "$run/summary.json")" = false ]; } ||
		why="counts $(jq -c '[.counts, .recording]' "$run/summary.json" 2>/dev/null), made $want"
	# a new attach works and counts exactly
	"$MFX" attach --no-report -o "$run.again" "$TPID" >/dev/null 2>"$err.again" &
	mpid=$!
	track $mpid
	if mfx_attached $mpid "$err.again"; then
		tdo_quiet "run 300" || harm="the target did not finish: $(harmed_by)"
		kill -INT $mpid
		wait $mpid
		"$MFX" report -q "$run.again" >/dev/null 2>&1
		counts_match "$run.again" "$(last_done_json)" || why="a later attach miscounts"
	else
		why="a later attach failed: $(cat "$err.again")"
	fi
	note "try $i: rc=$rc after ${ms} ms: $(error_line "$err")"
	[ -n "$why" ] && ans=0
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$ans" "$harm $why $(cat "$err")"
	tcmd quit
	wait "$TPID" 2>/dev/null
done
matrix_end second-sigint
