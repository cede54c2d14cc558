/*
 * record.c - the slow paths behind record.h: per-thread state (registration,
 * chunk switches, thread exit, fork) and taking every thread's chunk back
 * when a recording ends.  Where chunks come from (spool, trace file) and the
 * META chunk are chunks.c's; locks, clocks and memory agentmem.c's.
 *
 * Locking: `rec_lock` (a spinlock) guards the thread pool, the META chunk and
 * the stack table's inserts; each thread's `lock` guards its chunk against
 * agent_end() taking it back.  Neither is taken on the hot path.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

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
static int membarrier_ok;

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
			rec_spool_give(t->slot);
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
	rec_chunk_init(c, MFX_CT_EVENTS, t->tid, t->seq++, rec.use_tsc ? 0 : 1);
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
	struct mfx_chunk_header *c = rec_spool_take(&slot, &full);
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
		c = rec_file_take();
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
		/* a fork child of a window: its watcher ends it, GOT slots first */
		if (!fork_child_watched())
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

/* The spool is being detached (chunks.c): each thread that still holds a
 * slot of it forgets the slot (its chunk is unmapped, not handed to a later
 * spool, when it next needs one).  Returns how many threads hold a slot or
 * are inside a record (a thread past agent_end's wait may be in
 * rec_spool_take with the old pointer, holding no chunk yet). */
int rec_forget_spool_slots(void)
{
	int stragglers = 0;
	for (uint32_t i = 0; pool && i < pool_used; i++) {
		struct mfx_thread *t = &pool[i];
		spin_lock(&t->lock);
		if (t->in_use && ((t->chunk && t->slot >= 0) || t->in_rec)) {
			stragglers++;
			if (t->chunk && t->slot >= 0)
				t->slot = -1;
		}
		spin_unlock(&t->lock);
	}
	return stragglers;
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
	rec_meta_release_locked();
	spin_unlock(&rec_lock);
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
	rec_meta_release_locked();	/* the parent's: forget it */
}
