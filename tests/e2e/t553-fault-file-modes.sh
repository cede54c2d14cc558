#!/bin/bash
# Fault matrix: file modes.  A trace and an smaps copy show a process's
# address layout, which /proc denies other users: every run directory mfx
# makes is 0700, every file in it 0600 at most, whatever the umask, for
# launch (children's traces included), attach, report, export and replay
# outputs.  Another user can read nothing in it.  Even tries attach, odd
# ones launch (a shell and the children it forks and execs).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
need jq
[ "$(id -u)" = 0 ] && need setpriv
tries=$(matrix_tries 2)
umask 000	# the most permissive a user could have
for ((i = 0; i < tries; i++)); do
	run=$TMP/out/run$i err=$TMP/err$i why="" harm=""
	if ((i % 2 == 0)); then
		target_start
		"$MFX" attach --for 500ms -o "$run" "$TPID" >/dev/null 2>"$err" &
		mpid=$!
		track $mpid
		mfx_attached $mpid "$err" || why="did not attach: $(cat "$err")"
		tdo_quiet "run 300" || harm="the target did not finish: $(harmed_by)"
		wait $mpid
		rc=$?
		harm=${harm:-$(harmed_by)}
	else
		"$MFX" launch -o "$run" -- /bin/sh -c "$TARGETS/counts_target 200 2>/dev/null &
			$TARGETS/counts_target 100 2>/dev/null; wait" >/dev/null 2>"$err"
		rc=$?
	fi
	ans=$(answered $rc "$err" 0)
	"$MFX" export --csv "$run" >/dev/null 2>&1 || why="export failed"
	"$MFX" export --folded "$run" >/dev/null 2>&1 || why="export --folded failed"
	((i == 0)) && { "$MFX" replay -q --no-compile --allocator glibc "$run" >/dev/null 2>&1 ||
		why="replay failed"; }
	bad=$(find "$run" \( -type d -perm /077 \) -o \( -type f -perm /077 \) -o ! -user root \
		2>/dev/null | head -3)
	[ "$(id -u)" = 0 ] || bad=$(find "$run" \( -type d -perm /077 \) -o \( -type f -perm /077 \) | head -3)
	[ -z "$bad" ] || why="too open: $(ls -ld $bad | head -3 | tr '\n' ' ')"
	[ "$(stat -c %a "$run")" = 700 ] || why="run directory is $(stat -c %a "$run")"
	if [ "$(id -u)" = 0 ]; then	# another user reads nothing (the directory is closed)
		setpriv --reuid=65534 --regid=65534 --clear-groups cat "$run/trace.mfx" >/dev/null 2>&1 &&
			why="another user could read the trace"
	fi
	nf=$(find "$run" -type f | wc -l)
	note "try $i: rc=$rc, $nf files, dir $(stat -c %a "$run"), files $(find "$run" -type f -printf '%m\n' | sort -u | tr '\n' ' ')"
	[ -n "$why" ] && ans=0
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$ans" "$harm $why $(cat "$err")"
	if ((i % 2 == 0)); then
		tcmd quit
		wait "$TPID" 2>/dev/null
	fi
done
matrix_end file-modes
