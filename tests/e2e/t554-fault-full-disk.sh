#!/bin/bash
# Fault matrix: the disk fills up.  The run directory is on a 700 KiB tmpfs
# mounted here.  Two ways, each with attach and with launch:
#   late  (tries 0,1 of every 4): the fs is empty; the trace fits (a raw
#         trace is ~0.6 bytes/event) but the smaps copy, summary.json, the
#         charts or report.html do not;
#   early (tries 2,3): a filler leaves 380 KiB: the trace itself cannot
#         grow during the window (the agent's first chunk alone is 260 KiB).
# Either way mfx says one line naming the disk and exits 1 (before: launch
# exited 0 after two lines and libpng's own, attach said "Input/output
# error"; a full tmpfs was a SIGBUS in mfx, or in the program at start);
# what was recorded stays readable (`mfx report` of a copy, once there is
# room); and summary.json is honest against the target's own counts: all
# of them and `stopped_early` null, or fewer, `complete` false and
# `stopped_early` saying why.  An early try must stop early.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
[ "$(id -u)" = 0 ] || skip "needs root (mounts a small tmpfs)"
need jq
fs=$TMP/fs
mkdir -p "$fs"
mount -t tmpfs -o size=700k,mode=0755 mfx-t554 "$fs" 2>/dev/null || skip "cannot mount a tmpfs here"
trap 'umount -l "$fs" 2>/dev/null; _cleanup' EXIT
tries=$(matrix_tries 4)
for ((i = 0; i < tries; i++)); do
	rm -rf "${fs:?}"/*
	run=$fs/run$i err=$TMP/err$i why="" harm="" early=$(((i / 2) % 2))
	((early)) && head -c $((700 - 380))k /dev/zero >"$fs/filler"
	if ((i % 2 == 0)); then
		target_start
		"$MFX" attach -o "$run" "$TPID" >/dev/null 2>"$err" &
		mpid=$!
		track $mpid
		mfx_attached $mpid "$err" || why="did not attach: $(cat "$err")"
		tdo_quiet "run 200000" || harm="the target did not finish: $(harmed_by)"
		want=$(last_done_json)
		for ((k = 0; k < 100; k++)); do kill -0 $mpid 2>/dev/null || break; sleep 0.1; done
		kill -INT $mpid 2>/dev/null	# (the late way: the window ends on Ctrl-C)
		wait $mpid
		rc=$?
		harm=${harm:-$(harmed_by)}
		[ -n "$harm" ] || tdo_quiet "run 10" || harm="the target stopped answering"
	else
		"$MFX" launch -o "$run" -- "$TARGETS/counts_target" 100000 >/dev/null 2>"$err"
		rc=$?
		# the program's own output (its own counts) is intact
		want=$(grep '^{"counts": ' "$err" | jq -c .counts)
		[[ $want =~ '"malloc":100000' ]] || harm="the program's output is lost"
	fi
	ans=$(answered $rc "$err" 1)
	line=$(error_line "$err")
	[[ $line =~ "No space left on device" ]] || why="the error does not name the disk: '$line'"
	rm -rf "$TMP/copy"
	cp -r "$run" "$TMP/copy" && rm -rf "${fs:?}"/*
	"$MFX" report -q "$TMP/copy" >/dev/null 2>"$err.report" || why="the trace is not readable: $(cat "$err.report")"
	rec=$(jq -r .counts.malloc "$TMP/copy/summary.json" 2>/dev/null)
	# (an early try may keep no malloc at all: the events' first chunk did not fit)
	[ -n "$rec" ] && { ((early)) || [ "$rec" -gt 0 ]; } || why="nothing recorded was kept"
	stopped=$(jq -r .recording.stopped_early "$TMP/copy/summary.json" 2>/dev/null)
	complete=$(jq -r .recording.complete "$TMP/copy/summary.json" 2>/dev/null)
	if [ -n "$want" ] && counts_match "$TMP/copy" "$want"; then
		[ "$stopped" = null ] && [ "$complete" = true ] ||
			why="every call was kept, yet summary.json says stopped_early '$stopped', complete $complete"
		((early)) && why="the trace fitted in 380 KiB: this try did not fill the disk during the window"
	else
		[ "$stopped" != null ] && [ "$complete" = false ] ||
			why="calls are missing ($rec of the target's mallocs), yet summary.json says stopped_early '$stopped', complete $complete"
	fi
	note "try $i ($( ((early)) && echo early || echo late)): rc=$rc '$line'; kept $rec mallocs; complete $complete; stopped_early: $stopped"
	[ -n "$why" ] && ans=0
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$ans" "$harm $why $(cat "$err")"
	if ((i % 2 == 0)); then
		tcmd quit
		wait "$TPID" 2>/dev/null
	fi
done
matrix_end full-disk
