#!/bin/bash
# Fault matrix: address-space pressure.  The target runs with
# MALLOC_ARENA_MAX=1 and RLIMIT_AS at its size plus 3..200 MiB; mfx
# attaches, the target allocates, Ctrl-C ends the window.  The agent must
# degrade (no spool, no stacks, then no recording) and never fault: the
# target lives and sees nothing, mfx exits 0 with exact counts, or 1 with
# one line saying why.  (Before: SIGSEGV at 80-100 MiB on every attach.)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
need prlimit
need jq
heads=(3 20 50 80 90 100 120 150 200 60 30 10)
tries=$(matrix_tries 6)
for ((i = 0; i < tries; i++)); do
	h=${heads[$((i % ${#heads[@]}))]}
	target_start env MALLOC_ARENA_MAX=1 "$TARGETS/attach_target"
	vs=$(awk '/^VmSize/ { print $2 }' "/proc/$TPID/status")
	prlimit --pid "$TPID" --as=$(((vs + h * 1024) * 1024)) || fail "prlimit"
	run=$TMP/run$i err=$TMP/err$i
	"$MFX" attach --no-report -o "$run" "$TPID" 2>"$err" &
	mpid=$!
	track $mpid
	why=""
	if mfx_attached $mpid "$err"; then
		tdo_quiet "run 2000" || why="the target did not finish: $(harmed_by)"
		kill -INT $mpid
	fi
	wait $mpid
	rc=$?
	ok_answer=$(answered $rc "$err" 0 1)
	harm=$(harmed_by)
	if [ -z "$harm" ] && ! tdo_quiet "run 10"; then harm="the target stopped answering"; fi
	if [ $rc = 0 ]; then	# recorded: the counts are the target's own
		"$MFX" report -q "$run" >/dev/null 2>&1 || why="report failed"
		counts_match "$run" "$(grep '^done {' "$TOUT" | head -1 | cut -d' ' -f2-)" ||
			why="counts differ at +$h MiB: $(jq -c .counts "$run/summary.json")"
		[ -n "$why" ] && ok_answer=0
	fi
	note "+$h MiB: mfx exit $rc, $(grep -Ev "$MFX_NOTE_RE" "$err" | head -1)" \
		"$(jq -r '.recording.notes | join("; ")' "$run/summary.json" 2>/dev/null)"
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$ok_answer" "+$h MiB: rc=$rc $harm $why $(cat "$err")"
	tcmd quit
	wait "$TPID" 2>/dev/null
done
matrix_end rlimit-as
