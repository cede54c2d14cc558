#!/bin/bash
# mfx trim when an earlier attach left the agent: the agent's own thread
# calls malloc_trim (method "agent", no thread held), and the JSON agrees
# with /proc.  Then 20 trims in a row, alternating the agent and the ptrace
# path, on a target whose 4 threads hammer malloc: each ends in bounded
# time, the target never sees EINTR or a changed errno, and still obeys.
# snapshot asks the agent for glibc's malloc_info.  Refusals: static, EPERM.
. "$(dirname "$0")/../lib.sh"
target_start
run_mfx attach -q --no-report --for 100ms -o "$TMP/a" "$TPID"
expect_eq "$MFX_RC" 0 "attach (loads the agent)"
tdo "frag 64"
run_mfx trim --json "$TPID"
expect_eq "$MFX_RC" 0 "trim exit"
j=$MFX_OUT
kern=$(awk '/^VmRSS:/ {print $2 * 1024}' /proc/$TPID/status)
expect_eq "$(jget "$j" .method)" agent "method"
expect_eq "$(jget "$j" .pause_ns)" 0 "no thread held"
expect_ge "$(jget "$j" .released_bytes)" $((40 << 20)) "released bytes"
after=$(jget "$j" .rss_after_bytes)
note "rss after $after, /proc VmRSS $kern"
expect_le "$(( (after > kern ? after - kern : kern - after) * 100 / kern ))" 10 \
	"rss_after differs from /proc/PID/status by %"
# the same measurement through /proc before and after, by hand
tdo "frag 64"
b=$(awk '/^VmRSS:/ {print $2 * 1024}' /proc/$TPID/status)
run_mfx trim --json "$TPID"
a=$(awk '/^VmRSS:/ {print $2 * 1024}' /proc/$TPID/status)
rel=$(jget "$MFX_OUT" .released_bytes)
note "released $rel, /proc says $((b - a))"
expect_le "$(( (rel > b - a ? rel - (b - a) : (b - a) - rel) * 100 / (b - a) ))" 10 \
	"released_bytes differs from the /proc difference by %"

# snapshot: glibc's figures from the agent
cd "$TMP"
run_mfx snapshot --json -o "$TMP/snap" "$TPID"
expect_eq "$MFX_RC" 0 "snapshot exit"
expect_ge "$(jget "$MFX_OUT" .malloc_info.arenas)" 1 "arenas"
expect_ge "$(jget "$MFX_OUT" .malloc_info.system_bytes)" 100000 "bytes from the system"
grep -q '<malloc version=' "$TMP/snap.malloc_info.xml" || fail "no malloc_info XML"
run_mfx snapshot "$TPID"
grep -q "free in bins and tops" "$MFX_OUT" || fail "text: $(cat "$MFX_OUT")"

# 20 trims under load, half of them through ptrace
tcmd "churn 6000"
sleep 0.3
t0=$(date +%s%N)
for i in $(seq 1 20); do
	if [ $((i % 2)) = 1 ]; then nodb=1; want=ptrace; else nodb=; want=agent; fi
	MFX_NO_DOORBELL=$nodb timeout 15 "$MFX" trim --json "$TPID" >"$TMP/t$i.json" 2>"$TMP/t$i.err"
	rc=$?
	[ "$rc" = 0 ] || fail "trim $i: exit $rc: $(cat "$TMP/t$i.err")"
	expect_eq "$(jget "$TMP/t$i.json" .method)" "$want" "trim $i method" >/dev/null
	kill -0 "$TPID" || fail "target died after trim $i"
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
held=$(jq -s 'map(.pause_ns) | max' "$TMP"/t*.json)
note "20 trims under load in $ms ms, longest hold $held ns"
target_unharmed
tdo "run 100"	# queued behind the churn: it still obeys

# refusals: one line, exit 1
spawn "$TARGETS/static_target"
sleep 0.2
run_mfx trim "$SPAWNED"
expect_eq "$MFX_RC" 1 "static: exit"
expect_one_error_line "$MFX_ERR" "statically linked"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	setpriv --reuid=65534 --regid=65534 --clear-groups "$MFX" trim "$TPID" \
		>"$TMP/np.out" 2>"$TMP/np.err"
	expect_eq "$?" 1 "EPERM: exit"
	expect_one_error_line "$TMP/np.err" "Operation not permitted \(.*\)"
fi
pass
