/*
 * realloc_zero.c - realloc(p, 0), which glibc answers by freeing p and
 * returning NULL, on the thread that made p and on another one, followed
 * each time by allocations of the same size (that reuse p's address).
 *
 *   realloc_zero [N]      (N <= 10000 rounds; default 2000)
 *
 * Round i: main mallocs a block and reallocs it to 0 bytes, mallocs the
 * same size again and frees that; it also mallocs a block for the worker,
 * which (after a barrier) reallocs each of them to 0 bytes; then main
 * mallocs them again and frees them.  Prints on stderr (write(2) only) the
 * program's own counts: {"realloc": 2N, "realloc_null": how many returned
 * NULL}.  Nothing is left allocated by the workload.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXN 10000

static void *theirs[MAXN];
static long N = 2000, nulls;
static pthread_barrier_t bar;

static void *worker(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&bar);
	for (long i = 0; i < N; i++) {
		void *q = realloc(theirs[i], 0);	/* another thread's block */
		if (q)
			free(q);
		else
			__atomic_add_fetch(&nulls, 1, __ATOMIC_RELAXED);
	}
	pthread_barrier_wait(&bar);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		N = atol(argv[1]);
	if (N < 1 || N > MAXN)
		N = 2000;
	pthread_t t;
	pthread_barrier_init(&bar, NULL, 2);
	if (pthread_create(&t, NULL, worker, NULL))
		return 1;
	for (long i = 0; i < N; i++) {
		size_t s = 24 + (size_t)(i % 200);
		void *p = malloc(s);
		memset(p, 1, s);
		void *q = realloc(p, 0);
		if (q)
			free(q);
		else
			__atomic_add_fetch(&nulls, 1, __ATOMIC_RELAXED);
		void *r = malloc(s);	/* usually p's address again */
		memset(r, 2, s);
		free(r);
		theirs[i] = malloc(s);
	}
	pthread_barrier_wait(&bar);
	pthread_barrier_wait(&bar);
	for (long i = 0; i < N; i++) {	/* the worker's freed addresses, again */
		theirs[i] = malloc(24 + (size_t)(i % 200));
		free(theirs[i]);
	}
	pthread_join(t, NULL);
	char b[128];
	int n = snprintf(b, sizeof(b), "{\"realloc\": %ld, \"realloc_null\": %ld}\n", 2 * N, nulls);
	if (write(2, b, (size_t)n) != n)
		return 1;
	return 0;
}
