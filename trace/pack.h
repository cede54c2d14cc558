/*
 * pack.h - raw chunks into their stored form: a thread's EVENTS chunks
 * encoded together as one MFX_CODEC_MODEL chunk (trace/evcodec.h), any other
 * chunk compressed with zstd.  mfx's drain thread (trace/spool.c) packs event
 * chunks while the window runs; the finaliser (trace/tracefile.c) packs what
 * is still raw at the end (chunks the agent mapped from the file when the
 * spool was full, META and MFX chunks).
 */
#ifndef MFX_TRACE_PACK_H
#define MFX_TRACE_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "trace/evcodec.h"
#include "trace/format.h"

#define PACK_LEVEL 3	/* zstd level of the model's columns: level 1 is ~5% faster
			   and ~1-8% bigger */

struct packer;
int pack_new(struct packer **out);	/* 0 or -ENOMEM */
void pack_free(struct packer *pk);

/*
 * n raw EVENTS chunks of one thread, consecutive in seq, as one MODEL chunk:
 * its header (c[0]'s, codec MODEL, used = the raw bytes of all) and payload,
 * zero-padded to `span` bytes (a multiple of 8).  Times are floored to
 * multiples of q.  Returns span, the chunk at *out (valid until the next
 * call), or 0: not representable (see evc_enc_finish): store them otherwise.
 */
size_t pack_events(struct packer *pk, const struct mfx_chunk_header *const *c, size_t n,
		   int stacks, uint64_t q, const uint8_t **out);

/*
 * One raw chunk as stored: its payload compressed with zstd when that is
 * smaller, else as it is, cut to `used`.  Returns span (the chunk at *out,
 * valid until the next call), or 0 (out of memory).
 */
size_t pack_plain(struct packer *pk, const struct mfx_chunk_header *c, const uint8_t **out);

/* The model's column sizes so far (events, chunks, bytes per column). */
const struct evc_stats *pack_stats(const struct packer *pk);

/*
 * Run job(ctx, i, pk) for every i in [0, n) on up to `threads` threads (the
 * caller's among them), each with a packer of its own: the end of a window
 * packs what is left on every core.  Jobs run in any order and at once: what
 * they share they lock.  The packers' column sizes are added to *sum (may be
 * NULL).  0, or the first error a job (or starting the threads) returned;
 * every job ran anyway.
 */
int pack_each(size_t n, int threads, int (*job)(void *ctx, size_t i, struct packer *pk),
	      void *ctx, struct evc_stats *sum);
/* Threads for pack_each: the online CPUs, 8 at most. */
int pack_threads(void);

/*
 * The time quantum of a trace, in its event time units: the largest whole
 * number of units not above MFX_TIME_QUANTUM_NS (TSC units need the TSC
 * rate, tsc_hz; 0 = unknown: 1 unit).
 */
uint64_t pack_quantum(const struct mfx_file_header *h, uint64_t tsc_hz);

#endif /* MFX_TRACE_PACK_H */
