/*
 * agentmem.c - the agent's own base: spinlocks, clocks, and its memory (a
 * private mapping of a memfd, or anonymous memory), all without malloc.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/memfd.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "preload/internal.h"
#include "preload/record.h"

void spin_lock(volatile int *l)
{
	for (unsigned n = 0; __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE); n++) {
		if (n < 64)
			__builtin_ia32_pause();
		else
			sched_yield();
	}
}

void spin_unlock(volatile int *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

uint64_t agent_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t agent_tsc(void)
{
	return __rdtsc();
}

/*
 * The agent's own memory (thread pool, stack table, module list) is a
 * private mapping of a memfd named "mfx-agent": zero pages until written,
 * copied on fork like anonymous memory, but shown in smaps under that name
 * so mfx never counts it as the target's heap.  (Naming anonymous memory with
 * PR_SET_VMA_ANON_NAME needs CONFIG_ANON_VMA_NAME, which many kernels lack.)
 */
#define AGENT_MEMFD_SIZE (256ull << 20)	/* sparse: the largest table we map */
static int agent_memfd = -1;
static uint64_t agent_memfd_ino;

uint64_t agent_fd_ino(int fd, unsigned type)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || (type && (st.st_mode & S_IFMT) != type))
		return 0;
	return (uint64_t)st.st_ino;
}

/* Our memfd, or a new one if the program closed ours (agent_fd_is). */
static int memfd_get(void)
{
	if (agent_memfd >= 0 && !agent_fd_is(agent_memfd, agent_memfd_ino, S_IFREG))
		agent_memfd = -1;
	if (agent_memfd < 0) {
		int fd = (int)syscall(SYS_memfd_create, "mfx-agent", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, (off_t)AGENT_MEMFD_SIZE)) {
			close(fd);
			fd = -1;
		}
		agent_memfd = fd;
		agent_memfd_ino = agent_fd_ino(fd, S_IFREG);
	}
	return agent_memfd;
}

/* Between recordings the agent keeps no fd of its memory: the mappings
 * keep the memfd's pages alive, and the next mapping opens a new one. */
void agent_memfd_release(void)
{
	if (agent_memfd >= 0 && agent_fd_is(agent_memfd, agent_memfd_ino, S_IFREG))
		close(agent_memfd);
	agent_memfd = -1;
}

/*
 * Address space is the program's first.  Under RLIMIT_AS the agent's own
 * tables (a 32 MiB spool, 88 MiB of stack table) could take the headroom
 * the program needs, and its own mallocs would fail: a new mapping of the
 * agent must leave at least AS_RESERVE (or an eighth of the limit) free.
 * 1 if len bytes fit so, else 0 with errno ENOMEM (the caller degrades).
 */
#define AS_RESERVE (32ull << 20)

int agent_as_room(size_t len)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_AS, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return 1;
	char buf[64];
	if (agent_read_small("/proc/self/statm", buf, sizeof(buf)) <= 0)
		return 1;	/* cannot tell: let mmap decide */
	uint64_t pages = 0;
	for (char *p = buf; *p >= '0' && *p <= '9'; p++)
		pages = pages * 10 + (uint64_t)(*p - '0');
	uint64_t reserve = rl.rlim_cur / 8 > AS_RESERVE ? rl.rlim_cur / 8 : AS_RESERVE;
	if (pages * 4096 + len + reserve <= rl.rlim_cur)
		return 1;
	errno = ENOMEM;
	return 0;
}

/* Fresh zeroed memory at `fixed` (replacing what is there), or anywhere. */
static void *agent_map(void *fixed, size_t len)
{
	if (!fixed && !agent_as_room(len))
		return NULL;
	int fd = len <= AGENT_MEMFD_SIZE ? memfd_get() : -1;
	int fl = MAP_PRIVATE | MAP_NORESERVE | (fixed ? MAP_FIXED : 0);
	void *p = fd >= 0 ? mmap(fixed, len, PROT_READ | PROT_WRITE, fl, fd, 0) : MAP_FAILED;
	if (p == MAP_FAILED)
		p = mmap(fixed, len, PROT_READ | PROT_WRITE, fl | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *agent_mmap_anon(size_t len)
{
	return agent_map(NULL, len);
}

/*
 * Replace [p, p+len) (a shared mapping: the trace header, the spool) with
 * fresh zeroed agent memory.  MAP_FIXED may fail after the kernel already
 * unmapped the old range (mmap_region unmaps before it sets up the new
 * one), leaving a hole that a straggling hook would fault on: then the
 * range is mapped again as plain anonymous memory if it is unmapped.
 * 0, or -1 when the range still holds the old mapping or zeros; never a
 * hole unless even an anonymous page could not be had (-2).
 */
int agent_mmap_zero(void *p, size_t len)
{
	if (agent_map(p, len))
		return 0;
	unsigned char v;
	if (mincore(p, 1, &v) == 0 || errno != ENOMEM)
		return -1;	/* the old mapping is still there */
	void *q = mmap(p, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	return q == p ? -1 : -2;
}

/* Zero private agent memory in place: its pages go back to the memfd's
 * (never written: zeros) or to anonymous zero pages.  Nothing is unmapped,
 * nothing new is mapped, so it cannot fail for lack of address space. */
int agent_mem_clear(void *p, size_t len)
{
	if (madvise(p, len, MADV_DONTNEED) == 0)
		return 0;
	return agent_mmap_zero(p, len);
}

/*
 * The agent's walks of the loaded modules, and fork.  dl_iterate_phdr()
 * holds the loader's dl_load_write_lock while it calls back; glibc (2.36:
 * posix/fork.c) resets dl_load_lock in a fork child, not that one, so a
 * child forked while any thread of the parent was inside a walk finds it
 * held for ever, and its next dl_iterate_phdr() -- the agent's module scan
 * when a child of a window starts recording, a C++ throw -- hangs.  The
 * agent walks often during a window (new stacks, its 50 ms tick), so every
 * walk of ours goes through this gate, and the atfork prepare handler
 * closes it and waits until no walk of ours is in flight: a child never
 * inherits the lock held by the agent.  libunwind's walks (the stack
 * fallback, stack.c) are bracketed by agent_phdr_enter/leave the same way.  (The program's own walks, dlopen
 * and dlclose are its own: the gate cannot see them.)  Nested walks (a
 * callback that looks a name up) pass, or the fork would wait for itself.
 * Order in the prepare handler: after got_lock (a walker may hold it),
 * before rec_lock (a walker's callback takes it to record a module).
 */
static volatile int phdr_closed, phdr_walkers;
static __thread int phdr_depth __attribute__((tls_model("initial-exec")));

void agent_phdr_enter(void)
{
	if (phdr_depth++)
		return;
	for (;;) {
		while (__atomic_load_n(&phdr_closed, __ATOMIC_ACQUIRE))
			sched_yield();
		__atomic_fetch_add(&phdr_walkers, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&phdr_closed, __ATOMIC_SEQ_CST))
			return;
		__atomic_fetch_sub(&phdr_walkers, 1, __ATOMIC_SEQ_CST);
	}
}

void agent_phdr_leave(void)
{
	if (!--phdr_depth)
		__atomic_fetch_sub(&phdr_walkers, 1, __ATOMIC_SEQ_CST);
}

int agent_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg)
{
	agent_phdr_enter();
	int r = dl_iterate_phdr(cb, arg);
	agent_phdr_leave();
	return r;
}

static int first_only(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)info;
	(void)size;
	(void)arg;
	return 1;
}

/* (A fork from a signal handler that interrupted a walk of this thread's
 * does not wait for that walk: it would wait for itself.)  drain: the
 * child will walk the modules (it records): one walk of our own now waits
 * until no thread of the program holds the loader's write lock (a dlopen
 * adding to the list), which leaves it microseconds instead of any
 * instant to take it again before the fork. */
void agent_phdr_fork_prepare(int drain)
{
	int own = phdr_depth ? 1 : 0;
	__atomic_store_n(&phdr_closed, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&phdr_walkers, __ATOMIC_SEQ_CST) > own)
		sched_yield();
	if (drain)
		dl_iterate_phdr(first_only, NULL);
}

void agent_phdr_fork_done(int child)
{
	if (child) {
		phdr_walkers = 0;
		phdr_depth = 0;
	}
	__atomic_store_n(&phdr_closed, 0, __ATOMIC_RELEASE);
}

/*
 * The loader's write lock itself, to look at in a fork child.  The gate
 * keeps the agent's own walks out of the fork; a thread of the program
 * may still hold dl_load_write_lock at that instant (its dlopen adds to
 * the list, its dlclose takes from it: t217 met it once in ~700 forks
 * beside a thread that dlopens libz in a loop), and a child that records
 * walks the modules at once.  So the lock is found once, on the agent's
 * thread: inside a dl_iterate_phdr() callback exactly one recursive mutex
 * in ld.so's _rtld_global is held by this thread (dl_iterate_phdr takes
 * that lock and no other: glibc elf/dl-iteratephdr.c), and outside it is
 * not.  glibc's pthread_mutex_t layout (__data.__owner, the owner's tid)
 * is public (bits/struct_mutex.h).  A child then records only if the copy
 * it got is free; held (its owner is a thread that did not come along) or
 * not found, it is unhooked at once as a child of a dormant agent.  Read
 * only: the lock is never touched.
 */
static pthread_mutex_t *ld_wlock;
static int ld_wlock_tried;

struct wlock_scan {
	uint8_t *lo;
	size_t len;
	pid_t me;
	int hits;
	pthread_mutex_t *hit;
};

static int wlock_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)info;
	(void)size;
	struct wlock_scan *w = arg;
	for (size_t off = 0; off + sizeof(pthread_mutex_t) <= w->len; off += 8) {
		pthread_mutex_t *m = (pthread_mutex_t *)(void *)(w->lo + off);
		if (m->__data.__owner == w->me && m->__data.__lock && m->__data.__count >= 1 &&
		    m->__data.__kind == PTHREAD_MUTEX_RECURSIVE_NP) {
			w->hits++;
			w->hit = m;
		}
	}
	return 1;
}

void agent_loader_lock_find(void)
{
	if (ld_wlock_tried)
		return;
	ld_wlock_tried = 1;
	void *g = dlsym(RTLD_DEFAULT, "_rtld_global");
	Dl_info di;
	const ElfW(Sym) *sym = NULL;
	if (!g || !dladdr1(g, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym || sym->st_size < 64)
		return;
	struct wlock_scan w = { g, sym->st_size, (pid_t)syscall(SYS_gettid), 0, NULL };
	agent_phdr(wlock_cb, &w);
	if (w.hits == 1 && w.hit->__data.__owner != w.me)
		ld_wlock = w.hit;
}

int agent_loader_lock_free(void)
{
	return ld_wlock && !ld_wlock->__data.__owner && !ld_wlock->__data.__lock;
}
