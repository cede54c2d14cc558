#!/bin/bash
# trim-experiment.sh - Approach A on live processes, scripted: run
# `mfx trim --json` on every process matching a name (or on given pids), one
# after the other, and print what each gave back, with totals.  The JSON
# lines are kept in a file for later comparison.
#
#   scripts/trim-experiment.sh NAME|PID... [-o FILE] [--every 60s --times N]
#
#   scripts/trim-experiment.sh postgres               every postgres process once
#   scripts/trim-experiment.sh 4242 4243 -o trim.jsonl
#   scripts/trim-experiment.sh redis-server --every 5m --times 12   (an hour)
#
# Remote machines: ssh host 'cd mfx && scripts/trim-experiment.sh app' works
# the same (root, or ptrace rights over the processes, are needed there).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
MFX=${MFX:-$here/build/mfx}
out=trim-$(date +%Y%m%d-%H%M%S).jsonl every= times=1 targets=()
while [ $# -gt 0 ]; do
	case $1 in
	-o) out=$2; shift 2 ;;
	--every) every=$2; shift 2 ;;
	--times) times=$2; shift 2 ;;
	-h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) targets+=("$1"); shift ;;
	esac
done
[ ${#targets[@]} -gt 0 ] || { echo "usage: $0 NAME|PID... [-o FILE] [--every D --times N]" >&2; exit 2; }
command -v jq >/dev/null || { echo "trim-experiment: needs jq (apt-get install jq)" >&2; exit 1; }
secs() {	# 30s, 5m, 2h -> seconds
	case $1 in *ms) echo 0 ;; *s) echo "${1%s}" ;; *m) echo $(( ${1%m} * 60 )) ;;
	*h) echo $(( ${1%h} * 3600 )) ;; *) echo "$1" ;; esac
}
for ((round = 1; round <= times; round++)); do
	pids=()
	for t in "${targets[@]}"; do
		if [[ $t =~ ^[0-9]+$ ]]; then pids+=("$t"); else
			while read -r p; do pids+=("$p"); done < <(pgrep -x "$t" || true)
		fi
	done
	[ ${#pids[@]} -gt 0 ] || { echo "trim-experiment: no process matches ${targets[*]}" >&2; exit 1; }
	total=0 fails=0
	printf '%-8s %-16s %12s %12s %12s %10s\n' PID COMMAND RSS_BEFORE RSS_AFTER RELEASED PAUSE
	for p in "${pids[@]}"; do
		comm=$(cat /proc/"$p"/comm 2>/dev/null || echo '?')
		if j=$("$MFX" trim --json "$p" 2>"${out}.err"); then
			echo "$j" | jq -c --arg c "$comm" --argjson r "$round" \
				'. + {command: $c, round: $r, time: (now | floor)}' >>"$out"
			echo "$j" | jq -r --arg c "$comm" '[.pid, $c,
				(.rss_before_bytes / 1048576 | floor | tostring) + " MiB",
				(.rss_after_bytes / 1048576 | floor | tostring) + " MiB",
				(.released_bytes / 1048576 * 10 | floor / 10 | tostring) + " MiB",
				(.pause_ns / 1000000 * 10 | floor / 10 | tostring) + " ms"] | @tsv' |
				awk -F'\t' '{ printf "%-8s %-16s %12s %12s %12s %10s\n", $1, $2, $3, $4, $5, $6 }'
			total=$((total + $(echo "$j" | jq .released_bytes)))
		else
			fails=$((fails + 1))
			printf '%-8s %-16s %s\n' "$p" "$comm" "$(cat "${out}.err")"
		fi
	done
	rm -f "${out}.err"
	echo "round $round: ${#pids[@]} processes, $((total / 1048576)) MiB released, $fails failed (details: $out)"
	[ "$round" -lt "$times" ] && [ -n "$every" ] && sleep "$(secs "$every")"
done
exit 0
