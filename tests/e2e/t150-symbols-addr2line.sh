#!/bin/bash
# Symbolization as addr2line -i -f -C gives it: C and C++ programs built
# -O2 -g with heavy inlining (static inline functions of a header,
# std::vector/std::map/std::string, a template, a lambda), one with LTO.
# Every frame of every stack summary.json reports - each return address's
# whole inline chain, then the function holding it - must match
# binutils' addr2line on the same module and address.
. "$(dirname "$0")/../lib.sh"
need addr2line
for prog in inline_c cxx_inline cxx_inline_lto; do
	[ -x "$TARGETS/$prog" ] || fail "$TARGETS/$prog not built"
	run_mfx launch -q -o "$TMP/$prog" -- "$TARGETS/$prog"
	expect_eq "$MFX_RC" 0 "$prog exit status: $(cat "$MFX_ERR")"
	addr2line_check "$TMP/$prog/summary.json" "/build/tests/$prog\$"
	expect_eq "$A2L_BAD" 0 "$prog: frames differing from addr2line among $A2L_N addresses"
	expect_ge "$A2L_N" 8 "$prog: distinct addresses checked"
	# the deep chains are there: more frames than return addresses
	inl=$(jq '[.top_sites[], .top_sites_by_peak[], .top_sites_by_allocations[] | .frames[] | select(.inlined)] | length' "$TMP/$prog/summary.json")
	expect_ge "$inl" 3 "$prog: inlined frames in the reported stacks"
done
pass
