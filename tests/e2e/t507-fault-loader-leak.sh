#!/bin/bash
# Fault row "loader-leak": the thread the first attach's hold starts to
# load the agent outlives a failed attach - mfx SIGKILLed the moment that
# thread appears, or 0-2 ms into its loading (memfd_create, dlopen).
# It ends by itself (its start routine is sleep(3), its signal frame
# resumes it to that end): no thread of ours is left, the target is
# unharmed, and the next attach works.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
TRIES=${SOAK_TRIES:-4}
BATCH=6	# targets alive at once: each is checked, then ended
tried=0 unharmed=0 answered=0 batch=()
check_batch() {
	local id
	for id in "${batch[@]}"; do
		if ft_unharmed "$id"; then unharmed=$((unharmed + 1)); else note "target ${FT_PID[$id]}: $FT_WHY"; fi
		run_mfx attach -q --no-report --for 100ms -o "$TMP/a$id" "${FT_PID[$id]}"
		[ "$MFX_RC" = 0 ] && answered "$MFX_RC" "$MFX_ERR" && answered=$((answered + 1)) ||
			note "the next attach to ${FT_PID[$id]}: $(cat "$MFX_ERR")"
		ft_end "$id"
	done
	batch=()
}
for ((i = 0; tried < TRIES && i < 10 * TRIES; i++)); do
	ft_start read epoll_wait nanosleep recv_timeo futex_wait
	"$MFX" attach -q --no-report --for 1s -o "$TMP/k$i" "${FT_PID[$FT]}" >/dev/null 2>&1 &
	m=$!
	moment=$("$TARGETS/kill_at" "${FT_PID[$FT]}" "$m" $((i % 2 ? 2000 : 0)) "$RANDOM$i" loader)
	wait "$m" 2>/dev/null
	ft_moment "$moment"
done
check_batch
[ "$tried" -gt 0 ] || fail "no try met the moment"	# (a loaded machine: fewer)
note "$(sort "$TMP/kills" | head -4 | tr '\n' ';')"
row loader-leak "$tried" "$unharmed" "$answered"
pass
