/*
 * mt_counts.c - T worker threads with exactly known allocation calls and
 * cross-thread frees: each worker mallocs N blocks, frees its even ones, and
 * after a barrier frees the odd blocks of the next worker (so half of all
 * frees happen on another thread than the allocation).  Everything is freed.
 *
 *   mt_counts [T] [N]      (T <= 64, N <= 20000)
 *
 * Prints on stderr (write(2) only) the expected counts of the workload:
 * {"workers": T, "per_thread_allocs": N, "per_thread_frees": N,
 *  "malloc": T*N, "free": T*N, "total_bytes_allocated": ...}
 * (pthread_create itself callocs each thread's DTV in glibc; that call is the
 * process's too and is not in these numbers.)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXT 64
#define MAXN 20000

static void *blk[MAXT][MAXN];
static long T = 4, N = 2000;
static pthread_barrier_t bar;
static uint64_t bytes[MAXT];

static void *worker(void *arg)
{
	long w = (long)arg;
	for (long i = 0; i < N; i++) {
		size_t s = 8 + (size_t)((w * 7919 + i * 31) % 1500);
		blk[w][i] = malloc(s);
		memset(blk[w][i], (int)w, s);
		bytes[w] += s;
	}
	for (long i = 0; i < N; i += 2)
		free(blk[w][i]);
	pthread_barrier_wait(&bar);
	long next = (w + 1) % T;
	for (long i = 1; i < N; i += 2)
		free(blk[next][i]);	/* allocated by another thread */
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		T = atol(argv[1]);
	if (argc > 2)
		N = atol(argv[2]);
	if (T < 1 || T > MAXT || N < 2 || N > MAXN)
		return 2;
	pthread_t th[MAXT];
	pthread_barrier_init(&bar, NULL, (unsigned)T);
	for (long w = 0; w < T; w++)
		if (pthread_create(&th[w], NULL, worker, (void *)w))
			return 1;
	for (long w = 0; w < T; w++)
		pthread_join(th[w], NULL);
	uint64_t total = 0;
	for (long w = 0; w < T; w++)
		total += bytes[w];
	char out[512];
	int len = snprintf(out, sizeof(out),
			   "{\"workers\": %ld, \"per_thread_allocs\": %ld, \"per_thread_frees\": %ld, "
			   "\"malloc\": %ld, \"free\": %ld, \"total_bytes_allocated\": %llu}\n",
			   T, N, N, T * N, T * N, (unsigned long long)total);
	return write(2, out, (size_t)len) == len ? 0 : 1;
}
