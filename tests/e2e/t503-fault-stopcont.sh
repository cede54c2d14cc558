#!/bin/bash
# Fault row "stopcont": one SIGSTOP + SIGCONT pair reaches the target at a
# random moment of the first attach (0-3 ms after mfx seized a thread,
# the SIGCONT 0-3 ms later).  mfx delivers stop signals at once, so the
# kernel's group-stop rules apply: the SIGCONT ends the stop and the
# target is never left stopped (it used to be: mfx kept the SIGSTOP and
# sent it again after the detach, after the SIGCONT).  mfx attaches, or
# says in one line that the process was stopped.  The target's threads
# sit in calls the kernel restarts after a stop: a stop alone makes
# epoll_wait, sigtimedwait, recv with SO_RCVTIMEO... fail with EINTR,
# mfx or not (signal(7)), so those would not tell mfx's doing apart.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
TRIES=${SOAK_TRIES:-5}
unharmed=0 answered=0 done=0
for ((i = 0; done < TRIES && i < 10 * TRIES; i++)); do
	ft_start read poll nanosleep futex_wait cond_timedwait msgrcv
	pid=${FT_PID[$FT]}
	"$MFX" attach -q --no-report --for 300ms -o "$TMP/r$i" "$pid" >"$TMP/m$i.out" 2>"$TMP/m$i.err" &
	m=$!
	moment=$("$TARGETS/kill_at" "$pid" "$m" 3000 "$RANDOM$i" stopcont)
	wait "$m"
	rc=$?
	[ "$moment" = "no moment" ] && { ft_end "$FT"; continue; }	# mfx was done before: try again
	echo "$moment" >>"$TMP/moments"
	done=$((done + 1))
	if answered "$rc" "$TMP/m$i.err"; then answered=$((answered + 1)); else note "try $i: exit $rc: $(cat "$TMP/m$i.err")"; fi
	[ "$rc" = 0 ] || note "try $i: $(cat "$TMP/m$i.err")"
	if ft_unharmed "$FT"; then unharmed=$((unharmed + 1)); else note "try $i: $FT_WHY"; fi
	ft_end "$FT"
done
note "$(sort "$TMP/moments" | head -3 | tr '\n' ';')"
row stopcont "$done" "$unharmed" "$answered"
[ "$done" -gt 0 ] || fail "no try met the moment"	# (a loaded machine: fewer)
pass
