#!/bin/bash
# A binary that changed since the run (an upgrade: another build-id at the
# same path) is not symbolized: one line says so, its frames stay
# module+0xoffset - no names are invented from the new file - and
# modules_changed lists it with both build-ids.  A binary that is gone:
# the same.
. "$(dirname "$0")/../lib.sh"
cp "$TARGETS/inline_c" "$TMP/app"
run_mfx launch -q -o "$TMP/run" -- "$TMP/app"
expect_eq "$MFX_RC" 0 "exit status"
s=$TMP/run/summary.json
named=$(jq --arg m "$TMP/app" '[.top_sites[].frames[] | select(.module == $m) | select(.function | test("\\+0x") | not)] | length' "$s")
expect_ge "$named" 3 "frames of the program named while it is there"
cp "$TARGETS/cxx_inline" "$TMP/app"	# another build at the same path
run_mfx report "$TMP/run"
expect_eq "$MFX_RC" 0 "report"
expect_eq "$(grep -c "^$TMP/app changed since the run" "$MFX_OUT")" 1 "one line says the binary changed"
expect_eq "$(jq --arg m "$TMP/app" '[.top_sites[].frames[] | select(.module == $m) | select(.function | test("^app\\+0x") | not)] | length' "$s")" \
	0 "no frame of the changed binary is named"
expect_eq "$(jq -r '.modules_changed[0].module' "$s")" "$TMP/app" "modules_changed"
[ "$(jq -r '.modules_changed[0].build_id' "$s")" != "$(jq -r '.modules_changed[0].build_id_on_disk' "$s")" ] ||
	fail "both build-ids the same"
rm "$TMP/app"
run_mfx report "$TMP/run"
expect_eq "$(grep -c "^$TMP/app is gone since the run" "$MFX_OUT")" 1 "one line says the binary is gone"
pass
