/*
 * forkstorm_target.c - forks in a storm while its other threads allocate
 * (through a few frames: new stacks for the agent to unwind and intern)
 * and one dlopens and dlcloses libz, so that a fork meets the agent's and
 * the loader's locks held at any instant.  One command per line on stdin:
 *
 *   storm N   fork N children one after the other; each makes 100
 *             malloc/free pairs and _exits (every 10th execs /bin/true
 *             instead of exiting); each is waited for, 5 s at most.
 *             Prints "storm N hung H": H children did not end in 5 s
 *             (they are killed: a hung child is the failure looked for)
 *   quit      exit 0
 *
 * Prints "ready" once its threads run.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;
static volatile int stop;

static __attribute__((noinline)) void alloc_at(int depth, size_t size)
{
	if (depth > 0) {
		alloc_at(depth - 1, size + 8);
		return;
	}
	void *p = malloc(size);
	sink = p;	/* (shared by the threads: each frees its own p) */
	free(p);
}

static void *allocator(void *arg)
{
	unsigned n = (unsigned)(size_t)arg;
	for (; !stop; n++)
		alloc_at((int)(n % 7), 16 + n % 512);
	return NULL;
}

static void *loader(void *arg)
{
	(void)arg;
	struct timespec t = { 0, 200000 };
	while (!stop) {
		void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
		if (h)
			dlclose(h);
		nanosleep(&t, NULL);
	}
	return NULL;
}

static void child(int i)
{
	for (int k = 0; k < 100; k++) {
		sink = malloc(24 + (size_t)k);
		free(sink);
	}
	if (i % 10 == 9)
		execl("/bin/true", "true", (char *)NULL);
	_exit(0);
}

/* 0 once pid ended within 5 s, else 1 (then it is killed) */
static int reap(pid_t pid)
{
	struct timespec t = { 0, 1000000 };
	for (int ms = 0; ms < 5000; ms++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return 0;
		nanosleep(&t, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 1;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	pthread_t t[4];
	for (size_t i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, allocator, (void *)i);
	pthread_create(&t[3], NULL, loader, NULL);
	printf("ready\n");
	char cmd[128];
	while (fgets(cmd, sizeof(cmd), stdin)) {
		int n = 0;
		if (sscanf(cmd, "storm %d", &n) == 1) {
			int hung = 0;
			for (int i = 0; i < n; i++) {
				fflush(stdout);
				pid_t c = fork();
				if (c == 0)
					child(i);
				hung += c > 0 ? reap(c) : 0;
			}
			printf("storm %d hung %d\ndone storm\n", n, hung);
		} else if (!strncmp(cmd, "quit", 4)) {
			break;
		}
	}
	stop = 1;
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	return 0;
}
