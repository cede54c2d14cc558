/*
 * stopping.c - how mfx stops when asked to (stopping.h): after the window,
 * a second SIGINT/SIGTERM/SIGHUP, or 5 s without progress once one came,
 * ends mfx at once.
 *
 * The first signal ends the capture window cleanly (session.c): the agent is
 * told to stop, the traces are finalised, the report is written.  That can
 * take a while on a long window, and a user who presses Ctrl-C again wants
 * out now.  What must be undone before leaving is in the target, and the
 * target undoes it by itself: the agent sees its channel close when mfx's
 * fds are closed by _exit(2), restores every GOT slot, and writes the
 * chunks it holds into the trace (preload/drain.c); the `.stop` marker and
 * the header's stop flag were set before any of this.  So the emergency
 * path only removes the temporary files being written, says one line, and
 * calls _exit: all async-signal-safe.  The raw trace stays readable
 * (`mfx report DIR` finalises nothing, it reads raw traces as they are).
 *
 * "Progress" is mfx_tick() (util.h), called by the trace reader per chunk,
 * the finaliser per chunk, the spool drain, the symbolizer, the session
 * loop and every line mfx prints.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "attach/stopping.h"
#include "trace/format.h"
#include "common/util.h"

#define STALL_NS 5000000000ull	/* no progress for this long: give up */

static char line_sig[600], line_stall[600];
static size_t len_sig, len_stall;
static volatile int armed, watching;
static pthread_t watchdog;
static int have_watchdog;
static struct sigaction old_int, old_term, old_hup;

/* The main trace's header while the spool may hold chunks mfx has not
 * written yet (the window is over, the final drain not done): the agent
 * gives its chunks back to mfx at STOP, and drains them itself only when
 * it sees mfx gone before that.  Leaving at once then may lose the last
 * chunks, and the trace says so: plain stores into the mapped header. */
static struct mfx_file_header *volatile undrained;

void stop_undrained(struct mfx_file_header *h)
{
	undrained = h;
}

static void leave(const char *line, size_t len, int status)
{
	static const char why[] = "mfx ended at once: the last chunks may be missing";
	struct mfx_file_header *h = undrained;
	if (h && !h->fail_errno) {
		memcpy(h->fail_what, why, sizeof(why) < sizeof(h->fail_what) ? sizeof(why) :
					  sizeof(h->fail_what) - 1);
		h->fail_errno = EINTR;
		__atomic_fetch_or(&h->degraded, MFX_DG_STOPPED, __ATOMIC_RELAXED);
	}
	mfx_tmp_cleanup();
	ssize_t w = write(2, line, len);
	(void)w;
	_exit(status);
}

static void on_again(int sig)
{
	leave(line_sig, len_sig, 128 + sig);
}

static void *watch(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);	/* signals are the main thread's */
	uint64_t last = mfx_ticks, t_last = now_ns();
	while (watching) {
		struct timespec ts = { 0, 100000000 };
		nanosleep(&ts, NULL);
		uint64_t now = now_ns(), t = mfx_ticks;
		if (t != last) {
			last = t;
			t_last = now;
		} else if (now - t_last >= STALL_NS && watching) {
			leave(line_stall, len_stall, EXIT_FAIL);
		}
	}
	return NULL;
}

/* The window is over: what is left (finalising, the report) is mfx's own
 * bounded work, and a program saturating every CPU would stretch it to
 * minutes (0.9% of the machine for mfx beside 220 busy threads).  As root,
 * mfx's main thread takes nice -10 for it: about 4% of the machine then,
 * from a program that could not be slowed by less. */
static void boost_self(void)
{
	if (geteuid() == 0 && getpriority(PRIO_PROCESS, 0) > -10)
		setpriority(PRIO_PROCESS, 0, -10);
}

void stop_arm(const char *dir, int watch_progress)
{
	if (armed)
		return;
	int n = snprintf(line_sig, sizeof(line_sig),
			 "\r\033[Kmfx: stopped at once; what was recorded is in %s (mfx report %s)\n",
			 dir, dir);
	len_sig = n > 0 && (size_t)n < sizeof(line_sig) ? (size_t)n : 0;
	n = snprintf(line_stall, sizeof(line_stall),
		     "\r\033[Kmfx: no progress for 5 s after the interrupt: stopped; what was "
		     "recorded is in %s (mfx report %s)\n", dir, dir);
	len_stall = n > 0 && (size_t)n < sizeof(line_stall) ? (size_t)n : 0;
	if (!isatty(2)) {	/* no terminal: no line-clearing escape */
		memmove(line_sig, line_sig + 4, len_sig - 4);
		len_sig -= 4;
		memmove(line_stall, line_stall + 4, len_stall - 4);
		len_stall -= 4;
	}
	struct sigaction sa = { .sa_handler = on_again };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGHUP);
	armed = 1;
	sigprocmask(SIG_UNBLOCK, &s, NULL);	/* one already pending is delivered now */
	boost_self();
	if (watch_progress && !have_watchdog) {
		watching = 1;
		have_watchdog = pthread_create(&watchdog, NULL, watch, NULL) == 0;
	}
}

void stop_disarm(void)
{
	if (have_watchdog) {
		watching = 0;
		pthread_join(watchdog, NULL);
		have_watchdog = 0;
	}
	if (!armed)
		return;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	armed = 0;
}

/*
 * The agent's thread must answer START and STOP promptly even when the
 * program's own threads keep every CPU busy (220 threads in tight malloc
 * loops on 2 cores gave it 1/221 of the machine, and STOP took more than
 * 10 s).  As root, mfx lowers its nice value to -20 for the exchange; the
 * agent puts its own nice back when the stop is done (preload/control.c),
 * so a killed mfx leaves nothing changed.  Only that thread: no thread of
 * the program is touched.
 */
static pid_t agent_tid(pid_t pid)
{
	char path[320], comm[32];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	struct dirent *e;
	pid_t found = 0;
	while (d && !found && (e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
		FILE *f = fopen(path, "re");
		if (f && fgets(comm, sizeof(comm), f) && !strcmp(comm, "mfx-agent\n"))
			found = (pid_t)atoi(e->d_name);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

void stop_boost_agent(pid_t pid)
{
	pid_t tid = geteuid() == 0 ? agent_tid(pid) : 0;
	if (tid > 0)
		setpriority(PRIO_PROCESS, (id_t)tid, -20);
}
