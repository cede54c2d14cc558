/*
 * record.c - the slow paths behind record.h: the trace file's header and
 * chunk slots, per-thread state (registration, chunk switches, thread exit),
 * the process-wide META chunk, and detaching everything from the file when the
 * recording ends.
 *
 * Locking: `rec_lock` (a spinlock) guards the thread pool, the META chunk and
 * the stack table's inserts; each thread's `lock` guards its chunk mapping
 * against agent_end() replacing it.  Neither is taken on the hot path.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "preload/record.h"
#include "preload/internal.h"

struct rec_state rec = { .fd = -1 };
__thread struct mfx_thread *tls_self __attribute__((tls_model("initial-exec")));
__thread int tls_busy __attribute__((tls_model("initial-exec")));
/* Set once the thread's key destructor ran: later calls are not recorded. */
static __thread int tls_dead __attribute__((tls_model("initial-exec")));

volatile int rec_lock;

#define POOL_MAX 65536u	/* thread states; more concurrent threads are not traced */
static struct mfx_thread *pool;
static uint32_t pool_used;
static struct mfx_thread *pool_free;
static pthread_key_t thread_key;
static int thread_key_ok;

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
	unsigned aux;
	return __rdtscp(&aux);
}

/* Name our anonymous mappings so smaps shows them as mfx's ([anon:mfx]):
 * PR_SET_VMA_ANON_NAME needs Linux 5.17 and CONFIG_ANON_VMA_NAME; without
 * it mfx falls back to the ranges it knows. */
void *agent_mmap_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
	prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)p, len, (unsigned long)"mfx");
	return p;
}

/* Replace [p, p+len) with fresh anonymous memory, atomically for other
 * threads: one still writing a record there writes into the new pages
 * instead of the trace file. */
static void detach_range(void *p, size_t len)
{
	mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

/* Make sure the file has blocks for [off, off+len): fallocate reports a full
 * disk as ENOSPC here, instead of a SIGBUS in the target later. */
static int file_reserve(uint64_t off, uint64_t len)
{
	if (fallocate(rec.fd, 0, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	/* No fallocate (some network file systems): extend by writing the last
	 * byte; never shrinks a file mfx extended concurrently. */
	char z = 0;
	return pwrite(rec.fd, &z, 1, (off_t)(off + len - 1)) == 1 ? 0 : -errno;
}

/* Take the next raw slot of the file and map it, header filled. */
static struct mfx_chunk_header *slot_map(uint16_t type, uint32_t tid, uint32_t seq, int timebase)
{
	if (!rec.hdr || !rec.file_ok)
		return NULL;
	uint64_t off = __atomic_fetch_add(&rec.hdr->next_chunk, MFX_CHUNK_SIZE, __ATOMIC_SEQ_CST);
	int err = file_reserve(off, MFX_CHUNK_SIZE);
	if (err) {
		agent_fail(-err, "cannot grow the trace file");
		return NULL;
	}
	struct mfx_chunk_header *c = mmap(NULL, MFX_CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
					  rec.fd, (off_t)off);
	if (c == MAP_FAILED) {
		agent_fail(errno, "cannot map the trace file");
		return NULL;
	}
	c->type = type;
	c->codec = MFX_CODEC_RAW;
	c->tid = tid;
	c->seq = seq;
	c->used = 0;
	c->stored = 0;
	c->span = MFX_CHUNK_SIZE;
	c->timebase = timebase;
	if (timebase == 0) {
		/* A clock pair taken together: the reader converts TSC to ns. */
		c->base_ts = agent_tsc() >> rec.tsc_shift;
		c->base_ns = agent_now_ns();
	} else {
		c->base_ns = c->base_ts = agent_now_ns();
	}
	__atomic_store_n(&c->magic, MFX_CHUNK_MAGIC, __ATOMIC_RELEASE);
	return c;
}

static struct mfx_thread_slot *slot_claim(uint32_t tid)
{
	uint32_t i = __atomic_fetch_add(&rec.hdr->nthreads, 1, __ATOMIC_RELAXED);
	if (i >= MFX_THREAD_SLOTS)
		return NULL;
	struct mfx_thread_slot *s = &rec.slots[i];
	s->tid = tid;
	return s;
}

/* Map a fresh chunk for t (t->lock held).  0 or -1 (nothing to record into). */
static int chunk_open_locked(struct mfx_thread *t)
{
	if (t->chunk) {
		munmap(t->chunk, MFX_CHUNK_SIZE);
		t->chunk = NULL;
	}
	uint32_t gen = rec.gen;
	if (t->gen != gen) {
		t->gen = gen;
		t->seq = 0;
		t->slot = slot_claim(t->tid);
	}
	struct mfx_chunk_header *c = slot_map(MFX_CT_EVENTS, t->tid, t->seq, rec.use_tsc ? 0 : 1);
	if (!c)
		return -1;
	t->seq++;
	t->chunk = c;
	t->payload = (uint8_t *)(c + 1);
	t->cur = t->payload;
	t->end = (uint8_t *)c + MFX_CHUNK_SIZE - MFX_MAX_RECORD;
	t->prev_ts = c->base_ts;
	t->prev_ptr = 0;
	t->prev_stack = 0;
	return 0;
}

/* The chunk is (nearly) full.  If the recording ended meanwhile, keep
 * writing into detached memory rather than into the file. */
void rec_chunk_next(struct mfx_thread *t)
{
	spin_lock(&t->lock);
	if (t->gen != rec.gen || !rec.active) {
		detach_range(t->chunk, MFX_CHUNK_SIZE);
		t->cur = t->payload;
		t->gen = (uint32_t)-1;	/* forces a fresh chunk next time */
	} else if (chunk_open_locked(t)) {
		/* no slot: the recording is ending (agent_fail) */
		t->cur = t->payload;
	}
	spin_unlock(&t->lock);
}

static void thread_exit(void *arg)
{
	struct mfx_thread *t = arg;
	int busy = tls_busy;
	tls_busy = 1;
	spin_lock(&t->lock);
	if (t->chunk)
		munmap(t->chunk, MFX_CHUNK_SIZE);
	t->chunk = NULL;
	if (t->slot && t->gen == rec.gen)
		t->slot->flags |= 1;
	t->slot = NULL;
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

static struct mfx_thread *pool_get(void)
{
	struct mfx_thread *t = NULL;
	spin_lock(&rec_lock);
	if (!pool)
		pool = agent_mmap_anon(POOL_MAX * sizeof(*pool));
	if (pool_free) {
		t = pool_free;
		pool_free = t->next_free;
	} else if (pool && pool_used < POOL_MAX) {
		t = &pool[pool_used++];
	}
	if (t) {
		memset(t, 0, sizeof(*t));
		t->gen = (uint32_t)-1;
		t->in_use = 1;
	}
	spin_unlock(&rec_lock);
	return t;
}

struct mfx_thread *rec_thread_slow(void)
{
	if (tls_dead)
		return NULL;
	struct mfx_thread *t = tls_self;
	if (!t) {
		t = pool_get();
		if (!t)
			return NULL;
		t->tid = (uint32_t)syscall(SYS_gettid);
		tls_self = t;
		/* The destructor releases the chunk at thread exit.  (Keys past
		 * the first 32 make glibc calloc; tls_busy is set, so that call
		 * goes straight to the allocator.) */
		if (thread_key_ok)
			pthread_setspecific(thread_key, t);
	}
	spin_lock(&t->lock);
	int err = 0;
	if (t->gen != rec.gen || !t->chunk)
		err = chunk_open_locked(t);
	spin_unlock(&t->lock);
	return err ? NULL : t;
}

void rec_stop_seen(void)
{
	agent_end("stop requested");
}

/* ---- META chunk ---------------------------------------------------------- */

/* Append one encoded record to the META chunk (rec_lock held). */
void meta_append_locked(const uint8_t *r, size_t len)
{
	if (!rec.hdr || len > MFX_CHUNK_SIZE - sizeof(struct mfx_chunk_header))
		return;
	if (!meta.chunk || meta.cur + len > meta.limit) {
		if (meta.chunk)
			munmap(meta.chunk, MFX_CHUNK_SIZE);
		meta.chunk = slot_map(MFX_CT_META, 0, meta.seq++, 1);
		if (!meta.chunk)
			return;
		meta.cur = (uint8_t *)(meta.chunk + 1);
		meta.limit = (uint8_t *)meta.chunk + MFX_CHUNK_SIZE;
	}
	memcpy(meta.cur, r, len);
	meta.cur += len;
	__atomic_store_n(&meta.chunk->used, (uint32_t)(meta.cur - (uint8_t *)(meta.chunk + 1)),
			 __ATOMIC_RELEASE);
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
	memcpy(p, text, tl);
	p += tl;
	size_t n = ext_wrap(out, MFX_EXT_MARK, body, (size_t)(p - body));
	spin_lock(&rec_lock);
	meta_append_locked(out, n);
	spin_unlock(&rec_lock);
}

/* ---- the file ------------------------------------------------------------- */

int rec_map_file(int fd)
{
	/* The header and slot table stay at the same addresses across
	 * recordings (attach re-arms): a thread that read rec.hdr just before
	 * a detach still dereferences mapped memory. */
	void *want = rec.hdr;
	int fixed = want ? MAP_FIXED : 0;
	void *h = mmap(want, MFX_FIRST_CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED | fixed, fd, 0);
	if (h == MAP_FAILED)
		return -errno;
	rec.hdr = h;
	rec.slots = (struct mfx_thread_slot *)((uint8_t *)h + MFX_HEADER_SIZE);
	rec.fd = fd;
	return 0;
}

int rec_thread_key_init(void)
{
	if (!thread_key_ok && pthread_key_create(&thread_key, thread_exit) == 0)
		thread_key_ok = 1;
	return thread_key_ok ? 0 : -EAGAIN;
}

/* Detach every thread's chunk, the META chunk and the header from the
 * file: stragglers inside a hook write into anonymous copies.  Called by
 * agent_end() after rec.active = 0 and rec.gen++. */
void rec_detach_all(void)
{
	spin_lock(&rec_lock);
	for (uint32_t i = 0; pool && i < pool_used; i++) {
		struct mfx_thread *t = &pool[i];
		if (!t->in_use)
			continue;
		spin_lock(&t->lock);
		if (t->chunk)
			detach_range(t->chunk, MFX_CHUNK_SIZE);
		spin_unlock(&t->lock);
	}
	if (meta.chunk)
		munmap(meta.chunk, MFX_CHUNK_SIZE);
	meta.chunk = NULL;
	meta.cur = meta.limit = NULL;
	meta.seq = 0;
	spin_unlock(&rec_lock);
}

/* The header page and slot table: copy, then replace the file mapping with
 * anonymous memory holding the copy. */
void rec_detach_header(void)
{
	static uint8_t copy[MFX_FIRST_CHUNK];
	if (!rec.hdr)
		return;
	memcpy(copy, rec.hdr, sizeof(copy));
	detach_range(rec.hdr, MFX_FIRST_CHUNK);
	memcpy(rec.hdr, copy, sizeof(copy));
	if (rec.fd >= 0)
		close(rec.fd);
	rec.fd = -1;
}

/* fork child: the parent's chunks are MAP_SHARED with the parent's file;
 * drop them all, keep only this thread's state. */
void rec_after_fork_child(void)
{
	rec_lock = 0;
	struct mfx_thread *self = tls_self;
	for (uint32_t i = 0; pool && i < pool_used; i++) {
		struct mfx_thread *t = &pool[i];
		t->lock = 0;
		if (t->chunk)
			munmap(t->chunk, MFX_CHUNK_SIZE);
		t->chunk = NULL;
		t->slot = NULL;
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
