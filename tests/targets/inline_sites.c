/*
 * inline_sites.c - allocation sites behind inlined frames, for the pprof
 * export and the flame graph: make_record() is always inlined into
 * grow_table(), so one return address stands for two source frames.
 * Keeps a known share of its blocks live at the end and frees the rest.
 *
 *   inline_sites [N]     (default 2000)
 * Prints "table N bytes B, cache N bytes B" for what is still live.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline __attribute__((always_inline)) void *make_record(size_t n)
{
	void *p = malloc(n);
	memset(p, 1, n);
	return p;
}

__attribute__((noinline)) void *grow_table(int i)
{
	return make_record(1000 + (size_t)(i % 100));
}

__attribute__((noinline)) void *fill_cache(int i)
{
	void *p = malloc(64 + (size_t)(i % 8) * 8);
	memset(p, 2, 64);
	return p;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	void **t = calloc((size_t)n, sizeof(*t)), **c = calloc((size_t)n * 3, sizeof(*c));
	unsigned long tb = 0, cb = 0, tn = 0, cn = 0;
	for (int i = 0; i < n; i++)
		t[i] = grow_table(i);
	for (int i = 0; i < 3 * n; i++)
		c[i] = fill_cache(i);
	for (int i = 0; i < n; i++)
		if (i % 4) {
			free(t[i]);
		} else {
			tb += 1000 + (unsigned long)(i % 100);
			tn++;
		}
	for (int i = 0; i < 3 * n; i++)
		if (i % 2) {
			free(c[i]);
		} else {
			cb += 64 + (unsigned long)(i % 8) * 8;
			cn++;
		}
	printf("table %lu bytes %lu, cache %lu bytes %lu\n", tn, tb, cn, cb);
	return 0;
}
