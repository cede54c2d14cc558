#!/bin/bash
# ld.so knows a library by the name it was dlopen()ed by, and a later
# dlopen of that name gets it back, even when the name is "/proc/self/fd/N"
# and N has been closed and reused.  The agent is loaded from mfx's memfd as
# "//proc/self/fd/N" (the same path, another name), so neither side gets
# the other's library: a program that loaded a library of its own as
# "/proc/self/fd/3" and closed fd 3 is attached (mfx's memfd is fd 3 then),
# and after the window the program's dlopen("/proc/self/fd/K") of a library
# opened as fd K (the agent's memfd number among them) gives its library.
. "$(dirname "$0")/../lib.sh"
PLUG=$TARGETS/libdlplugin.so
target_start
tdo "dlopenfd $PLUG"
n=$(sed -n 's/^done dlopenfd //p' "$TOUT")
[ -n "$n" ] || fail "no fd: $(cat "$TOUT")"
echo "ok: the program's library is /proc/self/fd/$n"
MFX_DEBUG=1 mfx_bg attach -o "$TMP/run" --no-report "$TPID" --for 30s
mfx_wait_attached
tdo "run 1000"
mfx_end INT
expect_eq "$MFX_RC" 0 "mfx exit"
grep -q "dlopen(//proc/self/fd/$n) gave" "$MBG_ERR" && fail "the names met: $(cat "$MBG_ERR")"
want=$(grep '^done {' "$TOUT" | head -1 | sed 's/^done //')
run_mfx report -q --no-charts "$TMP/run"
expect_eq "$MFX_RC" 0 "mfx report"
expect_eq "$(jget "$TMP/run/summary.json" .counts.memalign)" "$(echo "$want" | jq .memalign)" \
	"memalign count"
expect_ge "$(jget "$TMP/run/summary.json" .counts.malloc)" "$(echo "$want" | jq .malloc)" \
	"malloc count"
# the program's library: one dlclose of the program's unloads it (mfx kept
# no reference to it)
tdo dlclose
grep -q '^done dlclose' "$TOUT" || fail "the program's dlclose failed"
grep -q libdlplugin.so /proc/"$TPID"/maps && fail "one dlclose left the plugin mapped"
echo "ok: the program's one dlclose unloads its library"
# the dormant agent's memfd number, taken by the program's own library
for k in 3 4 5 6 7 8; do
	tdo "dlopenfd $PLUG $k"
	tail -1 "$TOUT" | grep -q "^done dlopenfd $k" || fail "dlopen of /proc/self/fd/$k: $(tail -1 "$TOUT")"
	tdo dlclose
done
echo "ok: the program's dlopen(\"/proc/self/fd/K\") gives its library for K = 3..8"
grep -q 'memfd:libmfx.so' /proc/"$TPID"/maps || fail "no dormant agent mapped"
tdo "run 10"
pass
