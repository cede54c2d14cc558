#!/bin/bash
# A pre-forking server: workers forked before, during and after a window.
# When mfx is done, every one of them (and the master) calls libc's malloc
# through its GOT slot again -- read through /proc/PID/mem, not asked of
# mfx -- and maps no mfx buffer (spool, trace); the workers keep running.
# Then ten more attaches: the master's VmSize stays within a few MiB of
# what it was after the first (each window's buffers leave it).
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
# new_worker : fork one; W (pid), S (its slot), L (libc's malloc)
new_worker() {
	local n; n=$(grep -c '^worker ' "$TOUT")
	tdo fork
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

"$MFX" attach "$TPID" --for 2s -q --no-report -o "$TMP/run1" >"$TMP/a1.out" 2>"$TMP/a1.err" &
apid=$!
for _ in $(seq 100); do grep -q 'memfd:libmfx' "/proc/$TPID/maps" && break; sleep 0.05; done
sleep 0.3
new_worker; w1=$W s1=$S l1=$L			# during the window
tdo "run 1000"
wait "$apid"
expect_eq "$?" 0 "attach exit: $(cat "$TMP/a1.err")"
[ -s "$TMP/run1/trace.mfx" ] || fail "no trace"
new_worker; w2=$W s2=$S l2=$L			# while the agent is dormant

check_unhooked "$TPID" "$mslot" "$mlibc" "master"
check_unhooked "$w0" "$s0" "$l0" "worker forked before the window"
check_unhooked "$w1" "$s1" "$l1" "worker forked during the window"
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
