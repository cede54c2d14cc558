#!/bin/bash
# The fast unwinder gives libunwind's stacks, frame for frame.  With
# MFX_UNWIND_CHECK=FILE the agent unwinds every stack twice -- the fast walk
# (or, for a stack it hands over, the fallback mfx really uses) and
# libunwind's unw_step loop, flushed after every dlclose -- and appends
# "unwind-check pid=.. stacks=N fast=N fallback=N mismatches=N" per process.
# Programs: C built with and without frame pointers (recursion, alloca,
# qsort callbacks, a signal handler that allocates, two plugins with the
# same code offsets but other frames loaded in turn at one address), C++
# with exceptions, python3, sqlite3, the bench workload.
. "$(dirname "$0")/../lib.sh"
CK=$TMP/check
total=0 fast=0 fell=0 n=0

check() {	# NAME MIN_STACKS CMD...
	local name=$1 min=$2 line s f b m
	shift 2
	rm -f "$CK"
	MFX_UNWIND_CHECK=$CK run_mfx launch -q --no-report -o "$TMP/run$n" -- "$@"
	n=$((n + 1))
	expect_eq "$MFX_RC" 0 "$name exit status"
	[ -s "$CK" ] || fail "$name: no unwind-check line"
	grep '^mismatch' "$CK" | head -3 | cut -c1-400 >&2
	s=0 f=0 b=0 m=0
	while read -r line; do
		[[ $line =~ stacks=([0-9]+)\ fast=([0-9]+)\ fallback=([0-9]+)\ mismatches=([0-9]+) ]] || continue
		s=$((s + BASH_REMATCH[1])) f=$((f + BASH_REMATCH[2]))
		b=$((b + BASH_REMATCH[3])) m=$((m + BASH_REMATCH[4]))
	done <"$CK"
	note "$name: $s stacks, $f by the fast walk, $b handed to libunwind"
	expect_eq "$m" 0 "$name: stacks that differ from libunwind's"
	expect_ge "$s" "$min" "$name: stacks compared"
	total=$((total + s)) fast=$((fast + f)) fell=$((fell + b))
	LAST_FELL=$b
}

check "C, no frame pointer" 5000 "$TARGETS/unw_target" 100 "$TARGETS"
expect_ge "$LAST_FELL" 10 "signal frames handed to libunwind"
expect_match "$(cat "$MFX_OUT")" "plugin a at (0x[0-9a-f]+), b at \\1" \
	"the second plugin was loaded where the first one was"
check "C, frame pointer" 5000 "$TARGETS/unw_target_fp" 100 "$TARGETS"
check "C++ exceptions" 10000 "$TARGETS/unw_cxx" 100
check "bench workload" 10000 "$TARGETS/bench_workload" 5000 2
if [ -x /usr/bin/python3 ]; then
	check "python3" 10000 /usr/bin/python3 -c "
import json, re
def rec(n):
    return [bytes(600 + n)] + (rec(n - 1) if n else [])
d = [{'k': i, 'v': 'x' * (i % 900)} for i in range(10000)]
s = json.dumps(d)
for i in range(200):
    rec(30)
x = [re.sub('a', 'b', 'a' * 1000) for _ in range(1000)]
"
else
	note "no /usr/bin/python3: skipped"
fi
if command -v sqlite3 >/dev/null; then
	check "sqlite3" 5000 sqlite3 :memory: "create table t(a,b);
with recursive c(x) as (select 1 union all select x+1 from c where x<10000)
insert into t select x, randomblob(700) from c; select count(*) from t;"
fi
note "all: $total stacks, $fast fast, $fell handed to libunwind"
# the fast walk is what answers, not the fallback
expect_ge "$((fast * 100 / total))" 95 "percent of stacks from the fast walk"
pass
