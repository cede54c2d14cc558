/*
 * unw_target.c - many stack shapes for the unwinder comparison (t181): the
 * agent's fast unwinder must give libunwind's stacks on every one of them.
 *
 *   - recursion of varying depth, mutual recursion through function pointers
 *   - alloca and variable-length arrays (frames addressed from RBP even
 *     under -fomit-frame-pointer), a large local array
 *   - qsort and bsearch callbacks: libc frames between ours
 *   - realloc, calloc, posix_memalign, aligned_alloc
 *   - a signal handler that allocates: raise() (a signal frame on a system
 *     call) and an interval timer (signal frames anywhere in a compute
 *     loop; the signal is blocked around the program's own malloc calls,
 *     so the handler never interrupts the allocator)
 *   - 3 threads
 *   - plugins: DIR/libunwplug_a.so dlopen'ed, called, dlclose'd, then
 *     DIR/libunwplug_b.so (other code, most often mapped at the same
 *     address), and again: the rules of a library that is gone must
 *     never be used for the one that replaced it
 *
 *   unw_target [ROUNDS [PLUGIN_DIR]]     (default 200, no plugins)
 * Prints "plugin a at 0x.., b at 0x.." (their load addresses) when plugins
 * were loaded.
 * Built twice: unw_target (-fomit-frame-pointer) and unw_target_fp.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

static void *volatile sink;
static volatile unsigned long spin_sink;
static sigset_t sigs;

static void block(void)
{
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
}

static void unblock(void)
{
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
}

static __attribute__((noinline)) void churn(size_t n)
{
	block();
	void *p = malloc(n);
	void *q = calloc(2, n);
	p = realloc(p, n * 3);
	void *r = NULL;
	if (posix_memalign(&r, 64, n))
		r = NULL;
	void *s = aligned_alloc(32, (n + 31) & ~(size_t)31);
	sink = p;
	free(p);
	free(q);
	free(r);
	free(s);
	unblock();
}

static __attribute__((noinline)) void with_alloca(int d, size_t n)
{
	char *a = __builtin_alloca(16 + (size_t)d * 8);
	a[0] = (char)d;
	sink = a;
	churn(n + (size_t)a[0]);
}

static __attribute__((noinline)) void with_vla(int d, size_t n)
{
	char v[32 + d * 16];
	v[0] = (char)d;
	sink = v;
	with_alloca(d, n + (size_t)v[0] % 3);
}

static __attribute__((noinline)) void big_frame(int d, size_t n)
{
	volatile char big[20000];
	big[d] = 1;
	with_vla(d, n + big[d]);
}

typedef void (*step_fn)(int, size_t);
static void ping(int d, size_t n);
static void pong(int d, size_t n);
static step_fn volatile steps[2] = { ping, pong };

static __attribute__((noinline)) void ping(int d, size_t n)
{
	if (d <= 0)
		big_frame(3, n);
	else
		steps[d & 1](d - 1, n + 1);
	spin_sink++;
}

static __attribute__((noinline)) void pong(int d, size_t n)
{
	if (d <= 0)
		with_vla(5, n);
	else
		steps[(d + 1) & 1](d - 1, n + 2);
	spin_sink += 2;
}

static int cmp_alloc(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	if (((x ^ y) & 31) == 0)
		churn(24 + (size_t)(x & 63));
	return (x > y) - (x < y);
}

static __attribute__((noinline)) void sort_some(unsigned seed)
{
	int v[64];
	for (int i = 0; i < 64; i++)
		v[i] = (int)((seed = seed * 1103515245u + 12345u) >> 8);
	qsort(v, 64, sizeof(int), cmp_alloc);
	int key = v[17];
	sink = bsearch(&key, v, 64, sizeof(int), cmp_alloc);
}

/* The handler allocates (it never interrupts malloc: see block()). */
static void on_signal(int sig)
{
	void *p = malloc(100 + (size_t)sig);
	sink = p;
	free(p);
}

static __attribute__((noinline)) void compute(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		spin_sink = spin_sink * 31 + i;
}

static void round_(unsigned seed)
{
	ping((int)(seed % 9), 16 + seed % 200);
	pong((int)(seed % 5), 40);
	if (seed % 4 == 0)
		sort_some(seed);
	if (seed % 8 == 0)
		raise(SIGUSR1);
	compute(20000);
}

static void *worker(void *arg)
{
	unsigned rounds = (unsigned)(uintptr_t)arg;
	for (unsigned i = 0; i < rounds; i++)
		round_(i * 7919u + (unsigned)(uintptr_t)&rounds);
	return NULL;
}

static void *plugin_call(const char *dir, const char *name, unsigned n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	block();	/* dlopen allocates */
	void *h = dlopen(path, RTLD_NOW);
	unblock();
	if (!h) {
		fprintf(stderr, "unw_target: %s\n", dlerror());
		exit(2);
	}
	void (*run)(unsigned) = (void (*)(unsigned))dlsym(h, "unwplug_run");
	Dl_info di;
	void *at = run && dladdr((void *)run, &di) ? di.dli_fbase : NULL;
	for (unsigned i = 0; run && i < n; i++)
		run(i);
	block();
	dlclose(h);
	unblock();
	return at;
}

int main(int argc, char **argv)
{
	unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 200;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGPROF);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGPROF, &sa, NULL);
	struct itimerval it = { { 0, 2000 }, { 0, 2000 } };
	setitimer(ITIMER_PROF, &it, NULL);
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)rounds);
	worker((void *)(uintptr_t)rounds);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_PROF, &off, NULL);
	if (argc > 2) {
		void *a = NULL, *b = NULL;
		for (int i = 0; i < 4; i++) {
			a = plugin_call(argv[2], "libunwplug_a.so", 50);
			b = plugin_call(argv[2], "libunwplug_b.so", 50);
		}
		printf("plugin a at %p, b at %p\n", a, b);
	}
	return 0;
}
