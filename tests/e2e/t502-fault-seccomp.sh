#!/bin/bash
# Fault row "seccomp": a target whose seccomp filter kills, traps or fails
# a system call mfx must make in it (memfd_create, clone) is refused in
# one line before any call is made - it would have died - and stays
# unharmed.  One against what only mfx's trampoline needs (an mmap of
# anonymous executable memory, judged on its arguments; tgkill) makes mfx
# do without it: the attach works.  A filter that fails a call mfx does not need
# (getrandom) or answers clone3 with ENOSYS as container runtimes do
# (glibc then uses clone) lets the attach work.  Without root, a process
# with filters is refused: only CAP_SYS_ADMIN may read them.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
[ "$(id -u)" = 0 ] || skip "needs root (PTRACE_SECCOMP_GET_FILTER)"
TRIES=${SOAK_TRIES:-1}
FT_PROG=$TARGETS/seccomp_exec
# ACTION NR WANT: what mfx must do (refuse: exit 1 naming seccomp; attach: exit 0)
cases="kill 319 refuse
trap 319 refuse
errno 319 refuse
killexec 9 attach
kill 234 attach
kill 56 refuse
errno 318 attach
enosys 435 attach"
tries=0 unharmed=0 answered=0
for ((r = 0; r < TRIES; r++)); do
	while read -r act nr want; do
		tries=$((tries + 1))
		ft_start_cmd "$FT_PROG" "$act" "$nr" "$TARGETS/fault_target" read epoll_wait futex_wait
		run_mfx attach -q --no-report --for 200ms -o "$TMP/s$tries" "${FT_PID[$FT]}"
		if [ "$want" = refuse ]; then
			[ "$MFX_RC" = 1 ] && answered "$MFX_RC" "$MFX_ERR" && grep -q "seccomp filter" "$MFX_ERR" &&
				answered=$((answered + 1)) || note "$act $nr: exit $MFX_RC: $(cat "$MFX_ERR")"
			grep -q libmfx "/proc/${FT_PID[$FT]}/maps" && note "$act $nr: agent loaded anyway"
		else
			[ "$MFX_RC" = 0 ] && answered "$MFX_RC" "$MFX_ERR" && answered=$((answered + 1)) ||
				note "$act $nr: exit $MFX_RC: $(cat "$MFX_ERR")"
		fi
		note "$act $nr: $(head -c 200 "$MFX_ERR")"
		if ft_unharmed "$FT"; then unharmed=$((unharmed + 1)); else note "$act $nr: $FT_WHY"; fi
		ft_end "$FT"
	done <<<"$cases"
done
# not root: a filtered process of its own is refused, it cannot read the filter
if command -v setpriv >/dev/null; then
	tries=$((tries + 1))
	mkfifo "$TMP/nb.in"; exec {nbfd}<>"$TMP/nb.in"
	setpriv --reuid=65534 --regid=65534 --clear-groups "$FT_PROG" errno 318 "$TARGETS/fault_target" read \
		<&$nbfd >"$TMP/nb.out" 2>&1 &
	nb=$!; track $nb
	wait_grep '^go' "$TMP/nb.out" 10
	setpriv --reuid=65534 --regid=65534 --clear-groups "$MFX" attach -q --no-report --for 100ms "$nb" \
		>"$TMP/nb.mfx.out" 2>"$TMP/nb.mfx.err"
	rc=$?
	[ "$rc" = 1 ] && answered "$rc" "$TMP/nb.mfx.err" && grep -q "only root" "$TMP/nb.mfx.err" &&
		answered=$((answered + 1)) || note "non-root: exit $rc: $(cat "$TMP/nb.mfx.err")"
	note "non-root: $(cat "$TMP/nb.mfx.err")"
	kill -0 $nb && ! grep -q DISTURBED "$TMP/nb.out" && unharmed=$((unharmed + 1))
fi
row seccomp "$tries" "$unharmed" "$answered"
pass
