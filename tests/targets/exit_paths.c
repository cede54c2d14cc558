/*
 * exit_paths.c - allocates a known number of blocks, then ends the way it
 * is asked to: return, exit, _exit, abort, SIGKILL to itself, SIGSEGV.
 * Nothing recorded before the end may be lost.
 *
 *   exit_paths MODE N      MODE: return exit _exit abort kill segv
 * N mallocs, every second one freed: N mallocs and N/2 frees.
 */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long n = atol(argv[2]);
	void *volatile p;
	for (long i = 0; i < n; i++) {
		p = malloc(24 + (size_t)(i % 100));
		if (i % 2)
			free(p);
	}
	const char *m = argv[1];
	if (!strcmp(m, "exit"))
		exit(3);
	if (!strcmp(m, "_exit"))
		_exit(4);
	if (!strcmp(m, "abort"))
		abort();
	if (!strcmp(m, "kill"))
		kill(getpid(), SIGKILL);
	if (!strcmp(m, "segv"))
		*(volatile int *)(uintptr_t)8 = 1;
	return 0;
}
