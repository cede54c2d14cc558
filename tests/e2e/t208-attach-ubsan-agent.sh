#!/bin/bash
# mfx attach with the agent built under UBSan (build/ubsan/libmfx.so): mfx
# dlopen()s it into the live process, and libubsan (and the libstdc++ it
# needs) with it.  The proof that the check is live there: a target started
# with MFX_UBSAN_SELFTEST=1 dies of the report when the agent is loaded,
# and mfx says so in one line.  Then a clean target through the agent's
# attach paths - a library loaded and unloaded in the window, exact counts,
# threads churning, a second attach through the doorbell - with no report,
# the target unharmed (no EINTR, errno or signal handler changed, the same
# caught signals), libubsan mapped in it.  The library unloaded in the
# window used to kill the target when the window ended (its GOT slots were
# put back after it was gone, preload/got.c).
. "$(dirname "$0")/../lib.sh"
export MFX_AGENT=$MFX_ROOT/build/ubsan/libmfx.so
[ -f "$MFX_AGENT" ] || fail "build/ubsan/libmfx.so missing (make all)"
no_report() { if grep -q "runtime error" "$TOUT"; then fail "UBSan: $(grep -A4 'runtime error' "$TOUT")"; fi; }

MFX_UBSAN_SELFTEST=1 target_start
self=$TPID self_out=$TOUT
run_mfx attach -q --no-report --for 2s -o "$TMP/self" "$self"
wait "$self" 2>/dev/null
grep -q "ubsan.c:.*runtime error: signed integer overflow" "$self_out" ||
	fail "the self-test's overflow was not reported in the target: $(tail -3 "$self_out")"
[ "$MFX_RC" -ne 0 ] || fail "mfx attach said nothing of the target's death"
expect_one_error_line "$MFX_ERR" "exited|died|gone|killed"
echo "ok: UBSan is live in the attached process"

caught() {	# the standard signals (1-32) the target has handlers for; glibc's
	# own above them (SIGSETXID once a thread of ours started) are not the program's
	printf '%08x' $(( 0x$(awk '/^SigCgt/ { print $2 }' "/proc/$TPID/status") & 0xffffffff ))
}
target_start
sig=$(caught)
mfx_bg attach -o "$TMP/run1" --no-report "$TPID"
mfx_wait_attached
tdo "sleep 20"
tdo "dlopen $TARGETS/libdlplugin.so"
tdo "sleep 20"
tdo "run 2000"
want=$(grep '^done {' "$TOUT" | tail -1 | sed 's/^done //')
tdo "dlclose"
tdo "churn 200"
mfx_end INT
expect_eq "$MFX_RC" 0 "mfx attach exit status"
kill -0 "$TPID" 2>/dev/null || fail "the target died when the window ended: $(tail -2 "$TOUT")"
no_report
target_unharmed
grep -q libubsan "/proc/$TPID/maps" || fail "libubsan is not in the target: not the UBSan agent"
expect_eq "$(caught)" "$sig" "the signals the target catches"
run_mfx report -q "$TMP/run1"
s=$TMP/run1/summary.json
for k in malloc calloc realloc memalign; do	# run 2000, plus the plugin and the churn
	expect_ge "$(jget "$s" ".counts.$k")" "$(echo "$want" | jq ".$k")" "$k at least the run's"
done

# again, through the doorbell of the agent already there
run_mfx attach -q --no-report --for 300ms -o "$TMP/run2" "$TPID"
expect_eq "$MFX_RC" 0 "second attach"
tdo "run 100"
no_report
target_unharmed
kill -0 "$TPID" || fail "target died"

# the same unload in the window with the agent mfx installs
tcmd quit
wait "$TPID"
MFX_AGENT= target_start
MFX_AGENT= mfx_bg attach -o "$TMP/plain" --no-report "$TPID"
mfx_wait_attached
tdo "dlopen $TARGETS/libdlplugin.so"
tdo "dlclose"
mfx_end INT
expect_eq "$MFX_RC" 0 "plain agent: mfx attach exit status"
kill -0 "$TPID" 2>/dev/null || fail "the plain agent's window end killed the target"
tdo "run 10"
target_unharmed
pass
