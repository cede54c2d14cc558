#!/bin/bash
# A stripped program with MiniDebugInfo (.gnu_debugdata: an xz-compressed
# symbol table, as Fedora ships its binaries) is named from it: every frame
# in the program gets the name of the function holding its address, the
# same as addr2line gives on the unstripped program (its last, outermost
# function: MiniDebugInfo has no inline info), and no frame is left
# module+0xoffset.  The report says the program has no debug info.
. "$(dirname "$0")/../lib.sh"
need objcopy
need xz
need nm
app=$TMP/app
cp "$TARGETS/inline_c" "$app"
# the recipe of gdb's "MiniDebugInfo" docs: function symbols not in .dynsym
nm -D "$app" --format=posix --defined-only | awk '{ print $1 }' | sort >"$TMP/dyn"
nm "$app" --format=posix --defined-only | awk '$2 ~ /^[Tt]$/ { print $1 }' | sort >"$TMP/fun"
comm -13 "$TMP/dyn" "$TMP/fun" >"$TMP/keep"
objcopy --only-keep-debug "$app" "$TMP/mini"
objcopy -S --remove-section .gdb_index --remove-section .comment --keep-symbols="$TMP/keep" "$TMP/mini"
xz -f "$TMP/mini"
strip --strip-all "$app"
objcopy --add-section .gnu_debugdata="$TMP/mini.xz" "$app"
readelf -S "$app" | grep -q '\.symtab' && fail "the program still has .symtab"
readelf -S "$app" | grep -q '\.gnu_debugdata' || fail "no .gnu_debugdata"
run_mfx launch -o "$TMP/run" -- "$app"
expect_eq "$MFX_RC" 0 "exit status"
s=$TMP/run/summary.json
n=0
while IFS=$'\t' read -r pc fn; do
	want=$(addr2line -i -f -C -e "$TARGETS/inline_c" "$pc" | awk 'NR % 2 == 1' | tail -1)
	[ "$fn" = "$want" ] || fail "$pc: mfx says $fn, addr2line on the unstripped program $want"
	n=$((n + 1))
done < <(jq -r --arg m "$app" '[.top_sites[], .top_sites_by_peak[], .top_sites_by_allocations[] | .frames[]
	| select(.module == $m)] | unique_by(.pc) | .[] | [.pc, .function] | @tsv' "$s")
expect_ge "$n" 5 "frames of the program named from MiniDebugInfo"
jq -e --arg m "$app" '.modules_without_symbols[] | select(.module == $m) | .symbols == "symbol table"' "$s" \
	>/dev/null || fail "not listed as without debug info: $(jq -c .modules_without_symbols "$s")"
echo "ok: listed as without debug info (symbol table only)"
pass
