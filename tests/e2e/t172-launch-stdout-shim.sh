#!/bin/bash
# mfx launch leaves the program's stdout alone: byte-identical to an
# untraced run (mfx says everything on stderr, and with -q nothing but
# errors).  Launched through a wrapper that execs - a shell shim like
# pyenv's, env, sh -c 'exec ...' - the report is of the image that did the
# work (the last exec of the launched pid), and the others are listed.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3"
REAL=$(readlink -f $PY)
script='import sys
for i in range(2000):
    print(i, "x" * (i % 70))
d = [bytes(1000) for _ in range(20000)]
print(len(d), file=sys.stderr)'

# stdout: the same bytes as without mfx, and nothing of mfx's
$PY -c "$script" >"$TMP/plain.out" 2>/dev/null
run_mfx launch -o "$TMP/r1" -- $PY -c "$script"
expect_eq "$MFX_RC" 0 "exit status"
cmp "$TMP/plain.out" "$MFX_OUT" || fail "stdout differs from an untraced run"
echo "ok: stdout byte-identical ($(wc -c <"$MFX_OUT") bytes)"
grep -q '^verdict: ' "$MFX_ERR" || fail "no summary on stderr"
echo "ok: the summary went to stderr"
run_mfx launch -q -o "$TMP/r2" -- $PY -c "$script"
cmp "$TMP/plain.out" "$MFX_OUT" || fail "stdout differs with -q"
expect_eq "$(grep -v '^20000$' "$MFX_ERR" | wc -l)" 0 "-q: nothing of mfx's on stderr"
[ -s "$TMP/r2/summary.json" ] || fail "-q wrote no summary.json"

# through wrappers that exec
mkdir -p "$TMP/bin"
printf '#!/bin/sh\n# a shim, as pyenv installs them\nexec %s "$@"\n' "$PY" >"$TMP/bin/python3"
chmod +x "$TMP/bin/python3"
n=0
for how in shim env sh; do
	n=$((n + 1))
	case $how in
	shim) set -- "$TMP/bin/python3" -c "$script" ;;
	env) set -- env PYTHONDONTWRITEBYTECODE=1 $PY -c "$script" ;;
	sh) set -- sh -c "exec $PY -c '$script'" ;;
	esac
	run_mfx launch -o "$TMP/w$n" -- "$@"
	expect_eq "$MFX_RC" 0 "$how: exit status"
	cmp "$TMP/plain.out" "$MFX_OUT" || fail "$how: stdout differs"
	s=$TMP/w$n/summary.json
	expect_eq "$(jget "$s" .exe)" "$REAL" "$how: the report is the interpreter's"
	expect_ge "$(jget "$s" '.counts.malloc + .counts.calloc')" 20000 "$how: its allocations"
	expect_ge "$(jget "$s" '.exec_images | length')" 1 "$how: the wrapper's image listed"
	grep -q "before it, it exec'ed" "$MFX_ERR" || fail "$how: the terminal does not list the wrapper"
	[ -e "$TMP/w$n/trace-$(jget "$s" .pid).0.mfx" ] || fail "$how: the first image's trace is not trace-PID.0.mfx"
done
echo "ok: through a shim, env and sh -c 'exec': the interpreter's report"

# mfx report --trace: the other trace's own files, the main ones untouched
pid=$(jget "$TMP/w1/summary.json" .pid)
sum_before=$(md5sum <"$TMP/w1/summary.json") html_before=$(md5sum <"$TMP/w1/report.html")
run_mfx report --trace "trace-$pid.0.mfx" "$TMP/w1"
expect_eq "$MFX_RC" 0 "report --trace: $(cat "$MFX_ERR")"
for f in "summary-$pid.0.json" "report-$pid.0.html" "impact_memory_usage-$pid.0.png"; do
	[ -s "$TMP/w1/$f" ] || fail "report --trace wrote no $f"
done
expect_eq "$(md5sum <"$TMP/w1/summary.json")" "$sum_before" "summary.json untouched"
expect_eq "$(md5sum <"$TMP/w1/report.html")" "$html_before" "report.html untouched"
expect_eq "$(jget "$TMP/w1/summary-$pid.0.json" .exe)" "$(readlink -f /bin/sh)" "the shim's own summary"
pass
