/*
 * replayer.h - what the two files of the native replayer (mfx-replay)
 * share: replayer.c, the program (its arguments, the ops file checked and
 * mapped, the JSON line), and replayer_run.c, the replay threads and the
 * spawner that starts them.  Built alone, on ops.h and opsread.h only, so
 * that it runs under any allocator (docs/design.md, "Layers").
 */
#ifndef MFX_REPLAY_REPLAYER_H
#define MFX_REPLAY_REPLAYER_H

#include <pthread.h>
#include <stdint.h>

#include "opsread.h"

struct block {
	void *p;
	uint64_t size;		/* requested size, as in the trace */
};

/* One traced thread's calls, replayed by one thread of ours. */
struct worker {
	const struct op *ops;
	uint64_t n, done;
	uint64_t counts[6], failed_here;
	int64_t live;			/* this thread's share, published below */
	volatile int64_t pub_live;
	uint32_t first, last;		/* seq of its first and last call */
	uint64_t epoch, unflushed;	/* its current epoch; calls not yet in progress */
	int is_main;			/* runs on our main thread */
	int finished;			/* its calls are done (atomic) */
	pthread_t th;
} __attribute__((aligned(64)));

/* The spawner (our main thread): threads by first call; started ones in a
 * min-heap by last call, to be joined before a later thread starts. */
struct spawner {
	uint32_t *order, norder, next;
	uint32_t *heap, nheap;
};

/* The tables, from mmap (replayer.c's load()), not from the allocator
 * under test. */
extern struct block *blk;		/* by block id, 1 .. nblocks */
extern volatile uint8_t *ready;		/* by block id: made (OPF_PUBLISH) */
extern struct worker *workers;
extern uint32_t nworkers;
extern struct spawner spawner;

extern int64_t max_live;		/* --max-live-bytes */
extern volatile int cut;		/* a bound stopped the replay */
extern uint32_t alive_max;		/* the most replay threads alive at once */

/* ---- replayer_run.c ---- */

/* spawner.order sorted by each thread's first call. */
void rp_sort_order(void);
/* The most threads whose [first, last] calls overlap in the original. */
uint32_t rp_overlap_max(void);
/* Run every thread: ours first (on main), the others as the spawner allows. */
void rp_run_all(void);

#endif /* MFX_REPLAY_REPLAYER_H */
