#!/bin/bash
# Fault row "kill-hold": mfx is SIGKILLed at a random moment 0-6 ms after
# it seized a thread of a fresh fault_target - its first attach: the hold
# of a program thread (pthread_create), then the hold of our loader thread
# (memfd_create, dlopen, close), then the session start.  Whatever the
# moment, the target lives: no EINTR, errno, mask, handler, altstack or
# scheduling change in any of its 34 threads, nothing stopped, and no
# thread of ours left once its sleep(3) is over.  The next mfx attach
# works (the agent dormant, or loaded afresh).
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
TRIES=${SOAK_TRIES:-6}
BATCH=6	# targets alive at once: each is checked, then ended
tried=0 unharmed=0 answered=0 batch=()
check_batch() {
	local id ok
	for id in "${batch[@]}"; do
		ok=1
		ft_unharmed "$id" || { ok=0; note "after the kill, target ${FT_PID[$id]}: $FT_WHY"; }
		run_mfx attach -q --no-report --for 100ms -o "$TMP/a$id" "${FT_PID[$id]}"
		if [ "$MFX_RC" = 0 ] && answered "$MFX_RC" "$MFX_ERR"; then
			answered=$((answered + 1))
		else
			note "the next attach to ${FT_PID[$id]}: exit $MFX_RC: $(cat "$MFX_ERR")"
		fi
		ft_unharmed "$id" || { ok=0; note "after the next attach, target ${FT_PID[$id]}: $FT_WHY"; }
		unharmed=$((unharmed + ok))
		ft_end "$id"
	done
	batch=()
}
for ((i = 0; tried < TRIES && i < 10 * TRIES; i++)); do
	ft_start
	"$MFX" attach -q --no-report --for 1s -o "$TMP/k$i" "${FT_PID[$FT]}" >"$TMP/k$i.out" 2>"$TMP/k$i.err" &
	m=$!
	moment=$("$TARGETS/kill_at" "${FT_PID[$FT]}" "$m" 6000 "$RANDOM$i")
	wait "$m" 2>/dev/null
	ft_moment "$moment"	# (no moment: the attach was over first; again)
done
check_batch
[ "$tried" -gt 0 ] || fail "no try met the moment"	# (a loaded machine: fewer)
note "$(sort "$TMP/kills" | uniq -c | sort -rn | head -3 | tr '\n' ';') ..."
row kill-hold "$tried" "$unharmed" "$answered"
pass
