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
 * call sees the same block states as in the original; the threads otherwise
 * run freely.  The first and last byte and every page of every block are
 * written once, so RSS is real.  Blocks still live at the end stay allocated.
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

#include "ops.h"

struct block {
	void *p;
	uint64_t size;		/* requested size, as in the trace */
};

static struct block *blk;
static volatile uint8_t *ready;
static int64_t max_live = INT64_MAX;	/* --max-live-bytes */
static volatile int cut;		/* a bound stopped the replay */

#define PUBLISH_EVERY 256

struct worker {
	const struct op *ops;
	uint64_t n, done;
	uint64_t counts[6], failed_here;
	int64_t live;			/* this thread's share, published below */
	volatile int64_t pub_live;
	pthread_t th;
} __attribute__((aligned(64)));

static struct worker *workers;
static uint32_t nworkers;

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

/* 0 once block id exists, -1 if a bound stopped the replay meanwhile. */
static int wait_ready(uint32_t id)
{
	for (unsigned spins = 0; !__atomic_load_n(&ready[id], __ATOMIC_ACQUIRE); spins++) {
		if (cut)
			return -1;
		if (spins > 64)
			sched_yield();
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

static void *run_thread(void *arg)
{
	struct worker *w = arg;
	const int bounded = max_live != INT64_MAX;
	int64_t others = 0;	/* the other threads' live bytes, refreshed now and then */
	uint64_t i;
	for (i = 0; i < w->n; i++) {
		const struct op *o = &w->ops[i];
		if (bounded) {
			if ((i & (PUBLISH_EVERY - 1)) == 0) {
				__atomic_store_n(&w->pub_live, w->live, __ATOMIC_RELAXED);
				others = live_all() - w->live;
			}
			if (o->kind != OP_FREE && others + w->live + (int64_t)o->size > max_live)
				cut = 1;	/* stop every thread here */
			if (cut)
				break;
		}
		void *p = NULL;
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
		case OP_REALLOC: {
			void *old = NULL;
			if (o->old) {
				if ((o->flags & OPF_WAIT) && wait_ready(o->old))
					goto out;
				old = blk[o->old].p;
			}
			p = realloc(old, o->size);
			if (!o->id) {	/* failed in the original: the old block stays */
				if (p && o->old)
					blk[o->old].p = p;	/* it worked here: the block moved */
				else if (p)
					free(p);
				w->counts[OP_REALLOC]++;
				continue;
			}
			if (o->old)
				w->live -= (int64_t)blk[o->old].size;
			break;
		}
		case OP_FREE:
			if ((o->flags & OPF_WAIT) && wait_ready(o->id))
				goto out;
			free(blk[o->id].p);
			w->live -= (int64_t)o->size;
			w->counts[OP_FREE]++;
			continue;
		}
		w->counts[o->kind]++;
		if (!o->id) {	/* the call failed in the original */
			free(p);
			continue;
		}
		if (!p && o->size)
			w->failed_here++;
		touch(p, o->size);
		blk[o->id].p = p;
		blk[o->id].size = o->size;
		w->live += (int64_t)o->size;
		if (o->flags & OPF_PUBLISH)
			__atomic_store_n(&ready[o->id], 1, __ATOMIC_RELEASE);
	}
out:
	w->done = i;
	__atomic_store_n(&w->pub_live, w->live, __ATOMIC_RELAXED);
	return NULL;
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
			if (!o->id)
				continue;
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

int main(int argc, char **argv)
{
	const char *path = NULL;
	uint64_t max_ops = UINT64_MAX;
	int hold = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--max-ops") && i + 1 < argc)
			max_ops = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--max-live-bytes") && i + 1 < argc) {
			unsigned long long v = strtoull(argv[++i], NULL, 10);
			max_live = v > (unsigned long long)INT64_MAX ? INT64_MAX : (int64_t)v;
		} else if (!strcmp(argv[i], "--hold"))
			hold = 1;
		else if (!path)
			path = argv[i];
		else {
			fprintf(stderr, "mfx-replay: unexpected '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "usage: mfx-replay OPS_FILE [--max-ops N] [--max-live-bytes N] [--hold]\n");
		return 2;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || (size_t)st.st_size < sizeof(struct ops_header)) {
		fprintf(stderr, "mfx-replay: cannot read '%s': %s\n", path, strerror(errno));
		return 1;
	}
	const uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
				fd, 0);
	close(fd);
	const struct ops_header *h = (const void *)m;
	if (m == MAP_FAILED || memcmp(h->magic, OPS_MAGIC, 8)) {
		fprintf(stderr, "mfx-replay: '%s' is not a replay ops file of this version\n", path);
		return 1;
	}
	/* Our own tables come from mmap: they are not the allocator's business. */
	size_t tb = (h->nblocks + 1) * (sizeof(struct block) + 1);
	uint8_t *tab = mmap(NULL, tb, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	nworkers = h->nthreads;
	workers = mmap(NULL, (nworkers + 1) * sizeof(*workers), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (tab == MAP_FAILED || workers == MAP_FAILED) {
		fprintf(stderr, "mfx-replay: out of memory for %llu blocks\n",
			(unsigned long long)h->nblocks);
		return 1;
	}
	blk = (struct block *)tab;
	ready = tab + (h->nblocks + 1) * sizeof(struct block);
	const struct ops_thread *th = (const void *)(h + 1);
	const struct op *ops = (const void *)(th + h->nthreads);
	uint64_t total = 0;
	for (uint32_t i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];
		w->ops = ops;
		w->n = th[i].nops;
		ops += th[i].nops;
		if ((const uint8_t *)ops > m + st.st_size) {
			fprintf(stderr, "mfx-replay: '%s' is truncated\n", path);
			return 1;
		}
		/* --max-ops: the first N calls of the window's recorded order */
		if (max_ops < h->nops) {
			uint64_t lo = 0, hi = w->n;
			while (lo < hi) {
				uint64_t mid = (lo + hi) / 2;
				if (w->ops[mid].seq < max_ops)
					lo = mid + 1;
				else
					hi = mid;
			}
			w->n = lo;
		}
		total += w->n;
	}
	uint64_t t0 = now_ns();
	if (nworkers == 1) {
		run_thread(&workers[0]);
	} else {
		for (uint32_t i = 0; i < nworkers; i++)
			pthread_create(&workers[i].th, NULL, run_thread, &workers[i]);
		for (uint32_t i = 0; i < nworkers; i++)
			pthread_join(workers[i].th, NULL);
	}
	uint64_t wall = now_ns() - t0;
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
	uint64_t rss = rss_anon();
	printf("{\"replayer\": \"native\", \"threads\": %u, \"ops\": %llu, \"peak_live_bytes\": %lld, \"live_bytes_end\": %lld, "
	       "\"rss_end_self_bytes\": %llu, \"wall_ns\": %llu, \"ops_per_s\": %.0f, "
	       "\"counts\": {\"malloc\": %llu, \"calloc\": %llu, \"realloc\": %llu, \"free\": %llu, "
	       "\"memalign\": %llu}, \"failed_here\": %llu, \"cut\": %s}\n",
	       h->nthreads, (unsigned long long)nops, (long long)peak, (long long)live_end,
	       (unsigned long long)rss, (unsigned long long)wall,
	       wall ? (double)nops * 1e9 / (double)wall : 0.0,
	       (unsigned long long)counts[OP_MALLOC], (unsigned long long)counts[OP_CALLOC],
	       (unsigned long long)counts[OP_REALLOC], (unsigned long long)counts[OP_FREE],
	       (unsigned long long)counts[OP_MEMALIGN], (unsigned long long)failed_here,
	       total < h->nops || done < total || cut ? "true" : "false");
	fflush(stdout);
	if (hold) {	/* mfx reads our memory from outside, then closes stdin */
		char c;
		for (;;) {
			ssize_t r = read(0, &c, 1);
			if (r == 0 || (r < 0 && errno != EINTR))
				break;
		}
	}
	_exit(0);	/* no destructors: the live blocks stay as they are */
}
