/*
 * bench_workload.c - the workload `make bench` times: T threads, each doing
 * N malloc+free pairs through 64 different call paths 8-20 frames deep
 * (stack capture and interning are part of the cost), sizes 16..1040 bytes,
 * a ring of 256 live blocks per thread.
 *
 *   bench_workload [N] [T]      (defaults 1000000 2)
 *   bench_workload --serve      wait on stdin; "go N T" runs a round (attach)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long n_per_thread = 1000000;

static void *volatile ring_sink;

static __attribute__((noinline)) void *leaf(size_t sz)
{
	return malloc(sz);
}

static __attribute__((noinline)) void *deep(int d, size_t sz)
{
	void *p = d <= 0 ? leaf(sz) : deep(d - 1, sz);
	ring_sink = p;	/* keeps the calls from being tail calls */
	return p;
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
	void *ring[256] = { 0 };
	for (long i = 0; i < n_per_thread; i++) {
		seed = seed * 1103515245u + 12345u;
		unsigned path = (seed >> 16) % 64;
		free(ring[i & 255]);
		ring[i & 255] = deep(8 + (int)(path % 13), 16 + (path * 16));
	}
	for (int i = 0; i < 256; i++)
		free(ring[i]);
	return NULL;
}

static void round_(long n, int t)
{
	pthread_t th[64];
	n_per_thread = n;
	if (t > 64)
		t = 64;
	for (int i = 0; i < t; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < t; i++)
		pthread_join(th[i], NULL);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--serve")) {
		char line[128];
		printf("ready\n");
		fflush(stdout);
		while (fgets(line, sizeof(line), stdin)) {
			long n = 0;
			int t = 0;
			if (sscanf(line, "go %ld %d", &n, &t) == 2) {
				round_(n, t);
				printf("done\n");
				fflush(stdout);
			}
		}
		return 0;
	}
	round_(argc > 1 ? atol(argv[1]) : 1000000, argc > 2 ? atoi(argv[2]) : 2);
	return 0;
}
