/*
 * sample.h - `--sample BYTES`: Poisson sampling by allocated bytes, the way
 * tcmalloc's and jemalloc's heap profilers sample (sample.c).
 *
 * Every allocated byte is a sample point with probability 1/mean; a call is
 * recorded when one of its bytes is (probability 1 - exp(-size/mean)), and
 * the report weighs it by the inverse.  Each thread counts down the bytes to
 * its next sample point, an exponential draw of mean `mean`: an unsampled
 * allocation costs a subtraction and a compare.  A free is recorded only
 * for a sampled block: a 16 KiB counting filter of the sampled blocks by
 * page answers "certainly not sampled" for nearly every free with one load
 * of a hot line; a maybe is settled in a lock-free set of the sampled
 * pointers.
 */
#ifndef MFX_PRELOAD_SAMPLE_H
#define MFX_PRELOAD_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "preload/agent.h"

extern uint64_t sample_mean;		/* bytes; 0 = every call is recorded */
extern uint32_t sample_gen;		/* bumped by every sample_begin() */
extern uint8_t *sample_filter;		/* sampled blocks by page (0: none there) */
#define SAMPLE_FILTER_BITS 14
#define SAMPLE_FILTER_SHIFT 10	/* one counter per 1 KiB of address space */

/* The thread's countdown: bytes to its next sample point, and the window
 * (sample_gen) it was drawn in.  One TLS object: one offset to load. */
struct sample_tls {
	int64_t left;
	uint32_t gen;
};
extern __thread struct sample_tls tls_sample __attribute__((tls_model("initial-exec")));

static inline uint64_t sample_hash(const void *p)
{
	return ((uint64_t)(uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull;
}

/* The filter counts the sampled blocks by 1 KiB of address space, in
 * address order (not hashed): the frees of a heap's busy pages touch a few
 * cache lines of it, not one line each.  A free near a sampled block (in
 * its KiB, or one 16 MiB away) looks in the set. */
static inline uint8_t *sample_filter_of(const void *p)
{
	return &sample_filter[((uint64_t)(uintptr_t)p >> SAMPLE_FILTER_SHIFT) &
			      ((1u << SAMPLE_FILTER_BITS) - 1)];
}

/* The slow half of sample_take(): a new countdown; 1 when the call that
 * crossed zero is sampled (0 only for a thread's first draw). */
int sample_draw(uint64_t n);

/* Count an allocation of n bytes down: 1 when it is certainly not sampled
 * (its bytes end before the next sample point), 0 when sample_draw(n) must
 * decide -- it always runs then, and sets the countdown anew.  The
 * countdown is >= 1 once drawn (0 before: the thread's first call draws),
 * so one unsigned compare covers every n, however large. */
static inline int sample_skip(uint64_t n)
{
	uint64_t left = (uint64_t)tls_sample.left;
	if (likely(n < left) && likely(tls_sample.gen == sample_gen)) {
		tls_sample.left = (int64_t)(left - n);
		return 1;
	}
	return 0;
}

/* Count an allocation of n bytes: 1 when it is sampled. */
static inline int sample_take(uint64_t n)
{
	return !sample_skip(n) && sample_draw(n);
}

/* 0: p is certainly not a sampled block. */
static inline int sample_maybe(const void *p)
{
	return *sample_filter_of(p) != 0;
}

/* Remember p as sampled: 0 when the set is full (then do not record it;
 * sample_lost counts those). */
int sample_insert(const void *p);
extern uint64_t sample_lost;
/* Forget p: 1 when it was sampled (its free is recorded). */
int sample_remove(const void *p);
/* p was sampled (and is forgotten now), cheaply when it was not. */
static inline int sample_forget(const void *p)
{
	return p && unlikely(sample_maybe(p)) && sample_remove(p);
}

/* A window starts with `mean` (0: not sampled): fresh tables.  0 or
 * -ENOMEM (the tables cannot be mapped: sampling cannot work).  The hooks
 * count down only while sample_mean is set: sample_begin sets it, the end
 * of a window (or a fork child) clears it with sample_begin(0). */
int sample_begin(uint64_t mean);

#endif
