#!/bin/bash
# The first attach's hold only starts a thread of ours (parked in pause())
# that loads the agent after the hold.  Afterwards that thread is gone, the
# held thread has its own scheduling back (policy, nice: mfx runs it
# SCHED_FIFO while held) and the agent's thread inherits it.  Rounds 2 and 3
# do it while another thread calls setresuid() every 200 us (glibc signals
# every thread, SIGSETXID, and waits for all of them, the held one and ours
# included): that loop never sticks; when a SIGSETXID ends our thread's
# pause() before mfx takes it, mfx loads the agent in a hold instead.
# Round 3 sets MFX_NO_BOOT=1: the held thread loads the agent itself.
. "$(dirname "$0")/../lib.sh"
ntasks() { ls "/proc/$1/task" | wc -l; }
nice_of() { awk '{print $19}' "/proc/$1/task/$2/stat"; }
policy_of() { chrt -p "$1" | head -1 | sed 's/.*: //'; }
for round in 1 2 3; do
	target_start
	renice -n 5 -p "$TPID" >/dev/null
	if [ "$round" != 1 ]; then tcmd "setxid 4000"; sleep 0.2; fi
	before=$(ntasks "$TPID")	# main + the setresuid thread
	if [ "$round" = 3 ]; then noboot=1; else noboot=; fi
	MFX_NO_BOOT=$noboot run_mfx attach -q --no-report --for 300ms -o "$TMP/r$round" "$TPID"
	expect_eq "$MFX_RC" 0 "attach, round $round: $(cat "$MFX_ERR")"
	# our loader thread ends right after the attach: the agent's is the only new one
	for i in $(seq 50); do [ "$(ntasks "$TPID")" = $((before + 1)) ] && break; sleep 0.02; done
	expect_eq "$(ntasks "$TPID")" $((before + 1)) "threads after the attach (one: the agent's)"
	agent_tid=$(grep -l '^mfx-agent$' /proc/"$TPID"/task/*/comm | head -1 | cut -d/ -f5)
	[ -n "$agent_tid" ] || fail "no mfx-agent thread"
	expect_eq "$(policy_of "$TPID")" SCHED_OTHER "held thread's policy"
	expect_eq "$(nice_of "$TPID" "$TPID")" 5 "held thread's nice"
	expect_eq "$(policy_of "$agent_tid")" SCHED_OTHER "agent thread's policy"
	expect_eq "$(nice_of "$TPID" "$agent_tid")" 5 "agent thread's nice (the program's)"
	if [ "$round" = 2 ]; then
		# the ptrace path (agent reused) during the same storm
		for i in 1 2 3; do
			MFX_NO_DOORBELL=1 run_mfx attach -q --no-report --for 100ms -o "$TMP/p$i" "$TPID"
			expect_eq "$MFX_RC" 0 "ptrace-path attach $i: $(cat "$MFX_ERR")"
		done
	fi
	if [ "$round" != 1 ]; then
		wait_grep "done setxid" "$TOUT" 15	# stuck in setresuid: never printed
		expect_ge "$(grep '^done setxid' "$TOUT" | awk '{print $3}')" 100 "setresuid calls"
	fi
	run_mfx report -q "$TMP/r$round"
	s=$TMP/r$round/summary.json
	expect_eq "$(jget "$s" .attach.agent)" loaded "agent loaded"
	if [ "$round" = 1 ]; then
		expect_ge "$(jget "$s" .attach.loader_thread_ns)" 1 "loaded by our thread"
	elif [ "$round" = 3 ]; then
		expect_eq "$(jget "$s" .attach.loader_thread_ns)" 0 "MFX_NO_BOOT: loaded by the held thread"
	fi
	expect_le "$(jget "$s" .attach.thread_held_ns)" 1000000000 "thread held (ns)"
	tdo "run 100"
	target_unharmed
	tcmd quit
	wait "$TPID"
	expect_eq "$?" 0 "target exit status"
done
pass
