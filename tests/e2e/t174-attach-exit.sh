#!/bin/bash
# A target that exits during an attach window: mfx says so in one line,
# with its exit status, and the report's second line and summary.json
# (exited, exit_status, exit_began) too; frees of its teardown are told
# apart from its life.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3"
spawn $PY -c '
import sys, time
keep = [bytes(2000) for _ in range(3000)]
print("ready", flush=True)
time.sleep(1.5)
more = [bytes(2000) for _ in range(1000)]
sys.exit(7)'
pid=$SPAWNED
wait_grep ready "$SPAWN_OUT" 10
run_mfx attach --for 20s -o "$TMP/run" "$pid"
expect_eq "$MFX_RC" 0 "mfx exit: $(cat "$MFX_ERR")"
expect_eq "$(grep -c "pid $pid exited during the window with status 7" "$MFX_ERR")" 1 "one line with the status"
sed -n 2p "$MFX_OUT" | grep -q "the process exited during the window with status 7" ||
	fail "the report's second line: $(sed -n 2p "$MFX_OUT")"
s=$TMP/run/summary.json
expect_eq "$(jget "$s" .exited)" true "exited"
expect_eq "$(jget "$s" .exit_status)" 7 "exit_status"
expect_eq "$(jget "$s" .exit_began.status)" 7 "the agent's exit mark"
expect_ge "$(jget "$s" '.counts.malloc + .counts.calloc')" 1000 "the window's allocations (bytes(n) is calloc'ed)"
pass
