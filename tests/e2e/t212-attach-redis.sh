#!/bin/bash
# attach to redis-server (Debian's links jemalloc, which defines malloc
# before glibc does) under redis-benchmark: its allocations are recorded and
# attributed to redis code, every request succeeds, redis runs on.
. "$(dirname "$0")/../lib.sh"
redis_start
spawn redis-benchmark -s "$sock" -n 200000 -c 4 -t set,get,lpush -d 256 -q
bench=$SPAWNED bench_out=$SPAWN_OUT
sleep 0.3
run_mfx attach --for 1s -o "$TMP/run" "$rs"
expect_eq "$MFX_RC" 0 "mfx exit: $(cat "$MFX_ERR")"
s=$TMP/run/summary.json
expect_ge "$(jget "$s" .counts.malloc)" 1000 "malloc calls in redis"
expect_ge "$(jget "$s" .counts.free)" 1000 "free calls in redis"
jq -e '[.top_sites_by_allocations[] | select(.module | test("redis"))] | length > 0' "$s" >/dev/null ||
	fail "no site in redis code: $(jq -c '[.top_sites_by_allocations[] | .function]' "$s")"
echo "ok: sites in redis-server"
wait "$bench"
expect_eq "$?" 0 "redis-benchmark exit"
grep -q "SET:" "$bench_out" || fail "benchmark output: $(cat "$bench_out")"
redis-cli -s "$sock" ping 2>/dev/null | grep -q PONG || fail "redis does not answer"
echo "ok: redis answers after the window"
pass
