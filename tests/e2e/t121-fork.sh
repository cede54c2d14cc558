#!/bin/bash
# fork without exec: the child writes its own trace, the parent's is intact.
. "$(dirname "$0")/../lib.sh"
cat >"$TMP/fork.c" <<'EOC'
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
	for (int i = 0; i < 1000; i++) free(malloc(64));
	pid_t c = fork();
	if (c == 0) { for (int i = 0; i < 300; i++) free(malloc(128)); _exit(0); }
	for (int i = 0; i < 700; i++) free(malloc(256));
	int st; waitpid(c, &st, 0);
	return WEXITSTATUS(st);
}
EOC
cc -O0 -o "$TMP/fork" "$TMP/fork.c" || fail "cc"
run_mfx launch -q -o "$TMP/run" -- "$TMP/fork"
expect_eq "$MFX_RC" 0 "exit status"
expect_eq "$(jget "$TMP/run/summary.json" .counts.malloc)" 1700 "parent mallocs"
child=$(ls "$TMP/run"/trace-*.mfx | head -1)
[ -n "$child" ] || fail "no child trace"
"$MFX" report -q --json --no-charts --trace "$(basename "$child")" "$TMP/run" >"$TMP/c.json"
expect_eq "$(jget "$TMP/c.json" .counts.malloc)" 300 "child mallocs"
expect_eq "$(jget "$TMP/c.json" .counts.free)" 300 "child frees"
pass
