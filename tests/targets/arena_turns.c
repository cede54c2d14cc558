/*
 * arena_turns.c - threads that take turns, the way glibc's per-thread
 * arenas fragment: each of K threads allocates once at its start (so each
 * gets an arena of its own), then, in turn, allocates MIB MiB of 256-byte
 * blocks, writes them, and frees 15 of every 16.  The survivor pins every
 * page, so an arena keeps its turn's memory; with one shared arena
 * (GLIBC_TUNABLES=glibc.malloc.arena_max=1) the next turn reuses the holes.
 * RssAnon after all turns (the peak: nothing is freed before) is printed as
 * "rss_anon_peak N", read from /proc/self/status; the pointer arrays are a
 * shared mapping (RssShmem), not counted.
 *
 *   arena_turns [THREADS] [MIB]     (defaults 4, 24)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BLOCK 256
#define KEEP_EVERY 16

static int nthreads = 4, turn = -1, ready;
static size_t per_turn;			/* blocks a turn */
static void **all;			/* this turn's blocks (one thread at a time) */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static unsigned long long rss_anon(void)
{
	char l[256];
	unsigned long long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(l, sizeof(l), f))
		if (sscanf(l, "RssAnon: %llu", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

static void *worker(void *arg)
{
	int me = (int)(long)arg;
	void *first = malloc(64);	/* the thread's own arena, from its start */
	void **kept = mmap(NULL, (per_turn / KEEP_EVERY + 1) * sizeof(void *), PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	size_t nkept = 0;
	pthread_mutex_lock(&mu);
	ready++;
	pthread_cond_broadcast(&cv);
	while (turn != me)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	for (size_t i = 0; i < per_turn; i++) {
		all[i] = malloc(BLOCK);
		memset(all[i], me + 1, BLOCK);
	}
	for (size_t i = 0; i < per_turn; i++)
		if (i % KEEP_EVERY == 0)
			kept[nkept++] = all[i];
		else
			free(all[i]);
	pthread_mutex_lock(&mu);
	turn++;
	pthread_cond_broadcast(&cv);
	while (turn <= nthreads)	/* main reads RSS at turn == nthreads */
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	for (size_t i = 0; i < nkept; i++)
		free(kept[i]);
	free(first);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		nthreads = atoi(argv[1]);
	size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 24;
	per_turn = mib * 1024 * 1024 / BLOCK;
	all = mmap(NULL, per_turn * sizeof(void *), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		   -1, 0);
	pthread_t th[64];
	if (nthreads < 1 || nthreads > 64 || all == MAP_FAILED)
		return 2;
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, (void *)(long)i);
	pthread_mutex_lock(&mu);
	while (ready < nthreads)	/* every thread has its arena before the turns */
		pthread_cond_wait(&cv, &mu);
	turn = 0;
	pthread_cond_broadcast(&cv);
	while (turn < nthreads)
		pthread_cond_wait(&cv, &mu);
	unsigned long long peak = rss_anon();
	turn++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	printf("rss_anon_peak %llu\n", peak);
	return 0;
}
