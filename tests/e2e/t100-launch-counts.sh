#!/bin/bash
# mfx launch on a program with exactly known calls: summary.json counts,
# bytes, peak and end live bytes are exact; the CSV has one row per call.
. "$(dirname "$0")/../lib.sh"

run_mfx launch -q -o "$TMP/run" -- "$TARGETS/counts_target" 3000
expect_eq "$MFX_RC" 0 "exit status passed through"
cp "$MFX_ERR" "$TMP/expected.json"; exp=$TMP/expected.json   # what the target says it did
s=$TMP/run/summary.json
[ -s "$s" ] || fail "no summary.json; stderr: $(cat "$MFX_ERR")"
for k in malloc calloc realloc free memalign; do
	expect_eq "$(jget "$s" .counts.$k)" "$(jget "$exp" .counts.$k)" "counts.$k"
done
for k in total_bytes_allocated peak_live_bytes live_bytes_end; do
	expect_eq "$(jget "$s" .$k)" "$(jget "$exp" .$k)" "$k"
done
expect_eq "$(jget "$s" .threads)" 1 "threads"
expect_eq "$(jget "$s" .mode)" launch "mode"
expect_eq "$(jget "$s" .pid | grep -c '^[0-9]\+$')" 1 "pid is a number"
# every key docs/spec.md requires (summary.json)
for k in pid command mode duration_ns counts total_bytes_allocated peak_live_bytes \
	live_bytes_end threads rss_peak_bytes heap_rss_bytes fragmentation_ratio top_sites; do
	jq -e "has(\"$k\")" "$s" >/dev/null || fail "summary.json lacks $k"
done
jq -e '.top_sites[0] | has("function") and has("file") and has("line") and has("module")
	and has("live_bytes") and has("allocations") and has("stack")' "$s" >/dev/null ||
	fail "top_sites entries lack keys"
expect_eq "$(jget "$s" '.top_sites[0].function')" main "top site is main"
expect_eq "$(jget "$s" '.top_sites[0].file | test("counts_target.c")')" true "top site has its source file"

# the CSV: header, then one row per counted call
run_mfx export --csv "$TMP/run"
expect_eq "$MFX_RC" 0 "export --csv"
csv=$TMP/run/mftrace_log.csv
expect_eq "$(head -1 "$csv" | cut -d, -f1-5)" "ts_ns,event,ptr,size,tid" "CSV header"
calls=$(jq '[.counts[]] | add' "$s")
expect_eq "$(( $(wc -l <"$csv") - 1 ))" "$calls" "CSV rows = counted calls"
expect_eq "$(awk -F, 'NR>1 && $2=="free"' "$csv" | wc -l)" "$(jget "$exp" .counts.free)" "CSV free rows"
sorted=$(awk -F, 'NR>1 {print $1}' "$csv" | sort -n -c 2>&1 && echo ok)
expect_eq "$sorted" ok "CSV rows in time order"
pass
