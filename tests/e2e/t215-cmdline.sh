#!/bin/bash
# The command lines as the README shows them: options after the operand
# (mfx attach PID --for 2s, mfx trim PID --json, report/export/snapshot/
# replay RUN --opt), '--' ending options; launch takes options before the
# program only.  A refused attach leaves no run directory; MFX_DEBUG=0 is
# off; a launched script that runs children leaves no .smaps-exit-* files.
. "$(dirname "$0")/../lib.sh"
target_start
run_mfx attach "$TPID" --for 2s -q -o "$TMP/run"
expect_eq "$MFX_RC" 0 "mfx attach PID --for 2s: $(cat "$MFX_ERR")"
dur=$(jget "$TMP/run/summary.json" .duration_ns)
expect_ge "$dur" 1900000000 "window length from --for after the pid"
expect_le "$dur" 3000000000 "window length"
run_mfx trim "$TPID" --json
expect_eq "$MFX_RC" 0 "mfx trim PID --json"
expect_eq "$(jget "$MFX_OUT" .pid)/$(jget "$MFX_OUT" .allocator)" "$TPID/glibc" "trim JSON"
run_mfx report "$TMP/run" --json --no-charts -q
expect_eq "$MFX_RC" 0 "mfx report RUN --json"
expect_eq "$(jq -r .pid "$MFX_OUT")" "$TPID" "report JSON on stdout"
run_mfx export "$TMP/run" --csv -o -
expect_eq "$MFX_RC" 0 "mfx export RUN --csv -o -"
head -1 "$MFX_OUT" | grep -q '^ts_ns,event,ptr,size,tid' || fail "csv header: $(head -1 "$MFX_OUT")"
run_mfx snapshot "$TPID" --json -o "$TMP/snap"
expect_eq "$MFX_RC/$(jget "$MFX_OUT" .pid)" "0/$TPID" "mfx snapshot PID --json -o FILE"
run_mfx replay "$TMP/run" --allocator glibc --no-compile -q
expect_eq "$MFX_RC" 0 "mfx replay RUN --allocator glibc: $(tail -2 "$MFX_ERR")"
# '--' ends the options: what follows is an operand, even if it looks like one
run_mfx report -- --json
expect_eq "$MFX_RC" 1 "report -- --json: '--json' is a run directory"
expect_one_error_line "$MFX_ERR" "'--json' is not a run directory"
run_mfx trim "$TPID" 42 --json
expect_eq "$MFX_RC" 2 "two pids: usage"
expect_one_error_line "$MFX_ERR" "one PID only \('42' is extra\)"
# launch: everything after PROGRAM is the program's
run_mfx launch -q --no-report -o "$TMP/l" -- /bin/echo --for 1s -q
expect_eq "$MFX_RC/$(cat "$MFX_OUT")" "0/--for 1s -q" "launch passes options after PROGRAM to it"

# refusals leave nothing: another mfx is recording the target
"$MFX" attach "$TPID" --for 3s --no-report -o "$TMP/first" 2>"$TMP/first.err" &
first=$!
wait_grep "attached to pid" "$TMP/first.err" 10	# recording: the agent is busy
run_mfx attach "$TPID" --for 1s -o "$TMP/new/second"
expect_eq "$MFX_RC" 1 "a second attach is refused"
expect_one_error_line "$MFX_ERR" "another mfx"
[ -e "$TMP/new" ] && fail "the refused attach left $(find "$TMP/new")"
echo "ok: the refused attach left no run directory"
(cd "$TMP" && "$MFX" attach "$TPID" --for 1s >/dev/null 2>&1)
[ -e "$TMP/results" ] && fail "the refused attach left $(find "$TMP/results")"
echo "ok: nor a default results/ directory"
wait "$first"
expect_eq "$?" 0 "the first attach"
# MFX_DEBUG=0 is off, MFX_DEBUG=1 on
MFX_DEBUG=0 MFX_NO_DOORBELL=0 run_mfx trim "$TPID"
grep -q "debug" "$MFX_ERR" && fail "MFX_DEBUG=0 printed debug lines: $(head -2 "$MFX_ERR")"
expect_eq "$(jget "$TMP/mfx.out" .method 2>/dev/null || echo text)" text "text output"
grep -q "called on the mfx agent's thread" "$MFX_OUT" || fail "MFX_NO_DOORBELL=0 did not use the agent"
echo "ok: MFX_DEBUG=0 and MFX_NO_DOORBELL=0 are off"
MFX_DEBUG=1 MFX_NO_DOORBELL=1 run_mfx trim "$TPID"
grep -q "debug\|held" "$MFX_ERR" || fail "MFX_DEBUG=1 printed nothing"
echo "ok: MFX_DEBUG=1 is on"

# a launched script whose children exit: no .smaps-exit-* left
printf '#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8; do /bin/true; done\n' >"$TMP/s.sh"
chmod +x "$TMP/s.sh"
run_mfx launch -q --no-report -o "$TMP/sl" -- "$TMP/s.sh"
expect_eq "$MFX_RC" 0 "launch a script"
left=$(ls -A "$TMP/sl" | grep -c '^\.smaps-exit' || true)
expect_eq "$left" 0 ".smaps-exit-* files left"
pass
