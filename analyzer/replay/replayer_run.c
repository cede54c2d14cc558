/*
 * replayer_run.c - the native replayer's threads (replayer.h): one per
 * traced thread, each running its own calls in their recorded order; waits
 * for blocks made on another thread (OPF_WAIT/OPF_PUBLISH), the epochs of
 * OPS_EPOCH calls that keep the window's order loosely, --max-live-bytes,
 * and the spawner that starts a thread when its first call is due and only
 * once every thread whose last call came before has ended (replayer.c's
 * first comment says why).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "replayer.h"

#define PUBLISH_EVERY 256

static uint64_t progress;	/* calls replayed, added per thread and epoch */
static uint32_t alive;		/* replay threads running */
uint32_t alive_max;		/* ... and the most at once */

/* Write the first and last byte and one in every page of a new block, so
 * that the replay's RSS is real (untouched pages are never resident). */
static inline void touch(void *p, uint64_t n)
{
	volatile char *c = p;
	if (!p || !n)
		return;
	c[0] = 1;
	for (uint64_t i = 4096; i < n; i += 4096)
		c[i] = 1;
	c[n - 1] = 1;
}

/* ---- the spawner --------------------------------------------------------------- */

static void heap_push(uint32_t w)
{
	uint32_t i = spawner.nheap++;
	spawner.heap[i] = w;
	while (i && workers[spawner.heap[(i - 1) / 2]].last > workers[spawner.heap[i]].last) {
		uint32_t p = (i - 1) / 2, t = spawner.heap[p];
		spawner.heap[p] = spawner.heap[i];
		spawner.heap[i] = t;
		i = p;
	}
}

static void heap_pop(void)
{
	spawner.heap[0] = spawner.heap[--spawner.nheap];
	for (uint32_t i = 0;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < spawner.nheap && workers[spawner.heap[l]].last < workers[spawner.heap[m]].last)
			m = l;
		if (r < spawner.nheap && workers[spawner.heap[r]].last < workers[spawner.heap[m]].last)
			m = r;
		if (m == i)
			break;
		uint32_t t = spawner.heap[m];
		spawner.heap[m] = spawner.heap[i];
		spawner.heap[i] = t;
		i = m;
	}
}

static void *run_thread(void *arg);

/* Start every thread that is due and allowed: its first call's epoch has
 * begun, and every started thread whose last call came before its first
 * has ended (joined).  Returns how many threads it started or joined. */
static int pump(void)
{
	int did = 0;
	while (spawner.next < spawner.norder) {
		struct worker *j = &workers[spawner.order[spawner.next]];
		while (spawner.nheap && workers[spawner.heap[0]].last < j->first) {
			struct worker *k = &workers[spawner.heap[0]];
			if (!__atomic_load_n(&k->finished, __ATOMIC_ACQUIRE))
				return did;
			if (!k->is_main)
				pthread_join(k->th, NULL);
			heap_pop();
			did++;
		}
		uint64_t due = (uint64_t)(j->first / OPS_EPOCH) * OPS_EPOCH;
		if (!cut && __atomic_load_n(&progress, __ATOMIC_ACQUIRE) < due)
			return did;
		/* our own thread's calls run on main, from the start: nothing to start */
		if (!j->is_main && pthread_create(&j->th, NULL, run_thread, j)) {
			cut = 1;	/* out of threads: stop rather than hang */
			return did;
		}
		heap_push((uint32_t)(j - workers));
		spawner.next++;
		did++;
	}
	return did;
}

static void backoff(unsigned spins)
{
	if (spins < 64)
		return;
	if (spins < 256) {
		sched_yield();
		return;
	}
	struct timespec ts = { 0, 20000 };
	nanosleep(&ts, NULL);
}

/* 0 once block id exists, -1 if a bound stopped the replay meanwhile. */
static int wait_ready(struct worker *w, uint32_t id)
{
	for (unsigned spins = 0; !__atomic_load_n(&ready[id], __ATOMIC_ACQUIRE); spins++) {
		if (cut)
			return -1;
		if (w->is_main && pump())
			spins = 0;
		backoff(spins);
	}
	return 0;
}

/* Enter epoch e: hand in the calls made so far, then wait until every call
 * of the epochs before e was replayed.  0, or -1 if a bound stopped it. */
static int gate(struct worker *w, uint64_t e)
{
	if (w->unflushed)
		__atomic_add_fetch(&progress, w->unflushed, __ATOMIC_RELEASE);
	w->unflushed = 0;
	w->epoch = e;
	for (unsigned spins = 0; __atomic_load_n(&progress, __ATOMIC_ACQUIRE) < e * OPS_EPOCH; spins++) {
		if (cut)
			return -1;
		if (w->is_main && pump())
			spins = 0;
		backoff(spins);
	}
	return 0;
}

/* Live bytes of every thread, as last published. */
static int64_t live_all(void)
{
	int64_t s = 0;
	for (uint32_t i = 0; i < nworkers; i++)
		s += __atomic_load_n(&workers[i].pub_live, __ATOMIC_RELAXED);
	return s;
}

/* Would op i pass --max-live-bytes?  0, or -1 when the replay must stop. */
static int bound(struct worker *w, uint64_t i, const struct op *o, int64_t *others)
{
	if ((i & (PUBLISH_EVERY - 1)) == 0) {
		__atomic_store_n(&w->pub_live, w->live, __ATOMIC_RELAXED);
		*others = live_all() - w->live;
	}
	if (o->kind != OP_FREE && *others + w->live + (int64_t)o->size > max_live)
		cut = 1;	/* stop every thread here */
	return cut ? -1 : 0;
}

/* The realloc of op o: 0, 1 when it needs no more bookkeeping, -1 to stop. */
static int do_realloc(struct worker *w, const struct op *o, void **p)
{
	void *old = NULL;
	if (o->old) {
		if ((o->flags & OPF_WAIT) && wait_ready(w, o->old))
			return -1;
		old = blk[o->old].p;
	}
	if (!o->id && !o->size && o->old) {	/* realloc(p, 0) freed p in the original */
		free(realloc(old, 0));	/* glibc frees; others may return a block */
		w->live -= (int64_t)blk[o->old].size;
		w->counts[OP_REALLOC]++;
		return 1;
	}
	*p = realloc(old, o->size);
	if (!o->id) {	/* failed in the original: the old block stays */
		if (*p && o->old)
			blk[o->old].p = *p;	/* it worked here: the block moved */
		else if (*p)
			free(*p);
		w->counts[OP_REALLOC]++;
		return 1;
	}
	if (o->old)
		w->live -= (int64_t)blk[o->old].size;
	return 0;
}

/* Replay one call.  0, or -1 when the replay must stop. */
static int do_op(struct worker *w, const struct op *o)
{
	void *p = NULL;
	int r;
	switch (o->kind) {
	case OP_MALLOC:
		p = malloc(o->size);
		break;
	case OP_CALLOC:
		p = calloc(1, o->size);
		break;
	case OP_MEMALIGN:
		if (posix_memalign(&p, (size_t)1 << o->align_log2, o->size))
			p = NULL;
		break;
	case OP_REALLOC:
		if ((r = do_realloc(w, o, &p)))
			return r < 0 ? -1 : 0;
		break;
	case OP_FREE:
		if ((o->flags & OPF_WAIT) && wait_ready(w, o->id))
			return -1;
		free(blk[o->id].p);
		w->live -= (int64_t)o->size;
		w->counts[OP_FREE] += !(o->flags & OPF_IMPLIED);
		return 0;
	}
	w->counts[o->kind]++;
	if (!o->id) {	/* the call failed in the original */
		free(p);
		return 0;
	}
	if (!p && o->size)
		w->failed_here++;
	touch(p, o->size);
	blk[o->id].p = p;
	blk[o->id].size = o->size;
	w->live += (int64_t)o->size;
	if (o->flags & OPF_PUBLISH)
		__atomic_store_n(&ready[o->id], 1, __ATOMIC_RELEASE);
	return 0;
}

/* One more replay thread alive (a started thread; our main thread from its
 * first call on: the original's was alive all along, but its calls say only
 * from when). */
static void enter_alive(void)
{
	uint32_t now = __atomic_add_fetch(&alive, 1, __ATOMIC_RELAXED);
	uint32_t was = __atomic_load_n(&alive_max, __ATOMIC_RELAXED);
	while (now > was && !__atomic_compare_exchange_n(&alive_max, &was, now, 0, __ATOMIC_RELAXED,
							 __ATOMIC_RELAXED))
		;
}

static void *run_thread(void *arg)
{
	struct worker *w = arg;
	const int bounded = max_live != INT64_MAX;
	int64_t others = 0;	/* the other threads' live bytes, refreshed now and then */
	if (!w->is_main)
		enter_alive();
	uint64_t i;
	w->epoch = UINT64_MAX;
	for (i = 0; i < w->n; i++) {
		const struct op *o = &w->ops[i];
		if (o->seq / OPS_EPOCH != w->epoch && gate(w, o->seq / OPS_EPOCH))
			break;
		if (i == 0 && w->is_main)
			enter_alive();
		if ((bounded && bound(w, i, o, &others)) || do_op(w, o))
			break;
		w->unflushed++;
	}
	w->done = i;
	__atomic_store_n(&w->pub_live, w->live, __ATOMIC_RELAXED);
	__atomic_add_fetch(&progress, w->unflushed, __ATOMIC_RELEASE);
	if (i || !w->is_main)
		__atomic_sub_fetch(&alive, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int by_first(const void *x, const void *y)
{
	const struct worker *a = &workers[*(const uint32_t *)x], *b = &workers[*(const uint32_t *)y];
	return a->first < b->first ? -1 : a->first > b->first;
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return a < b ? -1 : a > b;
}

/* The most threads whose [first, last] calls overlap: the original's
 * concurrency as far as its calls show it. */
uint32_t rp_overlap_max(void)
{
	uint32_t best = 0, live = 0, *ends = calloc(spawner.norder + 1, sizeof(*ends)), nends = 0;
	if (!ends)
		return 0;
	for (uint32_t i = 0; i < spawner.norder; i++)	/* order is by first */
		ends[nends++] = workers[spawner.order[i]].last;
	qsort(ends, nends, sizeof(*ends), cmp_u32);
	uint32_t e = 0;
	for (uint32_t i = 0; i < spawner.norder; i++) {
		while (e < nends && ends[e] < workers[spawner.order[i]].first) {
			e++;
			live--;
		}
		if (++live > best)
			best = live;
	}
	free(ends);
	return best;
}

/* Run every thread: ours first (on main), the others as the spawner allows. */
void rp_run_all(void)
{
	struct worker *mine = NULL;
	for (uint32_t i = 0; i < spawner.norder; i++)
		if (workers[spawner.order[i]].is_main)
			mine = &workers[spawner.order[i]];
	if (mine)
		run_thread(mine);
	for (unsigned spins = 0; spawner.next < spawner.norder; spins++) {
		if (pump())
			spins = 0;
		backoff(spins);
	}
	while (spawner.nheap) {
		struct worker *k = &workers[spawner.heap[0]];
		if (!k->is_main)
			pthread_join(k->th, NULL);
		heap_pop();
	}
}

void rp_sort_order(void)
{
	qsort(spawner.order, spawner.norder, sizeof(*spawner.order), by_first);
}
