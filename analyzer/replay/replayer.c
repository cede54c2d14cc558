/*
 * mfx-replay - the native replayer (Approach B): replays a captured window's
 * allocation calls, thread by thread, from RUN/replay.ops (ops.h), under
 * whatever allocator is preloaded.  `mfx replay` runs it once per allocator
 * and measures its RSS from outside (/proc/PID/status, smaps).
 *
 *   mfx-replay OPS_FILE [--max-ops N] [--max-live-bytes N] [--hold]
 *
 * One replay thread per traced thread, each running its own calls in their
 * recorded order.  A free (or realloc) of a block another thread allocated
 * waits until that allocation was replayed (OPF_WAIT/OPF_PUBLISH), so every
 * call sees the same block states as in the original.  The threads keep the
 * window's order loosely, by epochs of OPS_EPOCH calls (ops.h): a program
 * whose threads take turns is replayed taking turns.  The thread of the
 * traced process's main thread runs on our main thread (glibc gives it the
 * main arena, as in the original); the others are started when their first
 * call is due, and only once every thread whose last call came before has
 * ended, so no more threads are alive at once than in the original (a
 * thread-per-request server's thousands of short threads are not all
 * started at once).  The first and last byte and every page of every block
 * are written once, so RSS is real.  Blocks still live at the end stay
 * allocated.
 *
 * Memory of its own: the ops file is mapped (file-backed, read once) and one
 * table entry per block (pointer, size, ready flag) comes from mmap, not from
 * the allocator under test.
 *
 * peak_live_bytes is computed after the run over the calls replayed, in the
 * window's recorded order (seq), so it equals the trace's when no bound cut
 * the replay; the threads' real interleaving shows in RSS.
 *
 * Prints one JSON object on stdout; with --hold it then waits for stdin to
 * close, so mfx can take its last RSS and smaps readings before it exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "opsread.h"

struct block {
	void *p;
	uint64_t size;		/* requested size, as in the trace */
};

static struct block *blk;
static volatile uint8_t *ready;
static int64_t max_live = INT64_MAX;	/* --max-live-bytes */
static volatile int cut;		/* a bound stopped the replay */
static uint64_t progress;		/* calls replayed, added per thread and epoch */
static uint32_t alive, alive_max;	/* replay threads running, and the most at once */

#define PUBLISH_EVERY 256

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

static struct worker *workers;
static uint32_t nworkers;

/* The spawner (our main thread): threads by first call; started ones in a
 * min-heap by last call, to be joined before a later thread starts. */
static struct {
	uint32_t *order, norder, next;
	uint32_t *heap, nheap;
} sp;

/* Its own clock and RssAnon reader, not common/'s: the replayer is built
 * alone (no mfx object linked) so that it runs under any allocator. */
static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

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
	uint32_t i = sp.nheap++;
	sp.heap[i] = w;
	while (i && workers[sp.heap[(i - 1) / 2]].last > workers[sp.heap[i]].last) {
		uint32_t p = (i - 1) / 2, t = sp.heap[p];
		sp.heap[p] = sp.heap[i];
		sp.heap[i] = t;
		i = p;
	}
}

static void heap_pop(void)
{
	sp.heap[0] = sp.heap[--sp.nheap];
	for (uint32_t i = 0;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < sp.nheap && workers[sp.heap[l]].last < workers[sp.heap[m]].last)
			m = l;
		if (r < sp.nheap && workers[sp.heap[r]].last < workers[sp.heap[m]].last)
			m = r;
		if (m == i)
			break;
		uint32_t t = sp.heap[m];
		sp.heap[m] = sp.heap[i];
		sp.heap[i] = t;
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
	while (sp.next < sp.norder) {
		struct worker *j = &workers[sp.order[sp.next]];
		while (sp.nheap && workers[sp.heap[0]].last < j->first) {
			struct worker *k = &workers[sp.heap[0]];
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
		sp.next++;
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
static uint32_t overlap_max(void)
{
	uint32_t best = 0, live = 0, *ends = calloc(sp.norder + 1, sizeof(*ends)), nends = 0;
	if (!ends)
		return 0;
	for (uint32_t i = 0; i < sp.norder; i++)	/* order is by first */
		ends[nends++] = workers[sp.order[i]].last;
	qsort(ends, nends, sizeof(*ends), cmp_u32);
	uint32_t e = 0;
	for (uint32_t i = 0; i < sp.norder; i++) {
		while (e < nends && ends[e] < workers[sp.order[i]].first) {
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
static void run_all(void)
{
	struct worker *mine = NULL;
	for (uint32_t i = 0; i < sp.norder; i++)
		if (workers[sp.order[i]].is_main)
			mine = &workers[sp.order[i]];
	if (mine)
		run_thread(mine);
	for (unsigned spins = 0; sp.next < sp.norder; spins++) {
		if (pump())
			spins = 0;
		backoff(spins);
	}
	while (sp.nheap) {
		struct worker *k = &workers[sp.heap[0]];
		if (!k->is_main)
			pthread_join(k->th, NULL);
		heap_pop();
	}
}

/* Live bytes in the recorded order over the calls replayed: a merge of the
 * threads' replayed prefixes by seq.  *end gets the final value. */
static int64_t recorded_peak(int64_t *end)
{
	uint64_t *pos = calloc(nworkers, sizeof(*pos));
	int64_t live = 0, peak = 0;
	if (!pos)
		return -1;
	for (;;) {
		uint32_t best = UINT32_MAX, bseq = UINT32_MAX;
		for (uint32_t i = 0; i < nworkers; i++)
			if (pos[i] < workers[i].done && workers[i].ops[pos[i]].seq < bseq) {
				bseq = workers[i].ops[pos[i]].seq;
				best = i;
			}
		if (best == UINT32_MAX)
			break;
		/* run this thread's ops while they stay below the next thread's seq */
		uint32_t next = UINT32_MAX;
		for (uint32_t i = 0; i < nworkers; i++)
			if (i != best && pos[i] < workers[i].done && workers[i].ops[pos[i]].seq < next)
				next = workers[i].ops[pos[i]].seq;
		struct worker *w = &workers[best];
		for (; pos[best] < w->done && w->ops[pos[best]].seq < next; pos[best]++) {
			const struct op *o = &w->ops[pos[best]];
			if (o->kind == OP_FREE) {
				live -= (int64_t)o->size;
				continue;
			}
			if (!o->id) {	/* failed; or realloc(p, 0), which freed p */
				if (o->kind == OP_REALLOC && o->old && !o->size)
					live -= (int64_t)blk[o->old].size;
				continue;
			}
			if (o->kind == OP_REALLOC && o->old)
				live -= (int64_t)blk[o->old].size;
			live += (int64_t)o->size;
			if (live > peak)
				peak = live;
		}
	}
	free(pos);
	*end = live;
	return peak;
}

static uint64_t rss_anon(void)
{
	char b[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	b[n] = 0;
	const char *p = strstr(b, "RssAnon:");
	return p ? strtoull(p + 8, NULL, 10) * 1024 : 0;
}

struct args {
	const char *path;
	uint64_t max_ops;
	int hold;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	a->max_ops = UINT64_MAX;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--max-ops") && i + 1 < argc) {
			a->max_ops = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--max-live-bytes") && i + 1 < argc) {
			unsigned long long v = strtoull(argv[++i], NULL, 10);
			max_live = v > (unsigned long long)INT64_MAX ? INT64_MAX : (int64_t)v;
		} else if (!strcmp(argv[i], "--hold")) {
			a->hold = 1;
		} else if (!a->path) {
			a->path = argv[i];
		} else {
			fprintf(stderr, "mfx-replay: unexpected '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!a->path) {
		fprintf(stderr, "usage: mfx-replay OPS_FILE [--max-ops N] [--max-live-bytes N] [--hold]\n");
		return 2;
	}
	return 0;
}

/* Check the mapped file before anything trusts it: every bound the replay
 * relies on (opsread.h), so a damaged file is refused with its reason and
 * never read out of bounds, freed twice or waited on forever.  The check's
 * scratch comes from mmap and is gone before the replay starts.  0 or 1. */
static int check(const char *path, const uint8_t *m, size_t len, struct ops_file *of)
{
	const char *why = m == MAP_FAILED ? strerror(errno) : ops_read(m, len, of);
	if (!why) {
		size_t sb = ops_check_words(of->h) * sizeof(uint64_t);
		uint64_t *scratch = mmap(NULL, sb, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		why = scratch == MAP_FAILED ? strerror(errno) : ops_check(of, scratch);
		if (scratch != MAP_FAILED)
			munmap(scratch, sb);
	}
	if (why)
		fprintf(stderr, "mfx-replay: '%s': %s\n", path, why);
	return !!why;
}

/* Map the ops file; our own tables come from mmap: they are not the
 * allocator's business.  *total gets the calls to replay.  0 or 1. */
static int load(const struct args *a, uint64_t *total, uint64_t *nops_file)
{
	int fd = open(a->path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || (size_t)st.st_size < sizeof(struct ops_header)) {
		fprintf(stderr, "mfx-replay: cannot read '%s': %s\n", a->path, strerror(errno));
		return 1;
	}
	const uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	close(fd);
	struct ops_file of;
	if (check(a->path, m, (size_t)st.st_size, &of))
		return 1;
	const struct ops_header *h = of.h;
	size_t tb = (h->nblocks + 1) * (sizeof(struct block) + 1);
	uint8_t *tab = mmap(NULL, tb, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	nworkers = h->nthreads;
	size_t wb = (nworkers + 1) * sizeof(*workers) + 2 * (nworkers + 1) * sizeof(uint32_t);
	uint8_t *wm = mmap(NULL, wb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (tab == MAP_FAILED || wm == MAP_FAILED) {
		fprintf(stderr, "mfx-replay: out of memory for %llu blocks\n", (unsigned long long)h->nblocks);
		return 1;
	}
	blk = (struct block *)tab;
	ready = tab + (h->nblocks + 1) * sizeof(struct block);
	workers = (struct worker *)wm;
	sp.order = (uint32_t *)(wm + (nworkers + 1) * sizeof(*workers));
	sp.heap = sp.order + nworkers + 1;
	const struct ops_thread *th = (const void *)(h + 1);
	const struct op *ops = (const void *)(th + h->nthreads);
	*nops_file = h->nops;
	for (uint32_t i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];
		w->ops = ops;
		w->n = th[i].nops;
		ops += th[i].nops;
		if ((const uint8_t *)ops > m + st.st_size) {
			fprintf(stderr, "mfx-replay: '%s' is truncated\n", a->path);
			return 1;
		}
		/* --max-ops: the first N calls of the window's recorded order */
		if (a->max_ops < h->nops) {
			uint64_t lo = 0, hi = w->n;
			while (lo < hi) {
				uint64_t mid = (lo + hi) / 2;
				if (w->ops[mid].seq < a->max_ops)
					lo = mid + 1;
				else
					hi = mid;
			}
			w->n = lo;
		}
		*total += w->n;
		if (!w->n)
			continue;
		w->first = w->ops[0].seq;
		w->last = w->ops[w->n - 1].seq;
		w->is_main = h->pid && th[i].tid == h->pid;
		sp.order[sp.norder++] = i;
	}
	qsort(sp.order, sp.norder, sizeof(*sp.order), by_first);
	return 0;
}

static void report(uint64_t wall, uint64_t total, uint64_t nops_file, uint32_t overlap)
{
	uint64_t counts[6] = { 0 }, nops = 0, failed_here = 0, done = 0;
	for (uint32_t i = 0; i < nworkers; i++) {
		for (int k = 0; k < 6; k++)
			counts[k] += workers[i].counts[k];
		failed_here += workers[i].failed_here;
		done += workers[i].done;
	}
	for (int k = 1; k < 6; k++)
		nops += counts[k];
	int64_t live_end = 0, peak = recorded_peak(&live_end);
	printf("{\"replayer\": \"native\", \"threads\": %u, \"ops\": %llu, \"peak_live_bytes\": %lld, "
	       "\"live_bytes_end\": %lld, \"rss_end_self_bytes\": %llu, \"wall_ns\": %llu, "
	       "\"ops_per_s\": %.0f, \"counts\": {\"malloc\": %llu, \"calloc\": %llu, \"realloc\": %llu, "
	       "\"free\": %llu, \"memalign\": %llu}, \"failed_here\": %llu, \"threads_alive_max\": %u, "
	       "\"threads_overlap_max\": %u, \"cut\": %s}\n",
	       nworkers, (unsigned long long)nops, (long long)peak, (long long)live_end,
	       (unsigned long long)rss_anon(), (unsigned long long)wall,
	       wall ? (double)nops * 1e9 / (double)wall : 0.0,
	       (unsigned long long)counts[OP_MALLOC], (unsigned long long)counts[OP_CALLOC],
	       (unsigned long long)counts[OP_REALLOC], (unsigned long long)counts[OP_FREE],
	       (unsigned long long)counts[OP_MEMALIGN], (unsigned long long)failed_here, alive_max,
	       overlap, total < nops_file || done < total || cut ? "true" : "false");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct args a = { 0 };
	int r = parse_args(argc, argv, &a);
	uint64_t total = 0, nops_file = 0;
	if (r || (r = load(&a, &total, &nops_file)))
		return r;
	uint32_t overlap = overlap_max();
	uint64_t t0 = now_ns();
	run_all();
	report(now_ns() - t0, total, nops_file, overlap);
	if (a.hold) {	/* mfx reads our memory from outside, then closes stdin */
		char c;
		for (;;) {
			ssize_t n = read(0, &c, 1);
			if (n == 0 || (n < 0 && errno != EINTR))
				break;
		}
	}
	_exit(0);	/* no destructors: the live blocks stay as they are */
}
