/*
 * evcodec.h - the event model codec (MFX_CODEC_MODEL, trace format 2): one
 * thread's EVENTS chunk, as the agent recorded it (raw records, see
 * trace/format.h), rewritten as columns of what a model of the program's
 * allocator cannot predict, each compressed with zstd; and back.
 *
 * The model (docs/trace-format.md, "Model chunks") is the same on both sides
 * and starts empty in every chunk, so every chunk decodes on its own:
 *  - a free names its block by its rank among the blocks this chunk
 *    allocated and has not freed yet (counted from the newest or the oldest,
 *    whichever is nearer), not by its address;
 *  - an allocation's result is found among the blocks recently freed in its
 *    size class (a LIFO, as glibc's tcache and jemalloc's tcache hand them
 *    out), or coded as a distance from where the previous block ended;
 *  - a size is the size this stack allocated last time, or a size class
 *    plus the remainder; a stack is its place in a move-to-front list;
 *  - times are deltas in quanta of the trace's precision (the header's
 *    time_quantum): the codec floors every time to that grid.
 * Everything else is kept exactly: pointers, sizes, alignments, failed
 * calls, stacks, kinds, order.  evc_encode() refuses (returns 0) what it
 * cannot represent, and the caller keeps that chunk in another codec.
 *
 * Used by mfx's drain thread and finaliser (encode) and the reader (decode);
 * never by the agent.
 */
#ifndef MFX_TRACE_EVCODEC_H
#define MFX_TRACE_EVCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "trace/format.h"

/* The raw records one MODEL chunk holds at most (the drain packs 4 slots of
 * 64 KiB): bounds what a reader allocates for one chunk. */
#define EVC_MAX_RAW (16u * MFX_CHUNK_SIZE)

/* One event, as recorded (times in the chunk's units: TSC >> tsc_shift, or
 * ns when the chunk's timebase is 1). */
struct evc_event {
	uint64_t ts;
	uint64_t ptr;		/* alloc/realloc: the result (0: the call failed);
				   free: the pointer freed */
	uint64_t old;		/* realloc family: the old pointer (0: NULL) */
	uint64_t size;		/* requested bytes (calloc: nmemb * size) */
	uint64_t align;		/* memalign family; else 0 */
	uint32_t stack;		/* 0 = none */
	uint8_t kind;		/* enum mfx_kind, never EXT or PAD */
};

/* Columns of a MODEL payload, in this order. */
enum evc_col {
	EVC_OP,		/* per event: kind | model flags (EVC_F_*) */
	EVC_TS,		/* per event: time delta, in quanta */
	EVC_STACK,	/* per allocating event (stacks on): move-to-front code */
	EVC_SZHIT,	/* per allocating event: 0, or 1 + its place among the sizes
			   its stack allocated last */
	EVC_SIZE,	/* sizes the model did not predict: their class byte */
	EVC_SZREM,	/* ... and the remainder below the class's base */
	EVC_ALIGN,	/* memalign family: the alignment */
	EVC_REF,	/* per freed pointer: 0 = explicit, else 1 + rank code */
	EVC_HIT,	/* per result pointer: 0 = explicit; 1 + its place in its
			   class's free list; or 9 + its place among the blocks
			   freed by pointer */
	EVC_PTR,	/* explicit pointers: zigzag distance from a prediction */
	EVC_NCOLS,
};
const char *evc_col_name(unsigned c);

/* Model flags in the high nibble of an OP byte. */
#define EVC_F_RESERVED 0x10u	/* never set */
#define EVC_F_NULL     0x20u	/* the call failed: no result pointer */
#define EVC_F_SAME     0x40u	/* realloc: result = the old pointer */
#define EVC_F_OLD_NULL 0x80u	/* realloc: the old pointer was NULL */

/* Raw records: the agent's grammar (trace/format.h).  State reset per chunk. */
struct evc_raw {
	uint64_t ts, ptr;
	uint32_t stack;
};
/* Parse the record at *p: 1 = an event in *ev, 2 = an extended record
 * (skipped: *p moves past it), -1 = malformed.  *p < end on entry. */
int evc_raw_next(struct evc_raw *st, const uint8_t **p, const uint8_t *end, int stacks,
		 struct evc_event *ev);

/* Per-column byte counts, summed over every chunk encoded. */
struct evc_stats {
	uint64_t events, chunks, refused;
	uint64_t raw[EVC_NCOLS], stored[EVC_NCOLS];
	uint64_t header;	/* payload headers (counts, column table) */
};

/* sum += st */
void evc_stats_add(struct evc_stats *sum, const struct evc_stats *st);

struct evc_enc;
struct evc_enc *evc_enc_new(void);
void evc_enc_free(struct evc_enc *e);
/*
 * Start a MODEL payload for a chunk whose header says base_ts (the first
 * raw chunk's), times floored to multiples of q (>= 1, in the chunk's
 * units), stacks: the trace has MFX_HF_STACKS.
 */
void evc_enc_begin(struct evc_enc *e, uint64_t base_ts, int stacks, uint64_t q);
/*
 * Add one raw EVENTS payload [raw, raw + used) of a chunk whose times start
 * at base_ts: a thread's chunks, one after the other, are encoded together.
 * A time below the previous event's (the next chunk's clock pair read a hair
 * behind) is raised to it.  0, or -1: the payload cannot be encoded
 * (malformed, extended records, free(NULL), a pointer distance beyond 2^61,
 * out of memory); evc_enc_finish() then refuses this payload and the ones
 * added with it: keep them in another codec.
 */
int evc_enc_add(struct evc_enc *e, const uint8_t *raw, size_t used, uint64_t base_ts);
/* Events added since evc_enc_begin(); *raw_bytes: their raw records' size. */
size_t evc_enc_pending(const struct evc_enc *e, uint64_t *raw_bytes);
/*
 * The MODEL payload of the events added, columns compressed with zstd at
 * `level`: its length (the payload at *out, valid until the next call), or
 * 0 when nothing was added or something could not be encoded.
 */
size_t evc_enc_finish(struct evc_enc *e, int level, const uint8_t **out);
/* Column sizes of every chunk this encoder made. */
const struct evc_stats *evc_enc_stats(const struct evc_enc *e);

struct evc_dec;
struct evc_dec *evc_dec_new(void);
void evc_dec_free(struct evc_dec *d);
/*
 * Start decoding a MODEL payload [p, p + stored) of a chunk whose times start
 * at base_ts.  `used` is the chunk header's raw length: it bounds the event
 * count (and so the memory).  zd: a ZSTD_DCtx * to decompress with.  0 or
 * -MFX_E_CORRUPT / -ENOMEM.
 */
int evc_dec_open(struct evc_dec *d, void *zd, const uint8_t *p, size_t stored, uint32_t used,
		 uint64_t base_ts, int stacks);
/* The next event: 1, 0 at the end, -MFX_E_CORRUPT. */
int evc_dec_next(struct evc_dec *d, struct evc_event *ev);
/* The payload's time quantum (in the chunk's units), after evc_dec_open(). */
uint64_t evc_dec_quantum(const struct evc_dec *d);

#endif /* MFX_TRACE_EVCODEC_H */
