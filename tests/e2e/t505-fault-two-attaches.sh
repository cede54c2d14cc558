#!/bin/bash
# Fault row "two-attaches": two first attaches to one fresh target at the
# same moment.  The agent is claimed inside the target: of two copies
# loaded at once, the second finds the first when its constructor runs
# (dlopen runs them under the loader lock) and stays inert, and its mfx
# unloads it.  One attach records; the other records too (one after the
# other) or says in one line that another mfx is there.  Never two agent
# threads, never a recorder left running once both have ended: a third
# attach then works.
. "$(dirname "$0")/../lib.sh"
. "$MFX_ROOT/tests/fault.sh"
TRIES=${SOAK_TRIES:-4}
unharmed=0 answered=0
agents() { grep -l '^mfx-agent$' /proc/"$1"/task/*/comm 2>/dev/null | wc -l; }
for ((i = 0; i < TRIES; i++)); do
	ft_start read epoll_wait nanosleep
	pid=${FT_PID[$FT]}
	"$MFX" attach -q --no-report --for 300ms -o "$TMP/a$i" "$pid" >"$TMP/a$i.out" 2>"$TMP/a$i.err" &
	a=$!
	"$MFX" attach -q --no-report --for 300ms -o "$TMP/b$i" "$pid" >"$TMP/b$i.out" 2>"$TMP/b$i.err" &
	b=$!
	wait $a; ra=$?
	wait $b; rb=$?
	ok=1
	answered "$ra" "$TMP/a$i.err" && answered "$rb" "$TMP/b$i.err" || ok=0
	[ "$ra" = 0 ] || [ "$rb" = 0 ] || ok=0	# one of them at least
	for f in a b; do
		r=$([ $f = a ] && echo $ra || echo $rb)
		[ "$r" = 0 ] || grep -q "another mfx" "$TMP/$f$i.err" || ok=0
	done
	[ "$(agents "$pid")" = 1 ] || { ok=0; note "try $i: $(agents "$pid") agent threads"; }
	run_mfx attach -q --no-report --for 100ms -o "$TMP/c$i" "$pid"
	[ "$MFX_RC" = 0 ] || { ok=0; note "try $i: a third attach: $(cat "$MFX_ERR")"; }
	[ $ok = 1 ] && answered=$((answered + 1)) || note "try $i: exits $ra $rb: $(cat "$TMP/a$i.err" "$TMP/b$i.err")"
	note "try $i: exits $ra $rb $(cat "$TMP/a$i.err" "$TMP/b$i.err" | tr '\n' ' ')"
	if ft_unharmed "$FT"; then unharmed=$((unharmed + 1)); else note "try $i: $FT_WHY"; fi
	ft_end "$FT"
done
row two-attaches "$TRIES" "$unharmed" "$answered"
pass
