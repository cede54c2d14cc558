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
 *
 * The threads, their waits and the spawner are replayer_run.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "replayer.h"

struct block *blk;
volatile uint8_t *ready;
struct worker *workers;
uint32_t nworkers;
struct spawner spawner;
int64_t max_live = INT64_MAX;
volatile int cut;

/* Its own clock and RssAnon reader, not common/'s: the replayer is built
 * alone (no mfx object linked) so that it runs under any allocator. */
static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
	spawner.order = (uint32_t *)(wm + (nworkers + 1) * sizeof(*workers));
	spawner.heap = spawner.order + nworkers + 1;
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
		spawner.order[spawner.norder++] = i;
	}
	rp_sort_order();
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
	uint32_t overlap = rp_overlap_max();
	uint64_t t0 = now_ns();
	rp_run_all();
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
