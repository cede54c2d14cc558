# lib.sh - sourced by every end-to-end test (tests/e2e/tNNN-*.sh).
#
# Every process a test starts goes through `spawn` (or `track PID`) and is
# killed by pid when the test ends, whatever happens.  A test prints what it
# checks, and ends with `pass` (exit 0), `skip REASON` (exit 77) or `fail MSG`.
#
#   . "$(dirname "$0")/../lib.sh"
#   spawn build/tests/counts_target 100   # sets $SPAWNED (pid), output in $TMP
#   wait_file "$TMP/ready" 5
#   run_mfx launch -o "$TMP/run" -- build/tests/counts_target   # $MFX_RC, $MFX_OUT, $MFX_ERR
#   expect_eq "$(jget "$TMP/run/summary.json" .counts.malloc)" 100 "malloc count"
set -u
MFX_ROOT=${MFX_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$MFX_ROOT"
MFX=${MFX:-$MFX_ROOT/build/mfx}
TARGETS=$MFX_ROOT/build/tests
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mfx-test.XXXXXX")
chmod 755 "$TMP"
_PIDS=()

_cleanup() {
	local p
	for p in "${_PIDS[@]}"; do
		kill -CONT "$p" 2>/dev/null
		kill -TERM "$p" 2>/dev/null
	done
	sleep 0.1
	for p in "${_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"
}
# Every summary a test made (summary.json, summary-PID.json) is checked at
# its end, whatever the test: the RSS peak is the kernel's high-water mark,
# so no sample saw more; heap RSS is never above RSS in any sample (both
# come from one read of smaps).
_rss_check() {
	local f bad=0
	while IFS= read -r f; do
		jq -e '(.rss_timeline // []) as $t
			| ($t | all(.heap_rss_bytes <= .rss_bytes))
			and (.rss_peak_bytes >= ([$t[].rss_bytes] | max // 0))
			and (.heap_rss_bytes <= .rss_peak_bytes)' "$f" >/dev/null 2>&1 && continue
		echo "FAIL: $f: RSS figures contradict each other: peak $(jq -c '[.rss_peak_bytes, .heap_rss_bytes]' "$f"), samples over it: $(jq -c '[.rss_timeline[] | select(.heap_rss_bytes > .rss_bytes or .rss_bytes > $p)]' --argjson p "$(jq .rss_peak_bytes "$f")" "$f" | head -c 400)" >&2
		bad=1
	done < <(find "$TMP" -name 'summary*.json' 2>/dev/null)
	return $bad
}
trap '_rc=$?; _rss_check || _rc=1; _cleanup; exit $_rc' EXIT

pass() { echo "PASS"; exit 0; }
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "skip: $*"; exit 77; }
note() { echo "# $*"; }

# spawn CMD... : start in the background, stdout/stderr to $TMP/spawn.N.{out,err}
spawn() {
	local n=${#_PIDS[@]}
	"$@" >"$TMP/spawn.$n.out" 2>"$TMP/spawn.$n.err" &
	SPAWNED=$!
	SPAWN_OUT=$TMP/spawn.$n.out
	SPAWN_ERR=$TMP/spawn.$n.err
	_PIDS+=("$SPAWNED")
}
track() { _PIDS+=("$1"); }

# wait_file PATH SECONDS : until PATH exists (and is non-empty)
wait_file() {
	local i n=$(( ${2:-10} * 20 ))
	for ((i = 0; i < n; i++)); do [ -s "$1" ] && return 0; sleep 0.05; done
	fail "timed out waiting for $1"
}
# wait_grep PATTERN FILE SECONDS
wait_grep() {
	local i n=$(( ${3:-10} * 20 ))
	for ((i = 0; i < n; i++)); do grep -q -- "$1" "$2" 2>/dev/null && return 0; sleep 0.05; done
	fail "timed out waiting for '$1' in $2"
}

# run_mfx ARGS... : run mfx, capture stdout/stderr/exit status
run_mfx() {
	MFX_OUT=$TMP/mfx.out MFX_ERR=$TMP/mfx.err
	"$MFX" "$@" >"$MFX_OUT" 2>"$MFX_ERR"
	MFX_RC=$?
	return 0
}

jget() { jq -r "$2" "$1"; }

expect_eq() {	# got want what
	if [ "$1" = "$2" ]; then echo "ok: $3 = $1"; else fail "$3: got '$1', want '$2'"; fi
}
expect_ge() { if [ "$1" -ge "$2" ]; then echo "ok: $3 = $1 >= $2"; else fail "$3: got $1, want >= $2"; fi; }
expect_le() { if [ "$1" -le "$2" ]; then echo "ok: $3 = $1 <= $2"; else fail "$3: got $1, want <= $2"; fi; }
expect_match() {	# text regex what
	if [[ $1 =~ $2 ]]; then echo "ok: $3"; else fail "$3: '$1' does not match /$2/"; fi
}
# expect_one_error_line FILE REGEX : stderr is exactly one "mfx: " line matching REGEX
expect_one_error_line() {
	local n; n=$(wc -l <"$1")
	[ "$n" -eq 1 ] || fail "expected one stderr line, got $n: $(cat "$1")"
	grep -qE "^mfx: " "$1" || fail "stderr does not start with 'mfx: ': $(cat "$1")"
	grep -qE -- "$2" "$1" || fail "stderr '$(cat "$1")' does not match /$2/"
	echo "ok: one error line: $(cat "$1")"
}
need() { command -v "$1" >/dev/null 2>&1 || skip "$1 not installed"; }
# pg_start: a PostgreSQL server of this test's own, run as postgres (data
# in $TMP/pg/data, socket in $TMP/sock, no TCP, fsync off); pm = the pid of
# what was spawned, PGBIN its binaries, asuser runs a command as postgres.
# Skips without PostgreSQL or root.
asuser() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
pg_start() {
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -x "$PGBIN/postgres" ] || skip "PostgreSQL is not installed"
	[ -x "$PGBIN/pgbench" ] || skip "pgbench is not installed"
	id postgres >/dev/null 2>&1 || skip "no postgres user"
	[ "$(id -u)" = 0 ] || skip "needs root to run the server as postgres"
	mkdir -p "$TMP/pg" "$TMP/sock"
	chown postgres:postgres "$TMP/pg" "$TMP/sock"
	asuser "$PGBIN/initdb" -D "$TMP/pg/data" -A trust -U postgres >"$TMP/initdb.log" 2>&1 ||
		fail "initdb: $(tail -3 "$TMP/initdb.log")"
	spawn asuser "$PGBIN/postgres" -D "$TMP/pg/data" -k "$TMP/sock" -c listen_addresses= \
		-c fsync=off
	pm=$SPAWNED
	for _ in $(seq 100); do [ -S "$TMP/sock/.s.PGSQL.5432" ] && break; sleep 0.1; done
	[ -S "$TMP/sock/.s.PGSQL.5432" ] || fail "postgres did not start: $(cat "$SPAWN_ERR")"
}
# redis_start: a redis-server of this test's own (socket $sock in $TMP, no
# persistence, no TCP port); rs = its pid.  Skips without redis.
redis_start() {
	need redis-server
	need redis-benchmark
	need redis-cli
	sock=$TMP/redis.sock
	spawn redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no --dir "$TMP"
	rs=$SPAWNED
	for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
	[ -S "$sock" ] || fail "redis did not start: $(cat "$SPAWN_ERR" "$SPAWN_OUT")"
}

# ---- attach tests: a target that obeys commands on a fifo ----------------------
# target_start [CMD...] : start CMD (default attach_target) with stdin on a
# fifo held open on fd 7; $TPID, $TOUT; waits for its "ready" line.
target_start() {
	[ -p "$TMP/tin" ] || mkfifo "$TMP/tin"
	exec 7<>"$TMP/tin"
	if [ $# -eq 0 ]; then set -- "$TARGETS/attach_target"; fi
	TOUT=$TMP/target.$RANDOM.out
	"$@" <&7 >"$TOUT" 2>&1 &	# (a background job's stdin is /dev/null unless redirected)
	TPID=$!
	track "$TPID"
	wait_grep ready "$TOUT" 10
}
tcmd() { echo "$*" >&7; }
# target_unharmed : fail if attach_target reported an EINTR, a changed errno
# or a lost SIGSEGV handler (it prints EINTR / ERRNO / HANDLER and exits)
target_unharmed() {
	if grep -q 'EINTR\|ERRNO\|HANDLER' "$TOUT"; then
		fail "target saw EINTR, errno or its SIGSEGV handler changed: $(grep 'EINTR\|ERRNO\|HANDLER' "$TOUT")"
	fi
}
# tdo CMD : send CMD, wait until the target printed one more "done" line
tdo() {
	local i n; n=$(grep -c '^done' "$TOUT")
	echo "$*" >&7
	for ((i = 0; i < 600; i++)); do
		[ "$(grep -c '^done' "$TOUT")" -gt "$n" ] && return 0
		target_unharmed
		kill -0 "$TPID" 2>/dev/null || fail "target died: $(tail -3 "$TOUT")"
		sleep 0.05
	done
	fail "target did not finish '$*': $(tail -3 "$TOUT")"
}
# mfx_bg ARGS... : mfx in the background ($MPID, $MBG_OUT, $MBG_ERR)
mfx_bg() {
	MBG_OUT=$TMP/mfxbg.$#.$RANDOM.out MBG_ERR=$TMP/mfxbg.$RANDOM.err
	"$MFX" "$@" >"$MBG_OUT" 2>"$MBG_ERR" &
	MPID=$!
	track "$MPID"
}
mfx_wait_attached() {
	local i
	for ((i = 0; i < ${1:-10} * 20; i++)); do
		grep -q "attached to pid" "$MBG_ERR" && return 0
		kill -0 "$MPID" 2>/dev/null || fail "mfx attach ended: $(cat "$MBG_ERR")"
		sleep 0.05
	done
	fail "mfx did not attach: $(cat "$MBG_ERR")"
}
# mfx_end [SIG] : send SIG (INT) to the background mfx, wait; $MFX_RC
mfx_end() {
	kill -"${1:-INT}" "$MPID" 2>/dev/null
	wait "$MPID"
	MFX_RC=$?
}

# ---- symbols: every frame of every reported stack against addr2line ------------
# addr2line_check SUMMARY OWN_RE : for every distinct return address in the
# stacks of summary.json's site lists, compare mfx's frames (its whole
# inline chain) with `addr2line -i -f -C -e MODULE PC`.  Function names and
# lines must match everywhere; file names too in modules matching OWN_RE
# (the test's own programs).  In system libraries binutils 2.40 reads a few
# DWARF 5 file entries of libc's line table differently from readelf
# --debug-dump=decodedline and eu-addr2line (which agree with mfx), so
# there the file name is not compared.  Without a symbol addr2line prints
# "??" where mfx prints "module+0xoffset".  Sets A2L_N (addresses) and
# A2L_BAD (mismatches, printed).
addr2line_check() {
	local sum=$1 own=$2 mod pc rest ours theirs
	A2L_N=0 A2L_BAD=0
	while IFS=$'\t' read -r mod pc rest; do
		A2L_N=$((A2L_N + 1))
		ours=$(printf '%s\n' "$rest" | tr '\t' '\n' |
			sed -E -e 's/^[^|]*\+0x[0-9a-f]+\|/??|/' -e 's/\|\?\?:0$/|??:?/')
		theirs=$(addr2line -i -f -C -e "$mod" "$pc" | paste - - |
			sed -E -e 's/\t/|/' -e 's/ \(discriminator [0-9]+\)//')
		if ! [[ $mod =~ $own ]]; then	# names and lines only
			ours=$(printf '%s\n' "$ours" | sed -E 's/\|.*:([0-9?]+)$/|\1/')
			theirs=$(printf '%s\n' "$theirs" | sed -E 's/\|.*:([0-9?]+)$/|\1/')
		fi
		if [ "$ours" != "$theirs" ]; then
			A2L_BAD=$((A2L_BAD + 1))
			echo "differs: $mod $pc"
			echo "  mfx:       $(printf '%s' "$ours" | tr '\n' ' ')"
			echo "  addr2line: $(printf '%s' "$theirs" | tr '\n' ' ')"
		fi
	done < <(jq -r -f "$MFX_ROOT/tests/a2l.jq" "$sum")
}
