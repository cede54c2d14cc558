#!/bin/bash
# --no-stacks and --stack-depth.
. "$(dirname "$0")/../lib.sh"
run_mfx launch -q --no-stacks -o "$TMP/ns" -- "$TARGETS/counts_target" 500
expect_eq "$MFX_RC" 0 "no-stacks exit"
expect_eq "$(jget "$TMP/ns/summary.json" .counts.malloc)" 500 "counts without stacks"
expect_eq "$(jq '[.top_sites[].stack | length] | add' "$TMP/ns/summary.json")" 0 "no stacks recorded"
run_mfx launch -q --stack-depth 2 -o "$TMP/d2" -- "$TARGETS/counts_target" 500
expect_eq "$(jq '[.top_sites_by_allocations[].frames | length] | max' "$TMP/d2/summary.json")" 2 "depth 2"
run_mfx launch -q -o "$TMP/full" -- "$TARGETS/counts_target" 500
expect_ge "$(jq '[.top_sites[].frames | length] | max' "$TMP/full/summary.json")" 3 "default depth"
pass
