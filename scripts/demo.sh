#!/bin/sh
# demo.sh - `make demo`: trace the bundled demo service (tests/targets/demo_app.c)
# for its whole 4-second life and print the terminal summary.  The demo leaks a
# session record per request, fragments its heap with a cache that is filled
# and mostly evicted, and frees large parse buffers the arena keeps.
#   scripts/demo.sh [RUN_DIR]        (default results/demo)
set -eu
cd "$(dirname "$0")/.."
out=${1:-results/demo}
[ -x build/mfx ] && [ -x build/tests/demo_app ] || make --no-print-directory all
echo "\$ build/mfx launch -o $out --force -- build/tests/demo_app 4"
build/mfx launch -o "$out" --force -- build/tests/demo_app 4
echo
echo "files in $out:"
ls -l "$out" | awk 'NR > 1 { printf "  %-28s %10s\n", $9, $5 }'
echo
echo "next:  build/mfx report $out          (again, with --top 20)"
echo "       build/mfx export --folded $out  (flame graph input)"
echo "       xdg-open $out/report.html"
