/*
 * sample_target.c - a program that knows its own live bytes, for --sample
 * (t190): a leak in leak_site(), churn in churn_site() (a ring of live
 * blocks, most freed again), realloc growth in grow_site(), and a few large
 * blocks in big_site() that stay.  Sizes are random (a fixed seed).  At
 * the end it prints what is live per site, by its own count:
 *
 *   live total=N leak=N churn=N grow=N big=N
 *
 *   sample_target [ROUNDS]     (default 200000)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define RING 512

static void *volatile sink;
static unsigned seed = 12345;

static unsigned rnd(void)
{
	seed = seed * 1103515245u + 12345u;
	return seed >> 8;
}

static __attribute__((noinline)) void *leak_site(size_t n)
{
	void *p = malloc(n);
	sink = p;
	return p;
}

static __attribute__((noinline)) void *churn_site(size_t n)
{
	void *p = malloc(n);
	sink = p;
	return p;
}

static __attribute__((noinline)) void *grow_site(void *p, size_t n)
{
	void *q = realloc(p, n);
	sink = q;
	return q;
}

static __attribute__((noinline)) void *big_site(size_t n)
{
	void *p = calloc(1, n);
	sink = p;
	return p;
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 200000;
	static void *ring[RING];
	static size_t ring_n[RING];
	uint64_t leak = 0, churn = 0, grow = 0, big = 0;
	void *g = NULL;
	size_t gn = 0;
	long mallocs = 0, reallocs = 0, callocs = 0;
	for (long i = 0; i < rounds; i++) {
		size_t n = 16 + rnd() % 4000;
		unsigned k = (unsigned)(i % RING);
		free(ring[k]);
		churn -= ring_n[k];
		ring[k] = churn_site(n);
		mallocs++;
		ring_n[k] = n;
		churn += n;
		if (i % 10 == 0)
			leak += n, leak_site(n), mallocs++;
		if (i % 1000 == 0) {
			gn += 10000 + rnd() % 50000;
			g = grow_site(g, gn);
			reallocs++;
		}
		if (i % 20000 == 0)
			big += 1u << 20, big_site(1u << 20), callocs++;
	}
	grow = gn;
	printf("live total=%llu leak=%llu churn=%llu grow=%llu big=%llu\n",
	       (unsigned long long)(leak + churn + grow + big), (unsigned long long)leak,
	       (unsigned long long)churn, (unsigned long long)grow, (unsigned long long)big);
	printf("calls malloc=%ld realloc=%ld calloc=%ld\n", mallocs, reallocs, callocs);
	fflush(stdout);
	return 0;
}
