#!/bin/bash
# mfx snapshot: the smaps copy is the process's, the JSON agrees with /proc,
# and refusals are one line.
. "$(dirname "$0")/../lib.sh"

# A target with ~100 MB of small heap blocks, sleeping while we look.
spawn /usr/bin/python3 -c "
import time, sys
x = [bytearray(1000) for i in range(100000)]
open('$TMP/ready', 'w').write('1')
time.sleep(60)"
pid=$SPAWNED
wait_file "$TMP/ready" 20

cd "$TMP"
run_mfx snapshot --json -o "$TMP/snap.smaps" "$pid"
expect_eq "$MFX_RC" 0 "exit status"
jq -e . "$MFX_OUT" >/dev/null || fail "not JSON: $(cat "$MFX_OUT")"
expect_eq "$(jget "$MFX_OUT" .pid)" "$pid" "pid"
grep -q '^Rss:' "$TMP/snap.smaps" || fail "smaps copy has no Rss lines"
grep -q '\[heap\]' "$TMP/snap.smaps" || fail "smaps copy has no [heap]"

rss=$(jget "$MFX_OUT" .rss_bytes)
heap=$(jget "$MFX_OUT" .heap_rss_bytes)
kern=$(awk '/^Rss:/ {print $2 * 1024}' /proc/$pid/smaps_rollup)
note "rss $rss heap $heap rollup $kern"
# within 10% of the kernel's own sum, taken a moment later
expect_le "$(( (rss > kern ? rss - kern : kern - rss) * 100 / kern ))" 10 "RSS differs from smaps_rollup by %"
expect_ge "$heap" 100000000 "heap RSS holds the 100 MB of blocks"
expect_le "$heap" "$rss" "heap RSS <= RSS"

run_mfx snapshot "$pid"
expect_eq "$MFX_RC" 0 "text mode exit status"
grep -q "allocator heap" "$MFX_OUT" || fail "text summary lacks the heap line: $(cat "$MFX_OUT")"
ls "$TMP"/smaps-"$pid"-* >/dev/null 2>&1 || fail "default smaps copy not written"

run_mfx snapshot 12abc
expect_eq "$MFX_RC" 2 "bad pid is a usage error"
run_mfx snapshot 4194304
expect_eq "$MFX_RC" 1 "missing pid exit status"
expect_one_error_line "$MFX_ERR" "no process"
run_mfx snapshot
expect_eq "$MFX_RC" 2 "no pid"
expect_one_error_line "$MFX_ERR" "no PID given"
pass
