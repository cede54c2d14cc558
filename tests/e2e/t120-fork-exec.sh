#!/bin/bash
# A shell script that runs two programs: the shell's trace.mfx plus one
# trace per child (exec keeps its own trace), each with exact counts.
. "$(dirname "$0")/../lib.sh"

cat >"$TMP/two.sh" <<EOS
#!/bin/sh
"$TARGETS/counts_target" 100 2>"$TMP/a.json"
"$TARGETS/counts_target" 500 2>"$TMP/b.json"
EOS
chmod +x "$TMP/two.sh"
run_mfx launch -o "$TMP/run" -- "$TMP/two.sh"
expect_eq "$MFX_RC" 0 "exit status"
[ -s "$TMP/run/trace.mfx" ] || fail "no trace of the shell"
n=$(ls "$TMP/run"/trace-*.mfx 2>/dev/null | wc -l)
expect_ge "$n" 2 "child traces"
found_a=0 found_b=0
for t in "$TMP/run"/trace-*.mfx; do
	name=$(basename "$t")
	"$MFX" report -q --json --no-charts --trace "$name" "$TMP/run" >"$TMP/r.json" ||
		fail "report of $name failed"
	m=$(jget "$TMP/r.json" .counts.malloc)
	cmd=$(jget "$TMP/r.json" .command)
	note "$name: $cmd: $m mallocs"
	case "$cmd" in
	*"counts_target 100")
		expect_eq "$m" "$(jget "$TMP/a.json" .counts.malloc)" "first child mallocs"
		expect_eq "$(jget "$TMP/r.json" .counts.free)" "$(jget "$TMP/a.json" .counts.free)" "first child frees"
		found_a=1 ;;
	*"counts_target 500")
		expect_eq "$m" "$(jget "$TMP/b.json" .counts.malloc)" "second child mallocs"
		expect_eq "$(jget "$TMP/r.json" .live_bytes_end)" "$(jget "$TMP/b.json" .live_bytes_end)" "second child live"
		found_b=1 ;;
	esac
done
expect_eq "$found_a$found_b" 11 "both children traced"
# launch: the summary is on stderr (the program owns stdout)
grep -q "also traced in this run" "$MFX_ERR" || fail "the summary does not list the children"
pass
