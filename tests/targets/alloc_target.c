/*
 * alloc_target.c - a program that reports its own allocator's statistics,
 * to check mfx's figures against (run it with LD_PRELOAD of
 * libtcmalloc_minimal or libmimalloc, or plain: glibc).  One command per
 * line on stdin:
 *
 *   fill MB SIZE   allocate MB MiB in blocks of SIZE bytes (touched), keep them
 *   free half      free every other kept block (fragmentation)
 *   free first     free the first half of the kept blocks, in allocation order
 *   free all       free every kept block
 *   churn MS       malloc/free pairs for MS milliseconds
 *   stats          print "stats alloc=NAME in_use=N resident=N committed=N free=N"
 *                  from the allocator's own interface (dlsym: mallctl,
 *                  MallocExtension_GetNumericProperty, mi_process_info,
 *                  mallinfo2); -1 = it does not say
 *   quit           exit 0
 *
 * Every command but quit ends with a "done" line; "ready" at start.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXB (1 << 22)
static void *blk[MAXB];
static size_t nblk;
static void *volatile sink;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fill(long mb, long size)
{
	if (size < 1)
		size = 1;
	long n = mb * (1L << 20) / size;
	for (long i = 0; i < n && nblk < MAXB; i++) {
		void *p = malloc((size_t)size);
		if (!p)
			break;
		memset(p, 0x5a, (size_t)size);
		blk[nblk++] = p;
	}
}

static void free_some(const char *how)
{
	size_t w = 0;
	for (size_t i = 0; i < nblk; i++) {
		int drop = !strncmp(how, "all", 3) || (!strncmp(how, "half", 4) && i % 2 == 0) ||
			   (!strncmp(how, "first", 5) && i < nblk / 2);
		if (drop)
			free(blk[i]);
		else
			blk[w++] = blk[i];
	}
	nblk = w;
}

static void churn(long ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;
	for (long i = 0; now_ms() < end; i++)
		for (int k = 0; k < 256; k++) {
			sink = malloc(16 + (size_t)((i * 7 + k) % 500));
			free(sink);
		}
}

static void stats(void)
{
	long long in_use = -1, resident = -1, committed = -1, fr = -1;
	const char *name = "glibc";
	int (*mallctl)(const char *, void *, size_t *, void *, size_t) = dlsym(RTLD_DEFAULT, "mallctl");
	int (*tcprop)(const char *, size_t *) =
		dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty");
	void (*mi)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *) =
		dlsym(RTLD_DEFAULT, "mi_process_info");
	if (mallctl) {
		uint64_t e = 1;
		size_t v, sz = sizeof(e);
		name = "jemalloc";
		mallctl("epoch", &e, &sz, &e, sz);
		sz = sizeof(v);
		if (!mallctl("stats.allocated", &v, &sz, NULL, 0))
			in_use = (long long)v;
		if (!mallctl("stats.resident", &v, &sz, NULL, 0))
			resident = (long long)v;
	} else if (tcprop) {
		size_t v;
		name = "tcmalloc";
		if (tcprop("generic.current_allocated_bytes", &v))
			in_use = (long long)v;
		if (tcprop("generic.total_physical_bytes", &v))
			resident = (long long)v;
		if (tcprop("tcmalloc.pageheap_free_bytes", &v))
			fr = (long long)v;
	} else if (mi) {
		size_t a[8] = { 0 };
		name = "mimalloc";
		mi(&a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7]);
		committed = (long long)a[5];
	} else {
		struct mallinfo2 m = mallinfo2();
		in_use = (long long)(m.uordblks + m.hblkhd);
		fr = (long long)m.fordblks;
	}
	printf("stats alloc=%s in_use=%lld resident=%lld committed=%lld free=%lld\n", name, in_use,
	       resident, committed, fr);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	char cmd[256], how[32];
	long a, b;
	while (fgets(cmd, sizeof(cmd), stdin)) {
		if (sscanf(cmd, "fill %ld %ld", &a, &b) == 2)
			fill(a, b);
		else if (sscanf(cmd, "free %31s", how) == 1)
			free_some(how);
		else if (sscanf(cmd, "churn %ld", &a) == 1)
			churn(a);
		else if (!strncmp(cmd, "stats", 5))
			stats();
		else if (!strncmp(cmd, "quit", 4))
			return 0;
		else
			continue;
		printf("done\n");
	}
	return 0;
}
