#!/bin/bash
# attach to a PostgreSQL backend serving pgbench: every transaction still
# succeeds, the window records the backend's allocations, and the backend
# runs on after the window.  Then to the postmaster while pgbench -C
# connects for every transaction: the backends it forks in the window are
# recorded (each its trace-<pid>.mfx: the server runs as postgres, mfx as
# root, so through RUN/.forks), pgbench sees no error, and no postgres
# process keeps an mfx buffer once mfx is done.
. "$(dirname "$0")/../lib.sh"
pg_start
asuser "$PGBIN/pgbench" -h "$TMP/sock" -U postgres -i -s 1 postgres >"$TMP/init.log" 2>&1 ||
	fail "pgbench -i: $(tail -3 "$TMP/init.log")"
spawn asuser "$PGBIN/pgbench" -h "$TMP/sock" -U postgres -c 2 -T 6 postgres
bench=$SPAWNED bench_out=$SPAWN_OUT
# a backend serving pgbench (the -i run's backends are gone by now; take
# one that has lived a while, and try another if it ended meanwhile)
sleep 0.8
for try in 1 2 3; do
	pmpid=$(head -1 "$TMP/pg/data/postmaster.pid")
	backend=$(pgrep -o -P "$pmpid" -f "postgres: postgres postgres .*local" || true)
	[ -n "$backend" ] || { sleep 0.3; continue; }
	run_mfx attach --for 2s -o "$TMP/run" --force "$backend"
	grep -q "no such process" "$MFX_ERR" || break
done
[ -n "$backend" ] || fail "no pgbench backend found"
expect_eq "$MFX_RC" 0 "mfx exit: $(cat "$MFX_ERR")"
s=$TMP/run/summary.json
expect_ge "$(jget "$s" .counts.malloc)" 100 "malloc calls in the backend"
kill -0 "$backend" || fail "backend died"
# bench_ok : pgbench ($bench, $bench_out) ended with no error
bench_ok() {
	wait "$bench"
	expect_eq "$?" 0 "pgbench exit"
	grep -E "number of failed transactions: 0" "$bench_out" >/dev/null ||
		grep -E "^number of transactions actually processed" "$bench_out" >/dev/null ||
		fail "pgbench output: $(cat "$bench_out")"
	grep -qE "aborted|error" "$bench_out" && grep -vq "failed transactions: 0" "$bench_out" &&
		fail "pgbench errors: $(grep -E 'aborted|error' "$bench_out")"
	echo "ok: $(grep -E 'transactions actually processed|^tps' "$bench_out" | tr '\n' ' ')"
}
bench_ok

spawn asuser "$PGBIN/pgbench" -h "$TMP/sock" -U postgres -C -c 2 -T 4 postgres
bench=$SPAWNED bench_out=$SPAWN_OUT
sleep 0.5
run_mfx attach "$pmpid" --for 2s -q -o "$TMP/pmrun"
expect_eq "$MFX_RC" 0 "mfx attach to the postmaster: $(cat "$MFX_ERR")"
nchild=$(ls "$TMP/pmrun" | grep -c '^trace-[0-9]*\.mfx$')
expect_ge "$nchild" 2 "backends forked in the window, recorded"
[ -e "$TMP/pmrun/.forks" ] && fail "RUN/.forks left behind: $(ls -a "$TMP/pmrun/.forks")"
child=$(ls "$TMP/pmrun" | grep '^trace-[0-9]*\.mfx$' | head -1)
"$MFX" report "$TMP/pmrun" --trace "$child" -q --json --no-charts >"$TMP/child.json" ||
	fail "report of $child: $(cat "$TMP/child.json")"
expect_ge "$(jget "$TMP/child.json" .counts.malloc)" 100 "malloc calls in backend $child"
for p in $pmpid $(pgrep -P "$pmpid"); do
	if grep -E 'mfx-spool|trace[^/]*\.mfx' "/proc/$p/maps" 2>/dev/null; then
		fail "postgres process $p ($(cat /proc/$p/comm)) still maps an mfx buffer"
	fi
done
echo "ok: no postgres process maps an mfx buffer"
bench_ok
asuser "$PGBIN/pg_ctl" -D "$TMP/pg/data" stop -m fast >/dev/null 2>&1
wait "$pm" 2>/dev/null
pass
