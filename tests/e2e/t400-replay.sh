#!/bin/bash
# mfx replay: the replay makes the same calls as the trace (ops, counts and
# live peak equal), under every installed allocator and as the generated
# replay.c; a multi-threaded program with cross-thread frees and a real one
# (python3) too; replay.json (with the RSS timeline sampled from outside),
# replay.c, replay, smaps_replay and rss_comparison.png are written and
# report.html refreshed; bounds and bad options are handled.
. "$(dirname "$0")/../lib.sh"
run_mfx launch -q --no-report -o "$TMP/run" -- "$TARGETS/counts_target" 3000
expect_eq "$MFX_RC" 0 "launch"
run_mfx report -q "$TMP/run"
s=$TMP/run/summary.json
total=$(jq '[.counts[]] | add' "$s")
run_mfx replay -q "$TMP/run"
expect_eq "$MFX_RC" 0 "mfx replay exit: $(cat "$MFX_ERR")"
r=$TMP/run/replay.json
n=$(jq '.runs | length' "$r")
expect_ge "$n" 1 "replay runs"
# every run of replay.json against the trace's summary
check_runs() {	# replay.json summary.json
	local r=$1 s=$2 n i a k total
	total=$(jq '[.counts[]] | add' "$s")
	n=$(jq '.runs | length' "$r")
	for i in $(seq 0 $((n - 1))); do
		a="$(jq -r ".runs[$i].allocator" "$r") $(jq -r ".runs[$i].replayer" "$r")"
		for k in allocator tunables threads ops peak_live_bytes rss_peak_bytes rss_end_bytes wall_ns; do
			jq -e ".runs[$i] | has(\"$k\")" "$r" >/dev/null || fail "$a: no $k"
		done
		expect_eq "$(jq ".runs[$i].ops" "$r")" "$total" "$a: ops = the trace's calls"
		for k in malloc calloc realloc free memalign; do
			expect_eq "$(jq ".runs[$i].counts.$k" "$r")" "$(jget "$s" ".counts.$k")" "$a: $k"
		done
		expect_eq "$(jq ".runs[$i].peak_live_bytes" "$r")" "$(jget "$s" .peak_live_bytes)" "$a: live peak"
		expect_ge "$(jq ".runs[$i].rss_peak_bytes" "$r")" 1 "$a: RSS peak measured"
		expect_ge "$(jq ".runs[$i].rss_timeline | length" "$r")" 1 "$a: RSS timeline points"
		expect_eq "$(jq ".runs[$i].cut" "$r")" false "$a: not cut"
	done
}
check_runs "$r" "$s"
expect_eq "$(jq '[.runs[] | select(.replayer == "replay.c")] | length' "$r")" 1 "replay.c compiled and run"
grep -q "^static void \*thread0" "$TMP/run/replay.c" || fail "replay.c has no thread function"
grep -q "(replay.c)" "$TMP/run/report.html" || fail "report.html was not refreshed with the replays"
for a in jemalloc tcmalloc mimalloc; do
	jq -e ".runs[] | select(.allocator == \"$a\")" "$r" >/dev/null && echo "ok: replayed under $a"
done
for f in replay.c replay replay.ops smaps_replay rss_comparison.png; do
	[ -s "$TMP/run/$f" ] || fail "no $f"
done
head -c 8 "$TMP/run/rss_comparison.png" | od -An -tx1 | grep -q "89 50 4e 47" || fail "not a PNG"
grep -q "^Rss:" "$TMP/run/smaps_replay" || fail "smaps_replay is not an smaps"
grep -q "original heap RSS peak" "$MFX_OUT" || fail "no terminal table"
# several threads, half of the frees on another thread than the allocation
run_mfx launch -q -o "$TMP/mt" -- "$TARGETS/mt_counts" 4 3000
expect_eq "$MFX_RC" 0 "launch mt_counts"
run_mfx replay -q "$TMP/mt"
expect_eq "$MFX_RC" 0 "replay mt_counts: $(cat "$MFX_ERR")"
expect_ge "$(jq .cross_thread_frees "$TMP/mt/replay.json")" 6000 "cross-thread frees"
check_runs "$TMP/mt/replay.json" "$TMP/mt/summary.json"
# a real program, under two allocators
run_mfx launch -q -o "$TMP/py" -- python3 -c "
d = {}
for i in range(20000): d[i] = str(i) * (i % 7)
print(len(d))"
expect_eq "$MFX_RC" 0 "launch python3"
run_mfx replay -q --allocator glibc,jemalloc --no-compile "$TMP/py"
expect_eq "$MFX_RC" 0 "replay python3: $(cat "$MFX_ERR")"
check_runs "$TMP/py/replay.json" "$TMP/py/summary.json"
expect_eq "$(jq -r '[.runs[].allocator] | join(",")' "$TMP/py/replay.json")" glibc,jemalloc "python3 allocators"
# a tunable, no compile, a bound
run_mfx replay -q --allocator glibc --tunable M_ARENA_MAX=1 --no-compile --max-ops 100 "$TMP/run"
expect_eq "$MFX_RC" 0 "replay with a tunable and a bound"
expect_eq "$(jq '.runs | length' "$r")" 2 "runs: glibc and glibc with the tunable"
expect_eq "$(jq -r '.runs[1].tunables' "$r")" M_ARENA_MAX=1 "tunable recorded"
expect_eq "$(jq '.runs[0].ops' "$r")" 100 "--max-ops cut"
expect_eq "$(jq '.runs[0].cut' "$r")" true "cut flagged"
# --max-live-bytes cuts, with a note; --allocator takes a library path
jl=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 2>/dev/null || true)
run_mfx replay -q --allocator "glibc${jl:+,$jl}" --max-live-bytes 100000 "$TMP/run"
expect_eq "$MFX_RC" 0 "replay with --max-live-bytes"
expect_eq "$(jq '.runs[0].cut' "$r")" true "live bound cut the replay"
expect_le "$(jq '.runs[0].peak_live_bytes' "$r")" 100000 "live peak under the bound"
grep -q "cut" "$MFX_ERR" || fail "no note about the cut: $(cat "$MFX_ERR")"
[ -n "$jl" ] && expect_eq "$(jq -r '.runs[1].allocator' "$r")" libjemalloc.so.2 "allocator by path"
run_mfx replay --allocator nosuch "$TMP/run"
expect_eq "$MFX_RC" 2 "unknown allocator: usage"
expect_one_error_line "$MFX_ERR" "unknown allocator 'nosuch'"
mkdir "$TMP/nothing"
run_mfx replay "$TMP/nothing"
expect_eq "$MFX_RC" 1 "no trace"
expect_one_error_line "$MFX_ERR" "no trace in"
run_mfx replay "$TMP/nowhere"
expect_eq "$MFX_RC" 1 "no directory"
expect_one_error_line "$MFX_ERR" "is not a run directory"
pass
