#!/bin/bash
# mfx replay of realloc(p, 0) - glibc frees p and returns NULL - on p's own
# thread and on another, each followed by allocations that reuse p's
# address: every replay runs to its end (it used to free p twice), with the
# calls, the reallocs as the program counts them itself, and the live peak
# of the trace.  Then the replayer's check of replay.ops (opsread.h): the
# file mfx wrote is accepted; copies damaged in one field each (laid out
# here from ops.h, independently of mfx) are refused with one line saying
# why, never replayed (no crash, no double free, no endless wait).
. "$(dirname "$0")/../lib.sh"
need jq
need python3
run_mfx launch -q --no-report -o "$TMP/run" -- "$TARGETS/realloc_zero" 2000
expect_eq "$MFX_RC" 0 "launch"
own=$(grep '^{"realloc"' "$MFX_ERR") || fail "the program's own counts are missing"
expect_eq "$(jq .realloc_null <<<"$own")" 4000 "reallocs to 0 bytes that returned NULL (the program's count)"
run_mfx report -q --no-charts "$TMP/run"
s=$TMP/run/summary.json
expect_eq "$(jq .counts.realloc "$s")" "$(jq .realloc <<<"$own")" "reallocs in the trace"
als=glibc
for a in mimalloc jemalloc; do	# mimalloc's realloc(p, 0) returns a block: freed too
	ls /usr/lib/x86_64-linux-gnu/lib$a.so.2 >/dev/null 2>&1 && als="$als,$a"
done
run_mfx replay -q --allocator "$als" "$TMP/run"
expect_eq "$MFX_RC" 0 "replay under $als: $(head -c 300 "$MFX_ERR")"
r=$TMP/run/replay.json
n=$(jq '.runs | length' "$r")
expect_ge "$n" 2 "replays (the native ones and replay.c)"
for i in $(seq 0 $((n - 1))); do
	a="$(jq -r ".runs[$i].allocator" "$r") $(jq -r ".runs[$i].replayer" "$r")"
	expect_eq "$(jq ".runs[$i].ops" "$r")" "$(jq '([.counts[]] | add) - .frees_of_unknown_blocks' "$s")" "$a: calls"
	expect_eq "$(jq ".runs[$i].counts.realloc" "$r")" "$(jq .realloc <<<"$own")" "$a: reallocs"
	expect_eq "$(jq ".runs[$i].peak_live_bytes" "$r")" "$(jq .peak_live_bytes "$s")" "$a: live peak"
	expect_eq "$(jq ".runs[$i].cut" "$r")" false "$a: not cut"
done

# The check: the file mfx wrote passes; each damaged copy is refused.
rp=$(dirname "$MFX")/mfx-replay
[ -x "$rp" ] || fail "no $rp"
timeout -s KILL 60 "$rp" "$TMP/run/replay.ops" >"$TMP/ok.json" 2>"$TMP/ok.err"
expect_eq "$?" 0 "mfx-replay of the file mfx wrote: $(cat "$TMP/ok.err")"
python3 - "$TMP/run/replay.ops" "$TMP/bad" <<'EOP' || fail "could not make the damaged copies"
import struct, sys
src, out = sys.argv[1], sys.argv[2]
d = bytearray(open(src, 'rb').read())
HDR, TH, OP = 32, 16, 24	# ops.h: struct ops_header, ops_thread, op
magic, nth, pid, nblocks, nops = struct.unpack_from('<8sIIQQ', d, 0)
assert magic == b'MFXRPL3\0', magic
tids = [struct.unpack_from('<IIQ', d, HDR + TH * i) for i in range(nth)]
base = HDR + TH * nth
ops = [list(struct.unpack_from('<BBHIIIQ', d, base + OP * i)) for i in range(nops)]
assert len(d) == base + OP * nops
owner, thread = {}, []	# block -> thread that made it; op -> its thread
for t, (tid, _, n) in enumerate(tids):
	thread += [t] * n
for o, t in zip(ops, thread):
	if o[0] != 4 and o[3]:
		owner[o[3]] = t
def save(name, ops2=ops, th=None, cut=0):
	b = bytearray(d[:HDR])
	for i, x in enumerate(th or tids):
		b += struct.pack('<IIQ', *x)
	for o in ops2:
		b += struct.pack('<BBHIIIQ', *o)
	open('%s.%s' % (out, name), 'wb').write(b[:len(b) - cut])
def first(pred):
	return next(i for i, o in enumerate(ops) if pred(o))
save('truncated', cut=OP // 2)
# a seq twice (and one missing): a thread's last call takes a later one's of another thread
for t, (tid, _, n) in enumerate(tids):
	k = thread.index(t) + n - 1 if n >= 2 else None
	dup = k and next((o[5] for o, u in zip(ops, thread) if u != t and o[5] > ops[k - 1][5]), None)
	if dup is not None:
		break
o2 = [o[:] for o in ops]; o2[k][5] = dup; save('seq-twice', o2)
o2 = [o[:] for o in ops]; o2[1][5] = o2[0][5]; save('seq-order', o2)
o2 = [o[:] for o in ops]; o2[first(lambda o: o[1] & 1)][1] &= ~1; save('no-wait', o2)
o2 = [o[:] for o in ops]; o2[first(lambda o: o[0] == 1 and o[3])][1] |= 4; save('implied-malloc', o2)
o2 = [o[:] for o in ops]; o2[first(lambda o: o[0] == 1)][0] = 9; save('kind', o2)
# a free of a block a realloc(p, 0) has freed already
i = first(lambda o: o[0] == 3 and o[3] == 0 and o[4] and o[6] == 0)
j = next(k for k, o in enumerate(ops) if o[0] == 4 and o[5] > ops[i][5] and not o[1] & 1
	 and thread[k] == owner[ops[i][4]])
o2 = [o[:] for o in ops]; o2[j][3] = ops[i][4]; save('freed-twice', o2)
# two threads that are the traced process's main thread
t = next(k for k, x in enumerate(tids) if x[0] != pid and x[2])
th = [list(x) for x in tids]; th[t][0] = pid; save('two-mains', th=th)
EOP
for f in "$TMP"/bad.*; do
	k=${f##*.}
	timeout -s KILL 60 "$rp" "$f" >"$TMP/bad.out" 2>"$TMP/bad.err"
	rc=$?
	expect_eq "$rc" 1 "mfx-replay of a copy damaged so ($k): exit"
	expect_eq "$(wc -l <"$TMP/bad.err")" 1 "$k: lines on stderr"
	case $k in
	truncated) why="truncated" ;; seq-twice) why="two calls at one place" ;;
	seq-order) why="out of order" ;; no-wait) why="without waiting" ;;
	implied-malloc) why="unknown flags" ;; kind) why="unknown kind" ;;
	freed-twice) why="freed twice" ;; two-mains) why="main thread" ;; *) fail "case $k?" ;;
	esac
	expect_match "$(cat "$TMP/bad.err")" "^mfx-replay: '.*': .*$why" "$k: says why: $(cat "$TMP/bad.err")"
	[ -s "$TMP/bad.out" ] && fail "$k: replayed anyway"
done
pass
