/*
 * kill_at.c - strike a running attach at a chosen moment, for the fault
 * matrix (t5*):
 *
 *   kill_at TARGET_PID MFX_PID MAX_US SEED [MODE]
 *
 * waits until the moment, then after a random delay in [0, MAX_US] us:
 *   kill      (default) the moment mfx seized a thread of the target (a
 *             TracerPid of MFX_PID in /proc/TARGET/task/T/status): SIGKILL mfx
 *   loader    the moment a new thread appears in the target (ours, started
 *             by the hold to load the agent): SIGKILL mfx
 *   stopcont  the seize: SIGSTOP the target, then after another random delay
 *             in [0, MAX_US] us, SIGCONT it
 * Prints what it did ("killed D us after the seize", ...) or "no moment"
 * (mfx ended first; nothing done).  Exit 0.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXT 4096

static long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

/* The target's tids into t (n of them); with mfx > 0, 1 when one of them
 * is traced by mfx. */
static int scan(int target, int mfx, int *t, int *n)
{
	char p[512], buf[4096];
	snprintf(p, sizeof(p), "/proc/%d/task", target);
	DIR *d = opendir(p);
	int hit = 0;
	*n = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		if (*n < MAXT)
			t[(*n)++] = atoi(e->d_name);
		if (mfx <= 0 || hit)
			continue;
		snprintf(p, sizeof(p), "/proc/%d/task/%s/status", target, e->d_name);
		int fd = open(p, O_RDONLY);
		ssize_t r = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		if (fd >= 0)
			close(fd);
		if (r <= 0)
			continue;
		buf[r] = 0;
		const char *tp = strstr(buf, "TracerPid:");
		hit = tp && atoi(tp + 10) == mfx;
	}
	if (d)
		closedir(d);
	return hit;
}

static int is_new(int id, const int *old, int n)
{
	for (int i = 0; i < n; i++)
		if (old[i] == id)
			return 0;
	return 1;
}

static void spin(long us)
{
	long t = now_us();
	while (now_us() - t < us)
		;
}

int main(int argc, char **argv)
{
	static int before[MAXT], now[MAXT];
	if (argc < 5) {
		fprintf(stderr, "usage: kill_at TARGET_PID MFX_PID MAX_US SEED [kill|loader|stopcont]\n");
		return 2;
	}
	int target = atoi(argv[1]), mfx = atoi(argv[2]), nb, nn;
	const char *mode = argc > 5 ? argv[5] : "kill";
	int loader = !strcmp(mode, "loader");
	long max_us = atol(argv[3]), t0 = now_us();
	srand((unsigned)atol(argv[4]));
	scan(target, 0, before, &nb);
	for (;;) {
		int hit = scan(target, loader ? 0 : mfx, now, &nn);
		for (int i = 0; loader && i < nn && !hit; i++)
			hit = is_new(now[i], before, nb);
		if (hit)
			break;
		if (kill(mfx, 0) || now_us() - t0 > 10000000L) {
			printf("no moment\n");
			return 0;
		}
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	long t1 = now_us();
	spin(max_us > 0 ? rand() % (max_us + 1) : 0);
	if (!strcmp(mode, "stopcont")) {
		kill(target, SIGSTOP);
		long t2 = now_us();
		spin(max_us > 0 ? rand() % (max_us + 1) : 0);
		kill(target, SIGCONT);
		printf("stopped %ld us after the seize, for %ld us\n", t2 - t1, now_us() - t2);
		return 0;
	}
	kill(mfx, SIGKILL);
	printf("killed %ld us after the %s\n", now_us() - t1, loader ? "thread appeared" : "seize");
	return 0;
}
