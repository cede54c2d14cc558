#!/bin/bash
# Fault matrix: the target has MFX_OUT (and MFX_ROOT_PID) in its
# environment - a child of an earlier `mfx launch`, or a user's variable.
# The agent mfx loads into it must record only when mfx asks (attach), never
# into that directory on its own; the attach must work, with the target's
# own counts.  (Before: refused as "another mfx is recording it", and the
# agent recorded into MFX_OUT by itself.)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
need jq
decoy=$TMP/decoy
mkdir "$decoy"
tries=$(matrix_tries 2)
for ((i = 0; i < tries; i++)); do
	run=$TMP/run$i err=$TMP/err$i why="" harm=""
	target_start env MFX_OUT="$decoy" MFX_ROOT_PID=1 MFX_DEPTH=8 "$TARGETS/attach_target"
	"$MFX" attach --no-report -o "$run" "$TPID" >/dev/null 2>"$err" &
	mpid=$!
	track $mpid
	if mfx_attached $mpid "$err"; then
		tdo_quiet "run 1000" || harm="the target did not finish: $(harmed_by)"
		kill -INT $mpid
	fi
	wait $mpid
	rc=$?
	ans=$(answered $rc "$err" 0)
	harm=${harm:-$(harmed_by)}
	[ -z "$(ls -A "$decoy")" ] || why="the agent wrote into MFX_OUT: $(ls -A "$decoy" | head -3)"
	"$MFX" report -q "$run" >/dev/null 2>&1 || why="report failed: rc=$rc $(error_line "$err")"
	counts_match "$run" "$(last_done_json)" ||
		why="counts $(jq -c .counts "$run/summary.json" 2>/dev/null), the target made $(last_done_json)"
	note "try $i: rc=$rc $(jq -c .counts "$run/summary.json" 2>/dev/null)"
	[ -n "$why" ] && ans=0
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$ans" "$harm $why $(cat "$err")"
	tcmd quit
	wait "$TPID" 2>/dev/null
done
matrix_end mfx-out-env
