#!/bin/bash
# Fault row "eintr": for each of fault_target's 34 blocking system calls,
# a fresh target running that call alone is attached with mfx holding that
# very thread (MFX_HOLD_TID: the first attach's hold), then trimmed through
# ptrace holding it again, then attached once more on the ptrace path
# (MFX_NO_DOORBELL).  The call never returns early, never fails with EINTR
# - epoll_wait, sigtimedwait, recv with SO_RCVTIMEO, semtimedop and kin
# fail so after any stop, and mfx restarts them as the kernel restarts the
# others - errno is unchanged, and so are mask, handlers and scheduling.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
ROUNDS=${SOAK_TRIES:-1}
calls=$("$TARGETS/fault_target" --list)
tries=0 unharmed=0 answered=0
for ((r = 0; r < ROUNDS; r++)); do
	for c in $calls; do
		tries=$((tries + 1))
		ft_start "$c"
		tid=$(ft_tid "$FT" "$c")
		ok=1
		MFX_HOLD_TID=$tid run_mfx attach -q --no-report --for 100ms -o "$TMP/a$tries" "${FT_PID[$FT]}"
		[ "$MFX_RC" = 0 ] && answered "$MFX_RC" "$MFX_ERR" || { ok=0; note "$c: attach: $(cat "$MFX_ERR")"; }
		MFX_HOLD_TID=$tid MFX_NO_DOORBELL=1 run_mfx trim "${FT_PID[$FT]}"
		[ "$MFX_RC" = 0 ] && answered "$MFX_RC" "$MFX_ERR" || { ok=0; note "$c: trim: $(cat "$MFX_ERR")"; }
		MFX_HOLD_TID=$tid MFX_NO_DOORBELL=1 run_mfx attach -q --no-report --for 100ms -o "$TMP/b$tries" "${FT_PID[$FT]}"
		[ "$MFX_RC" = 0 ] && answered "$MFX_RC" "$MFX_ERR" || { ok=0; note "$c: ptrace-path attach: $(cat "$MFX_ERR")"; }
		answered=$((answered + ok))
		if ft_unharmed "$FT"; then unharmed=$((unharmed + 1)); else note "$c: $FT_WHY"; fi
		ft_end "$FT"
	done
done
row eintr "$tries" "$unharmed" "$answered"
pass
