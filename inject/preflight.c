/*
 * preflight.c - what mfx reads about a process before anything touches it
 * (inject_check), the refusals that follow, and the causes it names when
 * the kernel says no (EPERM) or the process went away meanwhile.
 *
 * All from /proc/PID: status (state, tracer, Kthread, Seccomp and its
 * filter count, NoNewPrivs, signal dispositions, NSpid, shadow stacks),
 * limits (RLIMIT_AS, RLIMIT_NOFILE), the open fds, the namespaces, maps.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "common/procfs.h"
#include "common/util.h"
#include "inject/internal.h"

#define BIT(s) (1ull << ((s) - 1))
#define CAP_SYS_PTRACE_BIT 19
#define CAP_SYS_ADMIN_BIT 21
#define PF_KTHREAD 0x00200000u

static const char *field(const char *buf, const char *name)
{
	const char *p = strstr(buf, name);
	return p ? p + strlen(name) : NULL;
}

static unsigned long long hexfield(const char *buf, const char *name)
{
	const char *p = field(buf, name);
	return p ? strtoull(p, NULL, 16) : 0;
}

static long numfield(const char *buf, const char *name, long dflt)
{
	const char *p = field(buf, name);
	return p ? strtol(p, NULL, 10) : dflt;
}

static int our_cap(int bit)
{
	char buf[4096];
	if (read_small("/proc/self/status", buf, sizeof(buf)) < 0)
		return 0;
	return (hexfield(buf, "\nCapEff:") >> bit) & 1;
}

/* /proc/PID/stat fields 9 (flags) and 22 (starttime), after the comm. */
static int stat_fields(pid_t pid, unsigned long *flags, unsigned long long *start)
{
	char p[64], buf[1024];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if (read_small(p, buf, sizeof(buf)) < 0)
		return -ESRCH;
	const char *s = strrchr(buf, ')');
	char st;
	if (!s || sscanf(s + 2, "%c %*d %*d %*d %*d %*d %lu %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			 "%*d %*d %llu", &st, flags, start) != 3)
		return -ESRCH;
	return 0;
}

/* The limits line "Max address space  SOFT  HARD  bytes": the soft one. */
static uint64_t limit_of(const char *limits, const char *name)
{
	const char *p = strstr(limits, name);
	if (!p)
		return 0;
	p += strlen(name);
	while (*p == ' ')
		p++;
	return strncmp(p, "unlimited", 9) ? strtoull(p, NULL, 10) : 0;
}

static void limits(pid_t pid, struct inject_preflight *pf)
{
	char p[64], buf[4096];
	snprintf(p, sizeof(p), "/proc/%d/limits", (int)pid);
	if (read_small(p, buf, sizeof(buf)) >= 0) {
		pf->as_limit = limit_of(buf, "Max address space");
		pf->nofile_limit = limit_of(buf, "Max open files");
	}
	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(p);
	for (struct dirent *e; d && (e = readdir(d));)
		pf->nofile_used += e->d_name[0] != '.';
	if (d)
		closedir(d);
}

static int other_ns(pid_t pid, const char *ns)
{
	char a[64], b[64];
	struct stat x, y;
	snprintf(a, sizeof(a), "/proc/%d/ns/%s", (int)pid, ns);
	snprintf(b, sizeof(b), "/proc/self/ns/%s", ns);
	return !stat(a, &x) && !stat(b, &y) && (x.st_ino != y.st_ino || x.st_dev != y.st_dev);
}

/* Signals fit to tell mfx a call ended (call.c): the program ignores them
 * (SIG_IGN, or SIGCHLD/SIGURG/SIGWINCH at their default), and no thread
 * blocks them or waits for them in sigtimedwait. */
static uint64_t notify_signals(pid_t pid, pid_t skip, const struct inject_preflight *pf)
{
	uint64_t ok = pf->sig_ignored | ((BIT(SIGCHLD) | BIT(SIGURG) | BIT(SIGWINCH)) & ~pf->sig_caught);
	ok &= ~(BIT(SIGCONT) | BIT(SIGSTOP) | BIT(SIGTSTP) | BIT(SIGTTIN) | BIT(SIGTTOU) | BIT(SIGKILL));
	pid_t *tids;
	size_t n;
	if (procfs_tids(pid, &tids, &n))
		return 0;
	for (size_t i = 0; i < n && ok; i++) {
		char p[96], buf[4096];
		if (tids[i] == skip)
			continue;	/* our own loader thread: its mask is ours */
		snprintf(p, sizeof(p), "/proc/%d/task/%d/status", (int)pid, (int)tids[i]);
		if (read_small(p, buf, sizeof(buf)) < 0 || strstr(buf, "Name:\tmfx-agent\n"))
			continue;	/* (the agent's thread blocks everything: it is ours) */
		ok &= ~(uint64_t)hexfield(buf, "\nSigBlk:");
		unsigned long long set = 0;
		long nr = -1;
		unsigned long arg0 = 0;
		snprintf(p, sizeof(p), "/proc/%d/task/%d/syscall", (int)pid, (int)tids[i]);
		if (read_small(p, buf, sizeof(buf)) >= 0 && sscanf(buf, "%ld %lx", &nr, &arg0) == 2 &&
		    nr == SYS_rt_sigtimedwait && inject_peek(pid, arg0, &set, sizeof(set)) == 0)
			ok &= ~(uint64_t)set;
	}
	free(tids);
	return ok;
}

/* Another mfx holding one of its threads (same executable as ours)? */
static int tracer_is_mfx(pid_t tracer)
{
	char p[64];
	struct stat a, b;
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)tracer);
	return stat(p, &a) == 0 && stat("/proc/self/exe", &b) == 0 && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

static int status_checks(pid_t pid, int ours, const char *buf, struct inject_preflight *pf,
			 struct inject_err *e)
{
	const char *st = field(buf, "\nState:\t");
	unsigned long flags = 0;
	unsigned long long start = 0;
	if (numfield(buf, "\nTgid:", pid) != pid)
		return -ESRCH;	/* a thread id, not a process */
	if (numfield(buf, "\nKthread:", 0) == 1 ||
	    (stat_fields(pid, &flags, &start) == 0 && (flags & PF_KTHREAD)))
		return -MFX_E_KTHREAD;
	pf->start_time = start;
	if (st && (*st == 'Z' || *st == 'X'))
		return -MFX_E_ZOMBIE;
	/* (holding our own loader thread, the main thread may be traced: by
	 * another mfx attaching now, whose agent copy will then stay inert) */
	pid_t tracer = (pid_t)numfield(buf, "\nTracerPid:", 0);
	int mfx_holds = tracer > 0 && tracer_is_mfx(tracer);
	if (!ours && (e->tracer = tracer) > 0)
		return mfx_holds ? -MFX_E_BUSY : -MFX_E_TRACED;
	/* ('t' under another mfx's hold is not a stop: it lasts a moment) */
	if (st && (*st == 'T' || (*st == 't' && !mfx_holds)))
		return -MFX_E_STOPPED;
	pf->seccomp = (int)numfield(buf, "\nSeccomp:", 0);
	pf->seccomp_filters = (int)numfield(buf, "\nSeccomp_filters:", 0);
	pf->no_new_privs = (int)numfield(buf, "\nNoNewPrivs:", 0);
	pf->sig_ignored = hexfield(buf, "\nSigIgn:");
	pf->sig_caught = hexfield(buf, "\nSigCgt:");
	pf->as_used = (uint64_t)numfield(buf, "\nVmSize:", 0) * 1024;
	long first = pid;
	const char *ns = field(buf, "\nNSpid:");
	for (char *end; ns && (first = strtol(ns, &end, 10), end != ns); ns = end)
		pf->ns_pid = (pid_t)first;
	const char *feat = field(buf, "\nx86_Thread_features:");
	if (feat && strstr(feat, "shstk") && strstr(feat, "shstk") < strchr(feat, '\n'))
		return -MFX_E_SHSTK;
	return 0;
}

static int seccomp_checks(const struct inject_preflight *pf, struct inject_err *e)
{
	if (pf->seccomp == 1) {
		snprintf(e->detail, sizeof(e->detail), "it runs in seccomp strict mode, where any system "
			 "call mfx would make in it kills it");
		return -MFX_E_SECCOMP;
	}
	if (pf->seccomp == 2 && !our_cap(CAP_SYS_ADMIN_BIT)) {
		snprintf(e->detail, sizeof(e->detail), "it has %d seccomp filter%s, which only root "
			 "(CAP_SYS_ADMIN) may read to make sure none would kill it; run mfx as root",
			 pf->seccomp_filters, pf->seccomp_filters == 1 ? "" : "s");
		return -MFX_E_SECCOMP;
	}
	return 0;
}

static int module_checks(pid_t pid)
{
	struct inject_module m;
	int err = inject_find_module(pid, "/libc.so.6", &m);
	if (err == -EACCES || err == -EPERM)
		return -EPERM;
	if (err == -ENOENT && inject_find_module(pid, "/ld-linux-x86-64.so.2", &m) &&
	    inject_find_module(pid, ".so.1", &m))	/* ld-musl-x86_64.so.1 */
		return -MFX_E_STATIC;
	if (err)
		return err == -ENOENT ? -MFX_E_NOGLIBC : err;
	return 0;
}

int inject_preflight(pid_t pid, pid_t ours, struct inject_preflight *pf, struct inject_err *e)
{
	char p[64], buf[8192];
	memset(pf, 0, sizeof(*pf));
	memset(e, 0, sizeof(*e));
	pf->ns_pid = pid;
	if (pid <= 0)
		return -ESRCH;
	if (pid == getpid())
		return -MFX_E_SELF;
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	if (read_small(p, buf, sizeof(buf)) < 0)
		return -ESRCH;
	int err = status_checks(pid, ours != 0, buf, pf, e);
	if (!err)
		err = module_checks(pid);
	if (!err)
		err = seccomp_checks(pf, e);
	if (err)
		return err;
	limits(pid, pf);
	pf->other_pidns = other_ns(pid, "pid");
	pf->other_mntns = other_ns(pid, "mnt");
	pf->other_userns = other_ns(pid, "user");
	pf->notify_ok = notify_signals(pid, ours, pf);
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	struct stat x;
	if (stat(p, &x) == 0) {
		pf->exe_dev = x.st_dev;
		pf->exe_ino = x.st_ino;
	}
	return 0;
}

int inject_check(pid_t pid, struct inject_preflight *pf, struct inject_err *e)
{
	struct inject_preflight tmp;
	struct inject_err etmp;
	return inject_preflight(pid, 0, pf ? pf : &tmp, e ? e : &etmp);
}

int inject_gone(pid_t pid, const struct inject_preflight *pf)
{
	unsigned long flags;
	unsigned long long start;
	char p[64];
	struct stat x;
	int state = procfs_state(pid);
	if (state < 0 || state == 'Z' || state == 'X' || stat_fields(pid, &flags, &start) ||
	    (pf->start_time && start != pf->start_time))
		return -MFX_E_EXITED;
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	if (pf->exe_ino && stat(p, &x))
		return -MFX_E_EXITED;	/* dying: its memory is gone already */
	if (pf->exe_ino && (x.st_ino != pf->exe_ino || x.st_dev != pf->exe_dev))
		return -MFX_E_EXECED;
	return 0;
}

static int in_user_namespace(void)
{
	char buf[256];
	unsigned long a, b, c;
	return read_small("/proc/self/uid_map", buf, sizeof(buf)) >= 0 &&
	       !(sscanf(buf, "%lu %lu %lu", &a, &b, &c) == 3 && a == 0 && b == 0 && c == 4294967295ul);
}

void inject_eperm_cause(pid_t pid, struct inject_eperm *c)
{
	char p[64], buf[8192], *t = NULL;
	memset(c, 0, sizeof(*c));
	c->yama = -1;
	if (read_file("/proc/sys/kernel/yama/ptrace_scope", &t, NULL) == 0) {
		c->yama = atoi(t);
		free(t);
	}
	snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
	long ruid = -1, euid = -1, suid = -1;
	if (read_small(p, buf, sizeof(buf)) >= 0 && field(buf, "\nUid:"))
		sscanf(field(buf, "\nUid:"), "%ld %ld %ld", &ruid, &euid, &suid);
	c->uid = (uid_t)ruid;
	struct stat dir;
	/* not dumpable: the kernel makes /proc/PID root's (task_dump_owner) */
	int undumpable = stat(p, &dir) == 0 && dir.st_uid == 0 && euid != 0;
	uid_t me = getuid();
	if (c->yama == 3)
		c->why = EPERM_YAMA;
	else if (me == 0 && !our_cap(CAP_SYS_PTRACE_BIT))
		c->why = EPERM_NO_CAP;
	else if (me == 0)
		c->why = in_user_namespace() ? EPERM_USERNS : EPERM_UNKNOWN;
	else if (c->yama == 2)
		c->why = EPERM_YAMA;
	else if (ruid != (long)me || euid != (long)me || suid != (long)me)
		c->why = EPERM_OTHER_USER;
	else if (undumpable)
		c->why = EPERM_NOT_DUMPABLE;
	else if (c->yama == 1)
		c->why = EPERM_YAMA;
}
