#!/bin/bash
# A pre-forking server: workers forked before, during and after a window.
# Those forked during it are recorded: an idle worker told to make N
# mallocs has a trace-<pid>.mfx with exactly the calls it counted itself,
# and so has the grandchild it forks meanwhile.
# When mfx is done, every worker (and the master) calls libc's malloc
# through its GOT slot again -- read through /proc/PID/mem, not asked of
# mfx -- and maps no mfx buffer (spool, trace); the workers keep running,
# the idle one (blocked in read()) included, and one that exec'ed during
# the window runs its new program.  Then ten more attaches: the master's
# VmSize stays within a few MiB of what it was after the first (each
# window's buffers leave it).
. "$(dirname "$0")/../lib.sh"

# slot_of PID ADDR : the 8 bytes at ADDR in PID, as 0x...
slot_of() {
	local v
	v=$(dd if="/proc/$1/mem" bs=8 count=1 skip=$(($2 / 8)) 2>/dev/null | od -An -tx8 | tr -d ' ')
	printf '0x%x\n' "$((16#${v:-0}))"
}
# check_unhooked PID SLOT LIBC WHAT
check_unhooked() {
	local got
	got=$(slot_of "$1" "$2")
	expect_eq "$got" "$(printf '0x%x' "$3")" "$4: GOT slot of malloc holds libc's malloc"
	if grep -E 'mfx-spool|trace[^/]*\.mfx|mfx-malloc' "/proc/$1/maps" >/dev/null; then
		fail "$4 still maps an mfx buffer: $(grep -E 'mfx-spool|\.mfx' "/proc/$1/maps")"
	fi
	echo "ok: $4 maps no mfx buffer"
	kill -0 "$1" 2>/dev/null || fail "$4 died"
}
# worker_line N : the N-th "worker" line of the target's output
worker_line() { grep '^worker ' "$TOUT" | sed -n "${1}p"; }
# wline PREFIX PID : wait for the idle worker's line "PREFIX PID ..."
wline() {
	wait_grep "^$1 $2\\b" "$TOUT" 10
	grep "^$1 $2\\b" "$TOUT" | tail -1
}
# new_worker [spawn] : fork one (busy; spawn: idle); W (pid), S (its slot),
# L (libc's malloc)
new_worker() {
	local n; n=$(grep -c '^worker ' "$TOUT")
	tdo "${1:-fork}"
	for _ in $(seq 100); do [ "$(grep -c '^worker ' "$TOUT")" -gt "$n" ] && break; sleep 0.05; done
	set -- $(worker_line $((n + 1)))
	[ -n "${2:-}" ] || fail "no worker line: $(cat "$TOUT")"
	track "$2"
	W=$2 S=$3 L=$4
}

target_start "$TARGETS/prefork_target"
read -r _ mpid mslot mlibc < <(grep '^master ' "$TOUT")
[ "$mpid" = "$TPID" ] || fail "master line: $(cat "$TOUT")"
new_worker; w0=$W s0=$S l0=$L			# before any attach

mfx_bg attach "$TPID" --for 3s --no-report -o "$TMP/run1"
mfx_wait_attached 20
new_worker; w1=$W s1=$S l1=$L			# during the window
new_worker spawn; w3=$W s3=$S l3=$L		# during the window, then idle
new_worker spawn; w4=$W				# during the window, then exec
tdo "tell $w3 run 500"
set -- $(wline wdone "$w3")
w3m=$3 w3f=$4
tdo "tell $w4 exec"
wline wexec "$w4" >/dev/null
tdo "tell $w3 gfork 300"			# a grandchild, forked by a recording child
set -- $(wline gchild '[0-9]*')
g=$2 gs=$3 gl=$4 gm=$5 gf=$6
track "$g"
tdo "run 1000"
wait "$MPID"
expect_eq "$?" 0 "attach exit: $(cat "$MBG_ERR")"
[ -s "$TMP/run1/trace.mfx" ] || fail "no trace"
new_worker; w2=$W s2=$S l2=$L			# while the agent is dormant
if grep -q 'did not end its recording' "$MBG_ERR"; then fail "a child did not stop: $(cat "$MBG_ERR")"; fi

# the children of the window, recorded: the idle worker's own count
for w in $w1 $w3 $w4; do
	[ -s "$TMP/run1/trace-$w.mfx" ] || fail "no trace of worker $w: $(ls "$TMP/run1")"
done
echo "ok: workers forked in the window have their traces"
"$MFX" report "$TMP/run1" --trace "trace-$w3.mfx" -q --json --no-charts >"$TMP/w3.json" ||
	fail "report of worker 3: $(cat "$TMP/w3.json")"
expect_eq "$(jget "$TMP/w3.json" .counts.malloc)" "$w3m" "idle worker's mallocs (its own count)"
expect_eq "$(jget "$TMP/w3.json" .counts.free)" "$w3f" "idle worker's frees (its own count)"
[ -s "$TMP/run1/summary-$w3.json" ] || fail "no summary-$w3.json"
"$MFX" report "$TMP/run1" --trace "trace-$g.mfx" -q --json --no-charts >"$TMP/g.json" ||
	fail "report of the grandchild: $(cat "$TMP/g.json")"
expect_eq "$(jget "$TMP/g.json" .counts.malloc)/$(jget "$TMP/g.json" .counts.free)" "$gm/$gf" "grandchild's malloc/free (its own count)"
"$MFX" report "$TMP/run1" --trace "trace-$w1.mfx" -q --json --no-charts >"$TMP/w1.json" ||
	fail "report of worker 1: $(cat "$TMP/w1.json")"
expect_ge "$(jget "$TMP/w1.json" .counts.malloc)" 16 "busy worker's mallocs"

check_unhooked "$TPID" "$mslot" "$mlibc" "master"
check_unhooked "$w0" "$s0" "$l0" "worker forked before the window"
check_unhooked "$w1" "$s1" "$l1" "worker forked during the window"
check_unhooked "$w3" "$s3" "$l3" "idle worker forked during the window"
check_unhooked "$g" "$gs" "$gl" "grandchild forked during the window"
grep -E 'mfx-spool|\.mfx|mfx-malloc|memfd:libmfx' "/proc/$w4/maps" && fail "the worker that exec'ed maps mfx"
expect_eq "$(cat "/proc/$w4/comm")" sleep "the worker that exec'ed runs its new program"
check_unhooked "$w2" "$s2" "$l2" "worker forked while the agent is dormant"
grep -q 'memfd:libmfx' "/proc/$w1/maps" || fail "worker 1 does not map the agent (forked before it loaded?)"
# the worker's own fds: no socket or file of mfx's
for fd in /proc/$w1/fd/*; do
	l=$(readlink "$fd")
	case $l in *mfx-spool*|*trace*.mfx*) fail "worker 1 holds $l";; esac
done
echo "ok: worker 1 holds no mfx fd"
# a later attach to that worker patches its slots (it has the agent, dormant)
run_mfx attach "$w1" --for 300ms -q -o "$TMP/w1run"
expect_eq "$MFX_RC" 0 "attach to the worker: $(cat "$MFX_ERR")"
expect_ge "$(jget "$TMP/w1run/summary.json" .attach.got_slots_patched)" 1 "worker: GOT slots patched"
expect_ge "$(jget "$TMP/w1run/summary.json" .counts.malloc)" 16 "worker: mallocs recorded"
check_unhooked "$w1" "$s1" "$l1" "worker after its own attach"
run_mfx attach "$w3" --for 1s -q -o "$TMP/w3run"
expect_eq "$MFX_RC" 0 "attach to the idle worker: $(cat "$MFX_ERR")"
expect_ge "$(jget "$TMP/w3run/summary.json" .attach.got_slots_patched)" 1 "idle worker: GOT slots patched"
check_unhooked "$w3" "$s3" "$l3" "idle worker after its own attach"

# the master is attached again and again: no window leaves its buffers
run_mfx attach "$TPID" --for 200ms -q --no-report -o "$TMP/run2"
expect_eq "$MFX_RC" 0 "second attach: $(cat "$MFX_ERR")"
tdo vmsize
v1=$(grep '^vmsize' "$TOUT" | tail -1 | awk '{print $2}')
for i in $(seq 3 12); do
	run_mfx attach "$TPID" --for 100ms -q --no-report -o "$TMP/run$i"
	expect_eq "$MFX_RC" 0 "attach $i: $(cat "$MFX_ERR")" >/dev/null
done
tdo vmsize
v2=$(grep '^vmsize' "$TOUT" | tail -1 | awk '{print $2}')
note "master VmSize after the 2nd attach $v1 kB, after the 12th $v2 kB"
expect_le "$(( v2 - v1 ))" 4096 "VmSize growth over ten attaches (kB)"
check_unhooked "$TPID" "$mslot" "$mlibc" "master after twelve attaches"
tdo "run 100"
pass
