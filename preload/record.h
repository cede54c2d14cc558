/*
 * record.h - how one hooked call becomes bytes in the trace: per-thread state,
 * the clock, and the inline encoders of event records.  Everything here runs on
 * the hot path: no locks, no syscalls, no allocation (the slow paths live in
 * record.c).
 *
 * A hook brackets its recording with rec_enter() / rec_leave().  rec_enter()
 * publishes "this thread is writing a record" (t->in_rec) and only then
 * re-checks that the recording is still on; agent_end() clears the flag
 * `active`, runs membarrier() (a full fence on every thread of the process)
 * and waits until no thread is in_rec.  That asymmetric handshake costs the
 * hot path one plain store and load instead of a fence, and lets agent_end()
 * take every thread's chunk back knowing nobody writes into it.
 */
#ifndef MFX_PRELOAD_RECORD_H
#define MFX_PRELOAD_RECORD_H

#include <stdint.h>
#include <string.h>
#include <x86intrin.h>

#include "trace/format.h"
#include "trace/varint.h"
#include "preload/agent.h"

#define barrier() __asm__ __volatile__("" ::: "memory")

/*
 * One traced thread.  Lives in an mmap'ed pool (not TLS: a dlopen'ed agent
 * only gets a few hundred bytes of static TLS), found through tls_self.
 */
struct mfx_thread {
	uint8_t *cur;			/* next record goes here */
	uint8_t *end;			/* switch chunks when cur passes this */
	uint8_t *payload;		/* start of the chunk's payload */
	struct mfx_chunk_header *chunk;	/* current chunk, NULL = none */
	volatile int in_rec;		/* writing a record (see above) */
	int32_t slot;			/* spool slot of `chunk`, -1: a file chunk */
	uint64_t prev_ts;		/* decoder state mirrored (see format) */
	uint64_t prev_ptr;
	uint32_t prev_stack;
	uint32_t gen;			/* recording generation of the chunk */
	uint32_t tid;
	uint32_t seq;			/* next chunk's sequence number */
	volatile int lock;		/* chunk swap vs. agent_end() */
	int in_use;
	struct mfx_thread *next_free;
	struct mfx_thread_slot *tslot;	/* progress counters in the trace file */
	/* Progress counters, published to `tslot` at each chunk switch (the
	 * slot lives in a page mfx reads: writing it per event would bounce
	 * its cache line). */
	uint64_t events, alloc_bytes, alloc_calls, free_calls;
	uint64_t chunk_ev0;		/* `events` when the chunk began (back-pressure drops it whole) */
} __attribute__((aligned(128)));	/* a cache-line pair of its own: no false sharing */

/* Process-wide recording state (record.c). */
struct rec_state {
	volatile int active;		/* hooks record */
	volatile uint32_t gen;		/* bumped by begin, end, fork */
	int stacks;			/* events carry stack ids */
	unsigned depth;			/* frames per stack */
	int use_tsc;			/* ts = rdtsc >> tsc_shift, else ns */
	unsigned tsc_shift;
	int fd;				/* the trace file */
	volatile int file_ok;		/* new chunks may be taken from the file */
	struct mfx_file_header *hdr;	/* mapped header page */
	struct mfx_thread_slot *slots;	/* mapped slot table */
} __attribute__((aligned(64)));		/* read by every hook, written rarely: alone on its line */
extern struct rec_state rec;

extern __thread struct mfx_thread *tls_self __attribute__((tls_model("initial-exec")));
extern __thread int tls_busy __attribute__((tls_model("initial-exec")));

/* Slow path of rec_enter(): register the thread, take a chunk, notice a
 * stop request.  Returns t with in_rec set, or NULL (in_rec clear). */
struct mfx_thread *rec_enter_slow(struct mfx_thread *t);
void rec_chunk_next(struct mfx_thread *t);

/* Non-NULL: record one event into the returned thread, then rec_leave(). */
static inline struct mfx_thread *rec_enter(void)
{
	struct mfx_thread *t = tls_self;
	if (unlikely(!t))
		return rec_enter_slow(NULL);
	t->in_rec = 1;
	barrier();	/* the other half of the fence is agent_end's membarrier */
	if (unlikely(!rec.active || rec.hdr->stop || t->gen != rec.gen || !t->chunk))
		return rec_enter_slow(t);
	return t;
}

static inline void rec_leave(struct mfx_thread *t)
{
	barrier();
	t->in_rec = 0;
}

/*
 * Timestamp in the trace's time base.  Plain rdtsc (11 ns here; rdtscp 21
 * ns) may execute a few dozen cycles early or late; an allocation's time is
 * still taken after the real call and a free's before it, and handing a
 * pointer to another thread takes far longer than that window.
 */
static inline uint64_t rec_ts(void)
{
	if (likely(rec.use_tsc))
		return __rdtsc() >> rec.tsc_shift;
	return agent_now_ns();
}

/* Time delta, clamped so a thread's times never go backwards. */
static inline uint8_t *put_ts(struct mfx_thread *t, uint8_t *p, uint64_t ts)
{
	uint64_t d = ts > t->prev_ts ? ts - t->prev_ts : 0;
	t->prev_ts += d;
	return put_varint(p, d);
}

static inline void rec_commit(struct mfx_thread *t, uint8_t *p)
{
	t->cur = p;
	__atomic_store_n(&t->chunk->used, (uint32_t)(p - t->payload), __ATOMIC_RELEASE);
	t->events++;
	if (unlikely(p > t->end))
		rec_chunk_next(t);
}

static inline uint8_t *put_stack(struct mfx_thread *t, uint8_t *p, unsigned *flags,
				 uint32_t stack)
{
	if (!rec.stacks)
		return p;
	if (stack == t->prev_stack) {
		*flags |= MFX_F_SAME_STACK;
		return p;
	}
	t->prev_stack = stack;
	return put_varint(p, stack);
}

static inline uint8_t *put_ptr(struct mfx_thread *t, uint8_t *p, unsigned *flags, const void *ptr)
{
	int64_t d = (int64_t)((uint64_t)ptr - t->prev_ptr);
	if (!(d & 15)) {
		*flags |= MFX_F_SHR4;
		d >>= 4;
	}
	t->prev_ptr = (uint64_t)ptr;
	return put_varint(p, zigzag(d));
}

/* MALLOC, CALLOC, VALLOC, PVALLOC and, with align, the aligned kinds. */
static inline void rec_alloc(struct mfx_thread *t, unsigned kind, uint64_t ts, uint64_t size,
			     uint64_t align, const void *ptr, uint32_t stack)
{
	uint8_t *b0 = t->cur, *p = b0 + 1;
	unsigned flags = 0;
	p = put_ts(t, p, ts);
	p = put_varint(p, size);
	if (kind >= MFX_K_POSIX_MEMALIGN && kind <= MFX_K_MEMALIGN)
		p = put_varint(p, align);
	if (ptr)
		p = put_ptr(t, p, &flags, ptr);
	else
		flags |= MFX_F_NULL;
	p = put_stack(t, p, &flags, stack);
	*b0 = (uint8_t)(kind | flags);
	t->alloc_bytes += size;
	t->alloc_calls++;
	rec_commit(t, p);
}

static inline void rec_free(struct mfx_thread *t, uint64_t ts, const void *ptr)
{
	uint8_t *b0 = t->cur, *p = b0 + 1;
	unsigned flags = 0;
	p = put_ts(t, p, ts);
	p = put_ptr(t, p, &flags, ptr);
	*b0 = (uint8_t)(MFX_K_FREE | flags);
	t->free_calls++;
	rec_commit(t, p);
}

/* REALLOC / REALLOCARRAY: old may be NULL (F_OLD_NULL), res NULL on failure. */
static inline void rec_realloc(struct mfx_thread *t, unsigned kind, uint64_t ts, uint64_t size,
			       const void *old, const void *res, uint32_t stack)
{
	uint8_t *b0 = t->cur, *p = b0 + 1;
	unsigned flags = 0;
	int64_t dold = (int64_t)((uint64_t)old - t->prev_ptr);
	uint64_t from = old ? (uint64_t)old : t->prev_ptr;
	int64_t dnew = (int64_t)((uint64_t)res - from);
	if ((!old || !(dold & 15)) && (!res || !(dnew & 15))) {
		flags |= MFX_F_SHR4;
		dold >>= 4;
		dnew >>= 4;
	}
	p = put_ts(t, p, ts);
	p = put_varint(p, size);
	if (old)
		p = put_varint(p, zigzag(dold));
	else
		flags |= MFX_F_OLD_NULL;
	if (res)
		p = put_varint(p, zigzag(dnew));
	else
		flags |= MFX_F_NULL;
	t->prev_ptr = res ? (uint64_t)res : from;
	p = put_stack(t, p, &flags, stack);
	*b0 = (uint8_t)(kind | flags);
	t->alloc_bytes += size;
	t->alloc_calls++;
	rec_commit(t, p);
}

#endif /* MFX_PRELOAD_RECORD_H */
