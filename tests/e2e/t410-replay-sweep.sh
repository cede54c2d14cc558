#!/bin/bash
# mfx replay --sweep on a program whose threads take turns (each thread's
# freed memory stays pinned in its own glibc arena): the sweep ranks every
# run, recommends one setting with its measured saving and cost, and that
# setting, applied to the real program, gives the RSS peak the replay
# predicted, within 15% (the program reads its own RssAnon; so does the
# replay at glibc's defaults, against the program run untraced).
. "$(dirname "$0")/../lib.sh"
prog=("$TARGETS/arena_turns" 4 24)
run_mfx launch -q --no-report -o "$TMP/run" -- "${prog[@]}"
expect_eq "$MFX_RC" 0 "launch"
run_mfx replay -q --sweep --no-compile "$TMP/run"
expect_eq "$MFX_RC" 0 "replay --sweep: $(cat "$MFX_ERR")"
r=$TMP/run/replay.json
n=$(jq '.runs | length' "$r")
expect_ge "$n" 9 "runs (glibc's grid at least)"
expect_eq "$(jq '.sweep.ranking | length' "$r")" "$n" "every run ranked"
for t in arena_max=1 arena_max=2 arena_max=4 arena_max=8 trim_threshold=0 mmap_threshold=65536 top_pad=0 tcache_count=0; do
	jq -e ".runs[] | select(.tunables == \"glibc.malloc.$t\")" "$r" >/dev/null || fail "no run with $t"
done
for a in jemalloc tcmalloc mimalloc; do
	k=$(jq "[.runs[] | select(.allocator == \"$a\")] | length" "$r")
	[ "$k" -gt 0 ] && expect_ge "$k" 2 "$a runs (defaults and a knob)"
done
# the ranking is by RSS peak
prev=0
for i in $(jq '.sweep.ranking[]' "$r"); do
	p=$(jq ".runs[$i].rss_peak_bytes" "$r")
	[ "$(jq ".runs[$i].cut" "$r")" = false ] || continue
	[ "$p" -ge "$prev" ] || fail "ranking not by RSS peak at run $i ($p < $prev)"
	prev=$p
done
echo "ok: ranked by RSS peak"
jq -e '.sweep.recommendation' "$r" >/dev/null || fail "no recommendation: $(jq -r .sweep.why "$r")"
apply=$(jq -r '.sweep.recommendation.apply' "$r")
text=$(jq -r '.sweep.recommendation.text' "$r")
expect_match "$text" '^(GLIBC_TUNABLES|LD_PRELOAD)=.*: RSS peak -[0-9]+%, time [-+][0-9]+%$' "recommendation text"
grep -qF "recommended: $text" "$MFX_OUT" || fail "the terminal does not show the recommendation"
grep -q "no live trim was measured" "$MFX_OUT" || fail "no word about a live trim"
predicted=$(jq '.sweep.recommendation.rss_peak_bytes' "$r")
base=$(jq '.sweep.recommendation.baseline.rss_peak_bytes' "$r")
expect_le "$predicted" $((base * 95 / 100)) "the recommended setting saves at least 5%"
within() {	# got want what: |got - want| <= 15% of want
	local d=$(( $1 > $2 ? $1 - $2 : $2 - $1 ))
	[ $((d * 100)) -le $(($2 * 15)) ] || fail "$3: $1 against $2 (more than 15% apart)"
	echo "ok: $3: $1 against $2"
}
# report.html shows the sweep: the recommendation and the ranked table
run_mfx report -q "$TMP/run"
grep -qF "Recommended: <code>$text</code>" "$TMP/run/report.html" || fail "report.html does not show the recommendation"
expect_eq "$(grep -c '<td class=n data-v="[0-9]*">[0-9]*</td><td>\(glibc\|jemalloc\|tcmalloc\|mimalloc\)' "$TMP/run/report.html")" "$n" \
	"report.html ranks every run"
# the real program, untraced, at glibc's defaults and with the recommendation
real_base=$("${prog[@]}" | awk '/^rss_anon_peak/ {print $2}')
within "$real_base" "$base" "glibc's defaults: the program's RSS peak against the replay's"
real=$(env $apply "${prog[@]}" | awk '/^rss_anon_peak/ {print $2}')
within "$real" "$predicted" "'$apply': the program's RSS peak against the prediction"
pass
