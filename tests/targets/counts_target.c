/*
 * counts_target.c - makes an exactly known number of every allocation call
 * and prints what a tracer must find, as JSON on stderr.  Only write(2) and
 * snprintf into a stack buffer: stdio streams would allocate their buffers and
 * change the counts.  Block tables are static for the same reason.
 *
 *   counts_target [N]        N allocations of the malloc kind (10..100000)
 *
 * Exit status 0.  The JSON keys match summary.json's.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXN 100000

static void *blk[MAXN], *cblk[MAXN / 10 + 1];
static uint64_t sz[MAXN], csz[MAXN / 10 + 1];
static uint64_t n_malloc, n_calloc, n_realloc, n_free, n_memalign, total, live, peak;

static void grow(uint64_t s)
{
	total += s;
	live += s;
	if (live > peak)
		peak = live;
}

static void shrink(uint64_t s)
{
	live -= s;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	if (n < 10)
		n = 10;
	if (n > MAXN)
		n = MAXN;
	/* malloc: sizes 16..4015; every second one freed */
	for (long i = 0; i < n; i++) {
		sz[i] = 16 + (uint64_t)(i * 37) % 4000;
		blk[i] = malloc(sz[i]);
		memset(blk[i], 1, sz[i]);
		n_malloc++;
		grow(sz[i]);
	}
	for (long i = 0; i < n; i += 2) {
		free(blk[i]);
		n_free++;
		shrink(sz[i]);
	}
	/* calloc: n/10 of them, half freed */
	long nc = n / 10;
	for (long i = 0; i < nc; i++) {
		size_t m = 3 + (size_t)i % 7, s = 8 + (size_t)i % 5;
		cblk[i] = calloc(m, s);
		csz[i] = m * s;
		n_calloc++;
		grow(csz[i]);
	}
	for (long i = 0; i < nc; i += 2) {
		free(cblk[i]);
		n_free++;
		shrink(csz[i]);
	}
	/* a realloc chain, then reallocarray, then realloc(p, 0), which frees */
	void *r = NULL;
	uint64_t rs = 0;
	for (int k = 1; k <= 10; k++) {
		r = realloc(r, 100 * (size_t)k);
		n_realloc++;
		shrink(rs);
		rs = 100 * (uint64_t)k;
		grow(rs);
	}
	r = reallocarray(r, 20, 50);
	n_realloc++;
	shrink(rs);
	rs = 1000;
	grow(rs);
	void *volatile z = realloc(r, 0);	/* glibc: frees r, returns NULL */
	n_realloc++;
	shrink(rs);
	if (z)
		free(z);	/* (not glibc: a minimal block; counted below) */
	/* the memalign family, all freed */
	void *a[5];
	if (posix_memalign(&a[0], 64, 100))
		return 1;
	a[1] = aligned_alloc(64, 128);
	a[2] = memalign(32, 50);
	a[3] = valloc(10);
	a[4] = pvalloc(10);
	n_memalign += 5;
	grow(100);
	grow(128);
	grow(50);
	grow(10);
	grow(10);
	for (int k = 0; k < 5; k++)
		free(a[k]);
	n_free += 5;
	shrink(100 + 128 + 50 + 10 + 10);
	/* not counted */
	free(NULL);
	free(NULL);
	free(NULL);
	char out[512];
	int len = snprintf(out, sizeof(out),
			   "{\"counts\": {\"malloc\": %llu, \"calloc\": %llu, \"realloc\": %llu, "
			   "\"free\": %llu, \"memalign\": %llu}, \"total_bytes_allocated\": %llu, "
			   "\"peak_live_bytes\": %llu, \"live_bytes_end\": %llu}\n",
			   (unsigned long long)n_malloc, (unsigned long long)n_calloc,
			   (unsigned long long)n_realloc, (unsigned long long)n_free,
			   (unsigned long long)n_memalign, (unsigned long long)total,
			   (unsigned long long)peak, (unsigned long long)live);
	if (write(2, out, (size_t)len) != len)
		return 1;
	return 0;
}
