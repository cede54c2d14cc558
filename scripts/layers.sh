#!/bin/bash
# layers.sh - fail when a source file includes, or an object file links
# against, a folder its layer may not use (docs/design.md, "Layers").
#
#   attach/    the mfx command          may use everything below
#   inject/    crossing into a process  inject/ common/ include/mfx/
#   analyzer/  after the capture        analyzer/ trace/ common/
#   preload/   the agent                preload/ include/mfx/ and trace/'s
#                                       agent-safe headers (no mfx object)
#   trace/     the trace format         trace/ common/
#   common/    the base                 common/
#   analyzer/replay/replayer*.[ch], ops.h, opsread.h   their own only (built alone)
#
# Includes are read from the sources; links from build/obj (run after make).
#   scripts/layers.sh [OBJDIR]   (default build/obj)
set -euo pipefail
cd "$(dirname "$0")/.."
objdir=${1:-build/obj}
bad=0

# The trace headers the agent may include: plain layout and inline coders.
agent_safe_trace="trace/format.h trace/varint.h trace/spool_format.h trace/columns.h"

layer_of() {	# path -> layer name
	case $1 in
	analyzer/replay/replayer*.[ch] | analyzer/replay/ops.h | analyzer/replay/opsread.h) echo replayer ;;
	attach/*) echo attach ;; inject/*) echo inject ;; analyzer/*) echo analyzer ;;
	preload/*) echo preload ;; trace/*) echo trace ;; common/*) echo common ;;
	include/mfx/*) echo mfx ;; *) echo other ;;
	esac
}
allowed() {	# from-layer to-layer -> 0 when allowed
	local from=$1 to=$2
	[ "$from" = "$to" ] && return 0
	case $from in
	attach) return 0 ;;
	inject) [[ $to =~ ^(common|mfx)$ ]] ;;
	analyzer) [[ $to =~ ^(trace|common|replayer)$ ]] ;;
	preload) [[ $to =~ ^(mfx|trace)$ ]] ;;
	trace) [[ $to == common ]] ;;
	common) return 1 ;;
	replayer) return 1 ;;
	*) return 0 ;;
	esac
}

# --- includes ---------------------------------------------------------------
while IFS= read -r src; do
	from=$(layer_of "$src")
	while IFS= read -r inc; do
		[ -n "$inc" ] || continue
		case $inc in */*) ;; *) inc=$(dirname "$src")/$inc ;; esac
		[ -e "$inc" ] || [ -e "include/$inc" ] || continue
		[ -e "$inc" ] || inc=include/$inc
		to=$(layer_of "$inc")
		if ! allowed "$from" "$to"; then
			echo "layers: $src includes $inc ($from may not use $to)"
			bad=1
		elif [ "$from" = preload ] && [ "$to" = trace ] &&
			[[ " $agent_safe_trace " != *" $inc "* ]]; then
			echo "layers: $src includes $inc (the agent may use only $agent_safe_trace)"
			bad=1
		fi
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$src")
done < <(git ls-files 'attach/*' 'inject/*' 'analyzer/*' 'preload/*' 'trace/*' 'common/*' \
	'include/*' | grep -E '\.[ch]$')

# The agent-safe trace headers include nothing but each other.
for h in $agent_safe_trace; do
	while IFS= read -r inc; do
		[[ " $agent_safe_trace " == *" $inc "* ]] && continue
		echo "layers: $h is included by the agent and includes $inc"
		bad=1
	done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$h")
done

# --- links ------------------------------------------------------------------
if [ -d "$objdir" ]; then
	defs=$(mktemp)
	trap 'rm -f "$defs"' EXIT
	# mfx's objects only: the agent (preload/) is a binary of its own, whose
	# links ld checks (--no-undefined), and it defines malloc & co.
	for o in $(find "$objdir" -name '*.o' -not -path '*/preload/*' | sort); do
		rel=${o#"$objdir"/}
		nm --defined-only -g "$o" 2>/dev/null | awk -v f="${rel%.o}.c" 'NF == 3 { print $3, f }'
	done | sort -u >"$defs"
	for o in $(find "$objdir" -name '*.o' | sort); do
		rel=${o#"$objdir"/}
		case $rel in tests/* | preload/*) continue ;; esac
		from=$(layer_of "${rel%.o}.c")
		while read -r sym; do
			def=$(awk -v s="$sym" '$1 == s { print $2; exit }' "$defs")
			[ -n "$def" ] || continue
			to=$(layer_of "$def")
			if ! allowed "$from" "$to"; then
				echo "layers: ${rel%.o}.c calls $sym from $def ($from may not use $to)"
				bad=1
			fi
		done < <(nm --undefined-only "$o" 2>/dev/null | awk '{ print $NF }')
	done
fi

[ $bad -eq 0 ] && echo "layers: every include and link follows the rules"
exit $bad
