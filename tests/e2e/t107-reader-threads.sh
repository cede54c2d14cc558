#!/bin/bash
# The trace reader decodes each thread's events on worker threads ahead of
# the merge (trace/reader_merge.c); the merged order must not depend on
# them.  Six threads of call_log (more streams than workers, many decoded
# batches each, blocks handed between threads): `mfx export --csv` with no
# workers, one and three is the same file, and each thread's rows in it are
# what the program logged of its own calls; `mfx report` gives the same
# summary.json figures.
. "$(dirname "$0")/../lib.sh"

N=6000
run=$TMP/run log=$TMP/log.csv
run_mfx launch -q --no-report -o "$run" --no-stacks -- "$TARGETS/call_log" $N 6 "$log"
expect_eq "$MFX_RC" 0 "exit status"
for w in 0 1 3; do
	MFX_READER_THREADS=$w run_mfx export --csv -o "$TMP/w$w.csv" "$run"
	expect_eq "$MFX_RC" 0 "export --csv with $w workers"
	MFX_READER_THREADS=$w run_mfx report -q --no-charts "$run"
	expect_eq "$MFX_RC" 0 "report with $w workers"
	jq -S 'del(.analysis_ms, .report)' "$run/summary.json" >"$TMP/s$w.json"
done
rows=$(($(wc -l <"$TMP/w0.csv") - 1))
expect_ge "$rows" $((6 * N)) "rows in the CSV"
for w in 1 3; do
	cmp -s "$TMP/w0.csv" "$TMP/w$w.csv" || fail "CSV with $w workers differs from none"
	if ! cmp -s "$TMP/s0.json" "$TMP/s$w.json"; then
		diff "$TMP/s0.json" "$TMP/s$w.json" | head -5 >&2
		fail "summary.json with $w workers differs from none"
	fi
	echo "ok: $w workers: the same $rows rows and summary as none"
done
# against the program's own log: per thread, its calls from its first
# malloc(777777) to its second, in order
for tid in $(cut -d, -f6 "$log" | sort -u); do
	awk -F, -v t="$tid" '$6 == t' "$log" | cut -d, -f3-8 >"$TMP/want"
	awk -F, -v t="$tid" 'NR > 1 && $5 == t {
		m = ($2 == "malloc" && $4 == 777777)
		if (m) n++
		if (n >= 1 && (n < 2 || m)) print
		if (n == 2 && m) exit
	}' "$TMP/w3.csv" | cut -d, -f2-7 >"$TMP/got"
	cmp -s "$TMP/want" "$TMP/got" || fail "thread $tid: the CSV differs from its log"
done
echo "ok: every thread's rows as it logged them"
pass
