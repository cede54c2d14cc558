#!/bin/bash
# Forks in a storm during a window: 200 children forked one after another
# while three threads allocate through new stacks (the agent unwinds and
# walks its module list) and one dlopens and dlcloses libz (the loader's
# write lock).  No child may hang (the fork gate, and the loader's lock
# looked at in the child: preload/agentmem.c; without them 250 forks hung
# children every time).  Nearly every child is recorded (one forked while
# the program's own dlopen held the loader's lock is not: about 1 in
# 1000), each with exactly its own 100 mallocs (checked on five of them:
# the program counts them itself), every 10th execs /bin/true and its
# trace is whole too, and mfx ends with no line about a child.
. "$(dirname "$0")/../lib.sh"
need jq
target_start "$TARGETS/forkstorm_target"
mfx_bg attach "$TPID" --no-report -o "$TMP/run"
mfx_wait_attached 20
tdo "storm ${STORM:-200}"
set -- $(grep '^storm ' "$TOUT" | tail -1)
expect_eq "${4:-?}" 0 "children that hung (of ${STORM:-200})"
mfx_end INT
expect_eq "$MFX_RC" 0 "mfx exit: $(cat "$MBG_ERR")"
if grep -E 'did not end|cannot finalise' "$MBG_ERR"; then fail "a child's trace: $(cat "$MBG_ERR")"; fi
n=$(ls "$TMP/run" | grep -c '^trace-[0-9]*\.mfx$')
expect_ge "$n" $((${STORM:-200} * 19 / 20)) "children's traces (of ${STORM:-200})"
for t in $(ls "$TMP/run" | grep '^trace-[0-9]*\.mfx$' | shuf -n 5 --random-source=/dev/zero); do
	"$MFX" report "$TMP/run" --trace "$t" -q --json --no-charts >"$TMP/c.json" ||
		fail "report of $t: $(cat "$TMP/c.json")"
	expect_eq "$(jget "$TMP/c.json" .counts.malloc)/$(jget "$TMP/c.json" .counts.free)" 100/100 "$t: malloc/free"
done
tcmd quit
wait "$TPID"
expect_eq "$?" 0 "the target's exit"
pass
