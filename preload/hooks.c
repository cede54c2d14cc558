/*
 * hooks.c - the hooked allocation functions.  In launch mode they interpose
 * the program's malloc family (LD_PRELOAD); in attach mode the GOT slots of
 * every module point at them (got.c).  Each one: reentrancy guard, the real
 * call, one record.  Allocation layout is never changed: every byte comes
 * from the real allocator, with the same sizes and alignments asked for.
 *
 * Calls that arrive before the real functions are known (inside dlsym while
 * resolving them) are served by a small bootstrap arena that free() and
 * realloc() recognise and never hand to the real allocator.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "preload/fastunwind.h"
#include "preload/internal.h"
#include "preload/record.h"
#include "preload/sample.h"

/* ---- bootstrap arena ------------------------------------------------------------ */

#define BOOT_SIZE (256u * 1024u)
static uint8_t boot[BOOT_SIZE] __attribute__((aligned(64)));
static size_t boot_used;

static void *boot_alloc(size_t n, size_t align)
{
	if (align < 16)
		align = 16;
	size_t u = __atomic_load_n(&boot_used, __ATOMIC_RELAXED), off;
	do {
		off = (u + 16 + align - 1) & ~(align - 1);
		if (off + n > BOOT_SIZE || off + n < off)
			return NULL;
	} while (!__atomic_compare_exchange_n(&boot_used, &u, off + n, 0, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	((size_t *)(boot + off))[-1] = n;	/* size, for realloc */
	return boot + off;
}

static inline int is_boot(const void *p)
{
	return (const uint8_t *)p >= boot && (const uint8_t *)p < boot + BOOT_SIZE;
}

/* The real functions are not known yet: resolve them, unless we are inside
 * the resolution (then the arena serves). */
static int early(void)
{
	if (!tls_busy && !agent_real.malloc)
		agent_resolve(0);
	return !agent_real.malloc;
}

/* ---- pass-through (not recording, or the agent's own calls) ----------------------- */

/* (The early cases out of line: the hooks' common paths need no frame.) */
static __attribute__((noinline)) void *early_malloc(size_t n)
{
	if (early())
		return boot_alloc(n, 16);
	return agent_real.malloc(n);
}

static inline void *pass_malloc(size_t n)
{
	if (unlikely(!agent_real.malloc))
		return early_malloc(n);
	return agent_real.malloc(n);
}

static __attribute__((noinline)) void *early_calloc(size_t m, size_t n)
{
	if (early()) {
		size_t t;
		if (__builtin_mul_overflow(m, n, &t))
			return NULL;
		return boot_alloc(t, 16);	/* the arena is never reused: zeroed */
	}
	return agent_real.calloc(m, n);
}

static inline void *pass_calloc(size_t m, size_t n)
{
	if (unlikely(!agent_real.calloc))
		return early_calloc(m, n);
	return agent_real.calloc(m, n);
}

static void *boot_realloc(void *p, size_t n)
{
	void *q = pass_malloc(n);
	if (q) {
		size_t old = ((size_t *)p)[-1];
		memcpy(q, p, old < n ? old : n);
	}
	return q;
}

static void *pass_realloc(void *p, size_t n)
{
	if (unlikely(is_boot(p)))
		return boot_realloc(p, n);
	if (unlikely(!agent_real.realloc) && early())
		return NULL;
	return agent_real.realloc(p, n);
}

static void *pass_memalign(size_t align, size_t n)
{
	if (unlikely(!agent_real.memalign) && early())
		return boot_alloc(n, align);
	return agent_real.memalign(align, n);
}

/* ---- recording, out of line ------------------------------------------------------------
 *
 * The hooks below are thin: passing through, or an unsampled call, costs a
 * few loads and a jump to the real function, without a frame of their own.
 * Everything that records is out of line, and finds the program's stack by
 * the return address the hook was called with (`ra`, CALLER()): the frames
 * above it -- ours -- are cut, whatever the compiler inlined or turned into
 * jumps.
 */
#define CALLER() __builtin_return_address(0)
/* Recording and the real call is known: 1.  (tls_busy: a call of the
 * agent's own, or of libunwind, dlsym, ...: straight through.) */
#define RECORDING() (likely(!tls_busy) && rec.active)
#define STACK(ra) (rec.stacks ? stack_capture(ra) : 0)

/* One record after the real call returned (its time taken now). */
static __attribute__((noinline)) void note_alloc(unsigned kind, uint64_t size, uint64_t align,
						 const void *p, const void *ra)
{
	uint64_t ts = rec_ts();
	struct mfx_thread *t = rec_enter();
	if (likely(t)) {
		rec_alloc(t, kind, ts, size, align, p, STACK(ra));
		rec_leave(t);
		/* launch: the allocator's own figures now and then (allocator.c) */
		if (unlikely(alloc_sampling) && ((t->events & 1023) == 0 || size >= (1u << 20)))
			alloc_tick();
	}
}

static __attribute__((noinline)) void note_realloc(unsigned kind, uint64_t size, const void *old,
						   const void *p, const void *ra)
{
	uint64_t ts = rec_ts();
	struct mfx_thread *t = rec_enter();
	if (likely(t)) {
		rec_realloc(t, kind, ts, size, old, p, STACK(ra));
		rec_leave(t);
	}
}

/* FREE of p at ts (taken before the block could be reused). */
static __attribute__((noinline)) void note_free(uint64_t ts, const void *p)
{
	struct mfx_thread *t = rec_enter();
	if (likely(t)) {
		rec_free(t, ts, p);
		rec_leave(t);
	}
}

/* m * n, saturated (the recorded size of an overflowing calloc). */
static inline size_t sat_mul(size_t m, size_t n)
{
	size_t total;
	return __builtin_mul_overflow(m, n, &total) ? SIZE_MAX : total;
}

static void *do_reallocarray(void *old, size_t m, size_t n)
{
	if (agent_real.reallocarray)
		return agent_real.reallocarray(old, m, n);
	size_t total;
	if (__builtin_mul_overflow(m, n, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return agent_real.realloc(old, total);
}

/*
 * Every call of an allocating function, recorded: the kinds that return a
 * pointer share one body (the real call chosen by kind); posix_memalign,
 * realloc and reallocarray have their own.  With --sample, `sampled` calls
 * only (sample.h): the countdown said yes before the call.
 */
static __attribute__((noinline)) void *alloc_call(unsigned kind, size_t a, size_t b,
						  const void *ra)
{
	tls_busy = 1;
	void *p;
	uint64_t size = b, align = 0;
	switch (kind) {
	case MFX_K_MALLOC: p = agent_real.malloc(b); break;
	case MFX_K_CALLOC: p = agent_real.calloc(a, b); size = sat_mul(a, b); break;
	case MFX_K_ALIGNED_ALLOC: p = agent_real.aligned_alloc(a, b); align = a; break;
	case MFX_K_MEMALIGN: p = agent_real.memalign(a, b); align = a; break;
	case MFX_K_VALLOC: p = agent_real.valloc(b); break;
	default: p = agent_real.pvalloc(b); break;
	}
	/* sampled: only a block in the set has its free recorded */
	if (!sample_mean || (p && sample_insert(p)))
		note_alloc(kind, size, align, p, ra);
	tls_busy = 0;
	return p;
}

static __attribute__((noinline)) int memalign_call(void **out, size_t align, size_t n,
						   const void *ra)
{
	tls_busy = 1;
	int r = agent_real.posix_memalign(out, align, n);
	if (!sample_mean || (!r && sample_insert(*out)))
		note_alloc(MFX_K_POSIX_MEMALIGN, n, align, r ? NULL : *out, ra);
	tls_busy = 0;
	return r;
}

/*
 * realloc and reallocarray.  Sampled (sample_mean): `was` = old was sampled
 * (it left the set before the call, whose time is ts), `take` = the
 * countdown picked the new block.  An old block that was not sampled is
 * recorded as realloc(NULL, n); a sampled one whose new block is not, as
 * its free.
 */
static __attribute__((noinline)) void *realloc_call(unsigned kind, void *old, size_t m, size_t n,
						    int was, int take, const void *ra)
{
	tls_busy = 1;
	uint64_t ts = rec_ts();
	void *p = kind == MFX_K_REALLOC ? agent_real.realloc(old, n) : do_reallocarray(old, m, n);
	uint64_t size = kind == MFX_K_REALLOC ? n : sat_mul(m, n);
	if (!sample_mean) {
		note_realloc(kind, size, old, p, ra);
	} else if (!p && size && old) {	/* failed: old still stands */
		if (was)
			sample_insert(old);
	} else if (take && p && sample_insert(p)) {
		note_realloc(kind, size, was ? old : NULL, p, ra);
	} else if (was) {
		if (p)
			note_free(ts, old);
		else
			note_realloc(kind, size, old, NULL, ra);	/* realloc(old, 0) freed it */
	}
	tls_busy = 0;
	return p;
}

static __attribute__((noinline)) void free_call(void *p)
{
	tls_busy = 1;
	if (!sample_mean || sample_remove(p))
		note_free(rec_ts(), p);	/* before the block can be reused */
	agent_real.free(p);
	tls_busy = 0;
}

/* --sample: the countdown reached zero (or is of another window): draw,
 * then record or pass the call through. */
static __attribute__((noinline)) void *alloc_drawn(unsigned kind, size_t a, size_t b,
						   const void *ra)
{
	if (sample_draw(kind == MFX_K_CALLOC ? sat_mul(a, b) : b) && RECORDING())
		return alloc_call(kind, a, b, ra);
	switch (kind) {
	case MFX_K_MALLOC: return pass_malloc(b);
	case MFX_K_CALLOC: return pass_calloc(a, b);
	default: return pass_memalign(a, b);	/* the rarer kinds take the slow way */
	}
}

/* ---- hooks ---------------------------------------------------------------------------- */


/*
 * With --sample the countdown comes first: sample_mean is set only while a
 * sampled window records (an allocation of the agent's own, tls_busy, may
 * then count; one it picks passes through unrecorded below).
 */
void *hook_malloc(size_t n)
{
	if (likely(sample_mean)) {	/* laid out first: its every call counts */
		if (likely(sample_skip(n)))
			return agent_real.malloc(n);
		return alloc_drawn(MFX_K_MALLOC, 0, n, CALLER());
	}
	if (!RECORDING())
		return pass_malloc(n);
	return alloc_call(MFX_K_MALLOC, 0, n, CALLER());
}

/* Sampled, nearly every free goes straight through (the filter says "not
 * sampled"): the fewest tests first.  sample_mean is set only once the
 * real functions are known; free(NULL) is the real free's no-op too. */
void hook_free(void *p)
{
	if (likely(sample_mean) && likely(!sample_maybe(p)) && likely(!is_boot(p))) {
		agent_real.free(p);
		return;
	}
	if (unlikely(!p || is_boot(p)))
		return;
	if ((sample_mean && likely(!sample_maybe(p))) || !RECORDING()) {
		if (likely(agent_real.free))
			agent_real.free(p);
		return;
	}
	free_call(p);
}

void *hook_calloc(size_t m, size_t n)
{
	if (sample_mean) {
		if (likely(sample_skip(sat_mul(m, n))))
			return agent_real.calloc(m, n);
		return alloc_drawn(MFX_K_CALLOC, m, n, CALLER());
	}
	if (!RECORDING())
		return pass_calloc(m, n);
	return alloc_call(MFX_K_CALLOC, m, n, CALLER());
}

void *hook_realloc(void *old, size_t n)
{
	if (!RECORDING() || unlikely(is_boot(old)))
		return pass_realloc(old, n);
	int was = 0, take = 0;
	if (sample_mean) {
		was = sample_forget(old);
		take = sample_take(n);
		if (likely(!was && !take))
			return agent_real.realloc(old, n);
	}
	return realloc_call(MFX_K_REALLOC, old, 1, n, was, take, CALLER());
}

void *hook_reallocarray(void *old, size_t m, size_t n)
{
	if (!RECORDING() || unlikely(is_boot(old))) {
		size_t total;
		if (__builtin_mul_overflow(m, n, &total)) {
			errno = ENOMEM;
			return NULL;
		}
		if (unlikely(is_boot(old)) || unlikely(!agent_real.realloc))
			return pass_realloc(old, total);
		return do_reallocarray(old, m, n);
	}
	int was = 0, take = 0;
	if (sample_mean) {
		was = sample_forget(old);
		take = sample_take(sat_mul(m, n));
		if (likely(!was && !take))
			return do_reallocarray(old, m, n);
	}
	return realloc_call(MFX_K_REALLOCARRAY, old, m, n, was, take, CALLER());
}

int hook_posix_memalign(void **out, size_t align, size_t n)
{
	if (!RECORDING()) {
		if (unlikely(!agent_real.posix_memalign) && early()) {
			*out = boot_alloc(n, align);
			return *out ? 0 : ENOMEM;
		}
		return agent_real.posix_memalign(out, align, n);
	}
	if (sample_mean && likely(!sample_take(n)))
		return agent_real.posix_memalign(out, align, n);
	return memalign_call(out, align, n, CALLER());
}

void *hook_aligned_alloc(size_t align, size_t n)
{
	if (!RECORDING()) {
		if (unlikely(!agent_real.aligned_alloc) && early())
			return boot_alloc(n, align);
		return agent_real.aligned_alloc(align, n);
	}
	if (sample_mean && likely(!sample_take(n)))
		return agent_real.aligned_alloc(align, n);
	return alloc_call(MFX_K_ALIGNED_ALLOC, align, n, CALLER());
}

void *hook_memalign(size_t align, size_t n)
{
	if (!RECORDING())
		return pass_memalign(align, n);
	if (sample_mean && likely(!sample_take(n)))
		return agent_real.memalign(align, n);
	return alloc_call(MFX_K_MEMALIGN, align, n, CALLER());
}

void *hook_valloc(size_t n)
{
	if (!RECORDING()) {
		if (unlikely(!agent_real.valloc) && early())
			return boot_alloc(n, 4096);
		return agent_real.valloc(n);
	}
	if (sample_mean && likely(!sample_take(n)))
		return agent_real.valloc(n);
	return alloc_call(MFX_K_VALLOC, 0, n, CALLER());
}

void *hook_pvalloc(size_t n)
{
	if (!RECORDING()) {
		if (unlikely(!agent_real.pvalloc) && early())
			return boot_alloc((n + 4095) & ~(size_t)4095, 4096);
		return agent_real.pvalloc(n);
	}
	if (sample_mean && likely(!sample_take(n)))
		return agent_real.pvalloc(n);
	return alloc_call(MFX_K_PVALLOC, 0, n, CALLER());
}

/* dlclose: the fast unwinder must not use rules of a library that is gone
 * (fastunwind.c).  Not a recorded call; hooked whether recording or not. */
int hook_dlclose(void *h)
{
	int (*real)(void *) = agent_real.dlclose;
	if (unlikely(!real)) {
		int busy = tls_busy;
		tls_busy = 1;	/* dlsym may allocate */
		*(void **)&real = dlsym(RTLD_NEXT, "dlclose");
		tls_busy = busy;
		if (!real)
			return -1;
	}
	fu_dlclose_begin();
	int r = real(h);
	stack_modules_gone();
	fu_dlclose_end();
	return r;
}

/* The exported names are aliases: LD_PRELOAD interposes them, and the table
 * below names the hidden originals, so that in a library dlopen()ed into a
 * live process (where the global "malloc" is libc's) it still points here. */
#define EXPORT_ALIAS(ret, name, args) \
	MFX_EXPORT ret name args __attribute__((alias("hook_" #name)))
EXPORT_ALIAS(void *, malloc, (size_t n));
EXPORT_ALIAS(void, free, (void *p));
EXPORT_ALIAS(void *, calloc, (size_t m, size_t n));
EXPORT_ALIAS(void *, realloc, (void *old, size_t n));
EXPORT_ALIAS(void *, reallocarray, (void *old, size_t m, size_t n));
EXPORT_ALIAS(int, posix_memalign, (void **out, size_t align, size_t n));
EXPORT_ALIAS(void *, aligned_alloc, (size_t align, size_t n));
EXPORT_ALIAS(void *, memalign, (size_t align, size_t n));
EXPORT_ALIAS(void *, valloc, (size_t n));
EXPORT_ALIAS(void *, pvalloc, (size_t n));
EXPORT_ALIAS(int, dlclose, (void *h));

const struct agent_hook agent_hooks[] = {
	{ "malloc", (void *)hook_malloc },
	{ "free", (void *)hook_free },
	{ "calloc", (void *)hook_calloc },
	{ "realloc", (void *)hook_realloc },
	{ "reallocarray", (void *)hook_reallocarray },
	{ "posix_memalign", (void *)hook_posix_memalign },
	{ "aligned_alloc", (void *)hook_aligned_alloc },
	{ "memalign", (void *)hook_memalign },
	{ "valloc", (void *)hook_valloc },
	{ "pvalloc", (void *)hook_pvalloc },
	{ "dlclose", (void *)hook_dlclose },
	{ NULL, NULL },
};
