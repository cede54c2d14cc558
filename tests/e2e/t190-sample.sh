#!/bin/bash
# --sample BYTES: Poisson sampling by allocated bytes.  sample_target knows
# its own live bytes per site (a leak, churn, realloc growth, big blocks):
# sampled, the leak site is found as in exact mode, and the estimated live
# bytes (in all and per site) lie within the error the report states
# (3 sigma).  MFX_SAMPLE_SEED makes each sampled run reproducible: the
# verdicts here do not depend on luck, and five seeds are checked.
# Replay refuses a sampled run with one line; page occupancy is not given;
# attach --sample estimates the calls' bytes within its stated error too.
. "$(dirname "$0")/../lib.sh"
abs() { local v=$1; echo "${v#-}"; }
within() {	# EST TRUTH ERR WHAT
	local d; d=$(abs $(($1 - $2)))
	if [ "$d" -le "$3" ]; then
		echo "ok: $4: estimate $1, truth $2, off by $d <= stated error $3"
	else
		fail "$4: estimate $1, truth $2, off by $d > stated error $3"
	fi
}

# exact mode first: the truth as mfx sees it, and the leak site
run_mfx launch -q -o "$TMP/exact" -- "$TARGETS/sample_target"
expect_eq "$MFX_RC" 0 "exact run"
truth=$(grep '^live ' "$MFX_OUT")
[[ $truth =~ total=([0-9]+)\ leak=([0-9]+)\ churn=([0-9]+) ]] || fail "no truth line: $truth"
t_leak=${BASH_REMATCH[2]} t_churn=${BASH_REMATCH[3]}
e=$TMP/exact/summary.json
# every call the target counted is in the trace (no chunk lost; the target's
# stdio adds a malloc or two of its own)
calls=$(grep '^calls ' "$MFX_OUT")
[[ $calls =~ malloc=([0-9]+)\ realloc=([0-9]+)\ calloc=([0-9]+) ]] || fail "no calls line: $calls"
expect_eq "$(jget "$e" .counts.realloc)" "${BASH_REMATCH[2]}" "exact: reallocs as the target counted"
expect_eq "$(jget "$e" .counts.calloc)" "${BASH_REMATCH[3]}" "exact: callocs as the target counted"
m=$(jget "$e" .counts.malloc)
expect_ge "$m" "${BASH_REMATCH[1]}" "exact: mallocs, at least the target's"
expect_le "$m" $((BASH_REMATCH[1] + 8)) "exact: mallocs, the target's and stdio's"
t_live=$(jget "$e" .live_bytes_end)	# the target's blocks and stdio's buffer
expect_eq "$(jget "$e" '.top_sites[0].function')" leak_site "exact: the leak site first"
expect_eq "$(jget "$e" '.top_sites[0].frames[0].function')" leak_site \
	"exact: a stack starts at the caller of malloc (the agent's frames cut)"
expect_eq "$(jget "$e" '.top_sites[] | select(.function == "leak_site") | .live_bytes')" \
	"$t_leak" "exact: the leak site's live bytes (by the target's count)"
expect_eq "$(jget "$e" .sampled)" null "exact: not sampled"
exact_calls=$(jget "$e" .events)

for seed in 1 2 3 4 5; do
	MFX_SAMPLE_SEED=$seed run_mfx launch -q --sample 64k -o "$TMP/s$seed" -- \
		"$TARGETS/sample_target"
	expect_eq "$MFX_RC" 0 "seed $seed: sampled run"
	s=$TMP/s$seed/summary.json
	expect_eq "$(jget "$s" .sampled.mean_bytes)" 65536 "seed $seed: sampled.mean_bytes"
	expect_eq "$(jget "$s" '.top_sites[0].function')" leak_site "seed $seed: the leak site first"
	expect_eq "$(jget "$s" '.top_sites[0].frames[0].function')" leak_site \
		"seed $seed: the stack starts at the caller"
	expect_eq "$(jget "$s" '[.leak_suspects[].function] | index("leak_site") != null')" true \
		"seed $seed: the leak site among the leak suspects"
	within "$(jget "$s" .live_bytes_end)" "$t_live" "$(jget "$s" .sampled.live_bytes_end_error)" \
		"seed $seed: live bytes at the end"
	site='.top_sites[] | select(.function == "leak_site")'
	within "$(jget "$s" "$site | .live_bytes")" "$t_leak" \
		"$(jget "$s" "$site | .live_bytes_error")" "seed $seed: the leak site's live bytes"
	site='.top_sites[] | select(.function == "churn_site")'
	within "$(jget "$s" "$site | .live_bytes")" "$t_churn" \
		"$(jget "$s" "$site | .live_bytes_error")" "seed $seed: the churn site's live bytes"
	expect_le "$(jget "$s" .sampled.recorded_calls)" $((exact_calls / 10)) \
		"seed $seed: calls recorded (of $exact_calls)"
done

# the report says they are estimates; no page occupancy
run_mfx report "$TMP/s1"
expect_match "$(cat "$MFX_OUT")" "sampled: one call per 64.0 KiB allocated on average" \
	"the summary says the run is sampled"
expect_match "$(cat "$MFX_OUT")" "live at the end \\+-[0-9.]+ [KM]iB \\(3 sigma\\)" \
	"the summary states the error"
expect_eq "$(jget "$TMP/s1/summary.json" .page_occupancy)" null "no page occupancy"
[ -e "$TMP/s1/page_occupancy.png" ] && fail "page_occupancy.png drawn for a sampled run"

# replay refuses, in one line
run_mfx replay "$TMP/s1"
expect_eq "$MFX_RC" 1 "replay of a sampled run"
expect_one_error_line "$MFX_ERR" "cannot replay .*--sample"

# the default 512k: still the leak site
MFX_SAMPLE_SEED=1 run_mfx launch -q --sample 512k -o "$TMP/s512" -- "$TARGETS/sample_target"
s=$TMP/s512/summary.json
expect_eq "$(jget "$s" .sampled.mean_bytes)" 524288 "512k: sampled.mean_bytes"
expect_eq "$(jget "$s" '.top_sites[0].function')" leak_site "512k: the leak site first"
within "$(jget "$s" .live_bytes_end)" "$t_live" "$(jget "$s" .sampled.live_bytes_end_error)" \
	"512k: live bytes at the end"

# bad values
run_mfx launch --sample 0 -- "$TARGETS/sample_target"
expect_eq "$MFX_RC" 2 "--sample 0 is bad usage"
grep -q "invalid --sample '0'" "$MFX_ERR" || fail "no usage error: $(cat "$MFX_ERR")"

# attach --sample: the bytes the calls allocated, within the stated error
target_start
mfx_bg attach --sample 8k -o "$TMP/at" --no-report "$TPID"
mfx_wait_attached
tdo "run 200000"
mfx_end INT
expect_eq "$MFX_RC" 0 "attach --sample exit status"
want=$(grep '^done {' "$TOUT" | tail -1 | sed 's/^done //')
run_mfx report -q "$TMP/at"
s=$TMP/at/summary.json
expect_eq "$(jget "$s" .sampled.mean_bytes)" 8192 "attach: sampled.mean_bytes"
within "$(jget "$s" .total_bytes_allocated)" "$(echo "$want" | jq .total_bytes_allocated)" \
	"$(jget "$s" .sampled.total_bytes_allocated_error)" "attach: bytes allocated"
target_unharmed
pass
