#!/bin/bash
# Fault row "kill-trim": mfx trim on the ptrace path (MFX_NO_DOORBELL) is
# SIGKILLed at a random moment 0-3 ms after it seized a thread - the
# trampoline's mmap, malloc_trim(0), the munmap.  The thread resumes from
# its signal frame; the target is unharmed and the next trim works.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
TRIES=${SOAK_TRIES:-6}
ft_start read epoll_wait nanosleep recv_timeo sigtimedwait futex_wait poll
done=0 unharmed=0 answered=0
for ((i = 0; done < TRIES && i < 10 * TRIES; i++)); do
	MFX_NO_DOORBELL=1 "$MFX" trim "${FT_PID[$FT]}" >/dev/null 2>&1 &
	m=$!
	moment=$("$TARGETS/kill_at" "${FT_PID[$FT]}" "$m" 3000 "$RANDOM$i")
	wait "$m" 2>/dev/null
	[ "$moment" = "no moment" ] && continue
	done=$((done + 1))
	if ft_unharmed "$FT"; then unharmed=$((unharmed + 1)); else note "try $i ($moment): $FT_WHY"; fi
	MFX_NO_DOORBELL=1 run_mfx trim "${FT_PID[$FT]}"
	[ "$MFX_RC" = 0 ] && answered "$MFX_RC" "$MFX_ERR" && answered=$((answered + 1)) ||
		note "try $i: the next trim: $(cat "$MFX_ERR")"
done
[ "$done" -gt 0 ] || fail "no try met the moment"	# (a loaded machine: fewer)
row kill-trim "$done" "$unharmed" "$answered"
pass
