#!/bin/bash
# attach: exact counts inside the window; the system call the held thread
# was blocked in (read) is restarted, not failed with EINTR; after the
# window nothing is recorded and the process runs on; a second attach
# re-arms the agent already loaded through its doorbell (no thread held),
# a third forced onto the ptrace path re-arms it too.
. "$(dirname "$0")/../lib.sh"
target_start
for round in 1 2; do
	mfx_bg attach -o "$TMP/run$round" --no-report "$TPID"
	mfx_wait_attached
	tdo "run 2000"
	mfx_end INT
	expect_eq "$MFX_RC" 0 "mfx attach exit status (round $round)"
	want=$(grep '^done {' "$TOUT" | tail -1 | sed 's/^done //')	# the run 2000
	run_mfx report -q "$TMP/run$round"
	s=$TMP/run$round/summary.json
	for k in malloc calloc realloc free memalign; do
		expect_eq "$(jget "$s" ".counts.$k")" "$(echo "$want" | jq ".$k")" "round $round $k"
	done
	expect_eq "$(jget "$s" .total_bytes_allocated)" "$(echo "$want" | jq .total_bytes_allocated)" \
		"round $round total bytes"
	expect_eq "$(jget "$s" .mode)" attach "mode"
	# the read() the target was blocked in carries on: a sleep must be whole
	tdo "sleep 200"
	# after the stop: the trace no longer changes
	sum=$(md5sum <"$TMP/run$round/trace.mfx")
	tdo "run 500"
	expect_eq "$(md5sum <"$TMP/run$round/trace.mfx")" "$sum" "trace unchanged after the window"
done
# attach while the only thread sleeps in nanosleep(1.5 s): the sleep is
# neither cut short nor failed with EINTR (the target checks both)
tcmd "sleep 1500"
sleep 0.2
MFX_NO_DOORBELL=1 run_mfx attach -q --no-report --for 200ms -o "$TMP/run3" "$TPID"
expect_eq "$MFX_RC" 0 "attach during nanosleep"
tdo "run 10"
grep -q "^done sleep" "$TOUT" || fail "sleep did not complete"
expect_eq "$(jget "$TMP/run1/summary.json" .attach.agent)" loaded "first attach loads the agent"
expect_eq "$(jget "$TMP/run2/summary.json" .attach.agent)" doorbell "second attach rings the agent"
expect_eq "$(jget "$TMP/run2/summary.json" .attach.thread_held_ns)" 0 "second attach: no thread held"
run_mfx report -q "$TMP/run3"
expect_eq "$(jget "$TMP/run3/summary.json" .attach.agent)" reused "ptrace path re-arms it"
expect_ge "$(jget "$TMP/run3/summary.json" .attach.thread_held_ns)" 1 "ptrace path: a thread held"
expect_ge "$(jget "$TMP/run1/summary.json" .attach.got_slots_patched)" 4 "GOT slots patched"
expect_le "$(jget "$TMP/run1/summary.json" .attach.thread_held_ns)" 1000000000 "thread held (ns)"
# the agent's library is mapped once
expect_eq "$(grep 'memfd:libmfx.so' /proc/$TPID/maps | awk '{print $5}' | sort -u | wc -l)" 1 "copies of the agent mapped"
kill -0 "$TPID" || fail "target died"
pass
