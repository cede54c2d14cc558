#!/usr/bin/env python3
"""trace-columns.py - where the bytes of a trace.mfx go, read from the file
itself (not from mfx's own accounting): chunks by type and codec, and for the
event chunks of the model codec (format 2, MFX_CODEC_MODEL) the stored size
of every column.  Used by `make bench` (scripts/bench.sh) and the tests.

  scripts/trace-columns.py TRACE [--json]

The layout is docs/trace-format.md's; this parser is independent of mfx's
C code on purpose.
"""
import json
import struct
import sys

COLS = ["op", "time", "stack", "size_hit", "size", "size_rem", "align", "free_ref",
        "ptr_hit", "ptr"]
CODECS = {0: "raw", 1: "zstd", 2: "columns", 3: "model"}
TYPES = {1: "events", 2: "meta", 3: "mfx"}


def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def main():
    path = sys.argv[1]
    data = open(path, "rb").read()
    magic, version = struct.unpack_from("<QI", data, 0)
    if magic != 0x313043525458464D:
        sys.exit("trace-columns: %s: not a trace" % path)
    chunk_size, flags = struct.unpack_from("<II", data, 16)
    first, nxt = struct.unpack_from("<QQ", data, 40)
    final = bool(flags & 0x8)
    limit = len(data) if final or nxt < first or nxt >= len(data) else nxt
    out = {"file_bytes": len(data), "version": version, "final": final,
           "header_bytes": first, "chunks": {}, "chunk_headers": 0,
           "model": {"chunks": 0, "events": 0, "payload_headers": 0,
                     "columns": {c: 0 for c in COLS}}}
    off = first
    while off + 48 <= limit:
        (cmagic, ctype, codec, tid, seq, used, stored, span,
         timebase) = struct.unpack_from("<IHHIIIIII", data, off)
        if cmagic == 0 and not final:
            off = first + ((off - first) // chunk_size + 1) * chunk_size
            continue
        if cmagic != 0x4358464D or span < 48:
            sys.exit("trace-columns: %s: bad chunk at %d" % (path, off))
        key = "%s/%s" % (TYPES.get(ctype, str(ctype)), CODECS.get(codec, str(codec)))
        k = out["chunks"].setdefault(key, {"n": 0, "bytes": 0})
        k["n"] += 1
        k["bytes"] += span
        out["chunk_headers"] += 48
        if ctype == 1 and codec == 3:
            p = off + 48
            m = out["model"]
            m["chunks"] += 1
            nev, p = varint(data, p)
            _, p = varint(data, p)
            _, p = varint(data, p)
            ncols = data[p]
            p += 1
            for c in range(ncols):
                _, p = varint(data, p)
                st, p = varint(data, p)
                p += 1
                m["columns"][COLS[c] if c < len(COLS) else str(c)] += st
            m["events"] += nev
            m["payload_headers"] += p - (off + 48)
        off += span
    if "--json" in sys.argv:
        json.dump(out, sys.stdout, indent=1)
        print()
        return
    print("%s: %d bytes, format %d%s" % (path, len(data), version, ", final" if final else ""))
    for k, v in sorted(out["chunks"].items()):
        print("  %-16s %6d chunks %12d bytes" % (k, v["n"], v["bytes"]))
    m = out["model"]
    if m["events"]:
        ev = m["events"]
        print("  model chunks: %d events, bytes/event by column:" % ev)
        for c, b in m["columns"].items():
            print("    %-10s %7.3f" % (c, b / ev))
        print("    %-10s %7.3f" % ("headers", (m["payload_headers"] + 48 * m["chunks"]) / ev))


if __name__ == "__main__":
    main()
