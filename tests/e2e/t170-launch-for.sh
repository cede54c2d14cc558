#!/bin/bash
# --for: tracing stops after the duration, the program runs on, its output
# and exit status are its own.
. "$(dirname "$0")/../lib.sh"
cat >"$TMP/long.c" <<'EOC'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
int main(void) {
	struct timespec t0, t; clock_gettime(CLOCK_MONOTONIC, &t0);
	long n = 0;
	do { void *volatile p = malloc(100); free(p); n++; struct timespec d = {0, 100000}; nanosleep(&d, NULL);
	     clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < 3000000000L);
	printf("done %ld\n", n);
	return 5;
}
EOC
cc -O1 -o "$TMP/long" "$TMP/long.c" || fail cc
start=$(date +%s%N)
run_mfx launch -o "$TMP/run" --for 1s -- "$TMP/long"
secs=$(( ($(date +%s%N) - start) / 1000000 ))
expect_eq "$MFX_RC" 5 "exit status of the program"
grep -q '^done [0-9]' "$MFX_OUT" || fail "program output lost: $(cat "$MFX_OUT")"
expect_ge "$secs" 2900 "mfx waited for the program (ms)"
d=$(jget "$TMP/run/summary.json" .duration_ns)
expect_ge "$d" 800000000 "window >= 0.8 s"
expect_le "$d" 1600000000 "window <= 1.6 s"
grep -q "waiting for it to exit" "$MFX_ERR" || fail "no note about waiting"
pass
