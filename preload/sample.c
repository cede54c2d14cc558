/*
 * sample.c - `--sample BYTES` (sample.h): the per-thread countdown's
 * exponential draws, and the set of sampled blocks that says which frees
 * to record.
 *
 * The draw: bytes to the next sample point = -mean * ln(u), u uniform in
 * (0, 1] from a per-thread xorshift64* generator (seeded from
 * MFX_SAMPLE_SEED when set, for reproducible runs; else from the TSC).
 * The logarithm is our own (a few multiplies): the agent does not pull
 * libm into a process that has none.  A call of n bytes is thus sampled
 * with probability 1 - exp(-n/mean), independently of every other call:
 * the memorylessness of the exponential makes "a new countdown after each
 * sample" exact.
 *
 * The set: open addressing over 2^17 pointers in mmap'ed memory (1 MiB,
 * touched as used), a CAS to claim an empty or dead slot,
 * a store to mark a slot dead; each pointer lies within SET_PROBE slots of
 * its hash.  A sampled block is forgotten before the real free returns it
 * to the allocator (which may hand it to another thread at once), and is
 * inserted before the allocating call returns it: a pointer's insert and
 * remove are ordered by the program's own hand-over of the block.  In
 * front of it, a counting filter of 16 KiB (one byte per 4 KiB page, in
 * address order modulo 64 MiB, saturating at 255): a free whose byte is 0
 * costs one load, of a line the neighbouring frees use too.  Both are
 * zeroed when a window starts (never unmapped: a hook of the last window
 * may still read them).  A full set (some 98k live sampled blocks: ~48 GiB
 * live at 512k) leaves new blocks unsampled; they are counted
 * (sample_lost) and the window ends with a DROPPED mark saying so.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "preload/internal.h"
#include "preload/sample.h"

#define SET_BITS 17	/* 1 MiB: its pages are touched at random, and a first
			   touch costs a page fault (~14 us on a VM) */
#define SET_SIZE (1u << SET_BITS)
#define SET_PROBE 64
#define SET_DEAD 1ull	/* a slot once used (pointers are 16-aligned: never 1) */
#define FILTER_SIZE (1u << SAMPLE_FILTER_BITS)

uint64_t sample_mean;
uint32_t sample_gen;
uint8_t *sample_filter;
__thread struct sample_tls tls_sample __attribute__((tls_model("initial-exec")));
static __thread uint64_t tls_rng __attribute__((tls_model("initial-exec")));

static uint64_t *set;
static uint64_t seed;
static uint32_t nseeded;

/* ln(x), x in (0, 1]: x = m * 2^e, m in [1, 2); ln(m) = 2 atanh(s) with
 * s = (m-1)/(m+1) < 1/3, the series to s^13: relative error < 1e-8. */
static double ln_unit(double x)
{
	union {
		double d;
		uint64_t u;
	} v = { .d = x };
	int e = (int)((v.u >> 52) & 0x7ff) - 1023;
	v.u = (v.u & ((1ull << 52) - 1)) | (1023ull << 52);
	double s = (v.d - 1) / (v.d + 1), s2 = s * s, t = s, sum = 0;
	for (int k = 1; k <= 13; k += 2) {
		sum += t / k;
		t *= s2;
	}
	return e * 0.69314718055994530942 + 2 * sum;
}

/* A well-mixed start for each thread's generator, from (seed, thread). */
static uint64_t splitmix(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static uint64_t rng_next(void)
{
	uint64_t x = tls_rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	tls_rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* Bytes to the next sample point: exponential, mean sample_mean, >= 1. */
static int64_t draw(void)
{
	double u = (double)((rng_next() >> 11) + 1) * (1.0 / 9007199254740992.0);
	double d = -(double)sample_mean * ln_unit(u);
	if (d < 1)
		return 1;
	return d > 4e18 ? (int64_t)4e18 : (int64_t)d;
}

int sample_draw(uint64_t n)
{
	if (tls_sample.gen != sample_gen) {
		/* the thread's first draw of this window: its own stream */
		uint32_t k = __atomic_fetch_add(&nseeded, 1, __ATOMIC_RELAXED);
		tls_rng = splitmix(seed + 0x9E3779B97F4A7C15ull * (k + 1)) | 1;
		tls_sample.gen = sample_gen;
		int64_t left = draw() - (int64_t)n;
		tls_sample.left = left;
		if (left > 0)
			return 0;
	}
	tls_sample.left = draw();
	return 1;
}

static void filter_add(const void *p, int d)
{
	uint8_t *c = sample_filter_of(p);
	uint8_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
	do {
		if (v == 255)	/* saturated: stays "maybe" for good */
			return;
	} while (!__atomic_compare_exchange_n(c, &v, (uint8_t)(v + d), 0, __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
}

uint64_t sample_lost;

int sample_insert(const void *p)
{
	uint64_t key = (uint64_t)(uintptr_t)p;
	uint64_t i = sample_hash(p) >> (64 - SET_BITS);
	for (unsigned probe = 0; probe < SET_PROBE; probe++, i = (i + 1) & (SET_SIZE - 1)) {
		uint64_t v = __atomic_load_n(&set[i], __ATOMIC_RELAXED);
		if (v > SET_DEAD)
			continue;
		if (__atomic_compare_exchange_n(&set[i], &v, key, 0, __ATOMIC_RELEASE,
						__ATOMIC_RELAXED)) {
			filter_add(p, 1);
			return 1;
		}
	}
	__atomic_fetch_add(&sample_lost, 1, __ATOMIC_RELAXED);
	return 0;
}

int sample_remove(const void *p)
{
	uint64_t key = (uint64_t)(uintptr_t)p;
	uint64_t i = sample_hash(p) >> (64 - SET_BITS);
	for (unsigned probe = 0; probe < SET_PROBE; probe++, i = (i + 1) & (SET_SIZE - 1)) {
		uint64_t v = __atomic_load_n(&set[i], __ATOMIC_ACQUIRE);
		if (v == key) {
			__atomic_store_n(&set[i], SET_DEAD, __ATOMIC_RELAXED);
			filter_add(p, -1);
			return 1;
		}
		if (!v)
			return 0;
	}
	return 0;
}

static uint64_t env_u64(const char *name)
{
	const char *s = getenv(name);
	uint64_t v = 0;
	for (; s && *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (uint64_t)(*s - '0');
	return v;
}

/* The last window's table, zeroed.  MADV_DONTNEED drops our private pages
 * (the agent's memfd behind them is never written: zeros come back); it
 * cannot leave the range unmapped, as a failed MAP_FIXED could. */
static void zero(void *p, size_t len)
{
	if (madvise(p, len, MADV_DONTNEED))
		memset(p, 0, len);
}

int sample_begin(uint64_t mean)
{
	__atomic_store_n(&sample_mean, 0, __ATOMIC_SEQ_CST);
	if (!mean)
		return 0;
	if (!set)
		set = agent_mmap_anon(SET_SIZE * sizeof(uint64_t));
	else
		zero(set, SET_SIZE * sizeof(uint64_t));
	if (!sample_filter)
		sample_filter = agent_mmap_anon(FILTER_SIZE);
	else
		zero(sample_filter, FILTER_SIZE);
	if (!set || !sample_filter)
		return -ENOMEM;
	sample_lost = 0;
	seed = env_u64("MFX_SAMPLE_SEED");
	if (!seed)
		seed = agent_tsc();
	nseeded = 0;
	__atomic_fetch_add(&sample_gen, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&sample_mean, mean, __ATOMIC_SEQ_CST);
	return 0;
}
