#!/bin/bash
# However the program ends, nothing it did before is lost, and mfx exits
# with its status (128+N for signal N).
. "$(dirname "$0")/../lib.sh"

n=20001
for m in return:0 exit:3 _exit:4 abort:134 kill:137 segv:139; do
	mode=${m%%:*} want=${m##*:}
	run_mfx launch -q -o "$TMP/$mode" -- "$TARGETS/exit_paths" "$mode" $n
	expect_eq "$MFX_RC" "$want" "$mode: exit status"
	s=$TMP/$mode/summary.json
	[ -s "$s" ] || fail "$mode: no summary.json: $(cat "$MFX_ERR")"
	expect_eq "$(jget "$s" .counts.malloc)" $n "$mode: mallocs"
	expect_eq "$(jget "$s" .counts.free)" $((n / 2)) "$mode: frees"
done
pass
