#!/bin/bash
# The target exits during the window: mfx reports what it saw, exit 0.
# mfx is killed (SIGKILL) during the window: the agent notices, undoes its
# hooks by itself (its thread stays, dormant), and the target runs on.
# A second mfx during a window is refused.
. "$(dirname "$0")/../lib.sh"
target_start
mfx_bg attach -o "$TMP/run" "$TPID"
mfx_wait_attached
tdo "run 500"
tcmd quit
wait "$MPID"; MFX_RC=$?
expect_eq "$MFX_RC" 0 "mfx exit after the target exited"
expect_eq "$(jget "$TMP/run/summary.json" .counts.malloc)" 500 "malloc count"
grep -q "verdict:" "$MBG_OUT" || fail "no terminal summary: $(cat "$MBG_OUT")"

target_start
mfx_bg attach -o "$TMP/run2" --no-report "$TPID"
mfx_wait_attached
tdo "run 100"
kill -KILL "$MPID"; wait "$MPID" 2>/dev/null
# the agent sees the channel close and stops recording by itself: the
# trace no longer changes while the target allocates
sleep 0.5
sum=$(md5sum <"$TMP/run2/trace.mfx")
tdo "run 2000"
expect_eq "$(md5sum <"$TMP/run2/trace.mfx")" "$sum" "trace unchanged after mfx died"
grep -q mfx-agent /proc/$TPID/task/*/comm || fail "the agent's thread should stay, dormant"
tdo "sleep 100"
# attach again: works
mfx_bg attach -o "$TMP/run3" --no-report "$TPID"
mfx_wait_attached
tdo "run 300"
mfx_end INT
expect_eq "$MFX_RC" 0 "attach after a killed mfx"
run_mfx report -q "$TMP/run3"
expect_eq "$(jget "$TMP/run3/summary.json" .counts.malloc)" 300 "malloc count"
# a second mfx while one records: refused in one line, no fd left behind
# in the target, and the first carries on
mfx_bg attach -o "$TMP/run4" --no-report "$TPID"
mfx_wait_attached
n0=$(ls /proc/$TPID/fd | wc -l)
run_mfx attach -q --for 200ms --no-report -o "$TMP/run5" "$TPID"
expect_eq "$MFX_RC" 1 "second attach: exit"
expect_one_error_line "$MFX_ERR" "another mfx is recording it"
expect_eq "$(ls /proc/$TPID/fd | wc -l)" "$n0" "fds of the target"
tdo "run 100"
mfx_end INT
expect_eq "$MFX_RC" 0 "first attach"
run_mfx report -q "$TMP/run4"
expect_eq "$(jget "$TMP/run4/summary.json" .counts.malloc)" 100 "first attach: malloc count"
pass
