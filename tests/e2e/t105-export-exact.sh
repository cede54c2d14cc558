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
	# Blocks handed between threads: in the CSV's order every block a
	# worker frees was allocated before (times are kept to 0.1 us: the
	# reader orders a hand-over within one quantum by its pointer).  One
	# order no single time can keep: a realloc that moves a block frees the
	# old one inside the call and is timed when it returns; another thread
	# may get the old block in between (the program's log shows that
	# allocation returning while the realloc ran).  Those are counted apart.
	local bad moved tied
	read -r bad moved tied < <(awk -F, '
		NR == FNR {	# the log: start,end,event,ptr,size,tid,api,old_ptr
			if ($3 == "free") w[$4] = 1
			if ($3 != "free" && $4 != "0x0") { na[$4]++; ae[$4, na[$4]] = $2; at[$4, na[$4]] = $6 }
			if ($3 == "free") { nf[$4]++; fs[$4, nf[$4]] = $1; ft[$4, nf[$4]] = $6 }
			if ($3 == "realloc" && $8 != "0x0" && $4 != "0x0") {
				k = $6 SUBSEP $4 SUBSEP $8; nr[k]++; rs[k, nr[k]] = $1; re[k, nr[k]] = $2
			}
			next
		}
		FNR > 1 {
			if ($2 == "free" || ($2 == "realloc" && $7 != "0x0" && $3 != "0x0")) {
				p = $2 == "free" ? $3 : $7
				if ((p in w) && !(p in live)) {
					if ($2 == "realloc" && reused_inside($5, $3, p)) moved++
					else if (reused_at_once($5, p)) tied++
					else bad++
				}
				delete live[p]
			}
			if ($2 != "free" && $3 != "0x0") live[$3] = 1
		}
		function reused_inside(tid, new, old,   k, i, j) {
			k = tid SUBSEP new SUBSEP old
			for (i = 1; i <= nr[k]; i++)
				for (j = 1; j <= na[old]; j++)
					if (at[old, j] != tid && ae[old, j] >= rs[k, i] && ae[old, j] <= re[k, i])
						return 1
			return 0
		}
		# the freeing thread got p back within 1 us of a free of it by another
		# thread (two events in one quantum, in the order the reader
		# guesses: trace-format.md), so that free came out after this
		# allocation
		function reused_at_once(tid, p,   i, j) {
			for (j = 1; j <= na[p]; j++) {
				if (at[p, j] != tid)
					continue
				for (i = 1; i <= nf[p]; i++)
					if (ft[p, i] != tid && ae[p, j] >= fs[p, i] && ae[p, j] - fs[p, i] <= 1000)
						return 1
			}
			return 0
		}
		END { print bad + 0, moved + 0, tied + 0 }' "$log" "$csv")
	note "$name: blocks reused by another thread inside a moving realloc: $moved;" \
		"reused within 1 us of their free: $tied"
	expect_eq "$bad" 0 "$name: blocks freed after they were allocated, across threads"
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
