#!/bin/bash
# Fault row "fifo-libc": the target's user, in a user and mount namespace
# of its own (unshare -Urm), bind-mounts a FIFO over the libc.so.6 its
# process has mapped - or another ELF file, to feed mfx lies.  Root's mfx
# attach and trim used to block forever in open() of that path (and
# Ctrl-C did not end them).  mfx reads only what the kernel says is mapped
# (the dynamic symbols in the target's memory), so both work, in time,
# the agent records, and the target is unharmed.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
[ "$(id -u)" = 0 ] || skip "needs root (the victim is root's mfx)"
need unshare
unshare -Urm true 2>/dev/null || skip "unshare -Urm not allowed here"
TRIES=${SOAK_TRIES:-1}
libc=$(awk '$NF ~ /\/libc\.so\.6$/ { print $NF; exit }' /proc/self/maps)
mkfifo "$TMP/fifo"
printf '\177ELF this is not the C library\n' >"$TMP/lie"
cp /bin/true "$TMP/true.elf"
tries=0 unharmed=0 answered=0
for ((i = 0; i < TRIES; i++)); do
	for over in fifo lie true.elf; do
		tries=$((tries + 1))
		ft_start_cmd unshare -Urm sh -c "exec 3<&0; \"\$0\" read epoll_wait nanosleep <&3 & sleep 0.3;
			mount --bind '$TMP/$over' '$libc' && echo bound >'$TMP/bound.$tries'; wait" \
			"$TARGETS/fault_target"
		pid=$(pgrep -P "${FT_PID[$FT]}" -x fault_target)
		wait_file "$TMP/bound.$tries" 5
		[ -p "/proc/$pid/root$libc" ] || [ "$over" != fifo ] || fail "the FIFO is not over $libc in $pid"
		FT_PID[$FT]=$pid
		ok=1
		timeout -s KILL 30 "$MFX" attach -q --no-report --for 200ms -o "$TMP/r$tries" "$pid" \
			>"$TMP/m.out" 2>"$TMP/m.err"
		rc=$?
		[ "$rc" = 0 ] && answered 0 "$TMP/m.err" || { ok=0; note "$over: attach: exit $rc: $(cat "$TMP/m.err")"; }
		timeout -s KILL 60 "$MFX" report -q "$TMP/r$tries" >/dev/null 2>&1 || { ok=0; note "$over: report: exit $?"; }
		[ "$(jget "$TMP/r$tries/summary.json" .attach.got_slots_patched)" -gt 0 ] 2>/dev/null ||
			{ ok=0; note "$over: no GOT slot patched"; }
		MFX_NO_DOORBELL=1 timeout -s KILL 30 "$MFX" trim "$pid" >"$TMP/t.out" 2>"$TMP/t.err"
		rc=$?
		[ "$rc" = 0 ] && answered 0 "$TMP/t.err" || { ok=0; note "$over: trim: exit $rc: $(cat "$TMP/t.err")"; }
		answered=$((answered + ok))
		if ft_unharmed "$FT"; then unharmed=$((unharmed + 1)); else note "$over: $FT_WHY"; fi
		ft_end "$FT"
	done
done
row fifo-libc "$tries" "$unharmed" "$answered"
pass
