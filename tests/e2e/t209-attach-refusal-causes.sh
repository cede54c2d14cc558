#!/bin/bash
# Refusals that name the real cause, in one line, before anything is
# touched: a kernel thread (not "statically linked"); EPERM as the user
# a privilege-dropped daemon runs as ("not dumpable ... only root", not
# "run as root or as the owner" - it is the owner), as another user, as
# root without CAP_SYS_PTRACE; an address-space limit that leaves the
# agent no room.  The target runs on untouched.
. "$(dirname "$0")/../lib.sh"
kt=$(awk '{ print $1 }' /proc/2/stat 2>/dev/null)
if [ "$kt" = 2 ] && grep -q kthreadd /proc/2/comm; then
	run_mfx attach --for 100ms 2
	expect_eq "$MFX_RC" 1 "kthreadd: exit"
	expect_one_error_line "$MFX_ERR" "kernel thread"
fi
[ "$(id -u)" = 0 ] || skip "the rest needs root (setpriv)"
need setpriv
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# a daemon that dropped root: its own user may not trace it
mkfifo "$TMP/d.in"; exec {dfd}<>"$TMP/d.in"
setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c 'import ctypes, sys
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)	# PR_SET_DUMPABLE 0
print("ready", flush=True); sys.stdin.read()' <&$dfd >"$TMP/d.out" 2>&1 &
d=$!; track $d
wait_grep ready "$TMP/d.out" 10
nobody "$MFX" attach --for 100ms "$d" >"$TMP/1.out" 2>"$TMP/1.err"
expect_eq "$?" 1 "own non-dumpable process: exit"
expect_one_error_line "$TMP/1.err" "not dumpable.*only root"
# another user's process
target_start
nobody "$MFX" attach --for 100ms "$TPID" >"$TMP/2.out" 2>"$TMP/2.err"
expect_eq "$?" 1 "another user: exit"
expect_one_error_line "$TMP/2.err" "runs as root; run mfx as root or as that user"
# root without CAP_SYS_PTRACE (as in a container)
setpriv --bounding-set=-sys_ptrace --inh-caps=-sys_ptrace "$MFX" trim "$d" >"$TMP/3.out" 2>"$TMP/3.err"
expect_eq "$?" 1 "no CAP_SYS_PTRACE: exit"
expect_one_error_line "$TMP/3.err" "without CAP_SYS_PTRACE"
# RLIMIT_AS: the agent would eat the program's last address space
if command -v prlimit >/dev/null; then
	vm=$(awk '/^VmSize:/ { print $2 * 1024 }' "/proc/$TPID/status")
	prlimit --pid "$TPID" --as=$((vm + 16 * 1024 * 1024)):unlimited
	run_mfx attach --for 100ms "$TPID"
	expect_eq "$MFX_RC" 1 "RLIMIT_AS: exit"
	expect_one_error_line "$MFX_ERR" "RLIMIT_AS.*agent needs"
	prlimit --pid "$TPID" --as=unlimited:unlimited
fi
tdo "run 100"
target_unharmed
grep -q libmfx "/proc/$TPID/maps" && fail "agent loaded despite the refusals"
pass
