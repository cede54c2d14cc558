/*
 * call_log.c - logs every allocation call it makes, with its result, so a
 * test can compare `mfx export --csv` with what really happened, pointers
 * included.  T worker threads each make N calls of every kind of the malloc
 * family (failed ones too: sizes no allocator gives, a bad alignment,
 * calloc overflow, realloc to 0), keep up to 256 blocks, and hand some of
 * them to the next thread, which frees them (a block allocated in one
 * thread and freed in another).  The log never allocates: static arrays,
 * snprintf into a stack buffer, write(2).
 *
 *   call_log N T LOGFILE        (N calls per thread, 1 <= T <= 8)
 *
 * LOGFILE: one line per call mfx records, per thread in call order:
 *   t0_ns,t1_ns,event,ptr,size,tid,api,old_ptr
 * t0/t1: CLOCK_MONOTONIC just before and after the call; the other fields as
 * `mfx export --csv` writes them.  free(NULL) is made but not logged (mfx
 * does not record it).  Each worker's calls start and end with
 * malloc(777777), so a test can find them among the libc's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TMAX 8
#define NMAX 100000
#define LOGMAX (2 * NMAX + 1024)	/* own calls + frees of handed blocks */
#define LIVE 256
#define RING 64
#define MARK 777777

enum api { A_MALLOC, A_CALLOC, A_REALLOC, A_REALLOCARRAY, A_FREE, A_POSIX_MEMALIGN,
	   A_ALIGNED_ALLOC, A_MEMALIGN, A_VALLOC, A_PVALLOC };
static const char *const api_name[] = { "malloc", "calloc", "realloc", "reallocarray", "free",
					"posix_memalign", "aligned_alloc", "memalign", "valloc",
					"pvalloc" };
static const char *const event_name[] = { "malloc", "calloc", "realloc", "realloc", "free",
					  "memalign", "memalign", "memalign", "memalign",
					  "memalign" };

struct rec {
	uint64_t t0, t1, ptr, size, old;
	uint8_t api;
};

struct worker {
	int idx;
	uint32_t tid;
	uint64_t seed;
	struct rec log[LOGMAX];
	size_t n;
	void *live[LIVE];
	size_t nlive;
	/* blocks handed to this worker by the previous one (one producer,
	 * one consumer) */
	void *ring[RING];
	volatile uint64_t head, tail;
};

static struct worker w[TMAX];
static int nthreads;
static long ncalls;
static pthread_barrier_t done_making;
/* Sizes the allocator cannot give, hidden from the compiler's checks. */
static volatile size_t huge = SIZE_MAX / 2, nmemb_big = SIZE_MAX / 4;

static uint64_t now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(struct worker *me)
{
	me->seed ^= me->seed << 13;
	me->seed ^= me->seed >> 7;
	me->seed ^= me->seed << 17;
	return me->seed;
}

/* Addresses are taken as integers before the call (the block may be gone
 * after it). */
static uint64_t addr(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static void put(struct worker *me, enum api a, uint64_t t0, uint64_t p, uint64_t size,
		uint64_t old)
{
	if (me->n < LOGMAX)
		me->log[me->n++] = (struct rec){ t0, now(), p, size, old, (uint8_t)a };
}

static void logged_free(struct worker *me, void *p)
{
	uint64_t a = addr(p), t0 = now();
	free(p);
	put(me, A_FREE, t0, a, 0, 0);
}

static void keep(struct worker *me, void *p)
{
	if (!p)
		return;
	if (me->nlive < LIVE) {
		me->live[me->nlive++] = p;
		return;
	}
	logged_free(me, p);
}

/* Take a random live block out of the set (NULL if none). */
static void *take(struct worker *me)
{
	if (!me->nlive)
		return NULL;
	size_t i = rnd(me) % me->nlive;
	void *p = me->live[i];
	me->live[i] = me->live[--me->nlive];
	return p;
}

static size_t some_size(struct worker *me)
{
	uint64_t r = rnd(me) % 100;
	if (r < 70)
		return 1 + rnd(me) % 256;
	if (r < 95)
		return 1 + rnd(me) % 8192;
	return 100000 + rnd(me) % 200000;	/* mmap'ed by glibc */
}

/* Hand p to the next worker, or free it here when its ring is full. */
static void give_or_free(struct worker *me, void *p)
{
	struct worker *to = &w[(me->idx + 1) % nthreads];
	uint64_t h = __atomic_load_n(&to->head, __ATOMIC_ACQUIRE);
	if (nthreads > 1 && h - __atomic_load_n(&to->tail, __ATOMIC_ACQUIRE) < RING) {
		to->ring[h % RING] = p;
		__atomic_store_n(&to->head, h + 1, __ATOMIC_RELEASE);
		return;
	}
	logged_free(me, p);
}

/* Free what the previous worker handed over. */
static void drain_ring(struct worker *me)
{
	uint64_t t = me->tail;
	while (t != __atomic_load_n(&me->head, __ATOMIC_ACQUIRE)) {
		logged_free(me, me->ring[t % RING]);
		__atomic_store_n(&me->tail, ++t, __ATOMIC_RELEASE);
	}
}

static void one_alloc(struct worker *me, uint64_t r)
{
	uint64_t t0 = now();
	void *p = NULL;
	size_t n = some_size(me), m = 1 + rnd(me) % 16, al;
	if (r < 30) {
		p = malloc(n);
		put(me, A_MALLOC, t0, addr(p), n, 0);
	} else if (r < 38) {
		p = calloc(m, n / 16 + 1);
		put(me, A_CALLOC, t0, addr(p), m * (n / 16 + 1), 0);
	} else if (r < 41) {
		al = (size_t)16 << (rnd(me) % 9);	/* 16 .. 4096 */
		int e = posix_memalign(&p, al, n);
		if (e)
			p = NULL;
		put(me, A_POSIX_MEMALIGN, t0, addr(p), n, 0);
	} else if (r < 43) {
		p = aligned_alloc(64, (n + 63) & ~(size_t)63);
		put(me, A_ALIGNED_ALLOC, t0, addr(p), (n + 63) & ~(size_t)63, 0);
	} else if (r < 44) {
		p = memalign(256, n);
		put(me, A_MEMALIGN, t0, addr(p), n, 0);
	} else if (r < 45) {
		p = r & 1 ? valloc(n) : pvalloc(n);
		put(me, r & 1 ? A_VALLOC : A_PVALLOC, t0, addr(p), n, 0);
	}
	keep(me, p);
}

static void one_realloc(struct worker *me, uint64_t r)
{
	void *old = take(me), *p;
	size_t n = some_size(me), m = 1 + rnd(me) % 8;
	uint64_t t0 = now(), o = addr(old);
	if (r < 58) {
		p = realloc(old, n);
		put(me, A_REALLOC, t0, addr(p), n, o);
	} else {
		p = reallocarray(old, m, n / 8 + 1);
		put(me, A_REALLOCARRAY, t0, addr(p), m * (n / 8 + 1), o);
	}
	keep(me, p ? p : (void *)(uintptr_t)o);	/* failed: the old block stays */
}

/* Calls that fail (and one that frees): mfx records them all. */
static void one_odd(struct worker *me, uint64_t r)
{
	uint64_t t0 = now(), o;
	void *p, *old;
	switch (r % 6) {
	case 0:
		p = malloc(huge);
		put(me, A_MALLOC, t0, addr(p), huge, 0);
		keep(me, p);
		break;
	case 1:
		p = calloc(nmemb_big, 16);	/* overflows: recorded as SIZE_MAX */
		put(me, A_CALLOC, t0, addr(p), SIZE_MAX, 0);
		keep(me, p);
		break;
	case 2: {
		int e = posix_memalign(&p, 24, 100);	/* not a power of two: EINVAL */
		put(me, A_POSIX_MEMALIGN, t0, e ? 0 : addr(p), 100, 0);
		keep(me, e ? NULL : p);
		break;
	}
	case 3:
		old = take(me);
		o = addr(old);
		p = realloc(old, huge);	/* fails: old stays */
		put(me, A_REALLOC, t0, addr(p), huge, o);
		keep(me, p ? p : (void *)(uintptr_t)o);
		break;
	case 4:
		old = take(me);
		if (!old)
			break;
		o = addr(old);
		p = realloc(old, 0);	/* glibc frees old, returns NULL */
		put(me, A_REALLOC, t0, addr(p), 0, o);
		keep(me, p);
		break;
	default:
		free(NULL);	/* not recorded */
		break;
	}
}

static void *worker(void *arg)
{
	struct worker *me = arg;
	me->tid = (uint32_t)syscall(SYS_gettid);
	uint64_t t0 = now();
	void *mark = malloc(MARK);
	put(me, A_MALLOC, t0, addr(mark), MARK, 0);
	for (long i = 0; i < ncalls; i++) {
		uint64_t r = rnd(me) % 100;
		if (r < 45)
			one_alloc(me, r);
		else if (r < 60)
			one_realloc(me, r);
		else if (r < 62)
			one_odd(me, rnd(me));
		else if (me->nlive) {
			void *p = take(me);
			if (r < 75) {
				give_or_free(me, p);
			} else {
				logged_free(me, p);
			}
		}
		drain_ring(me);
	}
	pthread_barrier_wait(&done_making);	/* nothing more is handed over */
	drain_ring(me);
	while (me->nlive)
		logged_free(me, take(me));
	logged_free(me, mark);
	t0 = now();
	mark = malloc(MARK);
	put(me, A_MALLOC, t0, addr(mark), MARK, 0);
	free(mark);	/* after the end mark: not compared */
	return NULL;
}

static void write_log(int fd)
{
	char buf[65536];
	size_t len = 0;
	for (int k = 0; k < nthreads; k++)
		for (size_t i = 0; i < w[k].n; i++) {
			const struct rec *r = &w[k].log[i];
			int re = r->api == A_REALLOC || r->api == A_REALLOCARRAY;
			char old[24] = "";
			if (re)
				snprintf(old, sizeof(old), "0x%llx", (unsigned long long)r->old);
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
						"%llu,%llu,%s,0x%llx,%llu,%u,%s,%s\n",
						(unsigned long long)r->t0, (unsigned long long)r->t1,
						event_name[r->api], (unsigned long long)r->ptr,
						(unsigned long long)r->size, w[k].tid, api_name[r->api],
						old);
			if (len > sizeof(buf) - 256) {
				if (write(fd, buf, len) != (ssize_t)len)
					exit(3);
				len = 0;
			}
		}
	if (len && write(fd, buf, len) != (ssize_t)len)
		exit(3);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: call_log N T LOGFILE\n");
		return 2;
	}
	ncalls = atol(argv[1]);
	nthreads = atoi(argv[2]);
	if (ncalls < 1 || ncalls > NMAX || nthreads < 1 || nthreads > TMAX) {
		fprintf(stderr, "call_log: N in 1..%d, T in 1..%d\n", NMAX, TMAX);
		return 2;
	}
	int fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		perror(argv[3]);
		return 2;
	}
	pthread_t th[TMAX];
	pthread_barrier_init(&done_making, NULL, (unsigned)nthreads);
	for (int k = 0; k < nthreads; k++) {
		w[k].idx = k;
		w[k].seed = 0x9E3779B97F4A7C15ull * (uint64_t)(k + 1);
	}
	for (int k = 0; k < nthreads; k++)
		if (pthread_create(&th[k], NULL, worker, &w[k])) {
			perror("pthread_create");
			return 2;
		}
	for (int k = 0; k < nthreads; k++)
		pthread_join(th[k], 0);
	write_log(fd);
	close(fd);
	return 0;
}
