#!/bin/bash
# Fault row "setxid": first attaches while a thread of the target calls
# setresuid() every 200 us (glibc signals every thread, SIGSETXID, and
# waits for each handler while holding the thread-stack lock) and two CPU
# hogs compete.  A SIGSETXID can reach mfx's loader thread just before it
# is held; mfx must let that handler run (else the setresuid() caller and
# the agent's dlopen deadlock, for good).  Every attach ends in time.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
TRIES=${SOAK_TRIES:-5}
for i in 1 2; do ( while :; do :; done ) & track $!; done
unharmed=0 answered=0
for ((i = 0; i < TRIES; i++)); do
	target_start
	tcmd "setxid 20000"
	sleep 0.1
	timeout -s KILL 30 "$MFX" attach -q --no-report --for 200ms -o "$TMP/r$i" "$TPID" >"$TMP/m.out" 2>"$TMP/m.err"
	rc=$?
	[ "$rc" = 0 ] && answered 0 "$TMP/m.err" && answered=$((answered + 1)) ||
		note "try $i: exit $rc: $(cat "$TMP/m.err")"
	tdo "run 100"	# it still answers (a deadlock would hang it here)
	target_unharmed
	kill -0 "$TPID" && unharmed=$((unharmed + 1))
	tcmd quit
	wait "$TPID"
done
row setxid "$TRIES" "$unharmed" "$answered"
pass
