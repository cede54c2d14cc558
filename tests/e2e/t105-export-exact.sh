#!/bin/bash
# `mfx export --csv` equals what a program logged of its own calls, pointers
# of frees and realloc's old pointers included: the trace encoding (format 2:
# frees by rank, results from free lists, sizes by class, times in quanta)
# loses nothing the CSV shows.  Three workers, every call of the malloc
# family, failed calls, blocks handed between threads; with stacks, without,
# with the agent writing straight into the file (no spool: those chunks are
# encoded by the finaliser instead of the drain thread), with every spool
# slot spilled raw as when the drain falls behind, and with times read
# from clock_gettime instead of the TSC.
. "$(dirname "$0")/../lib.sh"

N=4000
check() {	# name, mfx options...
	local name=$1; shift
	local run=$TMP/run-$name log=$TMP/log-$name.csv
	run_mfx launch -q --no-report -o "$run" "$@" -- "$TARGETS/call_log" $N 3 "$log"
	expect_eq "$MFX_RC" 0 "$name: exit status"
	# the events really went through the model codec (format 2)
	model=$(scripts/trace-columns.py "$run/trace.mfx" --json | jq '.model.events')
	expect_ge "$model" $((3 * N)) "$name: events in model chunks"
	run_mfx export --csv "$run"
	expect_eq "$MFX_RC" 0 "$name: export --csv"
	local csv=$run/mftrace_log.csv
	# Per worker: the CSV rows of its thread from its first malloc(777777)
	# to its second equal what it logged (event,ptr,size,tid,api,old_ptr).
	local tids; tids=$(cut -d, -f6 "$log" | sort -u)
	expect_eq "$(echo "$tids" | wc -l)" 3 "$name: three workers logged"
	for tid in $tids; do
		awk -F, -v t="$tid" '$6 == t' "$log" | cut -d, -f3-8 >"$TMP/want"
		awk -F, -v t="$tid" 'NR > 1 && $5 == t {
			m = ($2 == "malloc" && $4 == 777777)
			if (m) n++
			if (n >= 1 && (n < 2 || m)) print
			if (n == 2 && m) exit
		}' "$csv" | cut -d, -f2-7 >"$TMP/got"
		if ! cmp -s "$TMP/want" "$TMP/got"; then
			diff "$TMP/want" "$TMP/got" | head -5 >&2
			fail "$name: thread $tid: the CSV differs from the program's log"
		fi
		echo "ok: $name: thread $tid: $(wc -l <"$TMP/want") calls exactly as logged"
	done
	# Blocks handed between threads: every two calls on one address are in
	# the CSV in the program's order, as its own clock (read before and
	# after each call) shows it, unless the calls overlapped -- a realloc
	# that moves a block gives the old one back inside the call, and
	# another thread may get that address before the realloc returns: no
	# single time per call orders those, and the program's clock does not
	# either -- or the CSV gives both the same time (one 0.1 us quantum,
	# ordered by the reader's guess: trace-format.md).
	local bad overlap tied
	read -r bad overlap tied < <(awk -F, '
		NR == FNR { n[$6]++; s[$6, n[$6]] = $1; e[$6, n[$6]] = $2; next }
		FNR > 1 && ($5 in n) {
			if ($2 == "malloc" && $4 == 777777) c[$5]++
			if (c[$5] < 1 || k[$5] >= n[$5])
				next
			j = ++k[$5]
			if ($3 != "0x0") touch($3, s[$5, j], e[$5, j], $1)
			if ($2 ~ /realloc/ && $7 != "0x0" && $7 != $3) touch($7, s[$5, j], e[$5, j], $1)
		}
		# a call [st, en] on address a, at CSV time ts: did a call the
		# CSV put before it start only after this one had ended?
		function touch(a, st, en, ts) {
			if ((a in ms) && en < ms[a]) {
				if (ts == mts[a]) tied++
				else bad++
			} else if ((a in me) && st < me[a]) {
				overlap++
			}
			if (!(a in ms) || st > ms[a]) { ms[a] = st; mts[a] = ts }
			if (!(a in me) || en > me[a]) me[a] = en
		}
		END { print bad + 0, overlap + 0, tied + 0 }' "$log" "$csv")
	note "$name: calls on one address that overlapped in the program's clock: $overlap;" \
		"in one quantum, in the reader's order: $tied"
	expect_eq "$bad" 0 "$name: calls on one address across threads in the program's order"
	# The analysis owes a give-back to a block whose address another
	# thread got inside such a call, and pays it when it comes: every free
	# and realloc of the program finds its block (the program frees only
	# what it allocated; free(NULL) aside).
	run_mfx report --no-charts -q "$run"
	expect_eq "$MFX_RC" 0 "$name: report"
	local nullfree unknown
	nullfree=$(awk -F, '$3 == "free" && $4 == "0x0"' "$log" | wc -l)
	unknown=$(jq '.frees_of_unknown_blocks' "$run/summary.json")
	note "$name: free(NULL) calls: $nullfree; late give-backs paid:" \
		"$(jq '.late_give_backs' "$run/summary.json")"
	expect_eq "$unknown" "$nullfree" "$name: frees of unknown blocks are the program's free(NULL)s"
	sorted=$(awk -F, 'NR > 1 {print $1}' "$csv" | sort -n -c 2>&1 && echo ok)
	expect_eq "$sorted" ok "$name: CSV rows in time order"
	# Times: within the program's own clock readings around each call,
	# to the precision kept (0.1 us) and the TSC conversion (a few us).
	far=$(awk -F, -v tol=20000 'NR == FNR { n[$6]++; t0[$6, n[$6]] = $1; t1[$6, n[$6]] = $2; next }
		FNR > 1 && ($5 in n) {
			m = ($2 == "malloc" && $4 == 777777); if (m) k[$5]++
			if (k[$5] >= 1 && i[$5] < n[$5]) {
				j = ++i[$5]
				if ($1 + tol < t0[$5, j] || $1 > t1[$5, j] + tol) far++
			}
		} END { print far + 0 }' "$log" "$csv")
	note "$name: calls timed outside the program's own readings +-20 us: $far"
	expect_le "$far" $((N / 100)) "$name: times agree with the program's clock"
}

check stacks
check nostacks --no-stacks
MFX_NO_SPOOL=1 check nospool
# the drain behind (trace/spool.c: spill): raw slots, encoded when final
MFX_SPILL=1 check spill
MFX_CLOCK=ns check nstime
pass
