#!/bin/bash
# attach to a running python3 that keeps growing a list: the window sees its
# allocations, the growth is a leak suspect, and python runs on afterwards.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3"
cat >"$TMP/grow.py" <<'EOP'
import sys, time
keep = []
print("ready", flush=True)
n = 0
while True:
    keep.append(bytearray(2048))     # grows: never freed
    tmp = [str(i) for i in range(50)]  # churn
    n += 1
    if n % 200 == 0:
        time.sleep(0.01)
        print("alive", n, flush=True)
EOP
spawn $PY "$TMP/grow.py"
py=$SPAWNED
wait_grep ready "$SPAWN_OUT" 10
run_mfx attach --for 1s -o "$TMP/run" "$py"
expect_eq "$MFX_RC" 0 "mfx exit"
s=$TMP/run/summary.json
expect_ge "$(jget "$s" .counts.malloc)" 1000 "malloc calls"
# (the list of small strings churns inside pymalloc: no free() reaches libc)
expect_eq "$(jget "$s" '.leak_suspects | length > 0')" true "a leak suspect"
expect_ge "$(jget "$s" .live_bytes_end)" 1000000 "live bytes at the end (the list grew)"
grep -q "verdict:" "$MFX_OUT" || fail "no verdict in the terminal summary"
n0=$(grep -c alive "$SPAWN_OUT"); sleep 0.5; n1=$(grep -c alive "$SPAWN_OUT")
[ "$n1" -gt "$n0" ] || fail "python stopped making progress after the window"
echo "ok: python runs on ($n0 -> $n1 progress lines)"
pass
