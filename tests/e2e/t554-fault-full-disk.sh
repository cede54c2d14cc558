#!/bin/bash
# Fault matrix: the disk fills up during the window.  The run directory is
# on a 700 KiB tmpfs mounted here; the target allocates far more than fits.
# mfx must end the window with one line naming the disk, exit 1, and what
# was recorded must stay readable (`mfx report` on a copy, once there is
# room).  (Before: launch lost the whole trace and exited 0; attach said
# "Input/output error" about report.html.)  Even tries attach, odd launch.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
[ "$(id -u)" = 0 ] || skip "needs root (mounts a small tmpfs)"
need jq
fs=$TMP/fs
mkdir -p "$fs"
mount -t tmpfs -o size=700k,mode=0755 mfx-t554 "$fs" 2>/dev/null || skip "cannot mount a tmpfs here"
trap 'umount -l "$fs" 2>/dev/null; _cleanup' EXIT
tries=$(matrix_tries 2)
for ((i = 0; i < tries; i++)); do
	rm -rf "${fs:?}"/*
	run=$fs/run$i err=$TMP/err$i why="" harm=""
	if ((i % 2 == 0)); then
		target_start
		"$MFX" attach -o "$run" "$TPID" >/dev/null 2>"$err" &
		mpid=$!
		track $mpid
		mfx_attached $mpid "$err" || why="did not attach: $(cat "$err")"
		tdo_quiet "run 200000" || harm="the target did not finish: $(harmed_by)"
		for ((k = 0; k < 100; k++)); do kill -0 $mpid 2>/dev/null || break; sleep 0.1; done
		kill -INT $mpid 2>/dev/null	# (if the disk had room after all)
		wait $mpid
		rc=$?
		harm=${harm:-$(harmed_by)}
		[ -n "$harm" ] || tdo_quiet "run 10" || harm="the target stopped answering"
	else
		"$MFX" launch -o "$run" -- "$TARGETS/counts_target" 100000 >/dev/null 2>"$err"
		rc=$?
		# the program's own output (its expected counts) is intact
		grep -q '^{"counts": {"malloc": 100000' "$err" || harm="the program's output is lost"
	fi
	ans=$(answered $rc "$err" 1)
	line=$(error_line "$err")
	[[ $line =~ "No space left on device" ]] || why="the error does not name the disk: '$line'"
	rm -rf "$TMP/copy"
	cp -r "$run" "$TMP/copy" && rm -rf "${fs:?}"/*
	"$MFX" report -q "$TMP/copy" >/dev/null 2>"$err.report" || why="the trace is not readable: $(cat "$err.report")"
	rec=$(jq -r .counts.malloc "$TMP/copy/summary.json" 2>/dev/null)
	[ "${rec:-0}" -gt 0 ] || why="nothing recorded was kept"
	stopped=$(jq -r .recording.stopped_early "$TMP/copy/summary.json" 2>/dev/null)
	[ "$stopped" != null ] || why="summary.json does not say the recording stopped early"
	note "try $i: rc=$rc '$line'; kept $rec mallocs; stopped_early: $stopped"
	[ -n "$why" ] && ans=0
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$ans" "$harm $why $(cat "$err")"
	if ((i % 2 == 0)); then
		tcmd quit
		wait "$TPID" 2>/dev/null
	fi
done
matrix_end full-disk
