#!/bin/bash
# mfx SIGKILLed during a window in which the process forked: the children
# that were recording (an idle one blocked in read(), a busy one) notice
# mfx is gone (its pidfd), put their GOT slots back and let go of every
# mfx buffer by themselves, and keep running.  The idle worker's raw trace
# still holds exactly the calls it counted itself.  Then a child stopped
# (SIGSTOP) at the window's end: mfx waits 3 s for it, says so in one
# line, and the child unhooks itself once continued.
. "$(dirname "$0")/../lib.sh"
need jq

slot_of() {
	local v
	v=$(dd if="/proc/$1/mem" bs=8 count=1 skip=$(($2 / 8)) 2>/dev/null | od -An -tx8 | tr -d ' ')
	printf '0x%x\n' "$((16#${v:-0}))"
}
# unhooked PID SLOT LIBC : 0 once the slot holds libc's malloc and no mfx
# buffer is mapped
unhooked() {
	[ "$(slot_of "$1" "$2")" = "$(printf '0x%x' "$3")" ] &&
		! grep -qE 'mfx-spool|trace[^/]*\.mfx' "/proc/$1/maps"
}
new_worker() {
	local n; n=$(grep -c '^worker ' "$TOUT")
	tdo "$1"
	for _ in $(seq 100); do [ "$(grep -c '^worker ' "$TOUT")" -gt "$n" ] && break; sleep 0.05; done
	set -- $(grep '^worker ' "$TOUT" | sed -n "$((n + 1))p")
	[ -n "${2:-}" ] || fail "no worker line: $(cat "$TOUT")"
	track "$2"
	W=$2 S=$3 L=$4
}

target_start "$TARGETS/prefork_target"
mfx_bg attach "$TPID" --no-report -o "$TMP/run"
mfx_wait_attached 20
new_worker spawn; wi=$W si=$S li=$L
new_worker fork; wb=$W sb=$S lb=$L
tdo "tell $wi run 300"
wait_grep "^wdone $wi " "$TOUT" 10
set -- $(grep "^wdone $wi " "$TOUT" | tail -1)
im=$3 if=$4
grep -qE 'trace[^/]*\.mfx' "/proc/$wi/maps" || fail "the idle worker does not record"
kill -KILL "$MPID"
wait "$MPID" 2>/dev/null
for w in "$wi:$si:$li:idle" "$wb:$sb:$lb:busy"; do
	IFS=: read -r p s l what <<<"$w"
	for ((i = 0; i < 100; i++)); do unhooked "$p" "$s" "$l" && break; sleep 0.05; done
	unhooked "$p" "$s" "$l" || fail "the $what worker is still hooked after mfx died: slot $(slot_of "$p" "$s"), $(grep -E 'mfx-spool|\.mfx' "/proc/$p/maps")"
	kill -0 "$p" 2>/dev/null || fail "the $what worker died"
	echo "ok: the $what worker unhooked itself after mfx was killed"
done
tdo "tell $wi run 10"
wait_grep "^wdone $wi $((im + 10)) " "$TOUT" 10
echo "ok: the idle worker keeps working"
"$MFX" report "$TMP/run" --trace "trace-$wi.mfx" -q --json --no-charts >"$TMP/wi.json" ||
	fail "report of the idle worker's raw trace: $(cat "$TMP/wi.json")"
expect_eq "$(jget "$TMP/wi.json" .counts.malloc)" "$im" "idle worker's mallocs (its own count)"
expect_eq "$(jget "$TMP/wi.json" .counts.free)" "$if" "idle worker's frees (its own count)"

# a child that cannot answer: stopped when the window ends
mfx_bg attach "$TPID" --for 1s --no-report -o "$TMP/run2"
mfx_wait_attached 20
new_worker spawn; ws=$W ss=$S ls=$L
grep -qE 'trace[^/]*\.mfx' "/proc/$ws/maps" || fail "the stopped worker does not record"
kill -STOP "$ws"
wait "$MPID"
expect_eq "$?" 0 "mfx exit with a stopped child: $(cat "$MBG_ERR")"
expect_match "$(cat "$MBG_ERR")" "mfx: pid $ws \\(forked by $TPID during the window\\) did not end its recording within 3 s: trace-$ws.mfx keeps what it wrote until now; it unhooks itself once mfx exits" "the line for the stopped child"
[ "$(grep -c "did not end its recording" "$MBG_ERR")" = 1 ] || fail "more than one such line: $(cat "$MBG_ERR")"
kill -CONT "$ws"
for ((i = 0; i < 100; i++)); do unhooked "$ws" "$ss" "$ls" && break; sleep 0.05; done
unhooked "$ws" "$ss" "$ls" || fail "the stopped worker is still hooked once continued"
echo "ok: the stopped worker unhooked itself once continued"
tdo "tell $ws run 10"
wait_grep "^wdone $ws " "$TOUT" 10
tdo "run 100"
pass
