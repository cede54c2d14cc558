/*
 * record.c - the slow paths behind record.h: per-thread state (registration,
 * chunk switches, thread exit), chunks from the spool or the trace file, the
 * process-wide META chunk, and taking everything back when a recording ends.
 *
 * Locking: `rec_lock` (a spinlock) guards the thread pool, the META chunk and
 * the stack table's inserts; each thread's `lock` guards its chunk against
 * agent_end() taking it back.  Neither is taken on the hot path.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/memfd.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "trace/spool_format.h"
#include "preload/internal.h"
#include "preload/record.h"

struct rec_state rec = { .fd = -1 };
__thread struct mfx_thread *tls_self __attribute__((tls_model("initial-exec")));
__thread int tls_busy __attribute__((tls_model("initial-exec")));
/* Set once the thread's key destructor ran: later calls are not recorded. */
static __thread int tls_dead __attribute__((tls_model("initial-exec")));

volatile int rec_lock __attribute__((aligned(64)));

#define POOL_MAX 65536u	/* thread states; more concurrent threads are not traced */
#define END_WAIT_NS 500000000ull	/* agent_end: longest wait for threads in a record */
static struct mfx_thread *pool;
static uint32_t pool_used;
static struct mfx_thread *pool_free;
static pthread_key_t thread_key;
static int thread_key_ok;
static struct mfx_spool_header *volatile spool;	/* NULL: chunks come from the file */
static int membarrier_ok;

/* The META chunk: stack definitions, modules, marks. Guarded by rec_lock. */
static struct {
	struct mfx_chunk_header *chunk;
	uint8_t *cur, *limit;
	uint32_t seq;
} meta;

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
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 1;	/* cannot tell: let mmap decide */
	buf[n] = 0;
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

/* ---- the spool ------------------------------------------------------------- */

int rec_spool_attach(int fd)
{
	if (!agent_as_room(MFX_SPOOL_BYTES))
		return -ENOMEM;
	void *m = mmap(NULL, MFX_SPOOL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	struct mfx_spool_header *h = m;
	if (h->magic != MFX_SPOOL_MAGIC || h->nslots != MFX_SPOOL_SLOTS ||
	    h->slot_size != MFX_SPOOL_SLOT) {
		munmap(m, MFX_SPOOL_BYTES);
		return -EINVAL;
	}
	spool = h;
	return 0;
}

/* Attach mode, after agent_end() (and in a fork child): forget mfx's spool
 * and unmap it, so no window leaves its 32 MiB in the address space.  Only
 * if a straggler still holds a slot (a thread agent_end gave up waiting
 * for) is the mapping replaced by untouched agent memory instead, where its
 * last stores land harmlessly; its slot is forgotten, so the chunk is
 * unmapped (not handed to a later spool) when the thread next needs one.
 * Either way the memfd behind it is freed once mfx closes it. */
void rec_spool_detach(void)
{
	if (!spool)
		return;
	void *m = spool;
	spool = NULL;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	int stragglers = 0;
	for (uint32_t i = 0; pool && i < pool_used; i++) {
		struct mfx_thread *t = &pool[i];
		spin_lock(&t->lock);
		/* in_rec: a thread past agent_end's wait may be inside
		 * spool_take with the old pointer (it holds no chunk yet) */
		if (t->in_use && ((t->chunk && t->slot >= 0) || t->in_rec)) {
			stragglers++;
			if (t->chunk && t->slot >= 0)
				t->slot = -1;
		}
		spin_unlock(&t->lock);
	}
	if (stragglers)
		agent_mmap_zero(m, MFX_SPOOL_BYTES);
	else
		munmap(m, MFX_SPOOL_BYTES);
}

/* A free slot, lowest index first: the few slots in use stay cache-warm.
 * *full is set when the spool exists but has no free slot. */
static struct mfx_chunk_header *spool_take(int32_t *slot, int *full)
{
	*full = 0;
	/* Read once: agent_end may detach the spool while a thread that was
	 * in a record past its wait gets here.  The old mapping then stays
	 * valid (rec_spool_detach replaces it by zeros instead of unmapping it
	 * when a thread is still in a record); NULL would not be. */
	struct mfx_spool_header *sp = __atomic_load_n(&spool, __ATOMIC_ACQUIRE);
	if (!sp)
		return NULL;
	for (uint32_t i = 0; i < MFX_SPOOL_SLOTS; i++) {
		struct mfx_spool_slot *s = &sp->slot[i];
		uint32_t free_st = MFX_SLOT_FREE;
		if (s->state != MFX_SLOT_FREE ||
		    !__atomic_compare_exchange_n(&s->state, &free_st, MFX_SLOT_OWNED, 0,
						 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			continue;
		s->pid = rec.hdr->pid;
		s->trace_uid = rec.hdr->trace_uid;
		s->off = 0;
		*slot = (int32_t)i;
		return mfx_spool_chunk(sp, i);
	}
	__atomic_fetch_add(&sp->fallbacks, 1, __ATOMIC_RELAXED);
	*full = 1;
	return NULL;
}

/* Hand a slot to mfx.  mfx polls every few ms; waking it costs a syscall
 * and an IPI (~10 us on a VM), so only a spool that is filling up (a slot
 * taken far from the start) wakes it early.  Once mfx is gone the agent
 * writes the slot into the trace file itself (drain.c). */
static void spool_give(int32_t i)
{
	struct mfx_spool_header *sp = spool;
	if (!sp)
		return;	/* detached meanwhile: mfx copied the slot at its last pass */
	__atomic_store_n(&sp->slot[i].state, MFX_SLOT_FULL, __ATOMIC_RELEASE);
	if (rec_mfx_orphan()) {
		rec_drain_slot(sp, (uint32_t)i, MFX_SLOT_FULL);
		return;
	}
	__atomic_fetch_add(&sp->full_seq, 1, __ATOMIC_SEQ_CST);
	if (i >= (int32_t)(MFX_SPOOL_SLOTS / 8) && __atomic_load_n(&sp->waiting, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &sp->full_seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* mfx is gone (drain.c): the slots of this trace it did not copy. */
void rec_spool_drain(void)
{
	rec_drain_own(spool, 0);
}

/* At the process's exit with mfx gone: every slot of this process, the
 * chunks live threads are still filling included (copied up to `used`). */
void rec_spool_drain_exit(void)
{
	rec_drain_own(spool, 1);
}

/* ---- file chunks ----------------------------------------------------------- */

/* Make sure the file has blocks for [off, off+len): fallocate reports a full
 * disk as ENOSPC here, instead of a SIGBUS in the target later. */
/* The trace file's inode: it is grown, mapped and closed only while rec.fd
 * is still that file (agent_fd_is). */
static uint64_t trace_ino;

static int trace_fd_ours(void)
{
	return agent_fd_is(rec.fd, trace_ino, S_IFREG);
}

int rec_file_reserve(uint64_t off, uint64_t len)
{
	if (!trace_fd_ours())
		return -EBADF;
	if (fallocate(rec.fd, 0, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	/* No fallocate (some network file systems): extend by writing the last
	 * byte; never shrinks a file mfx extended concurrently. */
	char z = 0;
	return pwrite(rec.fd, &z, 1, (off_t)(off + len - 1)) == 1 ? 0 : -errno;
}

/* Take the next raw slot of the trace file and map it. */
static struct mfx_chunk_header *file_take(void)
{
	if (!rec.hdr || !rec.file_ok)
		return NULL;
	uint64_t off = __atomic_fetch_add(&rec.hdr->next_chunk, MFX_CHUNK_SIZE, __ATOMIC_SEQ_CST);
	int err = rec_file_reserve(off, MFX_CHUNK_SIZE);
	if (err) {
		agent_fail(-err, err == -EBADF ? "the program closed the trace file" :
			   "cannot grow the trace file");
		return NULL;
	}
	struct mfx_chunk_header *c = agent_as_room(MFX_CHUNK_SIZE) ?
		mmap(NULL, MFX_CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rec.fd, (off_t)off) :
		MAP_FAILED;
	if (c == MAP_FAILED) {
		agent_fail(errno, "cannot map a chunk of the trace file (address space limit)");
		return NULL;
	}
	return c;
}

static void chunk_init(struct mfx_chunk_header *c, uint16_t type, uint32_t tid, uint32_t seq,
		       int timebase)
{
	c->magic = 0;
	c->type = type;
	c->codec = MFX_CODEC_RAW;
	c->tid = tid;
	c->seq = seq;
	c->used = 0;
	c->stored = 0;
	c->span = MFX_CHUNK_SIZE;
	c->timebase = (uint32_t)timebase;
	if (timebase == 0) {
		/* A clock pair taken together: the reader converts TSC to ns.  A
		 * thread preempted between the two reads (a storm of threads on
		 * few cores: hundreds of ms) would shift every event of the
		 * chunk; the pair is taken again when the TSC moved too far. */
		uint64_t t1 = 0, t2 = 0, ns = 0;
		for (int i = 0; i < 4; i++) {
			t1 = agent_tsc();
			ns = agent_now_ns();
			t2 = agent_tsc();
			if (t2 - t1 < (1u << 16))	/* ~25 us at 2.5 GHz */
				break;
		}
		c->base_ts = (t1 + (t2 - t1) / 2) >> rec.tsc_shift;
		c->base_ns = ns;
	} else {
		c->base_ns = c->base_ts = agent_now_ns();
	}
	__atomic_store_n(&c->magic, MFX_CHUNK_MAGIC, __ATOMIC_RELEASE);
}

/* ---- per-thread chunks ------------------------------------------------------ */

static struct mfx_thread_slot *slot_claim(uint32_t tid)
{
	uint32_t i = __atomic_fetch_add(&rec.hdr->nthreads, 1, __ATOMIC_RELAXED);
	if (i >= MFX_THREAD_SLOTS)
		return NULL;
	struct mfx_thread_slot *s = &rec.slots[i];
	s->tid = tid;
	return s;
}

/* Copy the thread's counters into its slot, for mfx's progress line. */
static void publish(struct mfx_thread *t)
{
	struct mfx_thread_slot *s = t->tslot;
	if (!s)
		return;
	s->events = t->events;
	s->alloc_bytes = t->alloc_bytes;
	s->alloc_calls = t->alloc_calls;
	s->free_calls = t->free_calls;
}

/* At exit: this thread's counters (other threads publish at their exit). */
void rec_publish_self(void)
{
	struct mfx_thread *t = tls_self;
	if (t && t->gen == rec.gen)
		publish(t);
}

/* Give the thread's chunk back: a spool slot to mfx, a file chunk to the
 * page cache.  t->lock held; nobody writes into it (in_rec clear, or it is
 * the caller's own thread). */
static void chunk_release_locked(struct mfx_thread *t)
{
	if (!t->chunk)
		return;
	if (t->gen == rec.gen) {
		publish(t);
		if (t->slot >= 0)
			spool_give(t->slot);
	}
	/* A spool slot of a recording that ended without us (we were in the
	 * middle of a record past agent_end's wait) is forgotten: mfx copied
	 * it at its last pass, and the slot may belong to a new spool now. */
	if (t->slot < 0)
		munmap(t->chunk, MFX_CHUNK_SIZE);
	t->chunk = NULL;
	t->slot = -1;
}

/* Events the agent could not keep, counted in the header (the reader
 * reports them); the first drop of a recording also leaves a note. */
static void count_dropped(uint64_t events, uint32_t chunks)
{
	struct mfx_file_header *h = rec.hdr;
	__atomic_fetch_add(&h->dropped_events, events, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->dropped_chunks, chunks, __ATOMIC_RELAXED);
	__atomic_fetch_or(&h->flags, MFX_HF_DROPPED, __ATOMIC_RELAXED);
	if (!(__atomic_fetch_or(&h->degraded, MFX_DG_DROPPED, __ATOMIC_RELAXED) & MFX_DG_DROPPED))
		agent_note(MFX_DG_DROPPED, 0, "mfx could not keep up: events were dropped (counted)");
}

static void chunk_start_locked(struct mfx_thread *t, struct mfx_chunk_header *c)
{
	chunk_init(c, MFX_CT_EVENTS, t->tid, t->seq++, rec.use_tsc ? 0 : 1);
	t->chunk = c;
	t->chunk_ev0 = t->events;
	t->payload = (uint8_t *)(c + 1);
	t->cur = t->payload;
	t->end = (uint8_t *)c + MFX_CHUNK_SIZE - MFX_MAX_RECORD;
	t->prev_ts = c->base_ts;
	t->prev_ptr = 0;
	t->prev_stack = 0;
}

/*
 * Take a fresh chunk for t (t->lock held).  0, or -1: nothing to record into.
 *
 * Back-pressure: when every spool slot is taken, mfx is not keeping up
 * (220 threads in tight malloc loops on 2 cores outrun its drain thread).
 * Falling back to chunks of the trace file then grew it at disk speed (4 GB
 * in 28 s) and the window could not end in time; instead the thread keeps
 * its slot and starts it again, dropping the events it held -- counted, so
 * the report says how many -- until mfx frees a slot.  Without a spool
 * (none was given, or mfx is gone) chunks come from the file.
 */
static int chunk_open_locked(struct mfx_thread *t)
{
	uint32_t gen = rec.gen;
	int full;
	int32_t slot = -1;
	struct mfx_chunk_header *c = spool_take(&slot, &full);
	if (!c && full && !rec_mfx_gone_check()) {
		if (t->chunk && t->slot >= 0 && t->gen == gen) {
			uint64_t n = t->events - t->chunk_ev0;
			t->events = t->chunk_ev0;	/* the progress counters say what was kept */
			count_dropped(n, 1);
			chunk_start_locked(t, t->chunk);
			return 0;
		}
		chunk_release_locked(t);
		count_dropped(1, 0);	/* the event in hand */
		return -1;
	}
	chunk_release_locked(t);
	if (t->gen != gen) {
		t->gen = gen;
		t->seq = 0;
		t->tslot = slot_claim(t->tid);
		t->events = t->alloc_bytes = t->alloc_calls = t->free_calls = 0;
	}
	if (!c)
		c = file_take();
	if (!c)
		return -1;
	t->slot = slot;
	chunk_start_locked(t, c);
	return 0;
}

/* The chunk is (nearly) full: the caller is inside rec_enter/leave. */
void rec_chunk_next(struct mfx_thread *t)
{
	spin_lock(&t->lock);
	if (!rec.active || t->gen != rec.gen || chunk_open_locked(t)) {
		/* Nothing to write into: rewind into the same chunk if we
		 * still hold it, so the next record still has room. */
		chunk_release_locked(t);
		t->gen = (uint32_t)-1;
	}
	spin_unlock(&t->lock);
}

static void thread_exit(void *arg)
{
	struct mfx_thread *t = arg;
	int busy = tls_busy;
	tls_busy = 1;
	spin_lock(&t->lock);
	if (t->tslot && t->gen == rec.gen) {
		publish(t);
		t->tslot->flags |= 1;
	}
	chunk_release_locked(t);
	t->tslot = NULL;
	t->gen = (uint32_t)-1;
	spin_unlock(&t->lock);
	spin_lock(&rec_lock);
	t->in_use = 0;
	t->next_free = pool_free;
	pool_free = t;
	spin_unlock(&rec_lock);
	tls_self = NULL;
	tls_dead = 1;
	tls_busy = busy;
}

/* The thread table, mapped when a recording starts, before anything
 * optional (spool, stacks) takes the address space a tight RLIMIT_AS
 * leaves.  0 or -ENOMEM (nothing can be recorded without it). */
int rec_pool_init(void)
{
	spin_lock(&rec_lock);
	if (!pool)
		pool = agent_mmap_anon(POOL_MAX * sizeof(*pool));
	spin_unlock(&rec_lock);
	return pool ? 0 : -ENOMEM;
}

static struct mfx_thread *pool_get(void)
{
	struct mfx_thread *t = NULL;
	spin_lock(&rec_lock);
	if (pool_free) {
		t = pool_free;
		pool_free = t->next_free;
	} else if (pool && pool_used < POOL_MAX) {
		t = &pool[pool_used++];
	}
	if (t) {
		memset(t, 0, sizeof(*t));
		t->gen = (uint32_t)-1;
		t->slot = -1;
		t->in_use = 1;
	}
	spin_unlock(&rec_lock);
	return t;
}

struct mfx_thread *rec_enter_slow(struct mfx_thread *t)
{
	if (!t) {
		if (tls_dead || !rec.active)
			return NULL;
		if (!(t = pool_get())) {
			if (!pool)	/* not mapped: nothing can be recorded */
				agent_fail(ENOMEM, "cannot map the agent's thread table");
			return NULL;
		}
		t->tid = (uint32_t)syscall(SYS_gettid);
		tls_self = t;
		/* The destructor gives the chunk back at thread exit.  (Keys
		 * past the first 32 make glibc calloc; tls_busy is set, so that
		 * call goes straight to the allocator.) */
		if (thread_key_ok)
			pthread_setspecific(thread_key, t);
		t->in_rec = 1;
		barrier();
	}
	if (!rec.active)
		goto none;
	if (rec.hdr->stop) {
		t->in_rec = 0;
		agent_end("stop requested");
		return NULL;
	}
	spin_lock(&t->lock);
	int err = 0;
	if (t->gen != rec.gen || !t->chunk)
		err = chunk_open_locked(t);
	spin_unlock(&t->lock);
	if (err || !rec.active)
		goto none;
	return t;
none:
	t->in_rec = 0;
	return NULL;
}

/* ---- META chunk ---------------------------------------------------------- */

/* Append one encoded record to the META chunk (rec_lock held).  META chunks
 * are mapped from the file directly: they are few. */
void meta_append_locked(const uint8_t *r, size_t len)
{
	if (!rec.hdr || len > MFX_CHUNK_SIZE - sizeof(struct mfx_chunk_header))
		return;
	if (!meta.chunk || meta.cur + len > meta.limit) {
		if (meta.chunk)
			munmap(meta.chunk, MFX_CHUNK_SIZE);
		meta.chunk = file_take();
		if (!meta.chunk)
			return;
		chunk_init(meta.chunk, MFX_CT_META, 0, meta.seq++, 1);
		meta.cur = (uint8_t *)(meta.chunk + 1);
		meta.limit = (uint8_t *)meta.chunk + MFX_CHUNK_SIZE;
	}
	memcpy(meta.cur, r, len);
	meta.cur += len;
	__atomic_store_n(&meta.chunk->used, (uint32_t)(meta.cur - (uint8_t *)(meta.chunk + 1)),
			 __ATOMIC_RELEASE);
}

static void meta_release_locked(void)
{
	if (meta.chunk)
		munmap(meta.chunk, MFX_CHUNK_SIZE);
	meta.chunk = NULL;
	meta.cur = meta.limit = NULL;
	meta.seq = 0;
}

/* Encode an EXT record around body[0..blen) into out; returns its length. */
size_t ext_wrap(uint8_t *out, unsigned kind, const uint8_t *body, size_t blen)
{
	uint8_t *p = out;
	*p++ = MFX_K_EXT;
	*p++ = (uint8_t)kind;
	p = put_varint(p, blen);
	memmove(p, body, blen);
	return (size_t)(p - out) + blen;
}

void agent_mark(uint32_t kind, const uint64_t *vals, uint32_t nvals, const char *text)
{
	uint8_t body[1024], out[1040];
	size_t tl = text ? strlen(text) : 0;
	if (tl > 512)
		tl = 512;
	if (nvals > 16)
		nvals = 16;
	uint8_t *p = body;
	p = put_varint(p, agent_now_ns());
	p = put_varint(p, kind);
	p = put_varint(p, nvals);
	for (uint32_t i = 0; i < nvals; i++)
		p = put_varint(p, vals[i]);
	p = put_varint(p, tl);
	if (tl)	/* text may be NULL: never memcpy(p, NULL, 0) */
		memcpy(p, text, tl);
	p += tl;
	size_t n = ext_wrap(out, MFX_EXT_MARK, body, (size_t)(p - body));
	spin_lock(&rec_lock);
	meta_append_locked(out, n);
	spin_unlock(&rec_lock);
}

/* ---- begin / end support -------------------------------------------------- */

int rec_map_file(int fd)
{
	/* The header and slot table stay at the same addresses across
	 * recordings (attach re-arms): a thread that read rec.hdr just before
	 * an end still dereferences mapped memory. */
	void *want = rec.hdr;
	int fixed = want ? MAP_FIXED : 0;
	void *h = mmap(want, MFX_FIRST_CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED | fixed, fd, 0);
	if (h == MAP_FAILED) {
		int err = -errno;
		/* A failed MAP_FIXED may have unmapped the old copy: never leave
		 * rec.hdr pointing at a hole. */
		if (want && agent_mmap_zero(want, MFX_FIRST_CHUNK) < -1)
			rec.hdr = NULL;
		return err;
	}
	rec.hdr = h;
	rec.slots = (struct mfx_thread_slot *)((uint8_t *)h + MFX_HEADER_SIZE);
	rec.fd = fd;
	trace_ino = agent_fd_ino(fd, S_IFREG);
	return 0;
}

int rec_thread_key_init(void)
{
	if (!thread_key_ok && pthread_key_create(&thread_key, thread_exit) == 0)
		thread_key_ok = 1;
	/* The fast half of rec_enter's handshake needs this per process (the
	 * mm): register it again after fork. */
	membarrier_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
	return thread_key_ok ? 0 : -EAGAIN;
}

/* A full memory barrier on every thread of the process.  Without
 * membarrier (Linux < 4.14), changing a page's protection does it: the
 * kernel interrupts every CPU that runs one of our threads to flush its TLB. */
static void barrier_all_threads(void)
{
	static void *page;
	if (membarrier_ok &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
		return;
	if (!page)
		page = agent_mmap_anon(4096);
	if (page) {
		*(volatile char *)page = 1;
		mprotect(page, 4096, PROT_READ);
		mprotect(page, 4096, PROT_READ | PROT_WRITE);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/*
 * After rec.active = 0: wait until no thread is in the middle of a record,
 * then give every thread's chunk back (spool slots to mfx).  A thread still
 * busy after END_WAIT_NS (blocked in the loader inside libunwind, say) keeps
 * its chunk: it is released at its next call, or drained by mfx when the
 * process exits.
 */
void rec_end_threads(void)
{
	barrier_all_threads();
	struct mfx_thread *self = tls_self;
	spin_lock(&rec_lock);
	uint32_t n = pool_used;
	spin_unlock(&rec_lock);
	/* One deadline for all: on 2 cores with 220 busy threads, a thread
	 * preempted in the middle of a record may wait a whole scheduling
	 * round (~0.7 s) to finish it, and waiting for each in turn took
	 * tens of seconds.  A thread still busy at the deadline keeps its
	 * chunk: mfx copies the slot at its last pass (up to the `used` it
	 * published), or the agent does when mfx is gone. */
	uint64_t t0 = agent_now_ns();
	for (uint32_t i = 0; pool && i < n; i++) {
		struct mfx_thread *t = &pool[i];
		if (!t->in_use)
			continue;
		while (t != self && t->in_rec && agent_now_ns() - t0 < END_WAIT_NS)
			sched_yield();
		if (t != self && t->in_rec)
			continue;
		spin_lock(&t->lock);
		chunk_release_locked(t);
		spin_unlock(&t->lock);
	}
	spin_lock(&rec_lock);
	meta_release_locked();
	spin_unlock(&rec_lock);
}

/* The header page and slot table: copy, then replace the file mapping with
 * anonymous memory holding the copy, and close the file. */
void rec_detach_header(void)
{
	static uint8_t copy[MFX_FIRST_CHUNK];
	if (!rec.hdr)
		return;
	memcpy(copy, rec.hdr, sizeof(copy));
	int r = agent_mmap_zero(rec.hdr, MFX_FIRST_CHUNK);
	if (r < -1)
		rec.hdr = NULL;	/* a hole (see agent_mmap_zero): forget it */
	else	/* replaced, or still the file's: either way the same bytes */
		memcpy(rec.hdr, copy, sizeof(copy));
	if (trace_fd_ours())
		close(rec.fd);
	rec.fd = -1;
}

/* fork child: only the forking thread exists.  The parent's chunks (file
 * chunks are MAP_SHARED with the parent's file, spool slots are the
 * parent's) are left to the parent: forget them. */
void rec_after_fork_child(void)
{
	rec_lock = 0;
	struct mfx_thread *self = tls_self;
	for (uint32_t i = 0; pool && i < pool_used; i++) {
		struct mfx_thread *t = &pool[i];
		t->lock = 0;
		t->in_rec = 0;
		if (t->chunk && t->slot < 0)
			munmap(t->chunk, MFX_CHUNK_SIZE);
		t->chunk = NULL;
		t->slot = -1;
		t->tslot = NULL;
		t->gen = (uint32_t)-1;
		if (t != self)
			t->in_use = 0;
	}
	pool_free = NULL;
	for (uint32_t i = pool_used; i-- > 0;)
		if (!pool[i].in_use) {
			pool[i].next_free = pool_free;
			pool_free = &pool[i];
		}
	if (self)
		self->tid = (uint32_t)syscall(SYS_gettid);
	if (meta.chunk)
		munmap(meta.chunk, MFX_CHUNK_SIZE);
	meta.chunk = NULL;
	meta.cur = meta.limit = NULL;
	meta.seq = 0;
}
