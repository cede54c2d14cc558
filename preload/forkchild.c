/*
 * forkchild.c - attach mode: a child the process forks during a window
 * records itself, then unhooks itself when the window is over.
 *
 * A newer mfx sends with START the run directory's fd and a pidfd of its
 * own (include/mfx/control.h); the agent keeps them for the window
 * (fork_watch_set, fork_watch_clear at its end).  A child forked while the
 * parent records keeps the hooks it inherited, creates RUN/trace-<pid>.mfx
 * relative to that directory fd (agent.c, attach_child_begin) and records
 * into it with file chunks: the parent's spool is unmapped in the child,
 * mfx drains nothing for it.  A watcher thread ("mfx-child", every signal
 * blocked, a small stack) then waits for the first of
 *   - the stop word in the child's own header (mfx's tfile_request_stop),
 *   - mfx gone (its pidfd readable; without it, its pid no longer there),
 *   - the parent's window over (the parent's trace header, read through a
 *     copy of the parent's trace fd, says STOPPED),
 *   - the recording ended on its own (a full disk: agent_fail),
 * and ends the recording as the parent's stop_recording does: GOT slots
 * back from the patch list (not dl_iterate_phdr: got.c), the window's end
 * marked, agent_end (chunks unmapped, the header copied into agent memory,
 * the trace fd closed), every fd of the window closed, the agent dormant:
 * a later `mfx attach CHILD` loads nothing and patches afresh.  An idle
 * child (blocked in accept or read) is unhooked by its watcher, not at its
 * next malloc.  A grandchild forked meanwhile inherits the fds and does the
 * same.  A child that execs loses the agent, its fds (O_CLOEXEC) and its
 * mappings with its image: mfx sees the trace no longer mapped.
 *
 * Starting a thread in a fork child: glibc (2.36, nptl/allocatestack.c
 * __reclaim_stacks, called by fork in the child) resets the stack cache
 * and its lock, so pthread_create() works there even in the child of a
 * multithreaded parent; fork has also released malloc's locks before the
 * child handlers run (posix/fork.c: __malloc_fork_unlock_child first).
 * What we rely on beyond that: the thread's stack is an mmap of glibc's
 * (nothing of the program's heap), and SIGSETXID/SIGCANCEL cannot be
 * blocked (glibc keeps them out of any mask), so a setuid() in the child
 * still completes.  The child is two-threaded while it records: a child
 * that must be single-threaded (unshare(CLONE_NEWUSER)) fails with EINVAL
 * in that window (docs/attach.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfx/control.h"
#include "preload/internal.h"
#include "preload/record.h"

#define WATCH_TICK_MS 20

/* The fds of the window (the parent's, and a recording child's copies). */
static struct {
	int dir, pidfd, parent;		/* -1: none */
	uint64_t dir_ino, pidfd_ino, parent_ino;
	pid_t mfx_pid;			/* from the pidfd's fdinfo: a fallback */
} w = { -1, -1, -1, 0, 0, 0, 0 };
static volatile int watched;	/* this process is a recording fork child */

static void close_ours(int *fd, uint64_t *ino, unsigned type)
{
	if (agent_fd_is(*fd, *ino, type))
		close(*fd);
	*fd = -1;
	*ino = 0;
}

/* "Pid:\tN" of /proc/self/fdinfo/FD (a pidfd's process), 0 if unknown. */
static pid_t pidfd_pid(int fd)
{
	char path[64] = "/proc/self/fdinfo/", num[24], buf[512];
	agent_u64_to_dec(num, (uint64_t)fd);
	strcat(path, num);
	if (agent_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	const char *p = strstr(buf, "\nPid:");
	uint64_t v = 0;
	for (p = p ? p + 5 : NULL; p && (*p == ' ' || *p == '\t'); p++)
		;
	while (p && *p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return (pid_t)v;
}

void fork_watch_set(int dir, int pidfd)
{
	fork_watch_clear();
	w.dir = dir;
	w.dir_ino = agent_fd_ino(dir, S_IFDIR);
	if (!w.dir_ino && dir >= 0) {
		close(dir);	/* not a directory: no child records */
		w.dir = -1;
	}
	w.pidfd = pidfd;
	w.pidfd_ino = agent_fd_ino(pidfd, 0);
	w.mfx_pid = pidfd >= 0 ? pidfd_pid(pidfd) : 0;
}

int fork_watch_start(const struct mfx_ctl *m, int *fds, int nfds)
{
	uint64_t map = m->value & MFX_START_FDMAP ? m->value : nfds > 1 ? MFX_START_SPOOL : 0;
	int i = 1, fd[3] = { -1, -1, -1 };
	static const uint64_t bit[3] = { MFX_START_SPOOL, MFX_START_DIR, MFX_START_PIDFD };
	for (int k = 0; k < 3; k++)
		if ((map & bit[k]) && i < nfds) {
			fd[k] = fds[i];
			fds[i++] = -1;
		}
	fork_watch_set(fd[1], fd[2]);
	return fd[0];
}

void fork_watch_clear(void)
{
	close_ours(&w.dir, &w.dir_ino, S_IFDIR);
	close_ours(&w.pidfd, &w.pidfd_ino, 0);
	close_ours(&w.parent, &w.parent_ino, S_IFREG);
	w.mfx_pid = 0;
}

int fork_watch_dir(uint64_t *ino)
{
	if (!agent_fd_is(w.dir, w.dir_ino, S_IFDIR))
		return -1;
	*ino = w.dir_ino;
	return w.dir;
}

int fork_child_watched(void)
{
	return watched;
}

/* mfx is gone: its pidfd readable (the kernel: pidfd_poll, POLLIN once the
 * process exited), or, if the program closed that fd, its pid no longer
 * there (a reused pid makes us wait for the stop word instead). */
static int mfx_gone(int ms)
{
	if (agent_fd_is(w.pidfd, w.pidfd_ino, 0)) {
		struct pollfd p = { w.pidfd, POLLIN, 0 };
		return poll(&p, 1, ms) == 1;
	}
	if (ms)
		poll(NULL, 0, ms);
	return w.mfx_pid > 0 && kill(w.mfx_pid, 0) && errno == ESRCH;
}

/* The parent's trace header says its window ended. */
static int parent_over(void)
{
	uint32_t st = 0;
	if (!agent_fd_is(w.parent, w.parent_ino, S_IFREG))
		return 0;
	return pread(w.parent, &st, sizeof(st), offsetof(struct mfx_file_header, state)) ==
		       (ssize_t)sizeof(st) && st == MFX_ST_STOPPED;
}

/* Why the child's window is over, or NULL (waits up to a tick). */
static const char *window_over(void)
{
	struct mfx_file_header *h = agent_header();
	if (!h || !agent_recording())
		return h && h->fail_errno ? "failed" : "stop";
	if (__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE))
		return "stop";
	if (mfx_gone(WATCH_TICK_MS))
		return "detached";
	if (parent_over())
		return "parent ended";
	return NULL;
}

/* The end, in the order of control.c's stop_recording. */
void fork_child_end(const char *why)
{
	got_restore_list();
	fork_watch_clear();
	int was = agent_recording();
	agent_disarm();
	if (was)
		alloc_mark(MFX_AP_END);
	agent_end(why);
	rec_spool_detach();
	agent_memfd_release();
	watched = 0;
}

static void *watch_main(void *arg)
{
	(void)arg;
	tls_busy = 1;
	prctl(PR_SET_NAME, "mfx-child", 0, 0, 0);
	const char *why;
	while (!(why = window_over()))
		;
	fork_child_end(why);
	return NULL;
}

int fork_child_watch(int parent_fd)
{
	close_ours(&w.parent, &w.parent_ino, S_IFREG);	/* a grandchild: its grandparent's */
	w.parent = parent_fd;
	w.parent_ino = agent_fd_ino(parent_fd, S_IFREG);
	watched = 1;
	int err = agent_thread(watch_main, NULL, 128 * 1024);
	if (err)
		watched = 0;
	return err;
}
