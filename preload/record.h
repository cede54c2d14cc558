/*
 * record.h - how one hooked call becomes bytes in the trace: per-thread state,
 * the clock, and the inline encoders of event records.  Everything here runs on
 * the hot path: no locks, no syscalls, no allocation (the slow paths live in
 * record.c).
 */
#ifndef MFX_PRELOAD_RECORD_H
#define MFX_PRELOAD_RECORD_H

#include <stdint.h>
#include <string.h>
#include <x86intrin.h>

#include "mfx/trace_format.h"
#include "mfx/varint.h"
#include "preload/agent.h"

/*
 * One traced thread.  Lives in an mmap'ed pool (not TLS: a dlopen'ed agent
 * only gets a few hundred bytes of static TLS), found through tls_self.
 */
struct mfx_thread {
	uint8_t *cur;			/* next record goes here */
	uint8_t *end;			/* switch chunks when cur passes this */
	uint8_t *payload;		/* start of the chunk's payload */
	struct mfx_chunk_header *chunk;	/* current chunk, NULL = none */
	struct mfx_thread_slot *slot;	/* progress counters, NULL = none */
	uint64_t prev_ts;		/* decoder state mirrored (see format) */
	uint64_t prev_ptr;
	uint32_t prev_stack;
	uint32_t gen;			/* trace generation the chunk belongs to */
	uint32_t tid;
	uint32_t seq;			/* next chunk's sequence number */
	volatile int lock;		/* chunk swap vs. agent_end's detach */
	int in_use;
	struct mfx_thread *next_free;
};

/* Process-wide recording state (record.c). */
struct rec_state {
	volatile int active;		/* hooks record */
	volatile uint32_t gen;		/* bumped by begin, end, fork */
	int stacks;			/* events carry stack ids */
	unsigned depth;			/* frames per stack */
	int use_tsc;			/* ts = rdtscp >> tsc_shift, else ns */
	unsigned tsc_shift;
	int fd;				/* the trace file */
	volatile int file_ok;		/* new chunks may be taken from the file */
	struct mfx_file_header *hdr;	/* mapped header page */
	struct mfx_thread_slot *slots;	/* mapped slot table */
};
extern struct rec_state rec;

extern __thread struct mfx_thread *tls_self __attribute__((tls_model("initial-exec")));
extern __thread int tls_busy __attribute__((tls_model("initial-exec")));

/* Slow path: register the thread or switch to a fresh chunk. NULL = drop. */
struct mfx_thread *rec_thread_slow(void);
void rec_chunk_next(struct mfx_thread *t);
/* The header's stop flag was seen: end the recording (once). */
void rec_stop_seen(void);

/* Non-zero when this call must be recorded. */
static inline int rec_on(void)
{
	if (likely(!rec.active))
		return 0;
	if (unlikely(rec.hdr->stop)) {
		rec_stop_seen();
		return 0;
	}
	return 1;
}

static inline struct mfx_thread *rec_thread(void)
{
	struct mfx_thread *t = tls_self;
	if (likely(t && t->gen == rec.gen && t->chunk))
		return t;
	return rec_thread_slow();
}

/*
 * Timestamp in the trace's time base.  rdtscp waits for the preceding
 * instructions to finish, so an allocation's time is taken after the real
 * call has returned, and a free's before the real free starts.
 */
static inline uint64_t rec_ts(void)
{
	if (likely(rec.use_tsc)) {
		unsigned aux;
		return __rdtscp(&aux) >> rec.tsc_shift;
	}
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
	if (likely(t->slot))
		t->slot->events++;
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

/* MALLOC, CALLOC, VALLOC, PVALLOC and, with align != 0, the aligned kinds. */
static inline void rec_alloc(struct mfx_thread *t, unsigned kind, uint64_t ts, uint64_t size,
			     uint64_t align, const void *ptr, uint32_t stack)
{
	uint8_t *b0 = t->cur, *p = b0 + 1;
	unsigned flags = 0;
	p = put_ts(t, p, ts);
	p = put_varint(p, size);
	if (kind >= MFX_K_POSIX_MEMALIGN && kind <= MFX_K_MEMALIGN)
		p = put_varint(p, align);
	if (ptr) {
		int64_t d = (int64_t)((uint64_t)ptr - t->prev_ptr);
		if (!(d & 15)) {
			flags |= MFX_F_SHR4;
			d >>= 4;
		}
		p = put_varint(p, zigzag(d));
		t->prev_ptr = (uint64_t)ptr;
	} else {
		flags |= MFX_F_NULL;
	}
	p = put_stack(t, p, &flags, stack);
	*b0 = (uint8_t)(kind | flags);
	if (likely(t->slot)) {
		t->slot->alloc_bytes += size;
		t->slot->alloc_calls++;
	}
	rec_commit(t, p);
}

static inline void rec_free(struct mfx_thread *t, uint64_t ts, const void *ptr)
{
	uint8_t *b0 = t->cur, *p = b0 + 1;
	unsigned flags = 0;
	p = put_ts(t, p, ts);
	int64_t d = (int64_t)((uint64_t)ptr - t->prev_ptr);
	if (!(d & 15)) {
		flags |= MFX_F_SHR4;
		d >>= 4;
	}
	p = put_varint(p, zigzag(d));
	t->prev_ptr = (uint64_t)ptr;
	*b0 = (uint8_t)(MFX_K_FREE | flags);
	if (likely(t->slot))
		t->slot->free_calls++;
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
	int shr = (!old || !(dold & 15)) && (!res || !(dnew & 15));
	if (shr) {
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
	if (likely(t->slot)) {
		t->slot->alloc_bytes += size;
		t->slot->alloc_calls++;
	}
	rec_commit(t, p);
}

#endif /* MFX_PRELOAD_RECORD_H */
