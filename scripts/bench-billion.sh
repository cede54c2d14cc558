#!/bin/bash
# bench-billion.sh - the analyzer on a billion events (issue 16, item 4):
# records tests/targets/bench_workload with 250M malloc+free pairs in each
# of 2 threads (1e9 calls; under back-pressure the agent may drop some, and
# the report counts what the trace holds), then times `mfx report
# --no-charts` on it: wall, events/s, peak RSS (/usr/bin/time), the trace's
# size.  Minutes of work and ~600 MB of disk in build/bench: not part of
# `make check` or `make bench`; docs/bench.md keeps its figures.
#   BILLION_PAIRS=250000000 scripts/bench-billion.sh
set -u
cd "$(dirname "$0")/.."
P=${BILLION_PAIRS:-250000000}
out=build/bench
run=$out/run-billion
mkdir -p "$out"
W=build/tests/bench_workload
[ -x "$W" ] || make --no-print-directory all
echo "recording: 2 threads x $P malloc+free pairs"
s=$(date +%s)
build/mfx launch -q --no-report --force -o "$run" -- "$W" "$P" 2 >/dev/null 2>&1 ||
	{ echo "bench-billion: the recording failed" >&2; exit 1; }
echo "  recorded in $(( $(date +%s) - s )) s, trace $(( $(stat -c %s "$run/trace.mfx") >> 20 )) MiB"
s=$(date +%s%N)
/usr/bin/time -f "%M %U %S" -o "$out/billion.time" build/mfx report -q --no-charts "$run" ||
	{ echo "bench-billion: mfx report failed" >&2; exit 1; }
e=$(date +%s%N)
read -r rkb us ss <"$out/billion.time"
ev=$(jq .events "$run/summary.json")
ms=$(( (e - s) / 1000000 ))
evs=$(awk -v e="$ev" -v m="$ms" 'BEGIN { printf "%.1f", e / (m / 1000) / 1e6 }')
dr=$(jq '.recording.dropped_events // 0' "$run/summary.json" 2>/dev/null || echo 0)
line="analyzer on $ev events ($dr dropped by the agent): $ms ms ($evs M events/s), CPU ${us}+${ss} s, peak RSS $((rkb / 1024)) MiB"
echo "$line"
echo "| $(date -u +%F) | $ev | $(( $(stat -c %s "$run/trace.mfx") >> 20 )) MiB | $ms ms | $evs M/s | $((rkb / 1024)) MiB |" >"$out/billion.md"
rm -rf "$run"
