/*
 * sample.h - `--sample BYTES`: Poisson sampling by allocated bytes, the way
 * tcmalloc's and jemalloc's heap profilers sample (sample.c).
 *
 * Every allocated byte is a sample point with probability 1/mean; a call is
 * recorded when one of its bytes is (probability 1 - exp(-size/mean)), and
 * the report weighs it by the inverse.  Each thread counts down the bytes to
 * its next sample point, an exponential draw of mean `mean`: an unsampled
 * allocation costs a subtraction and a compare.  A free is recorded only
 * for a sampled block: a 16 KiB counting filter over the sampled pointers
 * answers "certainly not sampled" for nearly every free with one load; a
 * maybe is settled in a lock-free set of the sampled pointers.
 */
#ifndef MFX_PRELOAD_SAMPLE_H
#define MFX_PRELOAD_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "preload/agent.h"

extern uint64_t sample_mean;		/* bytes; 0 = every call is recorded */
extern uint32_t sample_gen;		/* bumped by every sample_begin() */
extern uint8_t *sample_filter;		/* counters by pointer hash (0: not sampled) */
#define SAMPLE_FILTER_BITS 14

extern __thread int64_t tls_sample_left __attribute__((tls_model("initial-exec")));
extern __thread uint32_t tls_sample_gen __attribute__((tls_model("initial-exec")));

static inline uint64_t sample_hash(const void *p)
{
	return ((uint64_t)(uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull;
}

/* The slow half of sample_take(): a new countdown; 1 when the call that
 * crossed zero is sampled (0 only for a thread's first draw). */
int sample_draw(uint64_t n);

/* Count an allocation of n bytes: 1 when it is sampled. */
static inline int sample_take(uint64_t n)
{
	if (n > (1ull << 62))
		n = 1ull << 62;
	int64_t left = tls_sample_left - (int64_t)n;
	tls_sample_left = left;
	if (likely(left > 0 && tls_sample_gen == sample_gen))
		return 0;
	return sample_draw(n);
}

/* 0: p is certainly not a sampled block. */
static inline int sample_maybe(const void *p)
{
	return sample_filter[sample_hash(p) >> (64 - SAMPLE_FILTER_BITS)] != 0;
}

/* Remember p as sampled: 0 when the set is full (then do not record it). */
int sample_insert(const void *p);
/* Forget p: 1 when it was sampled (its free is recorded). */
int sample_remove(const void *p);
/* p was sampled (and is forgotten now), cheaply when it was not. */
static inline int sample_forget(const void *p)
{
	return p && unlikely(sample_maybe(p)) && sample_remove(p);
}

/* A window starts with `mean` (0: not sampled): fresh tables.  0 or
 * -ENOMEM (the tables cannot be mapped: sampling cannot work). */
int sample_begin(uint64_t mean);

#endif
