#!/bin/bash
# The report's files: charts are real PNGs of at least 1000x600, report.html
# is self-contained and renders with its charts in headless Chromium.
. "$(dirname "$0")/../lib.sh"

run_mfx launch -q -o "$TMP/run" -- "$TARGETS/mt_counts" 4 5000
expect_eq "$MFX_RC" 0 "exit status"
for png in heatmap_allocations impact_memory_usage page_occupancy; do
	f=$TMP/run/$png.png
	[ -s "$f" ] || fail "$png.png missing"
	dims=$(file "$f" | grep -o '[0-9]\+ x [0-9]\+')
	w=${dims%% x*} h=${dims##*x }
	expect_ge "$w" 1000 "$png width"
	expect_ge "$h" 600 "$png height"
done
html=$TMP/run/report.html
[ -s "$html" ] || fail "no report.html"
expect_ge "$(grep -o 'data:image/png;base64,' "$html" | wc -l)" 3 "charts embedded"
if grep -Eq '(src|href)="(https?:)?//' "$html"; then fail "report.html refers to the network"; fi
grep -q 'Top sites by live bytes' "$html" || fail "no top-sites table"
grep -q '<details>' "$html" || fail "no stacks"

run_mfx report "$TMP/run"
expect_eq "$MFX_RC" 0 "mfx report"
expect_match "$(sed -n 4p "$MFX_OUT")" "^verdict: " "the verdict comes first"

command -v chromium >/dev/null || skip "chromium not installed"
prof=$(mktemp -d "$TMP/chrome.XXXX")
timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$prof" --window-size=1300,5000 --hide-scrollbars \
	--screenshot="$TMP/shot.png" "file://$html" >/dev/null 2>&1
[ -s "$TMP/shot.png" ] || fail "chromium made no screenshot"
# Charts render: many colours in the page, and the chart blues and reds.
/usr/bin/python3 - "$TMP/shot.png" <<'EOP' || fail "the screenshot does not show the charts"
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
w, h, depth, ctype = struct.unpack('>IIBB', data[16:26])
idat = b''; p = 8
while p < len(data):
    n, t = struct.unpack('>I4s', data[p:p+8]); 
    if t == b'IDAT': idat += data[p+8:p+8+n]
    p += 12 + n
raw = zlib.decompress(idat); bpp = {2: 3, 6: 4}[ctype]; stride = w * bpp
colors = set(); prev = bytearray(stride); i = 0
for y in range(h):
    f = raw[i]; row = bytearray(raw[i+1:i+1+stride]); i += 1 + stride
    for x in range(stride):
        a = row[x-bpp] if x >= bpp else 0; b = prev[x]; c = prev[x-bpp] if x >= bpp else 0
        if f == 1: row[x] = (row[x] + a) & 255
        elif f == 2: row[x] = (row[x] + b) & 255
        elif f == 3: row[x] = (row[x] + (a + b) // 2) & 255
        elif f == 4:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = row
    if y % 4 == 0:
        for x in range(0, w, 4): colors.add(bytes(row[x*bpp:x*bpp+3]))
print("screenshot %dx%d, %d colours" % (w, h, len(colors)))
sys.exit(0 if len(colors) > 200 else 1)
EOP
pass
