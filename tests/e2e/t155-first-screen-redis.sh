#!/bin/bash
# The first screen names the culprit in redis under redis-benchmark
# (attach): LPUSH grows one list, whose listpacks redis reallocates through
# zrealloc (skipped: an allocation wrapper).  The first site at the peak,
# in the first 15 lines, must be redis's own list code by name (Debian's
# redis has dynamic symbols, no debug info), growing, and holding no more
# than the list's growth as redis itself counts it (LLEN, 256 bytes an
# element, before and after the window).
. "$(dirname "$0")/../lib.sh"
redis_start
spawn redis-benchmark -s "$sock" -n 3000000 -c 4 -t lpush -d 256 -q
sleep 0.3
before=$(redis-cli -s "$sock" llen mylist)
run_mfx attach --for 1s -o "$TMP/run" "$rs"
after=$(redis-cli -s "$sock" llen mylist)
expect_eq "$MFX_RC" 0 "mfx exit: $(cat "$MFX_ERR")"
head -15 "$MFX_OUT" >"$TMP/first"
sed 's/^/  | /' "$TMP/first"
line=$(grep -E '^ +1\. ' "$TMP/first") || fail "no site in the first 15 lines"
[[ $line =~ \ (lp[A-Z][A-Za-z]*|quicklist[A-Za-z]*)\ \[redis ]] ||
	fail "the first site is not redis's list code: $line"
echo "ok: the first site: $line"
s=$TMP/run/summary.json
grown=$(jget "$s" '.top_sites_by_peak[0].live_bytes')
expect_ge "$grown" 1 "the list's site holds what the window added"
expect_le "$grown" $(( (after - before) * 300 )) "no more than $((after - before)) elements of 256 bytes"
expect_eq "$(jget "$s" '.top_sites_by_peak[0].growing')" true "the list only grew"
kill -0 "$rs" || fail "redis died"
redis-cli -s "$sock" ping | grep -q PONG || fail "redis does not answer"
pass
