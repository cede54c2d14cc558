#!/bin/bash
# The first screen names the culprit in python3 growing a dict: the dict's
# table is CPython's, taken from malloc through PyObject_Malloc and
# PyMem_RawMalloc (skipped: allocation wrappers).  The site holding the
# most at the peak must be a named function of the interpreter (Debian's
# python3 is stripped: a dynamic symbol, no file:line) that held at least
# the table's size as sys.getsizeof() reports it, and the report says what
# would name the interpreter's other frames.
. "$(dirname "$0")/../lib.sh"
PY=/usr/bin/python3
[ -x $PY ] || skip "no /usr/bin/python3"
run_mfx launch -o "$TMP/py" -- $PY -c '
import sys
d = {}
for i in range(300000):
    d[i] = None
print(sys.getsizeof(d))'
expect_eq "$MFX_RC" 0 "python exit status: $(tail -3 "$MFX_ERR")"
size=$(cat "$TMP/mfx.out")
"$MFX" report "$TMP/py" | head -15 >"$TMP/first"
sed 's/^/  | /' "$TMP/first"
line=$(grep -E '^ +1\. ' "$TMP/first") || fail "no site in the first 15 lines"
[[ $line =~ \+0x ]] && fail "the first site is not named: $line"
[[ $line =~ \[python3 ]] || fail "the first site is not the interpreter's: $line"
echo "ok: the first site is named: $line"
s=$TMP/py/summary.json
expect_ge "$(jget "$s" '.top_sites_by_peak[0].live_bytes_at_peak')" "$size" "it held the dict's table (sys.getsizeof)"
case "$(jget "$s" '.top_sites_by_peak[0].function')" in
PyMem_*|PyObject_Malloc|_PyObject_Malloc|*+0x*) fail "site named by a wrapper or unnamed" ;;
esac
jq -e '.modules_without_symbols[] | select(.module | test("python3")) | .how_to_name_them | test("debug")' "$s" \
	>/dev/null || fail "no word on python3's missing debug info"
echo "ok: the report says how to name python3's frames"
pass
