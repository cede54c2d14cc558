/*
 * many_stacks.c - as many distinct allocation stacks as asked: every
 * number below 2^DEPTH is a path of DEPTH calls through go_left() and
 * go_right() (one per bit), ending in alloc_leaf(), so the trace has
 * 2^DEPTH distinct stacks.  Keeps every 4th block live at the end.
 *
 *   many_stacks [DEPTH]      (default 17: 131072 stacks)
 * Prints "stacks N" on stdout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;

__attribute__((noinline)) void *alloc_leaf(unsigned bits)
{
	void *p = malloc(64 + (bits % 16) * 16);
	memset(p, 1, 64);
	return p;
}

void *go_left(int d, unsigned bits);
void *go_right(int d, unsigned bits);

static void *step(int d, unsigned bits)
{
	if (d == 0)
		return alloc_leaf(bits);
	return bits & 1 ? go_left(d - 1, bits >> 1) : go_right(d - 1, bits >> 1);
}

/* (the volatile store after the call keeps it from being a tail call:
 * each level keeps its own return address) */
__attribute__((noinline)) void *go_left(int d, unsigned bits)
{
	void *p = step(d, bits);
	sink = p;
	return p;
}

__attribute__((noinline)) void *go_right(int d, unsigned bits)
{
	void *p = step(d, bits);
	sink = p;
	return p;
}

int main(int argc, char **argv)
{
	int depth = argc > 1 ? atoi(argv[1]) : 17;
	unsigned n = 1u << depth;
	void **v = malloc(n * sizeof(*v));
	for (unsigned i = 0; i < n; i++)
		v[i] = step(depth, i);
	for (unsigned i = 0; i < n; i++)
		if (i % 4)
			free(v[i]);
	printf("stacks %u\n", n);
	return 0;
}
