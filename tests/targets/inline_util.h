/* inline_util.h - static inline helpers for inline_c.c: allocation two and
 * three inline levels deep, so every return address expands to a chain. */
#ifndef INLINE_UTIL_H
#define INLINE_UTIL_H

#include <stdlib.h>
#include <string.h>

static inline void *checked_alloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		abort();
	return p;
}

static inline char *dup_bytes(const char *s, size_t n)
{
	char *p = checked_alloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

static inline void *zero_block(size_t n)
{
	return memset(checked_alloc(n), 0, n);
}

#endif
