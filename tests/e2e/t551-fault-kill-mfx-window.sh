#!/bin/bash
# Fault matrix: mfx SIGKILLed during the window loses no event.  The target
# makes an exactly known number of calls (attach_target's "run N" counts
# its own), mfx is killed 0-40 ms after, while its drain thread may be in
# the middle of copying a slot; the agent sees its channel close (attach)
# or its pipe close (launch, at the spool's next fill or the exit) and
# writes every chunk it holds into the trace itself.  `mfx report` on the
# raw trace must then give the target's own counts exactly.  (Before:
# 16,926 of 45,002 events lost.)  Even tries attach, odd ones launch.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
need jq
tries=$(matrix_tries 4)
for ((i = 0; i < tries; i++)); do
	n=$((20000 + (i * 7919) % 40000)) delay=$(printf '0.0%02d' $(((i * 13) % 40)))
	run=$TMP/run$i err=$TMP/err$i why="" harm=""
	if ((i % 2 == 0)); then
		target_start
		"$MFX" attach --no-report -o "$run" "$TPID" 2>"$err" &
		mpid=$!
		track $mpid
		mfx_attached $mpid "$err" || fail "mfx did not attach: $(cat "$err")"
	else	# launch: the program is mfx's child, its stdin our fifo
		[ -p "$TMP/tin" ] || mkfifo "$TMP/tin"
		exec 7<>"$TMP/tin"
		TOUT=$TMP/launch$i.out
		"$MFX" launch -q --no-report -o "$run" -- "$TARGETS/attach_target" <&7 >"$TOUT" 2>"$err" &
		mpid=$!
		track $mpid
		wait_grep ready "$TOUT" 10
		TPID=$(pgrep -P $mpid attach_target | head -1)
		[ -n "$TPID" ] && track "$TPID"
	fi
	tdo_quiet "run $n" || harm="the target did not finish: $(harmed_by)"
	sleep "$delay"
	kill -KILL $mpid
	wait $mpid 2>/dev/null
	want=$(last_done_json)
	if ((i % 2 == 0)); then
		sleep 0.5	# the agent notices at once; give it its time to write
		tdo_quiet "run 100" || harm="the target stopped answering after the kill: $(harmed_by)"
		[ -z "$harm" ] && harm=$(harmed_by)
	else
		tcmd quit	# its exit writes the rest (mfx is gone)
		for ((k = 0; k < 100; k++)); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.05; done
		grep -q 'EINTR\|ERRNO\|HANDLER' "$TOUT" && harm=$(grep 'EINTR\|ERRNO\|HANDLER' "$TOUT")
		kill -0 "$TPID" 2>/dev/null && harm="the launched program did not exit"
	fi
	"$MFX" report -q "$run" >/dev/null 2>"$err.report" || why="report: $(cat "$err.report")"
	got=$(jq -c .counts "$run/summary.json" 2>/dev/null)
	if ((i % 2 == 0)); then
		counts_match "$run" "$want" || why="counts $got, the target made $want"
	else	# launch also records the program's start-up (stdio's buffer): >= and exact frees
		for k in calloc realloc free memalign; do
			[ "$(jq -r ".counts.$k" "$run/summary.json" 2>/dev/null)" = "$(echo "$want" | jq -r ".$k")" ] ||
				why="counts $got, the target made $want"
		done
		[ "$(jq -r .counts.malloc "$run/summary.json" 2>/dev/null)" -ge "$(echo "$want" | jq -r .malloc)" ] ||
			why="counts $got, the target made $want"
	fi
	note "$(((i % 2)) && echo launch || echo attach) run $n, killed +${delay}s: $got"
	matrix_try "$([ -z "$harm" ] && echo 1 || echo 0)" "$([ -z "$why" ] && echo 1 || echo 0)" "$harm $why"
	[ $((i % 2)) = 0 ] && tcmd quit
	wait "$TPID" 2>/dev/null
done
matrix_end kill-mfx-window
