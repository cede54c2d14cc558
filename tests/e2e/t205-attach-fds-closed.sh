#!/bin/bash
# A daemon closes every fd above 2 after an attach (the agent's doorbell
# with them) and gets the numbers again for sockets of its own: mfx must
# never read from or write to those (the doorbell and sessions are checked
# by inode), trim falls back to ptrace, and a later attach starts a new
# agent thread.
. "$(dirname "$0")/../lib.sh"
target_start
run_mfx attach -q --no-report --for 100ms -o "$TMP/r1" "$TPID"
expect_eq "$MFX_RC" 0 "first attach"
tdo "closefds"
run_mfx trim --json "$TPID"
expect_eq "$MFX_RC" 0 "trim after the fds were closed: $(cat "$MFX_ERR")"
expect_eq "$(jget "$MFX_OUT" .method)" ptrace "trim method (the doorbell is gone)"
tdo "checkfds"
grep -q INJECTED "$TOUT" && fail "mfx wrote into the program's socket: $(grep INJECTED "$TOUT")"
# the dormant thread notices within a second and ends; a new attach starts anew
sleep 1.5
expect_eq "$(grep -c mfx-agent /proc/$TPID/task/*/comm 2>/dev/null | awk -F: '{s += $2} END {print s + 0}')" 0 \
	"agent threads left"
mfx_bg attach -o "$TMP/r2" --no-report "$TPID"
mfx_wait_attached
tdo "run 200"
mfx_end INT
expect_eq "$MFX_RC" 0 "attach after the fds were closed"
run_mfx report -q "$TMP/r2"
expect_eq "$(jget "$TMP/r2/summary.json" .counts.malloc)" 200 "malloc count"
expect_eq "$(jget "$TMP/r2/summary.json" .attach.agent)" reused "the loaded agent, a new thread"
tdo "checkfds"
grep -q INJECTED "$TOUT" && fail "mfx wrote into the program's socket: $(grep INJECTED "$TOUT")"
pass
