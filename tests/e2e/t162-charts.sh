#!/bin/bash
# The charts are drawn by mfx itself (analyzer/raster.c, text.c): mfx loads
# no drawing, font or X11 library (ldd); the page-occupancy bars are drawn
# to the scale of summary.json's pages_by_fill (bar heights measured on the
# decoded PNG); the memory chart holds its RSS (red) and live (blue) lines;
# every chart has its title, centred, in the dark title colour.
. "$(dirname "$0")/../lib.sh"
need python3
libs=$(ldd "$MFX")
for l in cairo X11 xcb fontconfig freetype pixman; do
	if grep -qi "lib$l" <<<"$libs"; then fail "mfx loads lib$l: $(grep -i "lib$l" <<<"$libs")"; fi
done
echo "ok: mfx loads $(wc -l <<<"$libs") libraries, no cairo, X11, fontconfig or freetype"

run_mfx launch -q -o "$TMP/run" -- "$TARGETS/demo_app" 1
expect_eq "$MFX_RC" 0 "launch demo_app: $(cat "$MFX_ERR")"
fill=$(jq -c '.page_occupancy.pages_by_fill' "$TMP/run/summary.json")
expect_match "$fill" '^\[[0-9]+(,[0-9]+){4}\]$' "pages_by_fill in summary.json"

/usr/bin/python3 - "$TMP/run" "$fill" <<'EOP' || fail "the charts do not show what summary.json says"
import sys, zlib, struct, json
def decode(path):
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', path
    w, h, depth, ctype = struct.unpack('>IIBB', data[16:26])
    assert depth == 8 and ctype == 2, (path, depth, ctype)
    idat = b''; p = 8
    while p < len(data):
        n, t = struct.unpack('>I4s', data[p:p+8])
        if t == b'IDAT': idat += data[p+8:p+8+n]
        p += 12 + n
    raw = zlib.decompress(idat); stride = w * 3; prev = bytearray(stride); i = 0; rows = []
    for y in range(h):
        f = raw[i]; row = bytearray(raw[i+1:i+1+stride]); i += 1 + stride
        for x in range(stride):
            a = row[x-3] if x >= 3 else 0; b = prev[x]; c = prev[x-3] if x >= 3 else 0
            if f == 1: row[x] = (row[x] + a) & 255
            elif f == 2: row[x] = (row[x] + b) & 255
            elif f == 3: row[x] = (row[x] + (a + b) // 2) & 255
            elif f == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(row)); prev = row
    return w, h, rows
def px(rows, x, y): return tuple(rows[y][3*x:3*x+3])
run, fill = sys.argv[1], json.loads(sys.argv[2])
bad = 0
for name in ('heatmap_allocations', 'impact_memory_usage', 'page_occupancy'):
    w, h, rows = decode('%s/%s.png' % (run, name))
    dark = [x for y in range(10, 45) for x in range(w) if px(rows, x, y) == (0x20, 0x20, 0x20)]
    mid = (min(dark) + max(dark)) / 2 if dark else -1
    print('%s: %dx%d, title ink x %s..%s' % (name, w, h, min(dark, default=-1), max(dark, default=-1)))
    if len(dark) < 200 or abs(mid - w / 2) > 3: bad = 1; print('  title missing or not centred')
w, h, rows = decode(run + '/page_occupancy.png')
teal = (0x17, 0xbe, 0xcf)
# each bar: the teal run in the column through its middle (5 bars over the plot)
px0, px1 = 100, w - 40
heights = []
for k in range(5):
    x = int(px0 + (px1 - px0) * (k + 0.5) / 5)
    heights.append(sum(1 for y in range(h) if px(rows, x, y) == teal))
top = max(heights); vmax = max(fill)
print('bars (px):', heights, 'pages:', fill)
for hgt, v in zip(heights, fill):
    want = v / vmax * top if vmax else 0
    if abs(hgt - want) > 2: bad = 1; print('  bar of %d pages is %d px, want %.1f' % (v, hgt, want))
w, h, rows = decode(run + '/impact_memory_usage.png')
for name, col in (('RSS', (0xd6, 0x27, 0x28)), ('live', (0x1f, 0x77, 0xb4))):
    n = sum(1 for y in range(78, h - 75) for x in range(100, w - 110) if px(rows, x, y) == col)
    print('%s line: %d pixels' % (name, n))
    if n < 300: bad = 1; print('  the %s line is missing' % name)
sys.exit(bad)
EOP
pass
