#!/bin/bash
# redis-server (Debian's: jemalloc serves its malloc) under redis-benchmark:
# mfx names jemalloc, and its heap figures agree with redis's own INFO memory
# (allocator_resident, allocator_allocated: jemalloc's stats as redis reads
# them) within 20%; mfx trim releases through jemalloc's purge, and what it
# says came back is what INFO memory says afterwards; the benchmark sees no
# error and redis answers throughout.
. "$(dirname "$0")/../lib.sh"
redis_start
rcli() { redis-cli -s "$sock" "$@"; }
info() { rcli info memory | tr -d '\r' | awk -F: -v k="$1" '$1 == k {print $2}'; }
within() {	# got want pct what
	local d=$(( $1 > $2 ? $1 - $2 : $2 - $1 ))
	[ "$2" -gt 0 ] || fail "$4: reference is 0"
	if [ $(( d * 100 / $2 )) -le "$3" ]; then echo "ok: $4: $1 vs $2"; else fail "$4: $1 vs $2 (more than $3% apart)"; fi
}

# a keyspace that exists before the window, so the window's load is steady
redis-benchmark -s "$sock" -n 150000 -r 30000 -c 4 -t set -d 400 -q >/dev/null 2>&1 ||
	fail "prefill benchmark failed"
spawn redis-benchmark -s "$sock" -n 200000 -r 30000 -c 4 -t set,get -d 400 -q
bench=$SPAWNED bench_out=$SPAWN_OUT bench_err=$SPAWN_ERR
sleep 0.3
res0=$(info allocator_resident) all0=$(info allocator_allocated)
run_mfx attach "$rs" --for 2s -o "$TMP/run"
expect_eq "$MFX_RC" 0 "mfx attach PID --for 2s: $(cat "$MFX_ERR")"
res1=$(info allocator_resident) all1=$(info allocator_allocated)
grep -q "jemalloc malloc" "$MFX_ERR" || fail "attach line does not name jemalloc: $(head -1 "$MFX_ERR")"
s=$TMP/run/summary.json
expect_eq "$(jget "$s" .allocator)" jemalloc "summary.json allocator"
expect_eq "$(jget "$s" .heap.measured)" true "heap measured"
expect_eq "$(jget "$s" .heap.heap_rss_from)" allocator "heap RSS from jemalloc's stats"
heap=$(jget "$s" .heap_rss_bytes) live=$(jget "$s" .heap.live_bytes)
note "INFO memory before/after the window: resident $res0/$res1, allocated $all0/$all1"
within "$heap" "$(( (res0 + res1) / 2 ))" 20 "heap_rss_bytes against allocator_resident"
within "$live" "$(( (all0 + all1) / 2 ))" 20 "live bytes at the peak against allocator_allocated"
frag=$(jget "$s" .fragmentation_ratio)
want=$(echo "$heap $live" | awk '{printf "%.2f", ($1 - $2) / $1}')
expect_eq "$(printf '%.2f' "$frag")" "$want" "fragmentation_ratio = (heap - live) / heap"
cat "$MFX_OUT" "$MFX_ERR" | grep -q "allocator: jemalloc" || fail "report does not name jemalloc"
kill -0 "$bench" 2>/dev/null && note "benchmark still running after the window"

# trim: big values freed (whole jemalloc extents go dirty), then purged
wait "$bench"
expect_eq "$?" 0 "redis-benchmark exit"
grep -qi "error" "$bench_out" "$bench_err" && fail "benchmark saw errors: $(grep -i error "$bench_out" "$bench_err" | head -3)"
grep -q "GET:" "$bench_out" || fail "benchmark output: $(tail -c 300 "$bench_out")"
echo "ok: the benchmark finished without an error"
rcli flushall >/dev/null
redis-benchmark -s "$sock" -n 1500 -r 600 -c 2 -t set -d 65536 -q >/dev/null 2>&1 || fail "fill"
rcli eval "local n=0 for _,k in ipairs(redis.call('keys','key:*')) do if n%2==0 then redis.call('del',k) end n=n+1 end return n" 0 >/dev/null
run_mfx trim "$rs" --json
expect_eq "$MFX_RC" 0 "mfx trim PID --json: $(cat "$MFX_ERR")"
j=$MFX_OUT
expect_eq "$(jget "$j" .allocator)" jemalloc "trim: allocator"
expect_eq "$(jget "$j" .method)" agent "trim: method (the attach left the agent)"
expect_match "$(jget "$j" .call)" 'arena\.4096\.(purge|decay)' "trim: jemalloc's own call"
fb=$(jget "$j" .allocator_before.free_bytes) rb=$(jget "$j" .allocator_before.resident_bytes)
ra=$(jget "$j" .allocator_after.resident_bytes)
note "jemalloc: dirty+muzzy before $fb, resident $rb -> $ra; RSS released $(jget "$j" .released_bytes)"
expect_ge "$fb" $((8 << 20)) "jemalloc's purgeable bytes before"
expect_ge "$(( rb - ra ))" $(( fb * 8 / 10 )) "resident bytes the purge gave back"
expect_ge "$(jget "$j" .released_bytes)" $(( fb / 2 )) "RSS released (/proc)"
within "$ra" "$(info allocator_resident)" 20 "after the trim: resident against INFO allocator_resident"
# the same without the agent: ptrace, a thread held outside jemalloc's code
# (jemalloc's figures through remote mallctl calls)
MFX_NO_DOORBELL=1 run_mfx trim "$rs" --json
expect_eq "$MFX_RC" 0 "trim through ptrace: $(cat "$MFX_ERR")"
expect_eq "$(jget "$MFX_OUT" .method)/$(jget "$MFX_OUT" .allocator)" ptrace/jemalloc "ptrace trim"
expect_ge "$(jget "$MFX_OUT" .allocator_after.resident_bytes)" 1 "jemalloc's figures through ptrace"
# snapshot: jemalloc's own statistics, per arena, saved beside the smaps
run_mfx snapshot "$rs" --json -o "$TMP/snap"
expect_eq "$MFX_RC/$(jget "$MFX_OUT" .allocator)" 0/jemalloc "snapshot names jemalloc"
expect_ge "$(jget "$MFX_OUT" '.jemalloc_arenas | length')" 1 "snapshot: arenas"
within "$(jget "$MFX_OUT" .allocator_figures.resident_bytes)" "$(info allocator_resident)" 20 \
	"snapshot: resident against INFO allocator_resident"
grep -q "Begin jemalloc statistics" "$TMP/snap.malloc_stats.txt" || fail "no malloc_stats_print text"
echo "ok: malloc_stats_print saved"
rcli ping | grep -q PONG || fail "redis does not answer"
expect_ge "$(rcli dbsize)" 250 "keys left"
echo "ok: redis answers"
pass
