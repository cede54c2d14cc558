#!/bin/bash
# bench.sh - `make bench`: what mfx costs, in one run, on the same workload
# (tests/targets/bench_workload.c: 2 threads x N malloc+free pairs through 64
# call paths 8-20 frames deep):
#   uninstrumented  vs  mfx launch --no-stacks  vs  mfx launch (stacks; and
#   with libunwind alone, MFX_FAST_UNWIND=0)  vs  mfx launch --sample 512k
#   vs  heaptrack (Debian's), as wall-time ratios, and CPU time (user+sys of
#   every process of the command: steadier on a shared machine); what the
#   end of the window costs (the spool's last chunks encoded, the file
#   compacted); trace bytes per event, with stacks and without, side by side
#   with heaptrack's trace of the same run (its .zst size / the events in
#   it), and where mfx's bytes go (scripts/trace-columns.py: the stored size
#   of every column);
#   the analyzer (mfx report) on the biggest trace: events/s and peak RSS;
#   attach: time from command to recording, how long a thread is held;
#   replay: calls/s, on the 2-thread trace and on a one-thread malloc/free trace.
# Writes build/bench/results.md (the table docs/bench.md quotes).
#   BENCH_N=4000000 scripts/bench.sh   (pairs per thread)
set -u
cd "$(dirname "$0")/.."
N=${BENCH_N:-4000000}
T=2
out=build/bench
mkdir -p "$out"
rm -rf "$out"/run-*
W=build/tests/bench_workload
[ -x "$W" ] || make --no-print-directory all
# secs CMD: wall microseconds; the CPU microseconds (user+sys, children
# included) go to $out/cpu, its stderr to $out/last.err
secs() {
	local s e
	s=$(date +%s%N)
	/usr/bin/time -f "%U %S" -o "$out/time" "$@" >/dev/null 2>"$out/last.err"
	e=$(date +%s%N)
	awk '{ printf "%d\n", ($1 + $2) * 1e6 }' "$out/time" >"$out/cpu"
	echo $(( (e - s) / 1000 ))
}
best() {	# best of 3, microseconds; the best CPU time in $out/cpu.best
	local b= c= i t u
	for i in 1 2 3; do
		t=$(secs "$@"); u=$(cat "$out/cpu")
		[ -z "$b" ] || [ "$t" -lt "$b" ] && b=$t
		[ -z "$c" ] || [ "$u" -lt "$c" ] && c=$u
	done
	echo "$c" >"$out/cpu.best"
	echo "$b"
}
cpu() { cat "$out/cpu.best"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
ms() { awk -v a="$1" 'BEGIN { printf "%.1f", a / 1000 }'; }
events=$((N * T * 2 + T * 256))
echo "workload: $T threads x $N malloc+free pairs ($events calls)"
base=$(best "$W" "$N" "$T"); cbase=$(cpu)
echo "uninstrumented:            $(ms "$base") ms, CPU $(ms "$cbase") ms"
# The end of the window (MFX_DEBUG's line, not quiet): from the window's
# end to a final trace.
eow() { sed -n 's/.*end of window \(.*\)/\1/p' "$out/last.err" | tail -1; }
ns=$(MFX_DEBUG=1 best build/mfx launch --no-report --force -o "$out/run-ns" --no-stacks -- "$W" "$N" "$T"); cns=$(cpu)
eow_ns=$(eow)
echo "mfx launch --no-stacks:    $(ms "$ns") ms  ($(ratio "$ns" "$base")x), CPU $(ratio "$cns" "$cbase")x; end of window $eow_ns"
st=$(MFX_DEBUG=1 best build/mfx launch --no-report --force -o "$out/run-st" -- "$W" "$N" "$T"); cst=$(cpu)
eow_st=$(eow)
echo "mfx launch (stacks 64):    $(ms "$st") ms  ($(ratio "$st" "$base")x), CPU $(ratio "$cst" "$cbase")x; end of window $eow_st"
lu=$(MFX_FAST_UNWIND=0 best build/mfx launch -q --no-report --force -o "$out/run-lu" -- "$W" "$N" "$T"); clu=$(cpu)
echo "  same, libunwind alone:   $(ms "$lu") ms  ($(ratio "$lu" "$base")x), CPU $(ratio "$clu" "$cbase")x"
sa=$(best build/mfx launch -q --no-report --force -o "$out/run-sa" --sample 512k -- "$W" "$N" "$T"); csa=$(cpu)
echo "mfx launch --sample 512k:  $(ms "$sa") ms  ($(ratio "$sa" "$base")x), CPU $(ratio "$csa" "$cbase")x"
bpe() { awk -v b="$(stat -c %s "$1")" -v e="$2" 'BEGIN { printf "%.2f", b / e }'; }
bpe_ns=$(bpe "$out/run-ns/trace.mfx" "$events")
bpe_st=$(bpe "$out/run-st/trace.mfx" "$events")
echo "trace size:                $bpe_ns bytes/event (no stacks), $bpe_st (stacks)"
# events the traces hold: a spool the drain cannot empty in time makes the
# agent drop events (counted), and then the times above are of less work
kept() { scripts/trace-columns.py "$1" --json | jq '.model.events'; }
kept_ns=$(kept "$out/run-ns/trace.mfx")
kept_st=$(kept "$out/run-st/trace.mfx")
echo "events in the traces:      $kept_ns (no stacks), $kept_st (stacks) of $events calls"
# where the bytes go, per column of the model codec (bytes/event)
columns() {
	scripts/trace-columns.py "$1" --json | jq -r '.model as $m | [$m.columns | to_entries[]
		| select(.value > 0) | "\(.key) \(.value / $m.events * 1000 | round / 1000)"]
		| join(", ")'
}
cols_ns=$(columns "$out/run-ns/trace.mfx")
cols_st=$(columns "$out/run-st/trace.mfx")
echo "  no stacks, by column:    $cols_ns"
echo "  stacks, by column:       $cols_st"
ht=- htr=- ht_bpe=- hev=- hbpe_ns=- hbpe_st=-
if command -v heaptrack >/dev/null; then
	hn=$((N / 10))	# heaptrack is ~1000x slower: a tenth of the work, scaled
	hb=$(best "$W" "$hn" "$T")
	rm -f "$out"/heaptrack.*
	t=$(secs heaptrack -o "$out/heaptrack.bench" "$W" "$hn" "$T")
	ht=$(( t * 10 ))
	htr=$(ratio "$t" "$hb")
	hf=$(ls "$out"/heaptrack.bench* 2>/dev/null | head -1)
	if [ -n "$hf" ]; then	# its events: the + (allocation) and - (free) lines
		case $hf in
		*.zst) hev=$(zstdcat "$hf" | grep -c '^[+-] ') ;;
		*.gz) hev=$(zcat "$hf" | grep -c '^[+-] ') ;;
		*) hev=$(grep -c '^[+-] ' "$hf") ;;
		esac
		ht_bpe=$(bpe "$hf" "$hev")
	fi
	# mfx on that same run size, for the bytes
	build/mfx launch -q --no-report --force -o "$out/run-hns" --no-stacks -- "$W" "$hn" "$T" >/dev/null 2>&1
	build/mfx launch -q --no-report --force -o "$out/run-hst" -- "$W" "$hn" "$T" >/dev/null 2>&1
	hevents=$((hn * T * 2 + T * 256))
	hbpe_ns=$(bpe "$out/run-hns/trace.mfx" "$hevents")
	hbpe_st=$(bpe "$out/run-hst/trace.mfx" "$hevents")
	echo "heaptrack (N/10, scaled):  $(ms "$ht") ms  (${htr}x)"
	echo "trace size at N/10:        heaptrack $ht_bpe bytes/event ($(stat -c %s "$hf") bytes, $hev events); mfx $hbpe_ns (no stacks), $hbpe_st (stacks)"
else
	echo "heaptrack:                 not installed (apt-get install heaptrack)"
fi
# The analyzer: `mfx report --no-charts` (one pass: summary.json and the
# summary) on a large trace, best of 3: events/s (the events it counted) and
# peak RSS; the whole report (charts and report.html: a second pass) once;
# mfx and heaptrack_print on the same run size (the N/10 runs above); and
# the peak RSS on a trace ten times larger (memory grows with live blocks
# and sites, not with the trace).  BENCH_BIG: pairs per thread (5000000:
# 20M events).  scripts/bench-billion.sh does the same on a billion events.
analyse() {	# DIR [OPTS]: wall ms, peak RSS KiB, events
	local d=$1 s e; shift
	s=$(date +%s%N)
	/usr/bin/time -f "%M" -o "$out/report.rss" build/mfx report -q "$@" "$d" >/dev/null 2>&1
	e=$(date +%s%N)
	echo "$(( (e - s) / 1000000 )) $(cat "$out/report.rss" 2>/dev/null || echo 0)" \
		"$(jq .events "$d/summary.json" 2>/dev/null || echo 0)"
}
mevs() { awk -v e="$1" -v m="$2" 'BEGIN { printf "%.1f", (m > 0 ? e / (m / 1000) / 1e6 : 0) }'; }
big=${BENCH_BIG:-5000000}
build/mfx launch -q --no-report --force -o "$out/run-big" -- "$W" "$big" "$T" >/dev/null 2>&1
rms=0
for i in 1 2 3; do
	read -r m k bev < <(analyse "$out/run-big" --no-charts)
	[ "$rms" -eq 0 ] || [ "$m" -lt "$rms" ] && rms=$m rkb=$k
done
evs=$(mevs "$bev" "$rms")
read -r fms fkb _ < <(analyse "$out/run-big")
echo "analyzer: $bev events in $rms ms ($evs M events/s), peak RSS $((rkb / 1024)) MiB;" \
	"with charts $fms ms ($(mevs "$bev" "$fms") M/s), $((fkb / 1024)) MiB"
hp=- hpe=- hme=- hmevs=- hpevs=-
if [ -n "${hf:-}" ] && [ -f "$hf" ] && command -v heaptrack_print >/dev/null; then
	hpt=$(best heaptrack_print "$hf")
	hp=$(( hpt / 1000 )); hpe=$hev
	hpevs=$(mevs "$hev" "$hp")
	hms=0
	for i in 1 2 3; do
		read -r m _ hme < <(analyse "$out/run-hst" --no-charts)
		[ "$hms" -eq 0 ] || [ "$m" -lt "$hms" ] && hms=$m
	done
	hmevs=$(mevs "$hme" "$hms")
	echo "  same run size (N/10):    mfx report $hme events in $hms ms ($hmevs M/s);" \
		"heaptrack_print $hev events in $hp ms ($hpevs M/s)"
fi
big10=$((big * 10))
build/mfx launch -q --no-report --force -o "$out/run-big10" -- "$W" "$big10" "$T" >/dev/null 2>&1
read -r tms tkb tev < <(analyse "$out/run-big10" --no-charts)
rm -rf "$out/run-big10"
echo "  ten times larger:        $tev events in $tms ms ($(mevs "$tev" "$tms") M events/s)," \
	"peak RSS $((tkb / 1024)) MiB"
# attach
mkfifo "$out/in" 2>/dev/null
exec 9<>"$out/in"
"$W" --serve <&9 >"$out/serve.out" 2>&1 &
sp=$!
sleep 0.3
build/mfx attach -q --no-report --force -o "$out/run-at" --for 1s "$sp" >/dev/null 2>&1 &
ap=$!
sleep 0.3
echo "go $N $T" >&9
wait "$ap"
build/mfx report -q "$out/run-at" >/dev/null 2>&1
held=$(jq .attach.thread_held_ns "$out/run-at/summary.json" 2>/dev/null)
act=$(jq .attach.start_to_active_ns "$out/run-at/summary.json" 2>/dev/null)
slots=$(jq .attach.got_slots_patched "$out/run-at/summary.json" 2>/dev/null)
kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null
echo "attach: command to recording $(ms $((act / 1000))) ms, one thread held $(ms $((held / 1000))) ms, $slots GOT slots"
# replay: the 2-thread trace, and a one-thread malloc/free trace (best of 3)
build/mfx replay -q --allocator glibc --no-compile "$out/run-st" >/dev/null 2>&1
rw=$(jq '.runs[0].wall_ns' "$out/run-st/replay.json" 2>/dev/null || echo 0)
rops=$(jq '.runs[0].ops' "$out/run-st/replay.json" 2>/dev/null || echo 0)
rate=$(awk -v o="$rops" -v w="$rw" 'BEGIN { if (w > 0) printf "%.1f", o / (w / 1e9) / 1e6; else print "-" }')
echo "replay (glibc, $T threads): $rops calls in $(ms $((rw / 1000))) ms ($rate M calls/s)"
build/mfx launch -q --no-report --force --no-stacks -o "$out/run-1t" -- "$W" "$N" 1 >/dev/null 2>&1
r1=0
for i in 1 2 3; do
	build/mfx replay -q --allocator glibc --no-compile "$out/run-1t" >/dev/null 2>&1
	v=$(jq '.runs[0].ops_per_s' "$out/run-1t/replay.json" 2>/dev/null || echo 0)
	[ "${v%.*}" -gt "$r1" ] && r1=${v%.*}
done
r1ops=$(jq '.runs[0].ops' "$out/run-1t/replay.json" 2>/dev/null || echo 0)
r1rate=$(awk -v v="$r1" 'BEGIN { printf "%.1f", v / 1e6 }')
echo "replay (glibc, one thread): $r1ops calls at $r1rate M calls/s (best of 3)"
cat >"$out/results.md" <<EOR
| measure | value |
| --- | --- |
| workload | $T threads x $N malloc+free pairs, 64 call paths 8-20 deep ($events calls) |
| uninstrumented | $(ms "$base") ms (CPU $(ms "$cbase") ms) |
| mfx launch --no-stacks | $(ms "$ns") ms ($(ratio "$ns" "$base")x; CPU $(ratio "$cns" "$cbase")x) |
| mfx launch (stacks, depth 64) | $(ms "$st") ms ($(ratio "$st" "$base")x; CPU $(ratio "$cst" "$cbase")x) |
| same, libunwind alone (MFX_FAST_UNWIND=0) | $(ms "$lu") ms ($(ratio "$lu" "$base")x; CPU $(ratio "$clu" "$cbase")x) |
| mfx launch --sample 512k (stacks) | $(ms "$sa") ms ($(ratio "$sa" "$base")x; CPU $(ratio "$csa" "$cbase")x) |
| heaptrack (same workload at N/10, time x10) | $( [ "$ht" = - ] && echo - || echo "$(ms "$ht") ms (${htr}x)") |
| mfx vs heaptrack | $( [ "$ht" = - ] && echo - || ratio "$ht" "$st")x faster (stacks) |
| end of the window (trace final) | $eow_ns (no stacks); $eow_st (stacks) |
| trace bytes/event | $bpe_ns (no stacks), $bpe_st (stacks) |
| events in the traces (the last run of each) | $kept_ns (no stacks), $kept_st (stacks) |
| trace bytes/event at N/10, one run each | mfx $hbpe_ns (no stacks), $hbpe_st (stacks); heaptrack $ht_bpe ($hev events) |
| mfx's bytes/event by column, no stacks | $cols_ns |
| mfx's bytes/event by column, stacks | $cols_st |
| analyzer (report --no-charts, best of 3) | $bev events in $rms ms ($evs M events/s), peak RSS $((rkb / 1024)) MiB |
| analyzer, whole report (charts, html) | $fms ms ($(mevs "$bev" "$fms") M events/s), peak RSS $((fkb / 1024)) MiB |
| analyzer vs heaptrack_print, same run size (N/10) | mfx $hmevs M events/s ($hme events); heaptrack_print $hpevs M events/s ($hpe events) |
| analyzer on a trace ten times larger | $tev events in $tms ms ($(mevs "$tev" "$tms") M events/s), peak RSS $((tkb / 1024)) MiB |
| attach | command to recording $(ms $((act / 1000))) ms; thread held $(ms $((held / 1000))) ms; $slots GOT slots |
| replay (glibc, $T threads) | $rops calls in $(ms $((rw / 1000))) ms ($rate M calls/s) |
| replay (glibc, one thread) | $r1ops calls at $r1rate M calls/s (best of 3) |
EOR
echo "table: $out/results.md"
