# fault.sh - sourced by the fault-matrix rows tests/e2e/t5NN-fault-*.sh
# (after tests/lib.sh).  Each row repeats its case SOAK_TRIES times and
# ends with one line
#
#     matrix: NAME tries=T unharmed=U answered=A
#
# and fails unless U = A = T.  "unharmed": the target (fault_target, its
# own checks) is alive, not stopped, printed no DISTURBED/STUCK line,
# answers "check" with "status ok", and has no thread beyond its own and
# the agent's.  "answered": mfx exited 0, or 1 with exactly one "mfx:" line.
#
#   ft_start [CALLS...]        a fault_target of its own: $FT (an id), and
#                              FT_PID[$FT], FT_OUT[$FT], its fifo fd
#   ft_start_cmd PROG ARGS...  one started through a wrapper that execs it
#   ft_cmd ID CMD              a command to it
#   ft_unharmed ID             0 when unharmed; else $FT_WHY says why
#   ft_moment MOMENT           count a kill_at try, check targets in batches
#   ft_end ID                  end it (a row ends each target once checked:
#                              a soak of 200 tries must not keep 200 alive)
#   answered RC ERRFILE        0 when mfx answered as documented
#   row NAME TRIES U A         prints the matrix line, fails unless U=A=T

declare -A FT_PID FT_OUT FT_FD
FT_N=0

ft_start() { ft_start_cmd "$TARGETS/fault_target" "$@"; }

# ft_start_cmd PROG ARGS...: the same, for a wrapper that execs fault_target
ft_start_cmd() {
	FT=$((FT_N++))
	local fifo=$TMP/ft.$FT.in fd
	mkfifo "$fifo"
	exec {fd}<>"$fifo"
	FT_FD[$FT]=$fd
	FT_OUT[$FT]=$TMP/ft.$FT.out
	"$@" <&"$fd" >"${FT_OUT[$FT]}" 2>&1 &
	FT_PID[$FT]=$!
	track "${FT_PID[$FT]}"
	local i
	for ((i = 0; i < 200; i++)); do
		grep -q '^go$' "${FT_OUT[$FT]}" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "fault_target did not start: $(tail -3 "${FT_OUT[$FT]}")"
}

ft_cmd() { echo "$2" >&"${FT_FD[$1]}"; }

# ft_moment MOMENT: after a kill_at try on target $FT.  A try that met no
# moment ends its target; one that did is counted (tried) and joins the
# batch, which the row's check_batch checks and ends once BATCH wait.
ft_moment() {
	if [ "$1" = "no moment" ]; then
		ft_end "$FT"
		return 0
	fi
	echo "$1" >>"$TMP/kills"
	batch+=("$FT")
	tried=$((tried + 1))
	if [ "${#batch[@]}" -ge "${BATCH:-6}" ]; then check_batch; fi
	return 0
}

ft_end() {
	local pid=${FT_PID[$1]} fd=${FT_FD[$1]}
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	exec {fd}>&-
}

# the tid of worker NAME of target ID
ft_tid() { awk -v n="$2" '$1 == "tid" && $2 == n { print $3 }' "${FT_OUT[$1]}"; }

ft_unharmed() {
	local id=$1 pid=${FT_PID[$1]} out=${FT_OUT[$1]} st n t
	FT_WHY=
	if ! kill -0 "$pid" 2>/dev/null; then FT_WHY="target $pid died: $(tail -2 "$out")"; return 1; fi
	st=$(awk '{ print $3 }' "/proc/$pid/stat")
	if [ "$st" = T ] || [ "$st" = t ]; then FT_WHY="target $pid left stopped"; return 1; fi
	if grep -q '^DISTURBED\|^STUCK' "$out"; then FT_WHY=$(grep '^DISTURBED\|^STUCK' "$out" | head -3); return 1; fi
	n=$(grep -c '^status' "$out")
	ft_cmd "$id" check
	for ((t = 0; t < 500; t++)); do [ "$(grep -c '^status' "$out")" -gt "$n" ] && break; sleep 0.05; done
	if ! grep '^status' "$out" | tail -1 | grep -q '^status ok'; then
		FT_WHY="status: $(grep '^status' "$out" | tail -1)"; return 1
	fi
	# no thread but its own and the agent's: a loader thread of ours that
	# mfx did not take (it failed, or was killed) ends by itself within 3 s
	local wait
	for ((wait = 0; wait < 80; wait++)); do
		ft_stray "$pid" "$out" || return 0
		sleep 0.05
	done
	FT_WHY="a stray thread in $pid: $FT_STRAY"
	return 1
}

ft_stray() {	# PID OUT: 0 (and $FT_STRAY) when a thread is neither its nor the agent's
	local t comm ns
	for t in /proc/"$1"/task/*; do
		t=${t##*/}
		[ "$t" = "$1" ] && continue
		grep -q "^tid .* $t\$" "$2" && continue
		ns=$(awk '/^NSpid:/ { print $NF }' "/proc/$1/task/$t/status" 2>/dev/null)	# (pid namespace)
		[ -n "$ns" ] && grep -q "^tid .* $ns\$" "$2" && continue
		comm=$(cat "/proc/$1/task/$t/comm" 2>/dev/null) || continue
		[ "$comm" = mfx-agent ] && continue
		FT_STRAY="$t ($comm)"
		return 0
	done
	return 1
}

answered() {	# RC ERRFILE
	local lines; lines=$(grep -c '^mfx: ' "$2")
	[ "$1" = 0 ] && [ "$lines" -le 1 ] && return 0
	[ "$1" = 1 ] && [ "$lines" = 1 ] && [ "$(wc -l <"$2")" = 1 ] && return 0
	return 1
}

row() {	# NAME TRIES UNHARMED ANSWERED
	echo "matrix: $1 tries=$2 unharmed=$3 answered=$4"
	[ "$3" = "$2" ] && [ "$4" = "$2" ] || fail "row $1: $3 of $2 unharmed, $4 answered"
}
