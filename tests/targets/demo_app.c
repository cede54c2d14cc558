/*
 * demo_app.c - a small "service" whose memory grows for three reasons at
 * once, so `make demo` has something real to explain:
 *
 *   leak           every request leaks its session record (remember_session)
 *   fragmentation  a cache of small entries is filled, then mostly evicted,
 *                  leaving a few survivors pinned across every heap page
 *   retention      large transient parse buffers are freed but the arena
 *                  keeps the pages until malloc_trim
 *
 *   demo_app [SECONDS]     run about SECONDS (default 3), then exit 0
 *   demo_app --forever     run until killed (for attach and trim demos)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct session {
	char user[48];
	unsigned long id;
	struct session *next;
};

static struct session *sessions;	/* the leak: never pruned */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

#define CACHE_SLOTS 40000
static char *cache[CACHE_SLOTS];

static __attribute__((noinline)) void remember_session(unsigned long id)
{
	struct session *s = malloc(sizeof(*s));

	if (!s)
		return;
	snprintf(s->user, sizeof(s->user), "user-%lu", id % 9973);
	s->id = id;
	pthread_mutex_lock(&lock);
	s->next = sessions;
	sessions = s;
	pthread_mutex_unlock(&lock);
}

static __attribute__((noinline)) char *parse_request(unsigned long id)
{
	size_t n = 64 * 1024 + (id % 7) * 4096;
	char *buf = malloc(n);

	if (buf)
		memset(buf, (int)(id & 0x7f), n);
	return buf;
}

static __attribute__((noinline)) void cache_fill(unsigned long round)
{
	for (int i = 0; i < CACHE_SLOTS; i++) {
		if (cache[i])
			continue;
		cache[i] = malloc(96 + (size_t)((i * 37 + round) % 160));
		if (cache[i])
			cache[i][0] = 1;
	}
}

static __attribute__((noinline)) void cache_evict(void)
{
	/* keep one entry in 24: survivors pin pages that are mostly free */
	for (int i = 0; i < CACHE_SLOTS; i++)
		if (i % 24 && cache[i]) {
			free(cache[i]);
			cache[i] = NULL;
		}
}

static __attribute__((noinline)) void handle_request(unsigned long id)
{
	char *req = parse_request(id);

	remember_session(id);
	free(req);
}

static void *worker(void *arg)
{
	unsigned long base = (unsigned long)arg * 1000000000ul;

	for (unsigned long i = 0;; i++) {
		handle_request(base + i);
		if ((i & 63) == 0)
			usleep(1000);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double secs = 3, t0 = now();
	int forever = argc > 1 && !strcmp(argv[1], "--forever");
	pthread_t th[2];

	if (argc > 1 && !forever)
		secs = atof(argv[1]);
	for (long i = 0; i < 2; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(i + 1)))
			return 1;
	/* the main thread owns the cache: fill, evict, refill */
	for (unsigned long round = 0; forever || now() - t0 < secs; round++) {
		cache_fill(round);
		usleep(200000);
		cache_evict();
		usleep(200000);
	}
	return 0;	/* exit with workers running: their sessions stay leaked */
}
