#!/bin/bash
# run.sh - run every test: unit test binaries (build/tests/unit/*), short
# fuzz runs (scripts/fuzz.sh --check), then the end-to-end scripts
# (tests/e2e/t[0-9]*.sh) in name order.  A test passes
# with exit 0, is skipped with exit 77, fails otherwise or on timeout.
# Ends with the line "N passed, N failed".
#   tests/run.sh                 everything
#   tests/run.sh 't1*' 'unit-*'  only names matching one of the patterns
#   TEST_TIMEOUT=300 (s per test), TEST_VERBOSE=1 (show each test's output)
set -u
cd "$(dirname "$0")/.."
export MFX_ROOT=$PWD
timeout_s=${TEST_TIMEOUT:-300}
logdir=build/test-logs
mkdir -p "$logdir"
pass=0 fail=0 skip=0 failed=()

match() {	# name patterns...: true when no pattern was given or one matches
	local name=$1; shift
	[ $# -eq 0 ] && return 0
	for p in "$@"; do [[ $name == $p ]] && return 0; done
	return 1
}

run_one() {	# name command...
	local name=$1; shift
	local log=$logdir/$name.log start end rc
	start=$(date +%s.%N)
	timeout -k 10 "$timeout_s" "$@" >"$log" 2>&1 </dev/null
	rc=$?
	end=$(date +%s.%N)
	local secs; secs=$(printf '%.1f' "$(echo "$end - $start" | bc)")
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1)); printf 'ok    %-40s %6ss\n' "$name" "$secs"
	elif [ $rc -eq 77 ]; then
		skip=$((skip + 1)); printf 'skip  %-40s %s\n' "$name" "$(tail -n 1 "$log")"
	else
		fail=$((fail + 1)); failed+=("$name")
		[ $rc -eq 124 ] && echo "timeout after ${timeout_s}s" >>"$log"
		printf 'FAIL  %-40s %6ss (exit %d, log %s)\n' "$name" "$secs" $rc "$log"
		tail -n 15 "$log" | sed 's/^/      | /'
	fi
	[ "${TEST_VERBOSE:-0}" = 1 ] && sed 's/^/      : /' "$log"
}

for t in build/tests/unit/*; do
	[ -x "$t" ] || continue
	name=unit-$(basename "$t")
	match "$name" "$@" || continue
	run_one "$name" "$t"
done
for t in build/san/tests/unit/*; do
	[ -x "$t" ] || continue
	name=san-unit-$(basename "$t")
	match "$name" "$@" || continue
	run_one "$name" "$t"
done
# short fuzz runs, one per parser of input (scripts/fuzz.sh, 12 s each)
for t in $(scripts/fuzz.sh --list); do
	name=fuzz-$t
	match "$name" "$@" || continue
	run_one "$name" scripts/fuzz.sh --check "$t"
done
for t in tests/e2e/t[0-9]*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	match "$name" "$@" || continue
	run_one "$name" bash "$t"
done

[ $skip -gt 0 ] && echo "$skip skipped"
[ $fail -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
