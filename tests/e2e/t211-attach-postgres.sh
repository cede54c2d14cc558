#!/bin/bash
# attach to a PostgreSQL backend serving pgbench: every transaction still
# succeeds, the window records the backend's allocations, and the backend
# runs on after the window.
. "$(dirname "$0")/../lib.sh"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/postgres" ] || skip "PostgreSQL is not installed"
[ -x "$PGBIN/pgbench" ] || skip "pgbench is not installed"
id postgres >/dev/null 2>&1 || skip "no postgres user"
[ "$(id -u)" = 0 ] || skip "needs root to run the server as postgres"
asuser() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$TMP/pg" "$TMP/sock"
chown postgres:postgres "$TMP/pg" "$TMP/sock"
asuser "$PGBIN/initdb" -D "$TMP/pg/data" -A trust -U postgres >"$TMP/initdb.log" 2>&1 ||
	fail "initdb: $(tail -3 "$TMP/initdb.log")"
spawn asuser "$PGBIN/postgres" -D "$TMP/pg/data" -k "$TMP/sock" -c listen_addresses= -c fsync=off
pm=$SPAWNED
for i in $(seq 100); do [ -S "$TMP/sock/.s.PGSQL.5432" ] && break; sleep 0.1; done
[ -S "$TMP/sock/.s.PGSQL.5432" ] || fail "postgres did not start: $(cat "$SPAWN_ERR")"
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
wait "$bench"
expect_eq "$?" 0 "pgbench exit"
grep -E "number of failed transactions: 0" "$bench_out" >/dev/null ||
	grep -E "^number of transactions actually processed" "$bench_out" >/dev/null ||
	fail "pgbench output: $(cat "$bench_out")"
grep -qE "aborted|error" "$bench_out" && grep -vq "failed transactions: 0" "$bench_out" &&
	fail "pgbench errors: $(grep -E 'aborted|error' "$bench_out")"
echo "ok: $(grep -E 'transactions actually processed|^tps' "$bench_out" | tr '\n' ' ')"
asuser "$PGBIN/pg_ctl" -D "$TMP/pg/data" stop -m fast >/dev/null 2>&1
wait "$pm" 2>/dev/null
pass
