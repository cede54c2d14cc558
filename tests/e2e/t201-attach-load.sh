#!/bin/bash
# attach 20 times in a row to a process busy in malloc/free on 4 threads,
# with a SIGALRM every millisecond and a storm of SIGCHLD from outside: it
# never crashes, hangs or sees EINTR, every window records events, and it
# answers afterwards.
. "$(dirname "$0")/../lib.sh"
target_start
tcmd "alarm 1"
tcmd "churn 600000"	# load on 4 threads for the whole test (it ends by the kill at its end)
( while kill -CHLD "$TPID" 2>/dev/null; do sleep 0.001; done ) &
track $!
sleep 0.3
for i in $(seq 1 20); do
	# odd rounds hold a thread (ptrace path), even ones ring the agent
	if [ $((i % 2)) = 1 ]; then nodb=1; else nodb=; fi
	MFX_NO_DOORBELL=$nodb run_mfx attach -q --no-report --for 200ms -o "$TMP/r$i" "$TPID"
	[ "$MFX_RC" = 0 ] || fail "attach $i: exit $MFX_RC: $(cat "$MFX_ERR")"
	kill -0 "$TPID" || fail "target died after attach $i"
	run_mfx report -q "$TMP/r$i"
	ev=$(jget "$TMP/r$i/summary.json" .events)
	[ "$ev" -gt 1000 ] || fail "attach $i recorded only $ev events"
done
echo "ok: 20 attaches under load, last one recorded $ev events"
target_unharmed
# it runs on: not stopped, and its churn threads still burn CPU (the main
# thread is inside the churn, so stdin commands would wait behind it)
kill -0 "$TPID" || fail "target died"
cpu() { awk '{ print $14 + $15 }' "/proc/$TPID/stat"; }
st=$(awk '{ print $3 }' "/proc/$TPID/stat")
[ "$st" != T ] && [ "$st" != t ] || fail "target left stopped (state $st)"
c0=$(cpu); sleep 0.5; c1=$(cpu)
expect_ge "$((c1 - c0))" 1 "CPU ticks of the churn threads in 0.5 s after the attaches"
pass
