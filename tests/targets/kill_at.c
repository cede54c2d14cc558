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
 *   said      mfx said it holds a thread: a line with "held:" on stdin
 *             (mfx's stderr under MFX_DEBUG=1, through a FIFO): SIGKILL mfx.
 *             Exact where polling /proc is not: a trim holds a thread
 *             ~0.4 ms, and a loaded machine's kill_at missed it 60 times
 *             in 60.  EOF first (mfx ended): "no moment"
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

/* The target's tids into t (n of them) and their status files, kept open
 * in fds (pread each round: the short holds of a trim are missed when
 * every round opens 40 files). */
static int fds[MAXT];

static void list_tasks(int target, int *t, int *n)
{
	char p[512];
	for (int i = 0; i < *n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	snprintf(p, sizeof(p), "/proc/%d/task", target);
	DIR *d = opendir(p);
	*n = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.' || *n >= MAXT)
			continue;
		t[*n] = atoi(e->d_name);
		snprintf(p, sizeof(p), "/proc/%d/task/%s/status", target, e->d_name);
		fds[(*n)++] = open(p, O_RDONLY);
	}
	if (d)
		closedir(d);
}

/* 1 when one of the tasks is traced by mfx. */
static int traced(int mfx, int n)
{
	char buf[4096];
	for (int i = 0; i < n; i++) {
		ssize_t r = fds[i] < 0 ? -1 : pread(fds[i], buf, sizeof(buf) - 1, 0);
		if (r <= 0)
			continue;
		buf[r] = 0;
		const char *tp = strstr(buf, "TracerPid:");
		if (tp && atoi(tp + 10) == mfx)
			return 1;
	}
	return 0;
}

/* mfx is alive (not a zombie its parent has yet to reap) */
static int alive(int pid)
{
	char p[64], buf[512];
	snprintf(p, sizeof(p), "/proc/%d/stat", pid);
	int fd = open(p, O_RDONLY);
	ssize_t r = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (r <= 0)
		return 0;
	buf[r] = 0;
	const char *e = strrchr(buf, ')');
	return e && e[1] == ' ' && e[2] != 'Z' && e[2] != 'X';
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

/* "said": 1 at mfx's line that it holds a thread, 0 at EOF. */
static int said(void)
{
	char line[1024];
	while (fgets(line, sizeof(line), stdin))
		if (strstr(line, "held:"))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	static int before[MAXT], now[MAXT];
	if (argc < 5) {
		fprintf(stderr, "usage: kill_at TARGET_PID MFX_PID MAX_US SEED [kill|loader|stopcont|said]\n");
		return 2;
	}
	int target = atoi(argv[1]), mfx = atoi(argv[2]), nb = 0, nn = 0;
	const char *mode = argc > 5 ? argv[5] : "kill";
	int loader = !strcmp(mode, "loader"), by_line = !strcmp(mode, "said");
	long max_us = atol(argv[3]), t0 = now_us();
	srand((unsigned)atol(argv[4]));
	if (by_line && !said()) {
		printf("no moment\n");
		return 0;
	}
	if (!by_line)
		list_tasks(target, before, &nb);
	memcpy(now, before, sizeof(int) * (size_t)nb);
	nn = nb;
	for (long round = 0; !by_line; round++) {
		int hit = 0;
		if (loader || round % 256 == 0)	/* new threads: look at the list again */
			list_tasks(target, now, &nn);
		for (int i = 0; loader && i < nn && !hit; i++)
			hit = is_new(now[i], before, nb);
		if (!loader)
			hit = traced(mfx, nn);
		if (hit)
			break;
		if (round % 64 == 0 && (!alive(mfx) || now_us() - t0 > 10000000L)) {
			printf("no moment\n");
			return 0;
		}
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
	printf("killed %ld us after the %s\n", now_us() - t1,
	       loader ? "thread appeared" : by_line ? "line that mfx holds a thread" : "seize");
	return 0;
}
