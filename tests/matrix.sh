# matrix.sh - sourced after lib.sh by the fault-matrix rows
# (tests/e2e/t5NN-fault-NAME.sh; docs/reliability.md).  A row repeats its
# case SOAK_TRIES times (its own small default in `make check`, more in
# `make soak`), judges each try, and ends with one line
#
#     matrix: NAME tries=T unharmed=U answered=A
#
# unharmed: the target is alive, running, and saw nothing (checked by the
# target itself or its own client); answered: mfx exited with a documented
# status and said at most one `mfx:` error line, which says why.  The row
# fails unless U = A = T; each failed try is described on stderr first.
#
#   . "$(dirname "$0")/../lib.sh"; . "$(dirname "$0")/../matrix.sh"
#   tries=$(matrix_tries 4)
#   for ((i = 1; i <= tries; i++)); do ...; matrix_try "$unharmed" "$answered" "what went wrong"; done
#   matrix_end rlimit-as

M_TRIES=0 M_UNHARMED=0 M_ANSWERED=0

# matrix_tries DEFAULT : how many tries (SOAK_TRIES overrides the default)
matrix_tries() { echo "${SOAK_TRIES:-$1}"; }

# matrix_try UNHARMED ANSWERED [WHY] : 1/0 each; WHY is printed when a try fails
matrix_try() {
	M_TRIES=$((M_TRIES + 1))
	[ "$1" = 1 ] && M_UNHARMED=$((M_UNHARMED + 1))
	[ "$2" = 1 ] && M_ANSWERED=$((M_ANSWERED + 1))
	if [ "$1" != 1 ] || [ "$2" != 1 ]; then
		echo "try $M_TRIES: unharmed=$1 answered=$2: ${3:-}" >&2
	fi
}

# matrix_end NAME : the row's line; exit 0 when every try was both
matrix_end() {
	echo "matrix: $1 tries=$M_TRIES unharmed=$M_UNHARMED answered=$M_ANSWERED"
	[ "$M_TRIES" -gt 0 ] && [ "$M_UNHARMED" = "$M_TRIES" ] && [ "$M_ANSWERED" = "$M_TRIES" ] ||
		fail "$1: $M_UNHARMED of $M_TRIES unharmed, $M_ANSWERED answered"
	pass
}

# mfx's notes (chatter, not errors; what -q would hide)
MFX_NOTE_RE='^mfx: (attached to pid|trace: |run directory: |tracing |[0-9.]+[kMG]? events dropped|malloc_trim|no shared-memory spool|debug: |inject: |wrote )'

# answered RC ERRFILE RCS... : 1 if RC is one of RCS and ERRFILE holds, besides
# mfx's notes, at most one `mfx: ` line (other lines are a launched program's
# own; a crash of mfx shows in RC)
answered() {
	local rc=$1 err=$2 ok=0 r; shift 2
	for r in "$@"; do [ "$rc" = "$r" ] && ok=1; done
	[ $ok = 1 ] || { echo 0; return; }
	local lines; lines=$(grep '^mfx: ' "$err" 2>/dev/null | grep -Ev "$MFX_NOTE_RE" | grep -c . || true)
	[ "${lines:-0}" -le 1 ] && echo 1 || echo 0
}

# error_line ERRFILE : mfx's error line, if it said one
error_line() { grep '^mfx: ' "$1" 2>/dev/null | grep -Ev "$MFX_NOTE_RE" | head -1; }

# mfx_attached MPID ERRFILE [SECONDS] : 0 once mfx said it attached, 1 if it
# ended (or timed out) first
mfx_attached() {
	local i
	for ((i = 0; i < ${3:-20} * 20; i++)); do
		grep -q "attached to pid" "$2" 2>/dev/null && return 0
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# harmed_by : "" when attach_target ($TOUT) is alive and reported nothing
harmed_by() {
	if grep -q 'EINTR\|ERRNO\|HANDLER' "$TOUT"; then
		grep 'EINTR\|ERRNO\|HANDLER' "$TOUT" | head -1
	elif ! kill -0 "$TPID" 2>/dev/null; then
		echo "target died"
	fi
}

# tdo_quiet CMD : like tdo, but returns 1 instead of failing the test
tdo_quiet() {
	local i n; n=$(grep -c '^done' "$TOUT")
	echo "$*" >&7
	for ((i = 0; i < 600; i++)); do
		[ "$(grep -c '^done' "$TOUT")" -gt "$n" ] && return 0
		[ -n "$(harmed_by)" ] && return 1
		sleep 0.05
	done
	return 1
}

# last_done_json : the JSON of attach_target's last "done" line
last_done_json() { grep '^done {' "$TOUT" | tail -1 | cut -d' ' -f2-; }

# counts_match RUN_DIR JSON : summary.json's counts equal the target's own
counts_match() {
	local k
	for k in malloc calloc realloc free memalign; do
		[ "$(jq -r ".counts.$k" "$1/summary.json" 2>/dev/null)" = "$(echo "$2" | jq -r ".$k")" ] ||
			return 1
	done
	return 0
}

# counts_match_or_dropped RUN_DIR JSON : counts_match, or the calls missing
# are no more than summary.json's recording.dropped_events (mfx could not
# keep up and said so: back-pressure, not a loss)
counts_match_or_dropped() {
	counts_match "$1" "$2" && return 0
	local k got=0 want=0 dropped
	for k in malloc calloc realloc free memalign; do
		got=$((got + $(jq -r ".counts.$k" "$1/summary.json" 2>/dev/null || echo 0)))
		want=$((want + $(echo "$2" | jq -r ".$k")))
	done
	dropped=$(jq -r '.recording.dropped_events // 0' "$1/summary.json" 2>/dev/null)
	[ "$got" -le "$want" ] && [ $((want - got)) -le "${dropped:-0}" ] && [ "${dropped:-0}" -gt 0 ]
}
