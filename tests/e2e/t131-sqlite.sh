#!/bin/bash
# sqlite3 from Debian: inserts into an in-memory database.
. "$(dirname "$0")/../lib.sh"
need sqlite3
cat >"$TMP/load.sql" <<'EOS'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000)
INSERT INTO t SELECT x, 'name-' || x, randomblob(200) FROM c;
CREATE INDEX i ON t(name);
SELECT count(*) FROM t;
EOS
run_mfx launch -q -o "$TMP/run" -- sqlite3 :memory: ".read $TMP/load.sql"
expect_eq "$MFX_RC" 0 "exit status"
expect_eq "$(tr -d '\n' <"$MFX_OUT" | grep -o '^20000')" 20000 "sqlite3's own output intact"
s=$TMP/run/summary.json
expect_ge "$(jget "$s" .counts.malloc)" 5000 "mallocs"
expect_ge "$(jget "$s" .peak_live_bytes)" 4000000 "peak live holds the table"
mods=$(jq -r '[.top_sites_by_allocations[].frames[].module] | unique | join(" ")' "$s")
note "modules in top stacks: $mods"
echo "$mods" | grep -q libsqlite3 || fail "no libsqlite3 frames in the top stacks"
jq -e '[.top_sites_by_allocations[].stack[]] | any(test("^sqlite3"))' "$s" >/dev/null ||
	fail "no sqlite3* function names in the top stacks"
pass
