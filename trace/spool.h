/*
 * spool.h - mfx's end of the shared-memory spool (trace/spool_format.h): create it,
 * drain full slots into the trace files on a thread of its own while the
 * target runs, and drain whatever is left at the end (slots of processes that
 * died are drained too: nothing they recorded is lost).
 */
#ifndef MFX_TRACE_SPOOL_H
#define MFX_TRACE_SPOOL_H

#include <stdint.h>

#include "trace/evcodec.h"

struct spool;

/* A new spool (memfd, close-on-exec: clear it for a child that must
 * inherit it). 0 or -errno. */
int spool_create(struct spool **out);
int spool_fd(const struct spool *sp);
/* Start draining into the trace files of run_dir. 0 or -errno. */
int spool_start(struct spool *sp, const char *run_dir);
/* Stop the drain thread and drain every slot that holds data. */
void spool_stop(struct spool *sp);
void spool_free(struct spool *sp);

struct spool_stats {
	uint64_t chunks;	/* slots written into trace files */
	uint64_t fallbacks;	/* chunks agents took from the file: no free slot */
	uint64_t orphans;	/* slots whose trace file was not found */
	uint64_t spilled;	/* slots written raw, the drain behind (the finaliser encodes them) */
	struct evc_stats model;	/* what the encoded chunks hold */
	uint64_t write_errors;	/* chunks that could not be written (full disk) */
	int write_errno;	/* the first such error */
};
void spool_stats(const struct spool *sp, struct spool_stats *st);

#endif
