/*
 * threads_churn.c - many short threads, started in waves, each allocating and
 * freeing a little and exiting: exercises the agent's per-thread state and
 * chunk hand-back at thread exit.
 *
 *   threads_churn [threads] [per-thread allocations]   (defaults 64, 1000)
 * Prints the expected malloc and free counts on stderr.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long per = 1000;

static void *worker(void *arg)
{
	(void)arg;
	void *keep[16];
	for (long i = 0; i < per; i++) {
		void *p = malloc(32 + (size_t)(i % 200));
		memset(p, 0, 32);
		if (i < 16)
			keep[i] = p;
		else
			free(p);
	}
	for (int i = 0; i < 16 && i < per; i++)
		free(keep[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 64;
	if (argc > 2)
		per = atol(argv[2]);
	for (long done = 0; done < n;) {
		pthread_t th[16];
		long k = n - done < 16 ? n - done : 16;
		for (long i = 0; i < k; i++)
			if (pthread_create(&th[i], NULL, worker, NULL))
				return 1;
		for (long i = 0; i < k; i++)
			pthread_join(th[i], NULL);
		done += k;
	}
	char out[200];
	int len = snprintf(out, sizeof(out), "{\"threads\": %ld, \"malloc\": %ld, \"free\": %ld}\n", n,
			   n * per, n * per);
	return write(2, out, (size_t)len) == len ? 0 : 1;
}
