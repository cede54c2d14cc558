/*
 * attach_target.c - a process to attach to.  It sits blocked in read(2) on
 * stdin (the system call an attach must restart, never fail with EINTR) and
 * obeys one command per line:
 *
 *   run N      N malloc, N/10 calloc, N/10 realloc, N/10 posix_memalign, and
 *              a free of every block but N/4 (kept: "leaked"); then prints
 *              "done" with the exact expected counts as JSON on stdout
 *   churn MS   malloc/free as fast as possible for MS milliseconds in 4
 *              threads (an attach under load)
 *   sleep MS   nanosleep(MS) (must not return early)
 *   dlopen P   dlopen(P) and call its plugin_alloc(n) 100 times
 *   dlclose    dlclose() the library of the last dlopen (it is unloaded)
 *   dlopenfd P [N]  dlopen("/proc/self/fd/N") of P opened as fd N (the
 *              lowest free, or N by dup2), then close(N): the name stays the
 *              library's, the number is free again; call its plugin_alloc(n)
 *              100 times; prints "done dlopenfd N" (or "failed ...")
 *   frag MB    allocate MB MiB in 1 KiB blocks, free all but one in 64: the heap
 *              stays large and mostly free (what malloc_trim can give back)
 *   alarm MS   a SIGALRM every MS milliseconds from now on (SA_RESTART)
 *   setxid MS  a thread calls setresuid(-1, -1, -1) every 200 us for MS ms:
 *              each one makes glibc signal every thread (SIGSETXID) and wait
 *              for all of them; prints "done setxid N" (N calls) at the end
 *   closefds   close every fd above 2, as daemons do, then take the low
 *              numbers again with 4 socketpairs of its own
 *   checkfds   prints "INJECTED" if anything arrived on those sockets
 *   quit       exit 0
 *
 * Any EINTR from read or early nanosleep return prints "EINTR" and exits 3;
 * errno changed across a successful read (remote calls made in this thread
 * must leave it as it was) prints "ERRNO" and exits 4; its SIGSEGV handler
 * gone (the kernel resets it when a fault meets a blocked SIGSEGV) prints
 * "HANDLER" and exits 5.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *kept[1 << 20];
static int own[4][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } };
static void *volatile sink;	/* keeps the compiler from eliding malloc/free pairs */
static size_t nkept;
static void *plugin;	/* the last dlopen's handle */

/* dlopen(path) into `plugin` and call its plugin_alloc(n) 100 times: 1,
 * or 0 when either is missing (path NULL: nothing). */
static int use_plugin(const char *path)
{
	void *h = plugin = path ? dlopen(path, RTLD_NOW) : NULL;
	void *(*fn)(size_t) = h ? (void *(*)(size_t))dlsym(h, "plugin_alloc") : NULL;
	for (int i = 0; fn && i < 100; i++)
		fn(1000);
	return fn != NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static __attribute__((noinline)) void run(long n)
{
	void **b = calloc((size_t)n + 1, sizeof(*b));	/* 1 calloc, freed */
	long nm = n, nc = n / 10, nr = n / 10, na = n / 10, nf = 0;
	uint64_t total = (uint64_t)(n + 1) * sizeof(*b);
	for (long i = 0; i < n; i++) {
		b[i] = malloc(16 + (size_t)(i % 200));
		total += 16 + (uint64_t)(i % 200);
	}
	for (long i = 0; i < nc; i++) {
		void *p = calloc(4, 8 + (size_t)i % 32);
		sink = p;
		total += 4 * (8 + (uint64_t)i % 32);
		free(sink);
		nf += p != NULL;	/* free(NULL) is not a counted call (SPEC) */
	}
	for (long i = 0; i < nr; i++) {
		b[i] = realloc(b[i], 300 + (size_t)i % 100);
		total += 300 + (uint64_t)i % 100;
	}
	for (long i = 0; i < na; i++) {
		void *p = NULL;
		if (posix_memalign(&p, 64, 100) == 0) {
			total += 100;
			free(p);
			nf++;
		}
	}
	for (long i = 0; i < n; i++) {
		if (i % 4 == 0 && nkept < sizeof(kept) / sizeof(kept[0])) {
			kept[nkept++] = b[i];
			continue;
		}
		free(b[i]);
		nf += b[i] != NULL;	/* a failed malloc (RLIMIT_AS) left NULL */
	}
	free(b);
	nf++;
	printf("done {\"malloc\": %ld, \"calloc\": %ld, \"realloc\": %ld, \"free\": %ld, "
	       "\"memalign\": %ld, \"total_bytes_allocated\": %llu}\n",
	       nm, nc + 1, nr, nf, na, (unsigned long long)total);
	fflush(stdout);
}

static volatile int churn_stop;
static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void *churn_thread(void *arg)
{
	(void)arg;
	void *ring[64] = { 0 };
	for (unsigned i = 0; !churn_stop; i++) {
		free(ring[i % 64]);
		ring[i % 64] = malloc(8 + i % 512);
	}
	for (int i = 0; i < 64; i++)
		free(ring[i]);
	return NULL;
}

static void churn(long ms)
{
	pthread_t t[4];
	churn_stop = 0;
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, churn_thread, NULL);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
	churn_stop = 1;
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	printf("done churn\n");
	fflush(stdout);
}

static void *setxid_thread(void *arg)
{
	uint64_t end = now_ns() + (uint64_t)(intptr_t)arg * 1000000ull;
	long n = 0;
	struct timespec gap = { 0, 200000 };
	while (now_ns() < end && setresuid((uid_t)-1, (uid_t)-1, (uid_t)-1) == 0) {
		n++;
		nanosleep(&gap, NULL);
	}
	printf("done setxid %ld\n", n);
	fflush(stdout);
	return NULL;
}

/* A SIGSEGV handler, as JVMs and crash reporters have: mfx must leave it. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	signal(sig, SIG_DFL);
}

int main(void)
{
	char line[4096];
	size_t len = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction segv = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO };
	sigemptyset(&segv.sa_mask);
	sigaction(SIGSEGV, &segv, NULL);
	printf("ready %d\n", (int)getpid());
	for (;;) {
		errno = 4242;	/* a successful read leaves it alone: so must mfx */
		ssize_t r = read(0, line + len, sizeof(line) - 1 - len);
		if (r < 0) {
			printf("EINTR read: %s\n", strerror(errno));
			return 3;
		}
		if (errno != 4242) {
			printf("ERRNO changed under read: %d\n", errno);
			return 4;
		}
		struct sigaction now;
		if (sigaction(SIGSEGV, NULL, &now) || now.sa_sigaction != on_segv) {
			printf("HANDLER of SIGSEGV lost\n");
			return 5;
		}
		if (r == 0)
			return 0;
		len += (size_t)r;
		line[len] = 0;
		char *nl;
		while ((nl = strchr(line, '\n'))) {
			*nl = 0;
			char arg[4000] = "";
			if (!strncmp(line, "run ", 4)) {
				run(atol(line + 4));
			} else if (!strncmp(line, "churn ", 6)) {
				churn(atol(line + 6));
			} else if (!strncmp(line, "sleep ", 6)) {
				long ms = atol(line + 6);
				uint64_t t0 = now_ns();
				struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
				if (nanosleep(&ts, NULL) || now_ns() - t0 < (uint64_t)ms * 1000000) {
					printf("EINTR nanosleep\n");
					return 3;
				}
				printf("done sleep\n");
			} else if (!strcmp(line, "dlclose")) {
				int rc = plugin ? dlclose(plugin) : -1;
				plugin = NULL;
				printf(rc ? "failed dlclose\n" : "done dlclose\n");
			} else if (sscanf(line, "dlopenfd %3999s", arg) == 1) {
				int fd = open(arg, O_RDONLY | O_CLOEXEC), want = -1;
				char p[64];
				if (sscanf(line, "dlopenfd %*s %d", &want) == 1 && fd >= 0 && want != fd) {
					want = dup2(fd, want);
					close(fd);
					fd = want;
				}
				snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
				int ok = use_plugin(fd < 0 ? NULL : p);
				close(fd);
				printf(ok ? "done dlopenfd %d\n" : "failed dlopenfd %d\n", fd);
			} else if (sscanf(line, "dlopen %3999s", arg) == 1) {
				int ok = use_plugin(arg);	/* (before dlerror()) */
				printf(ok ? "done dlopen\n" : "failed dlopen %s\n", dlerror());
			} else if (!strncmp(line, "frag ", 5)) {
				long n = atol(line + 5) * 1024;
				void **v = malloc((size_t)n * sizeof(*v));
				for (long i = 0; v && i < n; i++)
					memset(v[i] = malloc(1000), 1, 1000);
				for (long i = 0; v && i < n; i++)
					if (i % 64 && v[i])
						free(v[i]);
				printf("done frag\n");
			} else if (!strncmp(line, "alarm ", 6)) {
				struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
				sigemptyset(&sa.sa_mask);
				sigaction(SIGALRM, &sa, NULL);
				long ms = atol(line + 6);
				struct itimerval it = { { 0, ms * 1000 }, { 0, ms * 1000 } };
				setitimer(ITIMER_REAL, &it, NULL);
			} else if (!strncmp(line, "setxid ", 7)) {
				pthread_t t;
				if (pthread_create(&t, NULL, setxid_thread, (void *)(intptr_t)atol(line + 7)) == 0)
					pthread_detach(t);
			} else if (!strcmp(line, "closefds")) {
				for (int fd = 3; fd < 1024; fd++)
					close(fd);
				for (int i = 0; i < 4; i++)
					socketpair(AF_UNIX, SOCK_SEQPACKET, 0, own[i]);
				printf("done closefds\n");
			} else if (!strcmp(line, "checkfds")) {
				char b[64];
				for (int i = 0; i < 4; i++)
					for (int k = 0; k < 2; k++)
						if (recv(own[i][k], b, sizeof(b), MSG_DONTWAIT | MSG_PEEK) > 0)
							printf("INJECTED into fd %d\n", own[i][k]);
				printf("done checkfds\n");
			} else if (!strcmp(line, "quit")) {
				return 0;
			}
			memmove(line, nl + 1, len - (size_t)(nl + 1 - line) + 1);
			len -= (size_t)(nl + 1 - line);
		}
	}
}
