#!/bin/bash
# Fault row "kill-trim": mfx trim on the ptrace path (MFX_NO_DOORBELL) is
# SIGKILLed at a random moment 0-0.8 ms after it seized a thread - the
# trampoline's mmap, malloc_trim(0), the munmap (the whole hold is ~0.4 ms).
# The thread resumes from its signal frame; the target is unharmed and the
# next trim works.  The moment is mfx's own line (MFX_DEBUG) that it holds
# the thread, read through a FIFO: polling /proc for the seize missed
# holds this short 60 times in 60 on a loaded machine.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
TRIES=${SOAK_TRIES:-6}
ft_start read epoll_wait nanosleep recv_timeo sigtimedwait futex_wait poll
done=0 unharmed=0 answered=0 killed=0
for ((i = 0; done < TRIES && i < 10 * TRIES; i++)); do
	rm -f "$TMP/said"; mkfifo "$TMP/said"
	MFX_DEBUG=1 MFX_NO_DOORBELL=1 "$MFX" trim "${FT_PID[$FT]}" >/dev/null 2>"$TMP/said" &
	m=$!
	moment=$("$TARGETS/kill_at" "${FT_PID[$FT]}" "$m" 800 "$RANDOM$i" said <"$TMP/said")
	wait "$m" 2>/dev/null
	rc=$?
	[ "$moment" = "no moment" ] && continue
	note "try $i: $moment; mfx exit $rc"
	[ "$rc" = 137 ] && killed=$((killed + 1))
	done=$((done + 1))
	if ft_unharmed "$FT"; then unharmed=$((unharmed + 1)); else note "try $i ($moment): $FT_WHY"; fi
	MFX_NO_DOORBELL=1 run_mfx trim "${FT_PID[$FT]}"
	[ "$MFX_RC" = 0 ] && answered "$MFX_RC" "$MFX_ERR" && answered=$((answered + 1)) ||
		note "try $i: the next trim: $(cat "$MFX_ERR")"
done
[ "$done" = "$TRIES" ] || fail "$done of $i tries met the moment"
echo "ok: mfx was killed before it ended in $killed of $done tries"
row kill-trim "$done" "$unharmed" "$answered"
pass
