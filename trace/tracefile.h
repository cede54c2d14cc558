/*
 * tracefile.h - the mfx process's side of a trace file while its target
 * records into it: reading the agent's state and progress counters, appending
 * mfx's own chunk (RSS samples, marks, thread names, clock pairs), asking the
 * agent to stop, and finalising (compacting and compressing) the file after.
 */
#ifndef MFX_TRACE_TRACEFILE_H
#define MFX_TRACE_TRACEFILE_H

#include <limits.h>
#include <stdint.h>

#include "trace/format.h"

struct tfile {
	int fd;
	char path[PATH_MAX];
	struct mfx_file_header *hdr;		/* MAP_SHARED with the agent */
	struct mfx_thread_slot *slots;
	struct mfx_chunk_header *chunk;		/* our current MFX chunk */
	uint8_t *cur, *limit;
	uint32_t seq;
};

/* Map an existing trace file.  -EAGAIN while the agent has not written its
 * header yet. */
int tfile_open(const char *path, struct tfile *tf);
void tfile_close(struct tfile *tf);

/* Counters summed over the thread slots (racy reads: for progress only). */
struct tfile_progress {
	uint64_t events, alloc_bytes, alloc_calls, free_calls;
	uint32_t threads;
};
void tfile_progress(const struct tfile *tf, struct tfile_progress *p);

int tfile_sample(struct tfile *tf, uint64_t ts_ns, const uint64_t v[MFX_SF_NFIELDS]);
int tfile_mark(struct tfile *tf, uint64_t ts_ns, uint32_t kind, const uint64_t *vals,
	       uint32_t nvals, const char *text);
int tfile_info(struct tfile *tf, const char *key, const char *value);
int tfile_thread(struct tfile *tf, uint32_t tid, const char *name);
/* A (TSC >> tsc_shift, CLOCK_MONOTONIC ns) pair taken now. */
int tfile_sync(struct tfile *tf);

/* Ask the agent to stop recording (header flag). */
void tfile_request_stop(struct tfile *tf);

struct finalize_stats {
	uint64_t raw_bytes, final_bytes, events;
	uint32_t chunks;
};
/* Rewrite `path` compacted: unwritten slots dropped, chunks compressed with
 * zstd, MFX_HF_FINAL set, tsc_hz recorded (0 = leave).  Atomic (tmp +
 * rename).  0 or -errno / -MFX_E_*. */
int tfile_finalize(const char *path, uint64_t tsc_hz, struct finalize_stats *st);

/* rdtscp, for measuring the TSC rate beside the target. */
uint64_t tfile_tsc(void);

#endif /* MFX_TRACE_TRACEFILE_H */
