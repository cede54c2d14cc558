/*
 * thread_per_request.c - a thread-per-request "server": REQUESTS short
 * threads, each started for one request, never more than CONCURRENCY
 * alive at once (a semaphore, as a server's accept loop with a worker
 * limit would); each allocates a request buffer and a few small objects,
 * frees them and exits.  Prints what it saw itself:
 *
 *   threads_alive_max N     the most request threads alive at once
 *   rss_anon_hwm N          the highest RssAnon sampled after each request
 *
 *   thread_per_request [REQUESTS] [CONCURRENCY]    (defaults 3000, 4)
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sem_t slots;
static int alive, alive_max;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *request(void *arg)
{
	long n = (long)arg;
	pthread_mutex_lock(&mu);
	if (++alive > alive_max)
		alive_max = alive;
	pthread_mutex_unlock(&mu);
	size_t len = 4096 + (size_t)(n % 8) * 1024;
	char *buf = malloc(len);
	memset(buf, 'r', len);
	void *obj[8];
	for (int i = 0; i < 8; i++) {
		obj[i] = malloc(32 + 16 * (size_t)i);
		memset(obj[i], i, 32);
	}
	for (int i = 0; i < 8; i++)
		free(obj[i]);
	free(buf);
	pthread_mutex_lock(&mu);
	alive--;
	pthread_mutex_unlock(&mu);
	sem_post(&slots);
	return NULL;
}

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

int main(int argc, char **argv)
{
	long requests = argc > 1 ? atol(argv[1]) : 3000;
	int conc = argc > 2 ? atoi(argv[2]) : 4;
	unsigned long long hwm = 0;
	sem_init(&slots, 0, (unsigned)conc);
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	for (long r = 0; r < requests; r++) {
		sem_wait(&slots);
		pthread_t th;
		if (pthread_create(&th, &at, request, (void *)r))
			return 1;
		if (r % 64 == 0) {
			unsigned long long v = rss_anon();
			if (v > hwm)
				hwm = v;
		}
	}
	for (int i = 0; i < conc; i++)
		sem_wait(&slots);
	printf("threads_alive_max %d\nrss_anon_hwm %llu\n", alive_max, hwm);
	return 0;
}
