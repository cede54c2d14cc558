/*
 * stack.c - call stacks: unwound by the fast unwinder (fastunwind.c), or by
 * libunwind for a stack it cannot express, interned so an event carries a
 * 4-byte id, each new stack written once to the trace as a STACK record.
 *
 * The table is open addressing over mmap'ed memory, read without locks
 * (an entry is published by a release store of its hash, written last);
 * inserts take rec_lock.  Never symbolized here: frames are raw return
 * addresses, the analyzer resolves them later.
 */
#define UNW_LOCAL_ONLY
#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <libunwind.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "preload/fastunwind.h"
#include "preload/internal.h"
#include "preload/record.h"

#define TAB_BITS   20			/* 1M entries, 24 MiB of address space */
#define TAB_SIZE   (1u << TAB_BITS)
#define TAB_LIMIT  (TAB_SIZE / 4 * 3)	/* stop interning past 75% load */
#define MAX_PROBE  128
#define ARENA_WORDS (8u << 20)		/* 8M frames, 64 MiB of address space */

struct sent {
	uint64_t hash;		/* 0 = empty; published last */
	uint32_t id;
	uint32_t depth;
	uint64_t off;		/* first frame in arena */
};

static struct sent *tab;
static uint64_t *arena;
static uint64_t arena_used;
static uint32_t nstacks;
static uint32_t next_id = 1;
static uint32_t epoch = 1;	/* bumped when the ids are forgotten */
/* The thread's last stack: fu_backtrace says when it is met again. */
static __thread uint32_t last_id, last_epoch;

/*
 * libunwind checks addresses by writing them into a pipe of its own (after
 * reading it empty).  A program that closes every fd (daemons do) and gets
 * the numbers again for a socket of its own would have libunwind block
 * reading that socket, or write into it.  So the pipe's fds are found when
 * libunwind starts (new FIFOs in /proc/self/fd) and checked by inode when
 * a window starts, on the control thread's tick and every 1024 captures per
 * thread; if they are not libunwind's any more, stacks are turned off.
 */
static int uw_fd[2] = { -1, -1 };
static uint64_t uw_ino[2];
static volatile int uw_lost;	/* set once: no more unwinding in this process */

/* The fds (< 1024) that are FIFOs, as a bitmap. */
static void fifo_fds(uint64_t set[16])
{
	memset(set, 0, 16 * sizeof(uint64_t));
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (fd > 2 && fd < 1024 && fd != dirfd(d) && agent_fd_ino(fd, S_IFIFO))
			set[fd / 64] |= 1ull << (fd % 64);
	}
	if (d)
		closedir(d);
}

int stack_fds_ok(void)
{
	for (int i = 0; i < 2 && !uw_lost; i++)
		if (uw_fd[i] >= 0 && !agent_fd_is(uw_fd[i], uw_ino[i], S_IFIFO))
			uw_lost = 1;	/* events keep their format, with stack id 0 */
	return !uw_lost;
}

/*
 * libunwind is loaded here, when stacks are first wanted, not as a
 * dependency of the agent: the attach hold's dlopen then maps the agent
 * alone (libunwind and liblzma are loaded later, on the agent's own thread),
 * and a target whose filesystem lacks libunwind still gets the agent,
 * recording without stacks.
 */
static int (*p_backtrace)(void **, int);
/* libunwind's step-by-step interface: the reference of MFX_UNWIND_CHECK
 * (unw_backtrace's own per-thread frame cache is never flushed, so after a
 * dlclose it may answer for a library that is gone) */
static int (*p_getcontext)(unw_context_t *);
static int (*p_init_local)(unw_cursor_t *, unw_context_t *);
static int (*p_step)(unw_cursor_t *);
static int (*p_get_reg)(unw_cursor_t *, unw_regnum_t, unw_word_t *);
static int (*p_flush)(unw_addr_space_t, unw_word_t, unw_word_t);
static unw_addr_space_t *p_local;

static int load_libunwind(void)
{
	void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return -1;
	int (*set_policy)(unw_addr_space_t, unw_caching_policy_t) =
		(int (*)(unw_addr_space_t, unw_caching_policy_t))dlsym(h, "_ULx86_64_set_caching_policy");
	unw_addr_space_t *local = (unw_addr_space_t *)dlsym(h, "_ULx86_64_local_addr_space");
	p_backtrace = (int (*)(void **, int))dlsym(h, "unw_backtrace");
	if (!p_backtrace)
		return -1;
	*(void **)&p_getcontext = dlsym(h, "_Ux86_64_getcontext");
	*(void **)&p_init_local = dlsym(h, "_ULx86_64_init_local");
	*(void **)&p_step = dlsym(h, "_ULx86_64_step");
	*(void **)&p_get_reg = dlsym(h, "_ULx86_64_get_reg");
	*(void **)&p_flush = dlsym(h, "_Ux86_64_flush_cache");
	p_local = local;
	if (set_policy && local)
		set_policy(*local, UNW_CACHE_PER_THREAD);
	return 0;
}

/*
 * The table and its frame arena are mapped together or not at all: under
 * RLIMIT_AS (or a full address space) the 24 MiB table could be had and
 * the 64 MiB arena not, and a capture that checked only the table copied
 * frames to address 0 (the target died of SIGSEGV on every attach).  One
 * pointer, `ready`, published last, says both are there; every reader
 * checks it.  0, or -ENOENT (no libunwind) / -ENOMEM (no memory): the
 * caller records without stacks and notes why.
 */
static struct sent *volatile ready;

int stack_init(void)
{
	if (ready)
		return 0;
	uint64_t before[16], after[16];
	void *b[2];
	if (!p_backtrace) {
		fifo_fds(before);
		/* libunwind initialises itself here (its pipe is opened) */
		if (load_libunwind())
			return -ENOENT;
		p_backtrace(b, 2);
		fifo_fds(after);
		for (int fd = 3, k = 0; fd < 1024 && k < 2; fd++)
			if ((after[fd / 64] & ~before[fd / 64]) & (1ull << (fd % 64)) &&
			    (uw_ino[k] = agent_fd_ino(fd, S_IFIFO)))
				uw_fd[k++] = fd;
		fu_init();	/* without its table: every stack from libunwind */
		fu_check_init();
	}
	int stale = tab && arena;	/* a reset failed: clear them again */
	if (!tab)
		tab = agent_mmap_anon(TAB_SIZE * sizeof(struct sent));
	if (!arena)
		arena = agent_mmap_anon(ARENA_WORDS * sizeof(uint64_t));
	if (!tab || !arena)
		return -ENOMEM;	/* kept for a later try; `ready` stays NULL */
	if (stale && (agent_mem_clear(tab, TAB_SIZE * sizeof(struct sent)) ||
		      agent_mem_clear(arena, ARENA_WORDS * sizeof(uint64_t))))
		return -ENOMEM;
	__atomic_store_n(&ready, tab, __ATOMIC_RELEASE);
	return 0;
}

/* Forget every stack (a new trace file needs its own definitions).  The
 * memory is zeroed in place, never unmapped: a straggling hook may still
 * be reading it.  0, or -ENOMEM: stacks are off until a later stack_init. */
int stack_reset(void)
{
	int err = 0;
	spin_lock(&rec_lock);
	/* tab and arena stay mapped whatever happens (a straggler may hold
	 * them); only `ready` says whether they may be used. */
	if (ready && (agent_mem_clear(tab, TAB_SIZE * sizeof(struct sent)) ||
		      agent_mem_clear(arena, ARENA_WORDS * sizeof(uint64_t)))) {
		ready = NULL;
		err = -ENOMEM;
	}
	arena_used = 0;
	nstacks = 0;
	next_id = 1;
	__atomic_fetch_add(&epoch, 1, __ATOMIC_RELEASE);
	spin_unlock(&rec_lock);
	return err;
}

/* The multiplies are off the dependency chain (rotate, add: two cycles a
 * frame); collisions only cost a compare. */
static inline uint64_t hash_frames(const uint64_t *f, unsigned n)
{
	uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
	for (unsigned i = 0; i < n; i++)
		h = ((h << 13) | (h >> 51)) + f[i] * 0xff51afd7ed558ccdull;
	h ^= h >> 32;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	return h ? h : 1;
}

static inline int same_frames(const uint64_t *a, const uint64_t *b, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static void write_stack_record(uint32_t id, const uint64_t *f, unsigned n)
{
	uint8_t body[32 + MFX_MAX_DEPTH * 10], out[sizeof(body) + 16];
	uint8_t *p = body;
	p = put_varint(p, id);
	p = put_varint(p, n);
	p = put_varint(p, f[0]);
	for (unsigned i = 1; i < n; i++)
		p = put_varint(p, zigzag((int64_t)(f[i] - f[i - 1])));
	meta_append_locked(out, ext_wrap(out, MFX_EXT_STACK, body, (size_t)(p - body)));
}

/* Slow path: insert under the lock (someone may have won the race). */
static uint32_t insert(const uint64_t *f, unsigned n, uint64_t h)
{
	uint32_t id = 0;
	spin_lock(&rec_lock);
	if (!ready) {
		spin_unlock(&rec_lock);
		return 0;
	}
	uint64_t i = h & (TAB_SIZE - 1);
	for (unsigned probe = 0; probe < MAX_PROBE; probe++, i = (i + 1) & (TAB_SIZE - 1)) {
		struct sent *e = &tab[i];
		if (e->hash == h && e->depth == n && same_frames(arena + e->off, f, n)) {
			id = e->id;
			break;
		}
		if (e->hash)
			continue;
		if (nstacks >= TAB_LIMIT || arena_used + n > ARENA_WORDS)
			break;
		memcpy(arena + arena_used, f, n * 8);
		e->off = arena_used;
		e->depth = n;
		e->id = id = next_id++;
		arena_used += n;
		nstacks++;
		write_stack_record(id, f, n);
		__atomic_store_n(&e->hash, h, __ATOMIC_RELEASE);
		break;
	}
	spin_unlock(&rec_lock);
	/* A new stack may hold a return address in a library loaded since the
	 * last look: check the loader's counters, at most once a millisecond
	 * (it takes the loader's lock; agent_end and exit check once more).
	 * Outside rec_lock, which must stay a leaf lock. */
	static uint64_t last;
	uint64_t now = agent_tsc();
	if (now - last > (1ull << 21)) {
		last = now;
		modules_check();
	}
	return id;
}

/* libunwind's unw_step loop from here (its mi/backtrace.c slow_backtrace):
 * buf[0] = the return address into our caller. */
static __attribute__((noinline)) int step_trace(void **buf, int size)
{
	unw_context_t uc;
	unw_cursor_t c;
	unw_word_t ip;
	int n = 0;
	if (!p_getcontext || !p_init_local || !p_step || !p_get_reg)
		return 0;
	p_getcontext(&uc);
	if (p_init_local(&c, &uc) < 0)
		return 0;
	while (n < size && p_step(&c) > 0 && p_get_reg(&c, UNW_REG_IP, &ip) >= 0)
		buf[n++] = (void *)ip;
	return n;
}

/* A library is gone: libunwind's caches of its unwind info are stale. */
void stack_modules_gone(void)
{
	if (p_flush && p_local)
		p_flush(*p_local, 0, 0);
}

/*
 * A stack the fast unwinder handed over.  unw_backtrace keeps a frame
 * cache per thread that nothing flushes (libunwind 1.6, x86_64/Gtrace.c):
 * once a library was unloaded it may answer with the frames of a library
 * that is gone.  From then on the unw_step loop answers (its caches are
 * flushed with every dlclose); it is ~20x slower, but such stacks are few
 * (signal frames, mostly).  Inlined: buf[0] stays the return address into
 * stack_capture either way.
 */
static inline __attribute__((always_inline)) int fallback(void **buf, int max)
{
	if (likely(!fu_modules_gone()))
		return p_backtrace(buf, max);
	return step_trace(buf, max);
}

/*
 * MFX_UNWIND_CHECK: the reference is libunwind's unw_step loop, fresh after
 * every dlclose, run from one frame deeper (ref[0] is in this function,
 * ref[1] in stack_capture), so ref[i + 1] is buf[i] for i >= 1.  Compared
 * with it: the fast walk's frames, or, for a stack the fast walk handed
 * over, what fallback() answers (from here too: alt[i + 1] is its buf[i]).
 * The trace keeps the reference's answer.
 */
static __attribute__((noinline)) int check_stack(void **buf, int n, int max)
{
	void *ref[MFX_MAX_DEPTH + 9], *alt[MFX_MAX_DEPTH + 9];
	int m = uw_lost ? 0 : step_trace(ref, max + 1);
	if (m < 2)
		return 0;
	if (n >= 0) {
		fu_check_record((const uint64_t *)(buf + 1), n - 1, (const uint64_t *)(ref + 2),
				m - 2, 0);
	} else {
		int k = fallback(alt, max + 1);
		fu_check_record((const uint64_t *)(alt + 2), k < 2 ? 0 : k - 2,
				(const uint64_t *)(ref + 2), m - 2, 1);
	}
	memcpy(buf + 1, ref + 2, (size_t)(m - 2) * sizeof(void *));
	return m - 1;
}

/* Frames of ours above the program's at most (stack_capture, note_alloc,
 * the hook's out-of-line body, the hook). */
#define OWN_FRAMES 8

__attribute__((noinline)) uint32_t stack_capture(const void *ra)
{
	void *buf[MFX_MAX_DEPTH + 8];
	static __thread unsigned ncap;
	if (unlikely(!ready))
		return 0;
	if (unlikely((++ncap & 255) == 0)) {
		if (fu_loader_check())	/* a dlclose the hooks did not see */
			stack_modules_gone();
		if (!(ncap & 1023))
			stack_fds_ok();	/* libunwind's pipe is gone (see above) */
	}
	/* buf[0] is the return address into this function's caller, then
	 * our callers', then ra and the program's stack above it. */
	int max = (int)rec.depth + OWN_FRAMES, same;
	uint32_t ep = __atomic_load_n(&epoch, __ATOMIC_ACQUIRE);
	int n = fu_backtrace(buf, max, &same);
	if (unlikely(fu_check_on)) {
		agent_phdr_enter();
		n = check_stack(buf, n, max);
		agent_phdr_leave();
	}
	else if (unlikely(n < 0) && !uw_lost) {
		agent_phdr_enter();	/* libunwind walks the modules (agentmem.c) */
		n = fallback(buf, max);
		agent_phdr_leave();
	} else if (unlikely(n < 0))
		n = 0;
	else if (same && last_epoch == ep)
		return last_id;
	last_epoch = 0;
	int skip = 1;
	while (skip < n && skip < OWN_FRAMES && buf[skip] != ra)
		skip++;
	if (skip >= n || buf[skip] != ra)
		return 0;	/* cannot happen: ra is on this stack */
	const uint64_t *f = (const uint64_t *)(buf + skip);
	unsigned depth = (unsigned)n - (unsigned)skip;
	if (depth > rec.depth)
		depth = rec.depth;
	uint64_t h = hash_frames(f, depth);
	uint64_t i = h & (TAB_SIZE - 1);
	uint32_t id = 0;
	for (unsigned probe = 0; probe < MAX_PROBE; probe++, i = (i + 1) & (TAB_SIZE - 1)) {
		struct sent *e = &tab[i];
		uint64_t eh = __atomic_load_n(&e->hash, __ATOMIC_ACQUIRE);
		if (eh == h && e->depth == depth && same_frames(arena + e->off, f, depth)) {
			id = e->id;
			break;
		}
		if (!eh)
			break;
	}
	if (!id)
		id = insert(f, depth, h);
	last_id = id;
	last_epoch = ep;
	return id;
}
