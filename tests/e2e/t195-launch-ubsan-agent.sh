#!/bin/bash
# mfx launch with the agent built under UBSan (build/ubsan/libmfx.so,
# -fno-sanitize-recover: any undefined behaviour in the agent ends the
# program with a "runtime error" report on its stderr).  First the proof
# that the check is live (MFX_UBSAN_SELFTEST=1: one signed overflow in the
# agent's constructor is reported); then real programs through the agent's
# paths - threads with cross-thread frees, dlopen and dlclose (module
# records with and without a build id), every exit path - with no report,
# the programs' own exit statuses, and the counts the programs say they made.
. "$(dirname "$0")/../lib.sh"
export MFX_AGENT=$MFX_ROOT/build/ubsan/libmfx.so
[ -f "$MFX_AGENT" ] || fail "build/ubsan/libmfx.so missing (make all)"
ldd "$MFX_AGENT" | grep -q libubsan || fail "the UBSan agent does not load libubsan"
no_report() {	# FILE WHAT
	if grep -q "runtime error" "$1"; then fail "$2: UBSan: $(grep -A4 'runtime error' "$1")"; fi
}

MFX_UBSAN_SELFTEST=1 run_mfx launch -q --no-report -o "$TMP/self" -- "$TARGETS/counts_target" 10
grep -q "ubsan.c:.*runtime error: signed integer overflow" "$MFX_ERR" ||
	fail "the self-test's overflow was not reported: $(head -3 "$MFX_ERR")"
[ "$MFX_RC" -ne 0 ] || fail "the program went on after a UBSan report"
echo "ok: UBSan is live in the traced program (self-test reported, exit $MFX_RC)"

run_mfx launch -q -o "$TMP/counts" -- "$TARGETS/counts_target" 3000
expect_eq "$MFX_RC" 0 "counts_target exit status"
no_report "$MFX_ERR" counts_target
exp=$TMP/counts.expected && grep '^{' "$MFX_ERR" >"$exp"
for k in malloc calloc realloc free memalign; do
	expect_eq "$(jget "$TMP/counts/summary.json" .counts.$k)" "$(jget "$exp" .counts.$k)" "counts.$k"
done

run_mfx launch -q --no-report -o "$TMP/mt" -- "$TARGETS/mt_counts" 4 2000
expect_eq "$MFX_RC" 0 "mt_counts exit status"
no_report "$MFX_ERR" mt_counts
run_mfx report -q "$TMP/mt"
expect_eq "$(jget "$TMP/mt/summary.json" .counts.malloc)" 8000 "mt_counts: malloc calls"
expect_eq "$(jget "$TMP/mt/summary.json" .counts.free)" 8000 "mt_counts: free calls"

# dlopen, dlclose: the agent records the library when a new stack passes
# through it (its check of the loader runs at most once a millisecond: the
# sleeps make sure it does) and its removal at exit, a module record
# without a build id (memcpy(p, NULL, 0) there was undefined)
printf 'sleep 20\ndlopen %s\nsleep 20\nrun 500\ndlclose\ndlopen %s\ndlclose\nquit\n' \
	"$TARGETS/libdlplugin.so" "$TARGETS/libdlplugin.so" >"$TMP/cmds"
"$MFX" launch -q --no-report -o "$TMP/dl" -- "$TARGETS/attach_target" <"$TMP/cmds" \
	>"$TMP/dl.out" 2>"$TMP/dl.err"
expect_eq "$?" 0 "dlopen/dlclose exit status"
no_report "$TMP/dl.err" "dlopen/dlclose"
expect_eq "$(grep -c '^done dlclose' "$TMP/dl.out")" 2 "the library unloaded twice"

for mode in return exit _exit abort kill segv; do
	MFX_AGENT= "$MFX" launch -q --no-report -o "$TMP/plain-$mode" -- "$TARGETS/exit_paths" $mode 100 \
		>/dev/null 2>&1
	want=$?
	run_mfx launch -q --no-report -o "$TMP/exit-$mode" -- "$TARGETS/exit_paths" $mode 100
	no_report "$MFX_ERR" "exit path $mode"
	expect_eq "$MFX_RC" "$want" "exit path $mode: the status the plain agent gives"
done
pass
