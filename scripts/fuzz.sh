#!/bin/bash
# fuzz.sh - libFuzzer (clang, ASan+UBSan) on every parser of input mfx has:
#   trace       the trace reader (trace/reader*.c)
#   csv         mfx export --csv on fuzzed traces (analyzer/export.c)
#   json        the JSON writer's escaping, decoded by a strict decoder
#   smaps       the smaps parser and its totals (common/procfs.c)
#   replay_ops  the replay ops reader (analyzer/replay/opsread.h)
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   `make fuzz`: SECONDS each (default 60)
#   scripts/fuzz.sh --check [TARGET...]     tests/run.sh (make check): 12 s each
#   scripts/fuzz.sh --list                  the targets
#   FUZZ_SEED=N (default 1), FUZZ_CHECK_SECONDS=N (default 12)
#
# Reproducible: each run starts from the same seed corpus (real traces,
# smaps and replay.ops written by this build's mfx on the test targets) and
# libFuzzer's -seed=FUZZ_SEED.  A crash, a sanitizer report, a leak, an
# input slower than 60 s or an out-of-memory fails the run (exit 1): the
# input is kept in build/fuzz/artifacts/ and the command that replays it is
# printed.
set -euo pipefail
cd "$(dirname "$0")/.."
all="trace csv json smaps replay_ops"
secs=60
case ${1:-} in
--list) echo $all; exit 0 ;;
--check) secs=${FUZZ_CHECK_SECONDS:-12}; shift ;;
[0-9]*) secs=$1; shift ;;
esac
targets=${*:-$all}
seed=${FUZZ_SEED:-1}
out=build/fuzz

if ! command -v "${FUZZ_CC:-clang}" >/dev/null; then
	echo "fuzz: needs clang and libFuzzer (scripts/deps.sh installs clang libclang-rt-14-dev)" >&2
	exit 1
fi
make --no-print-directory all fuzz-build >"$out.build.log" 2>&1 ||
	{ cat "$out.build.log" >&2; echo "fuzz: build failed" >&2; exit 1; }

# Seeds from real runs of this build, made once per mfx binary.
seeds() {
	local s=$out/seeds d args i=0
	[ -d "$s" ] && [ "$s" -nt build/mfx ] && return 0
	rm -rf "$s" && mkdir -p "$s"/{trace,csv,smaps,replay_ops,json}
	d=$(mktemp -d)
	for args in "-- build/tests/counts_target 50" "--no-stacks -- build/tests/counts_target 20" \
		"--stack-depth 4 -- build/tests/mt_counts 3 20" "--no-stacks -- build/tests/realloc_zero 60" \
		"--no-stacks -- build/tests/mt_counts 2 2100"; do
		i=$((i + 1))
		build/mfx launch -q --no-report -o "$d/r$i" $args >/dev/null 2>&1 || true
		[ -f "$d/r$i/trace.mfx" ] || continue
		cp "$d/r$i/trace.mfx" "$s/trace/run$i.mfx"
		cp "$d/r$i/trace.mfx" "$s/csv/run$i.mfx"
		[ -f "$d/r$i/smaps" ] && cp "$d/r$i/smaps" "$s/smaps/run$i"
		build/mfx replay -q --allocator glibc --no-compile "$d/r$i" >/dev/null 2>&1 || true
		[ -f "$d/r$i/replay.ops" ] && cp "$d/r$i/replay.ops" "$s/replay_ops/run$i.ops"
	done
	rm -rf "$d"
	printf '\x01\x00\x02\x01k\x05caf\xc3\xa9' >"$s/json/seed1"
	touch "$s"
}
seeds

mkdir -p "$out/artifacts"
bad=0
for t in $targets; do
	bin=$out/${t}_fuzz
	[ -x "$bin" ] || { echo "fuzz: no target '$t' (targets: $all)" >&2; exit 2; }
	corpus=$out/corpus/$t
	rm -rf "$corpus" && mkdir -p "$corpus"
	cp "$out/seeds/$t"/* "$corpus/" 2>/dev/null || true
	log=$out/$t.log
	rc=0
	"$bin" -seed="$seed" -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 \
		-max_len=262144 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
		"$corpus" >"$log" 2>&1 || rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ $rc -eq 0 ]; then
		echo "fuzz: $t: ${runs:-?} inputs in ${secs}s, no failure (seed $seed, $(ls "$corpus" | wc -l) in corpus)"
		continue
	fi
	bad=1
	echo "fuzz: $t FAILED (exit $rc), log $log:" >&2
	grep -E "ERROR|runtime error|_fuzz: |SUMMARY|Test unit written" "$log" | head -8 >&2 || true
	art=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
	[ -n "$art" ] && echo "fuzz: replay it with: $bin $art" >&2
done
exit $bad
