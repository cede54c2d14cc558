/*
 * replay.c - the mfx replayer (Approach B): replays a captured window's
 * allocation calls, thread by thread, under whatever allocator is preloaded,
 * and reports what that allocator made of them.  `mfx replay` writes this
 * file into the run directory, compiles it there (RUN/replay), writes the
 * calls to RUN/replay.ops and runs it once per allocator.
 *
 *   replay OPS_FILE [--name NAME] [--tunables TEXT] [--smaps OUT] [--max-ops N]
 *          [--max-live-bytes N]
 *
 * One replay thread per traced thread, each running its own calls in their
 * recorded order.  A free (or realloc) of a block another thread allocated
 * waits until that allocation was replayed, so every call sees the same block
 * states as in the original; the threads otherwise run freely.  Every page of
 * every block is written once, as the program would have, so RSS is real.
 * Blocks still live at the end of the window stay allocated.
 *
 * RSS here is RssAnon (see rss_now): what the allocator holds.
 *
 * Prints one JSON object (replay.json's "runs" row) on stdout.  Self-contained:
 * builds with `cc -O2 -pthread replay.c`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
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

static void **blocks;
static uint64_t *sizes;
static volatile uint8_t *ready;
static uint64_t max_ops = UINT64_MAX;
static int64_t max_live = INT64_MAX;	/* --max-live-bytes */
static volatile int cut_live;
static volatile int done;
static int64_t live, peak_live;
static uint64_t counts[6];

struct worker {
	const struct op *ops;
	uint64_t n;
	uint64_t counts[6];
	pthread_t th;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void touch(void *p, uint64_t n)
{
	volatile char *c = p;
	for (uint64_t i = 0; p && i < n; i += 4096)
		c[i] = 1;
	if (p && n)
		c[n - 1] = 1;
}

static void wait_ready(uint32_t id)
{
	for (unsigned spins = 0; !__atomic_load_n(&ready[id], __ATOMIC_ACQUIRE); spins++)
		if (spins > 64)
			sched_yield();
}

static void account(int64_t d)
{
	int64_t l = __atomic_add_fetch(&live, d, __ATOMIC_RELAXED);
	int64_t p = __atomic_load_n(&peak_live, __ATOMIC_RELAXED);
	while (l > p && !__atomic_compare_exchange_n(&peak_live, &p, l, 1, __ATOMIC_RELAXED,
						     __ATOMIC_RELAXED))
		;
}

static void *run_thread(void *arg)
{
	struct worker *w = arg;
	for (uint64_t i = 0; i < w->n && !cut_live; i++) {
		const struct op *o = &w->ops[i];
		if (o->size && __atomic_load_n(&live, __ATOMIC_RELAXED) + (int64_t)o->size > max_live &&
		    o->kind != OP_FREE) {
			cut_live = 1;	/* a bound: stop every thread here */
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
				wait_ready(o->old);
				old = blocks[o->old];
				account(-(int64_t)sizes[o->old]);
			}
			p = realloc(old, o->size);
			if (!p && o->size && old && o->id)	/* failed: the old block stays */
				account((int64_t)sizes[o->old]);
			break;
		}
		case OP_FREE:
			wait_ready(o->id);
			free(blocks[o->id]);
			account(-(int64_t)sizes[o->id]);
			w->counts[OP_FREE]++;
			continue;
		}
		w->counts[o->kind]++;
		if (!o->id) {	/* the call failed in the original */
			if (p && o->kind == OP_REALLOC && o->old)
				blocks[o->old] = p;	/* it worked here: the block moved */
			else if (p)
				free(p);
			if (o->kind == OP_REALLOC && o->old)
				account((int64_t)sizes[o->old]);
			continue;
		}
		{
			touch(p, o->size);
			blocks[o->id] = p;
			sizes[o->id] = p ? o->size : 0;
			if (p)
				account((int64_t)o->size);
			__atomic_store_n(&ready[o->id], 1, __ATOMIC_RELEASE);
		}
	}
	return NULL;
}

/* RSS sampler: peak and, at most every 100 ms, the smaps of a new peak. */
static uint64_t rss_peak;
static char *smaps_buf;
static size_t smaps_len;
static const char *smaps_out;

/* The allocator's resident memory: RssAnon.  The ops file is file-backed
 * and the replayer's own tables are shared mappings (RssFile, RssShmem), so
 * neither is counted; thread stacks are, as in the original. */
static uint64_t rss_now(void)
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

static void read_smaps(void)
{
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t cap = 1 << 20, len = 0;
	char *b = malloc(cap);
	ssize_t r;
	while (b && (r = read(fd, b + len, cap - len)) > 0) {
		len += (size_t)r;
		if (len == cap) {
			char *nb = realloc(b, cap *= 2);
			if (!nb)
				break;
			b = nb;
		}
	}
	close(fd);
	free(smaps_buf);
	smaps_buf = b;
	smaps_len = len;
}

static void *sampler(void *arg)
{
	(void)arg;
	uint64_t last_smaps = 0, smaps_rss = 0;
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		uint64_t r = rss_now();
		if (r > rss_peak)
			rss_peak = r;
		if (smaps_out && r > smaps_rss + smaps_rss / 50 && now_ns() - last_smaps > 100000000ull) {
			read_smaps();
			smaps_rss = r;
			last_smaps = now_ns();
		}
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void json_str(const char *k, const char *v)
{
	printf("\"%s\": \"", k);
	for (; v && *v; v++)
		if (*v == '"' || *v == '\\')
			printf("\\%c", *v);
		else if ((unsigned char)*v >= 0x20)
			putchar(*v);
	printf("\", ");
}

int main(int argc, char **argv)
{
	const char *path = NULL, *name = "glibc", *tunables = "";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc)
			name = argv[++i];
		else if (!strcmp(argv[i], "--tunables") && i + 1 < argc)
			tunables = argv[++i];
		else if (!strcmp(argv[i], "--smaps") && i + 1 < argc)
			smaps_out = argv[++i];
		else if (!strcmp(argv[i], "--max-ops") && i + 1 < argc)
			max_ops = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--max-live-bytes") && i + 1 < argc)
		{
			unsigned long long v = strtoull(argv[++i], NULL, 10);
			max_live = v > (unsigned long long)INT64_MAX ? INT64_MAX : (int64_t)v;
		}
		else if (!path)
			path = argv[i];
		else {
			fprintf(stderr, "replay: unexpected '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "usage: replay OPS_FILE [--name NAME] [--tunables TEXT] "
				"[--smaps OUT] [--max-ops N]\n");
		return 2;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || (size_t)st.st_size < sizeof(struct ops_header)) {
		fprintf(stderr, "replay: cannot read '%s': %s\n", path, strerror(errno));
		return 1;
	}
	const uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	const struct ops_header *h = (const void *)m;
	if (m == MAP_FAILED || memcmp(h->magic, OPS_MAGIC, 8)) {
		fprintf(stderr, "replay: '%s' is not a replay ops file\n", path);
		return 1;
	}
	/* Our own tables come from mmap: they are not the allocator's business. */
	size_t tb = (h->nblocks + 1) * (sizeof(void *) + sizeof(uint64_t) + 1);
	uint8_t *tab = mmap(NULL, tb, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct worker *w = mmap(NULL, (h->nthreads + 1) * sizeof(*w), PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (tab == MAP_FAILED || w == MAP_FAILED) {
		fprintf(stderr, "replay: out of memory for %llu blocks\n",
			(unsigned long long)h->nblocks);
		return 1;
	}
	blocks = (void **)tab;
	sizes = (uint64_t *)(tab + (h->nblocks + 1) * sizeof(void *));
	ready = tab + (h->nblocks + 1) * (sizeof(void *) + sizeof(uint64_t));
	const struct ops_thread *th = (const void *)(h + 1);
	const struct op *ops = (const void *)(th + h->nthreads);
	uint64_t total = 0;
	for (uint32_t i = 0; i < h->nthreads; i++) {
		w[i].ops = ops;
		w[i].n = th[i].nops;
		ops += th[i].nops;
		if ((const uint8_t *)ops > m + st.st_size) {
			fprintf(stderr, "replay: '%s' is truncated\n", path);
			return 1;
		}
		if (total + w[i].n > max_ops)	/* --max-ops: cut each thread's tail */
			w[i].n = total < max_ops ? max_ops - total : 0;
		total += w[i].n;
	}
	pthread_t samp;
	rss_peak = rss_now();
	pthread_create(&samp, NULL, sampler, NULL);
	uint64_t t0 = now_ns();
	for (uint32_t i = 0; i < h->nthreads; i++)
		pthread_create(&w[i].th, NULL, run_thread, &w[i]);
	for (uint32_t i = 0; i < h->nthreads; i++)
		pthread_join(w[i].th, NULL);
	uint64_t wall = now_ns() - t0;
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	pthread_join(samp, NULL);
	uint64_t rss_end = rss_now();
	if (rss_end > rss_peak)
		rss_peak = rss_end;
	if (smaps_out) {
		if (!smaps_buf)
			read_smaps();
		FILE *f = fopen(smaps_out, "we");
		if (f) {
			fwrite(smaps_buf, 1, smaps_len, f);
			fclose(f);
		}
	}
	for (uint32_t i = 0; i < h->nthreads; i++)
		for (int k = 0; k < 6; k++)
			counts[k] += w[i].counts[k];
	uint64_t nops = 0;
	for (int k = 1; k < 6; k++)
		nops += counts[k];
	printf("{");
	json_str("allocator", name);
	json_str("tunables", tunables);
	printf("\"threads\": %u, \"ops\": %llu, \"peak_live_bytes\": %lld, \"rss_peak_bytes\": %llu, "
	       "\"rss_end_bytes\": %llu, \"wall_ns\": %llu, \"live_bytes_end\": %lld, "
	       "\"counts\": {\"malloc\": %llu, \"calloc\": %llu, \"realloc\": %llu, \"free\": %llu, "
	       "\"memalign\": %llu}, \"cut\": %s}\n",
	       h->nthreads, (unsigned long long)nops, (long long)peak_live,
	       (unsigned long long)rss_peak, (unsigned long long)rss_end, (unsigned long long)wall,
	       (long long)live, (unsigned long long)counts[OP_MALLOC],
	       (unsigned long long)counts[OP_CALLOC], (unsigned long long)counts[OP_REALLOC],
	       (unsigned long long)counts[OP_FREE], (unsigned long long)counts[OP_MEMALIGN],
	       total < h->nops || cut_live ? "true" : "false");
	fflush(stdout);
	_exit(0);	/* no destructors: the live blocks stay as they are */
}
