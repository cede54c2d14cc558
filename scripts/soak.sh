#!/bin/bash
# soak.sh - `make soak`: the fault matrix, many times.  Runs every
# tests/e2e/t5*-fault-*.sh with a larger SOAK_TRIES per row, collects each
# row's last line
#
#     matrix: NAME tries=T unharmed=U answered=A
#
# and writes the table (row, tries, target unharmed, answered in one line,
# time) into docs/reliability.md between its soak markers, with the date and
# the machine.  Exit 0 when every row has U = A = T.
#
#   scripts/soak.sh                 every row, default tries
#   scripts/soak.sh 't55*'          rows matching the pattern(s)
#   SOAK_SCALE=0.1 scripts/soak.sh  a tenth of the tries (at least 1)
#   SOAK_TRIES=5 scripts/soak.sh    5 tries for every row
#   SOAK_NO_WRITE=1                 print the table, leave the docs alone
#   SOAK_TIMEOUT=5400               seconds per row (default 1.5 h)
set -u
cd "$(dirname "$0")/.."
export MFX_ROOT=$PWD
doc=docs/reliability.md
logdir=build/soak-logs
mkdir -p "$logdir"

# Tries per row, by the row's script name: the kill during the hold at
# least 200, STOP/CONT at least 50 (issue 12), the others 20 or what fits
# in a reasonable time (the storm row takes ~30 s a try).
tries_for() {
	case "$1" in
	*kill*hold* | *hold*kill*) echo 200 ;;
	*stop-cont* | *stopcont* | *sigstop*) echo 50 ;;
	*storm*) echo 5 ;;
	*) echo 20 ;;
	esac
}

match() {
	local name=$1; shift
	[ $# -eq 0 ] && return 0
	for p in "$@"; do [[ $name == $p ]] && return 0; done
	return 1
}

rows=() fails=0
t_all=$(date +%s)
for t in tests/e2e/t5[0-9][0-9]-fault-*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	match "$name" "$@" || continue
	n=${SOAK_TRIES:-$(tries_for "$name")}
	if [ -n "${SOAK_SCALE:-}" ]; then
		n=$(awk -v n="$n" -v s="$SOAK_SCALE" 'BEGIN { v = int(n * s + 0.5); print v < 1 ? 1 : v }')
	fi
	log=$logdir/$name.log
	printf 'soak  %-36s %5d tries ... ' "$name" "$n"
	t0=$(date +%s)
	SOAK_TRIES=$n timeout -k 10 "${SOAK_TIMEOUT:-5400}" bash "$t" >"$log" 2>&1 </dev/null
	rc=$?
	secs=$(($(date +%s) - t0))
	line=$(grep '^matrix: ' "$log" | tail -1)
	if [ -z "$line" ]; then
		[ $rc = 77 ] && { echo "skipped: $(tail -1 "$log")"; rows+=("$name|skipped|-|-|${secs}s|$(tail -1 "$log")"); continue; }
		line="matrix: ${name#t[0-9][0-9][0-9]-fault-} tries=$n unharmed=? answered=?"
	fi
	row=${line#matrix: }
	rname=${row%% *}
	T=$(sed -n 's/.*tries=\([0-9?]*\).*/\1/p' <<<"$line")
	U=$(sed -n 's/.*unharmed=\([0-9?]*\).*/\1/p' <<<"$line")
	A=$(sed -n 's/.*answered=\([0-9?]*\).*/\1/p' <<<"$line")
	status=ok
	if [ $rc != 0 ] || [ "$U" != "$T" ] || [ "$A" != "$T" ]; then
		status=FAIL
		fails=$((fails + 1))
	fi
	echo "$status  tries=$T unharmed=$U answered=$A  ${secs}s"
	[ $status = FAIL ] && grep '^try ' "$log" | head -3 | sed 's/^/      | /'
	rows+=("$rname ($name)|$T|$U|$A|${secs}s|$status")
done
total=$(($(date +%s) - t_all))

table() {
	echo "Measured $(date '+%Y-%m-%d %H:%M') on $(uname -n): $(nproc) CPUs," \
		"$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM," \
		"Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg) at the end;" \
		"$(git rev-parse --short HEAD 2>/dev/null || echo '?') (\`make soak\`, ${total} s)."
	echo
	echo "| row | tries | target unharmed | answered in one line | time | |"
	echo "| --- | ---: | ---: | ---: | ---: | --- |"
	local r
	for r in "${rows[@]}"; do
		IFS='|' read -r a b c d e f <<<"$r"
		echo "| $a | $b | $c | $d | $e | $f |"
	done
}
echo
table | tee "$logdir/table.md"
if [ "${SOAK_NO_WRITE:-0}" != 1 ] && [ ${#rows[@]} -gt 0 ] && [ -f "$doc" ] &&
	grep -q '<!-- soak:begin -->' "$doc"; then
	awk -v tbl="$logdir/table.md" '
		/<!-- soak:begin -->/ { print; while ((getline l < tbl) > 0) print l; skip = 1; next }
		/<!-- soak:end -->/ { skip = 0 }
		!skip { print }' "$doc" >"$doc.new" && mv "$doc.new" "$doc"
	echo "(table written into $doc)"
fi
[ $fails = 0 ] && echo "soak: every row passed" || echo "soak: $fails row(s) failed (logs in $logdir)"
[ $fails = 0 ]
