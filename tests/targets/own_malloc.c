/*
 * own_malloc.c - a program with an allocator of its own: it defines
 * malloc, free, calloc and realloc itself (a bump allocator over a static
 * arena, free does nothing), so the allocator that serves malloc is none mfx
 * knows.  Prints "ready", then allocates every millisecond until killed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ARENA (64u << 20)
static _Alignas(16) unsigned char arena[ARENA];
static size_t used;

void *malloc(size_t n)
{
	size_t need = (n + 31) & ~(size_t)15;
	size_t at = __atomic_fetch_add(&used, need, __ATOMIC_RELAXED);
	if (at + need > ARENA || need < n) {
		errno = ENOMEM;
		return NULL;
	}
	*(size_t *)(arena + at) = n;
	return arena + at + 16;
}

void free(void *p)
{
	(void)p;
}

void *calloc(size_t m, size_t n)
{
	size_t t;
	if (__builtin_mul_overflow(m, n, &t))
		return NULL;
	void *p = malloc(t);
	if (p)
		memset(p, 0, t);
	return p;
}

void *realloc(void *p, size_t n)
{
	void *q = malloc(n);
	if (p && q) {
		size_t old = *(size_t *)((unsigned char *)p - 16);
		memcpy(q, p, old < n ? old : n);
	}
	return q;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	struct timespec ms = { 0, 1000000 };
	for (;;) {
		if (used < ARENA / 2) {	/* a toy: it never reuses memory */
			char *volatile p = strdup("a string from libc's strdup");
			free(p);
		}
		nanosleep(&ms, NULL);
	}
}
