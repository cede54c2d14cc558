/*
 * reader_int.h - the trace reader's insides, shared by its files (never
 * included outside trace/reader*.c):
 *   reader.c        open, header, the chunk walk, clock fit, accessors
 *   reader_meta.c   metadata records (stacks, modules, samples, marks, ...)
 *   reader_chunk.c  reading a chunk (pread, or the caller's buffer) and
 *                   decoding one thread's events from its chunks
 *   reader_merge.c  decoding every thread's events ahead, in batches, on
 *                   worker threads; merging them by time (trace_next)
 */
#ifndef MFX_TRACE_READER_INT_H
#define MFX_TRACE_READER_INT_H

#include <pthread.h>
#include <stdint.h>

#include "trace/format.h"
#include "trace/reader.h"

struct chunk_ref {
	uint64_t off;		/* of the header in the file */
	uint32_t seq;
	uint32_t used;
	uint64_t base_ts;	/* with seq: the same chunk copied twice */
};

/* What one decoding thread needs besides a stream: a zstd context and
 * buffers for the chunk read from the file and its columns. */
struct rctx {
	void *zd;		/* ZSTD_DCtx */
	uint8_t *fbuf;		/* the chunk as read (pread) */
	size_t fcap;
	uint8_t *colbuf;	/* decoded columns of a COLS chunk */
	size_t colcap;
};

/* Events decoded ahead, per stream: RD_NBATCH batches of RD_BATCH. */
#define RD_BATCH 1024u
#define RD_NBATCH 4u	/* a power of two */

struct rbatch {
	struct trace_event *ev;	/* [RD_BATCH] */
	uint32_t n;
	int end;		/* 0: more follow; 1: the stream ends after these;
				   < 0: an error after these n events */
};

/* One thread's event stream. */
struct tstream {
	uint32_t tid;
	uint32_t index;		/* dense thread index */
	struct chunk_ref *chunks;
	size_t nchunks, cap;
	/* decoder state: only the thread holding `busy` touches it */
	size_t next;		/* next chunk to open */
	const uint8_t *p, *end;	/* decode cursor in the current chunk */
	uint8_t *buf;		/* the current chunk's raw records */
	size_t bufcap;
	struct evc_dec *dec;	/* the current chunk is MFX_CODEC_MODEL: its decoder */
	int model;
	int floored;		/* the MODEL chunk's times are on the trace's grid */
	uint64_t last_ns;	/* the previous event's time: times never go back */
	uint64_t ts, ptr;
	uint32_t stack;
	uint64_t base_ts, base_ns;
	int timebase;
	/* batches: filled by a decoder (prod), read by trace_next (cons);
	 * prod, cons, busy, fin under trace.mu */
	struct rbatch b[RD_NBATCH];
	uint64_t prod, cons;
	int busy, fin;
	/* the consumer's cursor: the next event, in batch cons */
	const struct trace_event *head;
	uint32_t pos;
};

struct trace {
	const uint8_t *map;	/* trace_open_mem: the caller's buffer; else NULL */
	int fd;			/* trace_open: the file (read with pread) */
	size_t size;
	struct mfx_file_header hdr;
	struct trace_info info;
	uint64_t limit;		/* end of chunk area */
	double ns_per_unit;	/* event time unit -> ns */
	uint64_t mult;		/* ns_per_unit * 2^32 */
	uint64_t quantum;	/* times floored to multiples of this (units), >= 1 */
	uint64_t quantum_ns;	/* ... that many ns (rounded up) */

	struct tstream *th;
	size_t nth, capth;
	uint32_t *tids;
	uint32_t *heap;		/* stream indices, min-heap on next event */
	size_t nheap;
	int started;
	struct rctx mx;		/* the caller's thread: metadata, inline decoding */
	/* decoding workers (reader_merge.c) */
	pthread_mutex_t mu;
	pthread_cond_t work, ready;
	struct rworker *wk;	/* [nwk], the first nworkers running */
	int nwk, nworkers, stop;

	uint64_t **stacks;	/* [id] -> frames, stacks[id][-1] = depth */
	uint32_t nstacks;
	struct trace_module *mods;
	size_t nmods, capmods;
	struct trace_sample *samples;
	size_t nsamples, capsamples;
	struct trace_mark *marks;
	size_t nmarks, capmarks;
	struct kv { char *k, *v; } *infos;
	size_t ninfos, capinfos;
	struct kv *threads;	/* k = tid as text */
	size_t nthreadnames, capthreadnames;
	/* clock pairs (unit, ns) for fitting the TSC rate */
	uint64_t sync_lo_u, sync_lo_ns, sync_hi_u, sync_hi_ns;
	int have_sync;
	uint64_t decoded;	/* bytes all chunks decode to (checked at open) */
	uint8_t *metabuf;
	size_t metacap;
};

/* reader_chunk.c */
/* len bytes at off of the trace: in the caller's buffer, or read into
 * x->fbuf (valid until the next read with x).  0 or -MFX_E_TRUNCATED /
 * -errno. */
int rd_read(const struct trace *t, struct rctx *x, uint64_t off, size_t len,
	    const uint8_t **out);
/* The chunk at off, header and payload (*c valid as rd_read's). */
int rd_chunk(const struct trace *t, struct rctx *x, uint64_t off,
	     const struct mfx_chunk_header **c);
/* Payload of a chunk read by rd_chunk, decompressed (or copied) into *buf
 * if needed. */
int rd_payload(const struct trace *t, struct rctx *x, const struct mfx_chunk_header *c,
	       uint8_t **buf, size_t *cap, const uint8_t **p, size_t *len);
void rd_ctx_free(struct rctx *x);
/* Decode the stream's next event into *ev: 1, 0 at its end, < 0 error. */
int rd_stream_decode(const struct trace *t, struct rctx *x, struct tstream *s,
		     struct trace_event *ev);

/* reader_meta.c */
int rd_parse_meta(struct trace *t, const uint8_t *p, const uint8_t *end);
void rd_note_sync(struct trace *t, uint64_t u, uint64_t ns);

/* reader_merge.c */
void rd_stop(struct trace *t);		/* workers stopped, batches kept */
void rd_streams_free(struct trace *t);

#endif /* MFX_TRACE_READER_INT_H */
