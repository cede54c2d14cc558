#!/bin/bash
# Real programs: Debian's python3 (the seed's example, and one that really
# allocates 200k blocks) and sqlite3.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3"

# The seed's example.  CPython folds b'x'*1024 into one constant, so the list
# holds 500000 references to one object: the allocations are the list's own.
run_mfx launch -q -o "$TMP/seed" -- $PY -c "a=[b'x'*1024 for _ in range(500000)]; del a"
expect_eq "$MFX_RC" 0 "seed example exit status"
s=$TMP/seed/summary.json
expect_ge "$(jget "$s" .counts.malloc)" 1000 "seed example mallocs"
expect_ge "$(jget "$s" .counts.realloc)" 50 "list growth reallocs"
expect_ge "$(jget "$s" .peak_live_bytes)" 4000000 "peak live holds the 4 MB list"

# 200000 distinct 1 KiB objects, then freed.
run_mfx launch -q -o "$TMP/objs" -- $PY -c "a=[bytes(1024) for _ in range(200000)]; del a"
expect_eq "$MFX_RC" 0 "objects exit status"
s=$TMP/objs/summary.json
# bytes(n) is zero-filled: CPython takes it from calloc
expect_ge "$(jq '.counts.malloc + .counts.calloc' "$s")" 200000 "one allocation per object"
expect_ge "$(jget "$s" .peak_live_bytes)" 200000000 "peak live >= 200 MB"
expect_le "$(jget "$s" .live_bytes_end)" 50000000 "freed again after del"
expect_ge "$(jget "$s" .rss_peak_bytes)" 200000000 "RSS peak saw them"
fn=$(jget "$s" '.top_sites_by_allocations[0].function')
note "busiest site: $fn"
case "$fn" in *+0x*|"??"|"(no stack)") fail "busiest site not named: $fn" ;; esac
pass
