#!/bin/bash
# Fault row "pidns": a target in its own pid namespace (unshare -pf
# --mount-proc), attached by its host pid.  The thread mfx starts in it
# to load the agent has a namespace tid that is, on purpose, the host pid
# of a decoy: another fault_target on the host (the namespace's
# ns_last_pid is set so).  mfx translates the tid through NSpid and never
# touches the decoy: both stay unharmed, the attach works.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
[ "$(id -u)" = 0 ] || skip "needs root (unshare -p)"
need unshare
need nsenter
TRIES=${SOAK_TRIES:-2}
tries=0 unharmed=0 answered=0
for ((i = 0; i < TRIES; i++)); do
	ft_start read epoll_wait recv_timeo nanosleep
	decoy=$FT
	ft_start_cmd unshare -pf --mount-proc --kill-child "$TARGETS/fault_target" read epoll_wait recv_timeo
	ns=$FT
	host=$(pgrep -P "${FT_PID[$ns]}" -x fault_target)
	[ -n "$host" ] || fail "no fault_target under unshare ${FT_PID[$ns]}"
	D=${FT_PID[$decoy]}
	nsenter -t "$host" -p -m sh -c "echo $((D - 1)) >/proc/sys/kernel/ns_last_pid" ||
		fail "cannot set ns_last_pid in the namespace"
	tries=$((tries + 1))
	MFX_DEBUG=1 run_mfx attach --no-report --for 300ms -o "$TMP/r$i" "$host"
	grep -q "($D in its namespace)" "$MFX_ERR" || note "try $i: the loader thread did not get the decoy's number $D: $(grep 'started to load' "$MFX_ERR")"
	if [ "$MFX_RC" = 0 ] && grep -q "attached to pid $host" "$MFX_ERR"; then
		answered=$((answered + 1))
	else
		note "try $i: exit $MFX_RC: $(grep -v 'inject:' "$MFX_ERR")"
	fi
	ok=1
	ft_unharmed "$decoy" || { ok=0; note "try $i: the decoy $D: $FT_WHY"; }
	FT_PID[$ns]=$host
	ft_unharmed "$ns" || { ok=0; note "try $i: the target $host: $FT_WHY"; }
	unharmed=$((unharmed + ok))
	ft_end "$decoy"
	ft_end "$ns"
done
row pidns "$tries" "$unharmed" "$answered"
pass
