/*
 * spool_int.h - what spool.c (the drain) and spool_dest.c (the trace files
 * it writes) share; nothing outside trace/spool*.c includes it.
 */
#ifndef MFX_TRACE_SPOOL_INT_H
#define MFX_TRACE_SPOOL_INT_H

#include <pthread.h>
#include <stdint.h>

#include "trace/spool.h"
#include "trace/spool_format.h"
#include "trace/tracefile.h"

#define WAIT_NS 5000000L		/* longest sleep between drains */
#define ORPHAN_CHECK_NS 200000000ull	/* look for slots of dead processes */
#define MAX_TRACES 256
#define HOLD_SLOTS 4		/* a thread's slots encoded together (~256 KiB) */
#define HOLD_TOTAL (MFX_SPOOL_SLOTS / 16)	/* slots held back at most */
#define HOLD_NS 200000000ull	/* none held back longer */
#define CALIBRATE_NS 20000000ull	/* TSC rate measured over at least this */
#define SPILL_FREE (MFX_SPOOL_SLOTS / 4)	/* fewer free slots: the drain is behind */
#define SPILL_MAX (256ull << 20)	/* raw bytes spilled at most, per spool */

struct dest {
	uint64_t uid;
	int fd;
	struct mfx_file_header *hdr;
	uint64_t region, rlen, rused;	/* where packed chunks go now */
	uint64_t quantum;
	int stacks;
};

/* One thread's FULL slots, held back to be encoded as one chunk. */
struct group {
	uint64_t uid;
	uint32_t tid, next_seq, n;
	uint32_t slot[HOLD_SLOTS];
	uint8_t dead[HOLD_SLOTS];	/* the slot may be freed once written */
	uint64_t since;
	struct dest *d;			/* final drain: its trace file ... */
	uint64_t q;			/* ... and time quantum, found before */
};

struct spool {
	int fd;
	struct mfx_spool_header *h;
	char dir[4096];
	pthread_t thr;
	int running;
	volatile int stop;
	struct dest dst[MAX_TRACES];
	int ndst;
	struct group grp[HOLD_TOTAL];
	int ngrp, nheld;
	uint8_t held[MFX_SPOOL_SLOTS];
	struct take {		/* one drain pass's slots, sorted */
		uint64_t uid;
		uint32_t tid, seq, slot, free_it;
	} tk[MFX_SPOOL_SLOTS];
	struct packer *pk;
	uint64_t tsc0, ns0;		/* for the TSC rate */
	struct spool_stats st;
	uint64_t spilled_bytes;		/* see spill() */
	int spill_all;			/* MFX_SPILL=1 (tests): every slot spilled */
	/* the final drain: every slot left, in groups packed on every core */
	struct group fin[MFX_SPOOL_SLOTS + HOLD_TOTAL];
	pthread_mutex_t lock;		/* the trace files and counters, then */
	struct evc_stats fin_model;
};

/* The trace file of trace `uid` in the run directory, opened and its
 * header mapped on first sight; NULL when it is not there (yet). */
struct dest *spool_dest_for(struct spool *sp, uint64_t uid);
/* The trace's time quantum, set in its header before its first MODEL chunk. */
uint64_t spool_dest_quantum(struct spool *sp, struct dest *d);
/* Append one stored chunk of `span` bytes: 0 or -errno (ENOSPC, EIO). */
int spool_dest_append(struct dest *d, const uint8_t *c, size_t span);
/* `chunks` chunks of d lost to err: counted in its header and the stats. */
void spool_write_failed(struct spool *sp, struct dest *d, int err, uint32_t chunks);

#endif /* MFX_TRACE_SPOOL_INT_H */
