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

static void *pass_malloc(size_t n)
{
	if (unlikely(!agent_real.malloc) && early())
		return boot_alloc(n, 16);
	return agent_real.malloc(n);
}

static void *pass_calloc(size_t m, size_t n)
{
	if (unlikely(!agent_real.calloc) && early()) {
		size_t t;
		if (__builtin_mul_overflow(m, n, &t))
			return NULL;
		return boot_alloc(t, 16);	/* the arena is never reused: zeroed */
	}
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

/* ---- hooks ------------------------------------------------------------------------- */

/* Stack of the hook's caller: frames of stack_capture and the hook skipped. */
#define STACK() (rec.stacks ? stack_capture(2) : 0)

/* One record after the real call returned (its time taken now).  Always
 * inlined into the hook, so STACK() still finds the hook's caller two frames
 * up. */
static inline __attribute__((always_inline)) void note_alloc(unsigned kind, uint64_t size,
							     uint64_t align, const void *p)
{
	uint64_t ts = rec_ts();
	struct mfx_thread *t = rec_enter();
	if (likely(t)) {
		rec_alloc(t, kind, ts, size, align, p, STACK());
		rec_leave(t);
		/* launch: the allocator's own figures now and then (allocator.c) */
		if (unlikely(alloc_sampling) && ((t->events & 1023) == 0 || size >= (1u << 20)))
			alloc_tick();
	}
}

static inline __attribute__((always_inline)) void note_realloc(unsigned kind, uint64_t size,
							       const void *old, const void *p)
{
	uint64_t ts = rec_ts();
	struct mfx_thread *t = rec_enter();
	if (likely(t)) {
		rec_realloc(t, kind, ts, size, old, p, STACK());
		rec_leave(t);
	}
}

/* FREE of p at ts (taken before the block could be reused). */
static inline void note_free(uint64_t ts, const void *p)
{
	struct mfx_thread *t = rec_enter();
	if (likely(t)) {
		rec_free(t, ts, p);
		rec_leave(t);
	}
}

/* ---- --sample: only sampled calls are recorded (sample.h) ---------------------------
 *
 * An unsampled call costs the countdown (allocations) or one filter load
 * (frees); tls_busy is not even set.  Always inlined into the hook, like
 * note_alloc, so STACK() still finds the hook's caller two frames up. */

static inline __attribute__((always_inline)) void *sampled(unsigned kind, uint64_t size,
							   uint64_t align, void *p)
{
	if (likely(!p || !sample_take(size)))
		return p;
	tls_busy = 1;
	if (sample_insert(p))
		note_alloc(kind, size, align, p);
	tls_busy = 0;
	return p;
}

/* After the real realloc: `was` = old was sampled (and left the set before
 * the call, whose timestamp is ts).  The new block is sampled on its own
 * bytes; an old one that was not is recorded as realloc(NULL, n). */
static inline __attribute__((always_inline)) void *resampled(unsigned kind, void *old,
							     uint64_t size, void *p, int was,
							     uint64_t ts)
{
	if (unlikely(!p && size && old)) {	/* failed: old still stands */
		if (was)
			sample_insert(old);
		return p;
	}
	int take = p && sample_take(size);
	if (likely(!take && !was))
		return p;
	tls_busy = 1;
	if (take && !sample_insert(p))
		take = 0;
	if (take)
		note_realloc(kind, size, was ? old : NULL, p);
	else if (!p)
		note_realloc(kind, size, old, NULL);	/* realloc(old, 0) freed it */
	else
		note_free(ts, old);
	tls_busy = 0;
	return p;
}

/* m * n, saturated (the recorded size of an overflowing calloc). */
static inline size_t sat_mul(size_t m, size_t n)
{
	size_t total;
	return __builtin_mul_overflow(m, n, &total) ? SIZE_MAX : total;
}

void *hook_malloc(size_t n)
{
	if (unlikely(tls_busy) || !rec.active)
		return pass_malloc(n);
	if (sample_mean)
		return sampled(MFX_K_MALLOC, n, 0, agent_real.malloc(n));
	tls_busy = 1;
	void *p = agent_real.malloc(n);
	note_alloc(MFX_K_MALLOC, n, 0, p);
	tls_busy = 0;
	return p;
}

void hook_free(void *p)
{
	if (unlikely(!p || is_boot(p)))
		return;
	if (unlikely(tls_busy) || !rec.active) {
		if (likely(agent_real.free))
			agent_real.free(p);
		return;
	}
	if (sample_mean && likely(!sample_maybe(p))) {
		agent_real.free(p);
		return;
	}
	tls_busy = 1;
	if (!sample_mean || sample_remove(p))
		note_free(rec_ts(), p);	/* before the block can be reused */
	agent_real.free(p);
	tls_busy = 0;
}

void *hook_calloc(size_t m, size_t n)
{
	if (unlikely(tls_busy) || !rec.active)
		return pass_calloc(m, n);
	if (sample_mean)
		return sampled(MFX_K_CALLOC, sat_mul(m, n), 0, agent_real.calloc(m, n));
	tls_busy = 1;
	void *p = agent_real.calloc(m, n);
	note_alloc(MFX_K_CALLOC, sat_mul(m, n), 0, p);
	tls_busy = 0;
	return p;
}

void *hook_realloc(void *old, size_t n)
{
	if (unlikely(tls_busy) || unlikely(is_boot(old)) || !rec.active)
		return pass_realloc(old, n);
	if (sample_mean) {
		int was = sample_forget(old);
		uint64_t ts = was ? rec_ts() : 0;
		return resampled(MFX_K_REALLOC, old, n, agent_real.realloc(old, n), was, ts);
	}
	tls_busy = 1;
	void *p = agent_real.realloc(old, n);
	note_realloc(MFX_K_REALLOC, n, old, p);
	tls_busy = 0;
	return p;
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

void *hook_reallocarray(void *old, size_t m, size_t n)
{
	if (unlikely(tls_busy) || unlikely(is_boot(old)) || !rec.active) {
		size_t total;
		if (__builtin_mul_overflow(m, n, &total)) {
			errno = ENOMEM;
			return NULL;
		}
		if (unlikely(is_boot(old)) || unlikely(!agent_real.realloc))
			return pass_realloc(old, total);
		return do_reallocarray(old, m, n);
	}
	if (sample_mean) {
		int was = sample_forget(old);
		uint64_t ts = was ? rec_ts() : 0;
		return resampled(MFX_K_REALLOCARRAY, old, sat_mul(m, n), do_reallocarray(old, m, n),
				 was, ts);
	}
	tls_busy = 1;
	void *p = do_reallocarray(old, m, n);
	note_realloc(MFX_K_REALLOCARRAY, sat_mul(m, n), old, p);
	tls_busy = 0;
	return p;
}

int hook_posix_memalign(void **out, size_t align, size_t n)
{
	if (unlikely(tls_busy) || !rec.active) {
		if (unlikely(!agent_real.posix_memalign) && early()) {
			*out = boot_alloc(n, align);
			return *out ? 0 : ENOMEM;
		}
		return agent_real.posix_memalign(out, align, n);
	}
	if (sample_mean) {
		int r = agent_real.posix_memalign(out, align, n);
		if (!r)
			sampled(MFX_K_POSIX_MEMALIGN, n, align, *out);
		return r;
	}
	tls_busy = 1;
	int r = agent_real.posix_memalign(out, align, n);
	note_alloc(MFX_K_POSIX_MEMALIGN, n, align, r ? NULL : *out);
	tls_busy = 0;
	return r;
}

void *hook_aligned_alloc(size_t align, size_t n)
{
	if (unlikely(tls_busy) || !rec.active) {
		if (unlikely(!agent_real.aligned_alloc) && early())
			return boot_alloc(n, align);
		return agent_real.aligned_alloc(align, n);
	}
	if (sample_mean)
		return sampled(MFX_K_ALIGNED_ALLOC, n, align, agent_real.aligned_alloc(align, n));
	tls_busy = 1;
	void *p = agent_real.aligned_alloc(align, n);
	note_alloc(MFX_K_ALIGNED_ALLOC, n, align, p);
	tls_busy = 0;
	return p;
}

void *hook_memalign(size_t align, size_t n)
{
	if (unlikely(tls_busy) || !rec.active)
		return pass_memalign(align, n);
	if (sample_mean)
		return sampled(MFX_K_MEMALIGN, n, align, agent_real.memalign(align, n));
	tls_busy = 1;
	void *p = agent_real.memalign(align, n);
	note_alloc(MFX_K_MEMALIGN, n, align, p);
	tls_busy = 0;
	return p;
}

void *hook_valloc(size_t n)
{
	if (unlikely(tls_busy) || !rec.active) {
		if (unlikely(!agent_real.valloc) && early())
			return boot_alloc(n, 4096);
		return agent_real.valloc(n);
	}
	if (sample_mean)
		return sampled(MFX_K_VALLOC, n, 0, agent_real.valloc(n));
	tls_busy = 1;
	void *p = agent_real.valloc(n);
	note_alloc(MFX_K_VALLOC, n, 0, p);
	tls_busy = 0;
	return p;
}

void *hook_pvalloc(size_t n)
{
	if (unlikely(tls_busy) || !rec.active) {
		if (unlikely(!agent_real.pvalloc) && early())
			return boot_alloc((n + 4095) & ~(size_t)4095, 4096);
		return agent_real.pvalloc(n);
	}
	if (sample_mean)
		return sampled(MFX_K_PVALLOC, n, 0, agent_real.pvalloc(n));
	tls_busy = 1;
	void *p = agent_real.pvalloc(n);
	note_alloc(MFX_K_PVALLOC, n, 0, p);
	tls_busy = 0;
	return p;
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
