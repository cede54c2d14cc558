/*
 * storm_target.c - T threads in tight malloc/free loops: the load under
 * which `mfx attach --for 2s` must still end on time (back-pressure).  The
 * main thread obeys one command per line on stdin:
 *
 *   check   prints "alive N" (loop iterations of every thread so far) once
 *           every thread has made progress since the last check, or
 *           "STUCK" after 10 s if one has not
 *   quit    stops the threads, checks every block they still hold is
 *           intact, prints "bye N" and exits 0 (exit 6 and "CORRUPT" if not)
 *
 *   storm_target [T]     (1..1024 threads, default 220)
 *
 * Each thread keeps a ring of 32 blocks filled with its own byte, checked
 * before every free: an allocator or agent that handed out a block twice,
 * or wrote into one, shows as CORRUPT.  Prints "ready" once all run.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXT 1024
#define RING 32

struct worker {
	pthread_t th;
	volatile uint64_t iters;
	uint64_t seen;
	volatile int corrupt;
	uint8_t tag;
} __attribute__((aligned(64)));

static struct worker w[MAXT];
static volatile int stop;

static int intact(const uint8_t *p, size_t n, uint8_t tag)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != tag)
			return 0;
	return 1;
}

static void *loop(void *arg)
{
	struct worker *me = arg;
	uint8_t *ring[RING] = { 0 };
	size_t sz[RING] = { 0 };
	uint32_t x = (uint32_t)(me - w) * 2654435761u + 1;
	for (uint64_t i = 0; !stop; i++) {
		unsigned k = (unsigned)(i % RING);
		if (ring[k] && !intact(ring[k], sz[k], me->tag))
			me->corrupt = 1;
		free(ring[k]);
		x = x * 1103515245u + 12345u;
		sz[k] = 8 + (x >> 16) % 256;
		ring[k] = malloc(sz[k]);
		if (ring[k])
			memset(ring[k], me->tag, sz[k]);
		me->iters = i + 1;
	}
	for (unsigned k = 0; k < RING; k++) {
		if (ring[k] && !intact(ring[k], sz[k], me->tag))
			me->corrupt = 1;
		free(ring[k]);
	}
	return NULL;
}

static uint64_t total(void)
{
	uint64_t n = 0;
	for (int i = 0; i < MAXT; i++)
		n += w[i].iters;
	return n;
}

/* Every thread moved since the last check (10 s at most). */
static int all_moved(int nt)
{
	for (int tries = 0; tries < 1000; tries++) {
		int ok = 1;
		for (int i = 0; i < nt && ok; i++)
			ok = w[i].iters > w[i].seen;
		if (ok) {
			for (int i = 0; i < nt; i++)
				w[i].seen = w[i].iters;
			return 1;
		}
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int nt = argc > 1 ? atoi(argv[1]) : 220;
	if (nt < 1 || nt > MAXT)
		nt = 220;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < nt; i++) {
		w[i].tag = (uint8_t)(i * 7 + 1);
		if (pthread_create(&w[i].th, NULL, loop, &w[i])) {
			printf("cannot start thread %d\n", i);
			return 1;
		}
	}
	all_moved(nt);
	printf("ready %d\n", nt);
	char line[64];
	while (fgets(line, sizeof(line), stdin)) {
		if (!strncmp(line, "check", 5)) {
			if (all_moved(nt))
				printf("alive %llu\n", (unsigned long long)total());
			else
				printf("STUCK\n");
		} else if (!strncmp(line, "quit", 4)) {
			break;
		}
	}
	stop = 1;
	int bad = 0;
	for (int i = 0; i < nt; i++) {
		pthread_join(w[i].th, NULL);
		bad |= w[i].corrupt;
	}
	if (bad) {
		printf("CORRUPT\n");
		return 6;
	}
	printf("bye %llu\n", (unsigned long long)total());
	return 0;
}
