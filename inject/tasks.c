/*
 * tasks.c - thread ids in the host's terms.
 *
 * A target in a pid namespace (a container; `unshare -pf`) numbers its
 * threads its own way: the tid its struct pthread holds, the pid in
 * getpid() and si_pid, are the namespace's.  ptrace and /proc take the
 * numbers of mfx's namespace.  /proc/PID/task/TID/status lists both in
 * "NSpid:" (outermost first, the task's own last), so a thread id read
 * from the target is looked up there, among the target's own threads -
 * never used as a host pid: a host process that happens to have that
 * number (the decoy) is never touched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/procfs.h"
#include "common/util.h"
#include "inject/internal.h"

/* The "Name:" line's numbers in a status text: first and last. */
static int status_ids(const char *buf, const char *name, long *first, long *last)
{
	const char *p = strstr(buf, name);
	if (!p)
		return -ENOENT;
	p += strlen(name);
	char *end;
	int n = 0;
	for (long v; (v = strtol(p, &end, 10)), end != p; p = end, n++) {
		if (!n)
			*first = v;
		*last = v;
	}
	return n ? 0 : -ENOENT;
}

static int task_status(pid_t pid, pid_t tid, char *buf, size_t n)
{
	char p[96];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	return read_small(p, buf, n) < 0 ? -ESRCH : 0;
}

int inject_is_thread_of(pid_t pid, pid_t tid)
{
	char buf[4096];
	long first = 0, last = 0;
	return tid > 0 && task_status(pid, tid, buf, sizeof(buf)) == 0 &&
	       status_ids(buf, "\nTgid:", &first, &last) == 0 && first == pid &&
	       status_ids(buf, "\nPid:", &first, &last) == 0 && first == tid;
}

pid_t inject_ns_id(pid_t pid, pid_t tid)
{
	char buf[4096];
	long first = 0, last = 0;
	if (task_status(pid, tid, buf, sizeof(buf)) || status_ids(buf, "\nNSpid:", &first, &last))
		return tid;	/* no NSpid (old kernel): one namespace */
	return (pid_t)last;
}

int inject_host_tid(pid_t pid, pid_t ns_tid, pid_t *tid)
{
	pid_t *tids;
	size_t n;
	int err = procfs_tids(pid, &tids, &n);
	*tid = 0;
	if (err)
		return err;
	for (size_t i = 0; i < n && !*tid; i++)
		if (inject_ns_id(pid, tids[i]) == ns_tid)
			*tid = tids[i];
	free(tids);
	return *tid ? 0 : -ESRCH;
}
