#!/bin/bash
# The first screen names the culprit in a PostgreSQL backend under pgbench
# (attach): every transaction of the pgbench script builds a 24 MB string
# with SQL's repeat(), so at the peak of live bytes repeat() holds 24 MB,
# taken from malloc through palloc and AllocSetAlloc, which the report
# skips (they are allocation wrappers).  The first 15 lines of the report
# name repeat, by its own name (Debian's postgres has no debug info: no
# file:line), among the first two sites at the peak, holding >= the 24 MB
# the query built.  (The planner folds the constant expression: its copy,
# made by pg_detoast_datum_copy, is live at the same moment, as large.)
. "$(dirname "$0")/../lib.sh"
pg_start
echo "SELECT length(repeat('x', 24000000));" >"$TMP/big.sql"
chmod 644 "$TMP/big.sql"
spawn asuser "$PGBIN/pgbench" -h "$TMP/sock" -U postgres -n -c 1 -T 15 -f "$TMP/big.sql" postgres
bench=$SPAWNED
# the backend serving pgbench: a child of our postmaster (other tests may
# run servers of their own)
postmaster=$(head -1 "$TMP/pg/data/postmaster.pid")
# pgbench may open a short connection of its own before its client's: take
# a backend that is still there a second later
for i in $(seq 200); do	# a busy machine may take seconds
	backend=$(pgrep -P "$postmaster" -f "postgres: postgres postgres" | head -1)
	if [ -n "$backend" ]; then
		sleep 1
		kill -0 "$backend" 2>/dev/null && break
		backend=
	fi
	sleep 0.1
done
[ -n "$backend" ] || fail "no pgbench backend found (pgbench $(kill -0 "$bench" 2>/dev/null && echo running || echo ended): $(tail -3 "$SPAWN_ERR"); children of $postmaster: $(ps -o pid=,args= --ppid "$postmaster" | tr '\n' ';'))"
run_mfx attach --for 2s -o "$TMP/run" "$backend"
expect_eq "$MFX_RC" 0 "mfx exit: $(cat "$MFX_ERR")"
head -15 "$MFX_OUT" >"$TMP/first"
sed 's/^/  | /' "$TMP/first"
grep -qE '^ +[12]\. .* repeat \[postgres\]' "$TMP/first" ||
	fail "repeat() is not among the first two sites at the peak"
echo "ok: the first 15 lines name repeat()"
s=$TMP/run/summary.json
expect_ge "$(jq '[.top_sites_by_peak[0:2][] | select(.function == "repeat") | .live_bytes_at_peak] | max // 0' "$s")" \
	24000000 "repeat() holds the string at the peak"
kill -0 "$backend" || fail "backend died"
wait "$bench"
expect_eq "$?" 0 "pgbench exit"
asuser "$PGBIN/pg_ctl" -D "$TMP/pg/data" stop -m fast >/dev/null 2>&1
wait "$pm" 2>/dev/null
pass
