#!/bin/bash
# A library dlopen()ed during the window is patched at once; a program built
# with -fno-plt and full RELRO (read-only GLOB_DAT slots) is traced exactly.
. "$(dirname "$0")/../lib.sh"
target_start "$TARGETS/relro_noplt"
mfx_bg attach -o "$TMP/run" --no-report "$TPID"
mfx_wait_attached
tdo "run 1000"
tdo "dlopen $TARGETS/libdlplugin.so"
mfx_end INT
expect_eq "$MFX_RC" 0 "mfx exit"
want=$(grep '^done {' "$TOUT" | head -1 | sed 's/^done //')
run_mfx report -q --top 20 "$TMP/run"
s=$TMP/run/summary.json
# the run's calls, plus the plugin's 100 mallocs (dlopen's own are extra)
m=$(jget "$s" .counts.malloc)
expect_ge "$m" $(( $(echo "$want" | jq .malloc) + 100 )) "malloc count with the plugin's"
expect_eq "$(jget "$s" .counts.memalign)" "$(echo "$want" | jq .memalign)" "memalign count"
jq -e '[.top_sites_by_allocations[] | select(.function == "plugin_alloc")] | length > 0' "$s" \
	>/dev/null || fail "no plugin_alloc site"
echo "ok: plugin_alloc is a site"
# after the window the read-only GOT is read-only again and the program runs
tdo "run 10"
pass
