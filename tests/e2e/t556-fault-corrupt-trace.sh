#!/bin/bash
# Fault matrix: corrupted traces.  A raw trace (what a killed mfx or a
# crashed target leaves) is damaged in seeded ways - random bytes, stack ids
# near 2^32 in events, huge STACK ids, a huge chunk size, huge thread counts
# - and `mfx report` and `mfx export` read it under `ulimit -v 1 GiB` and a
# 20 s timeout.  Each must answer (exit 0 with a report, or 1 with one line,
# "trace is corrupt" or so), never crash, never run out of memory or time.
# (Before: a 659 KB trace drove report/export to 13.6 GB and 22-38 s.)
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../matrix.sh"
need python3
# a raw trace: the agent preloaded alone (no mfx, no spool), 4 threads
mkdir "$TMP/raw"
MFX_OUT=$TMP/raw LD_PRELOAD=$MFX_ROOT/build/libmfx.so sh -c 'MFX_ROOT_PID=$$ exec "$0" 4 3000' \
	"$TARGETS/mt_counts" 2>/dev/null
[ -s "$TMP/raw/trace.mfx" ] || fail "no raw trace was written"
cat >"$TMP/damage.py" <<'EOF'
import os, random, struct, sys
src, dst, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
b = bytearray(open(src, 'rb').read())
r = random.Random(seed)
chunk_size = struct.unpack_from('<I', b, 16)[0]
first, nxt = struct.unpack_from('<QQ', b, 40)
def varint(v):
    out = bytearray()
    while True:
        c, v = v & 0x7f, v >> 7
        out.append(c | (0x80 if v else 0))
        if not v:
            return out
def chunks():
    off = first
    while off + 48 <= min(nxt, len(b)):
        magic, typ, codec, tid, seq, used = struct.unpack_from('<IHHIII', b, off)
        span = struct.unpack_from('<I', b, off + 28)[0]
        if magic == 0:
            off += chunk_size
            continue
        yield off, typ, codec, used
        if span < 48:
            return
        off += span
def append(off, used, rec):   # one more record in a raw chunk
    p = off + 48 + used
    b[p:p + len(rec)] = rec
    struct.pack_into('<I', b, off + 16, used + len(rec))
kind = seed % 6
if kind == 0:      # random bytes anywhere
    for _ in range(40):
        b[r.randrange(len(b))] = r.randrange(256)
elif kind == 1:    # events naming stack ids near 2^32
    for off, typ, codec, used in list(chunks()):
        if typ == 1 and codec == 0:
            append(off, used, bytes([1]) + varint(1) + varint(16) + varint(2) + varint(0xfffffff0 - r.randrange(100)))
elif kind == 2:    # a STACK record with an id near 2^26
    for off, typ, codec, used in list(chunks()):
        if typ == 2 and codec == 0:
            body = varint((1 << 26) - r.randrange(100)) + varint(1) + varint(0x401000)
            append(off, used, bytes([15, 1]) + varint(len(body)) + body)
            break
elif kind == 3:    # header: chunk size and thread counts at their limits
    struct.pack_into('<I', b, 16, 64 << 20)
    struct.pack_into('<I', b, 120, 0xffffffff)
    for i in range(64):
        struct.pack_into('<Q', b, 4096 + i * 64 + 8, 1 << 62)
elif kind == 4:    # chunk headers: used, span, seq and tid scrambled
    for off, typ, codec, used in list(chunks()):
        if r.random() < 0.5:
            struct.pack_into('<I', b, off + r.choice([8, 12, 16, 20, 24, 28]), r.getrandbits(32))
else:              # the header page scrambled
    for _ in range(20):
        b[r.randrange(4096)] = r.randrange(256)
os.makedirs(dst, exist_ok=True)
open(os.path.join(dst, 'trace.mfx'), 'wb').write(b)
EOF
tries=$(matrix_tries 12)
for ((i = 0; i < tries; i++)); do
	d=$TMP/c$i why=""
	python3 "$TMP/damage.py" "$TMP/raw/trace.mfx" "$d" "$i" || fail "damage.py"
	for cmd in "report -q --no-charts" "export --csv"; do
		t0=$(date +%s%N)
		( ulimit -v 1048576; timeout -s KILL 20 "$MFX" $cmd "$d" >/dev/null 2>"$d/err" )
		rc=$?
		ms=$((($(date +%s%N) - t0) / 1000000))
		a=$(answered $rc "$d/err" 0 1)
		[ "$a" = 1 ] || why="$why $cmd: rc=$rc after ${ms} ms: $(head -c 200 "$d/err");"
		note "damage $((i % 6)) seed $i: $cmd rc=$rc ${ms} ms $(error_line "$d/err")"
	done
	# unharmed: mfx itself neither crashed nor was killed (rc < 128 above)
	matrix_try "$([ -z "$why" ] || [[ ! $why =~ rc=1[2-9][0-9] ]] && echo 1 || echo 0)" \
		"$([ -z "$why" ] && echo 1 || echo 0)" "$why"
done
matrix_end corrupt-trace
