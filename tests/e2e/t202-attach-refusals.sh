#!/bin/bash
# What cannot work is refused with one "mfx: " line, exit 1 (2 for bad
# usage), and the target is left alone.
. "$(dirname "$0")/../lib.sh"

run_mfx attach 4194000
expect_eq "$MFX_RC" 1 "no such process: exit"
expect_one_error_line "$MFX_ERR" "cannot attach to 4194000: no such process"

run_mfx attach notapid
expect_eq "$MFX_RC" 2 "bad pid: exit"

# its own pid (the shell execs mfx: $$ becomes mfx's pid)
sh -c 'exec "$0" attach --for 100ms $$' "$MFX" >"$TMP/self.out" 2>"$TMP/self.err"
expect_eq "$?" 2 "own pid: exit"
expect_one_error_line "$TMP/self.err" "that is mfx itself"
sh -c 'exec "$0" trim $$' "$MFX" >"$TMP/self.out" 2>"$TMP/self.err"
expect_eq "$?" 2 "trim own pid: exit"
expect_one_error_line "$TMP/self.err" "that is mfx itself"

# statically linked
spawn "$TARGETS/static_target"
sleep 0.2
run_mfx attach --for 100ms "$SPAWNED"
expect_eq "$MFX_RC" 1 "static: exit"
expect_one_error_line "$MFX_ERR" "statically linked"

# zombie: a child its parent never reaps
spawn sh -c 'sleep 0.1 & exec sleep 60'
sleep 0.5
z=$(pgrep -P "$SPAWNED" sleep || true)
[ -n "$z" ] || fail "no zombie child"
run_mfx attach "$z"
expect_eq "$MFX_RC" 1 "zombie: exit"
expect_one_error_line "$MFX_ERR" "zombie"

# stopped
target_start
kill -STOP "$TPID"
sleep 0.1
run_mfx attach --for 100ms "$TPID"
expect_eq "$MFX_RC" 1 "stopped: exit"
expect_one_error_line "$MFX_ERR" "kill -CONT $TPID"
expect_eq "$(awk '/^State:/ {print $2}' /proc/$TPID/status)" T "still stopped afterwards"
kill -CONT "$TPID"

# already traced (strace holds it)
if command -v strace >/dev/null; then
	strace -p "$TPID" -o /dev/null &
	s=$!
	track "$s"
	for i in $(seq 50); do grep -q "TracerPid:[[:space:]]*[1-9]" /proc/$TPID/status && break; sleep 0.1; done
	run_mfx attach --for 100ms "$TPID"
	expect_eq "$MFX_RC" 1 "traced: exit"
	expect_one_error_line "$MFX_ERR" "already traced by pid $s"
	kill "$s"; wait "$s" 2>/dev/null
fi

# not permitted: an unprivileged user against root's process
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	sleep 0.3
	setpriv --reuid=65534 --regid=65534 --clear-groups "$MFX" attach --for 100ms "$TPID" \
		>"$TMP/np.out" 2>"$TMP/np.err"
	expect_eq "$?" 1 "EPERM: exit"
	expect_one_error_line "$TMP/np.err" "Operation not permitted \(.*\)"
fi

# the target was left alone: it still works, and nothing of mfx is in it
tdo "run 100"
grep -q libmfx "/proc/$TPID/maps" && fail "agent loaded despite refusals"
pass
