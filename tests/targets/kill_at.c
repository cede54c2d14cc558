/*
 * kill_at.c - SIGKILL a running mfx at a random moment of its hold, for
 * the fault matrix (t500): wait until mfx (MFX_PID) has seized a thread of
 * TARGET_PID (a TracerPid in /proc/TARGET/task/T/status), then after a
 * random delay in [0, MAX_US] microseconds kill it.
 *
 *   kill_at TARGET_PID MFX_PID MAX_US SEED
 *
 * Prints "killed D us after the seize" or "no seize" (mfx finished or
 * died first; then nothing is killed).  Exit 0.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static int seized(int target, int mfx)
{
	char p[512], buf[4096];
	snprintf(p, sizeof(p), "/proc/%d/task", target);
	DIR *d = opendir(p);
	int hit = 0;
	for (struct dirent *e; d && !hit && (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/%d/task/%s/status", target, e->d_name);
		int fd = open(p, O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		const char *t = strstr(buf, "TracerPid:");
		hit = t && atoi(t + 10) == mfx;
	}
	if (d)
		closedir(d);
	return hit;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: kill_at TARGET_PID MFX_PID MAX_US SEED\n");
		return 2;
	}
	int target = atoi(argv[1]), mfx = atoi(argv[2]);
	long max_us = atol(argv[3]), t0 = now_us();
	srand((unsigned)atol(argv[4]));
	while (!seized(target, mfx)) {
		if (kill(mfx, 0) || now_us() - t0 > 10000000L) {
			printf("no seize\n");
			return 0;
		}
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	long t1 = now_us(), delay = max_us > 0 ? rand() % (max_us + 1) : 0;
	while (now_us() - t1 < delay)
		;
	kill(mfx, SIGKILL);
	printf("killed %ld us after the seize\n", now_us() - t1);
	return 0;
}
