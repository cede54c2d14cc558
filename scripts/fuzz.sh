#!/bin/bash
# fuzz.sh - `make fuzz`: libFuzzer (clang, ASan+UBSan) on the trace reader
# for SECONDS (default 60; the release check runs 600).  The seed corpus is
# real traces written by mfx launch on the test targets.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
CLANG=$(command -v clang || ls /usr/bin/clang-* 2>/dev/null | sort -V | tail -1)
[ -n "$CLANG" ] || { echo "fuzz: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
out=build/fuzz
mkdir -p "$out/corpus" tests/fuzz/corpus-run
srcs="trace/reader.c common/json.c common/util.c"
libs=$(pkg-config --libs libzstd)
"$CLANG" -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude -I. -fsanitize=fuzzer,address,undefined \
	-o "$out/trace_fuzz" tests/fuzz/trace_fuzz.c trace/reader.c common/util.c $libs -lm ||
	{ echo "fuzz: build failed" >&2; exit 1; }
# seeds: small real traces (raw, finalised, with and without stacks)
[ -x build/mfx ] || make --no-print-directory all
for args in "" "--no-stacks" "--stack-depth 4"; do
	d=$(mktemp -d)
	build/mfx launch -q --no-report $args -o "$d/r" -- build/tests/counts_target 50 >/dev/null 2>&1 || true
	[ -f "$d/r/trace.mfx" ] && cp "$d/r/trace.mfx" "$out/corpus/seed-$(echo "$args" | tr -dc a-z0-9)-$RANDOM"
	rm -rf "$d"
done
echo "fuzzing the trace reader for ${secs}s ($(ls "$out/corpus" | wc -l) corpus files)"
# libFuzzer exits non-zero on a crash, a leak, a timeout or an OOM; its log
# is kept, and its last lines shown either way.
rc=0
"$out/trace_fuzz" -max_total_time="$secs" -max_len=262144 -rss_limit_mb=2048 \
	-artifact_prefix="$out/" "$out/corpus" >"$out/fuzz.log" 2>&1 || rc=$?
grep -E "^#[0-9]+.*(pulse|DONE)|ERROR|SUMMARY|crash|Done" "$out/fuzz.log" | tail -5 || true
if [ $rc -ne 0 ]; then
	echo "fuzz: the fuzzer failed (exit $rc): $out/fuzz.log, inputs in $out/" >&2
	exit 1
fi
echo "fuzz: no crash in ${secs}s"
