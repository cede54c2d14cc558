/*
 * refusal.c - the one line mfx prints when it cannot attach to or trim a
 * process (attach.h): what the refusal means for the person reading it and
 * what to do about it.  EPERM names its real cause (inject_eperm_cause):
 * a process that is not dumpable (it changed user IDs, like a daemon that
 * dropped root: only root may trace it, even for its own user), Yama's
 * ptrace_scope, another user, or root without CAP_SYS_PTRACE in a
 * container.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attach/attach.h"
#include "attach/commands.h"
#include "common/error.h"
#include "common/procfs.h"
#include "common/util.h"
#include "inject/inject.h"

/* The process's name, "?" when it cannot be read. */
static const char *comm_of(pid_t pid, char *buf, size_t n)
{
	if (procfs_comm(pid, buf, n))
		snprintf(buf, n, "?");
	return buf;
}

static const char *user_name(uid_t uid, char *buf, size_t n)
{
	struct passwd *pw = getpwuid(uid);
	if (pw)
		snprintf(buf, n, "%s", pw->pw_name);
	else
		snprintf(buf, n, "uid %u", (unsigned)uid);
	return buf;
}

static void eperm_line(const char *verb, pid_t pid, const char *comm)
{
	struct inject_eperm c;
	char who[64], hint[256];
	inject_eperm_cause(pid, &c);
	switch (c.why) {
	case EPERM_NOT_DUMPABLE:
		snprintf(hint, sizeof(hint), "it is not dumpable (it changed its user IDs, as a daemon "
			 "dropping root does, or called prctl(PR_SET_DUMPABLE, 0)), so only root may "
			 "trace it; run mfx as root");
		break;
	case EPERM_OTHER_USER:
		snprintf(hint, sizeof(hint), "it runs as %s; run mfx as root or as that user",
			 user_name(c.uid, who, sizeof(who)));
		break;
	case EPERM_YAMA:
		snprintf(hint, sizeof(hint), c.yama >= 3 ? "kernel.yama.ptrace_scope=3 forbids ptrace "
			 "until reboot" : c.yama == 2 ? "kernel.yama.ptrace_scope=2 lets only root "
			 "(CAP_SYS_PTRACE) trace; run mfx as root" : "kernel.yama.ptrace_scope=1 lets "
			 "only a parent trace; run mfx as root or set kernel.yama.ptrace_scope=0");
		break;
	case EPERM_NO_CAP:
		snprintf(hint, sizeof(hint), "mfx runs as root without CAP_SYS_PTRACE (a container?); "
			 "add that capability, e.g. docker run --cap-add SYS_PTRACE");
		break;
	case EPERM_USERNS:
		snprintf(hint, sizeof(hint), "mfx runs in a user namespace (a container) with no "
			 "rights over it; run mfx where the process was started, or on the host");
		break;
	default:
		snprintf(hint, sizeof(hint), "mfx is root, so a security module (AppArmor, SELinux, "
			 "lockdown) forbids ptrace here");
		break;
	}
	mfx_err("cannot %s %d (%s): Operation not permitted (%s)", verb, (int)pid, comm, hint);
}

static int first_refusals(const char *verb, pid_t pid, int err, const struct inject_err *e,
			  const char *comm)
{
	char tc[64];
	switch (-err) {
	case MFX_E_ZOMBIE:
		mfx_err("cannot %s %d (%s): it is a zombie (exited, not yet reaped by its parent)",
			verb, (int)pid, comm);
		return 1;
	case MFX_E_KTHREAD:
		mfx_err("cannot %s %d (%s): it is a kernel thread, not a program", verb, (int)pid, comm);
		return 1;
	case MFX_E_TRACED:
		mfx_err("cannot %s %d (%s): it is already traced by pid %d (%s); detach that debugger "
			"or tracer first", verb, (int)pid, comm, (int)e->tracer,
			comm_of(e->tracer, tc, sizeof(tc)));
		return 1;
	case MFX_E_STOPPED:
		mfx_err("cannot %s %d (%s): it is stopped; resume it with 'kill -CONT %d' first", verb,
			(int)pid, comm, (int)pid);
		return 1;
	case MFX_E_STATIC:
		mfx_err("cannot %s %d (%s): it is statically linked, so there is %s", verb, (int)pid,
			comm, strcmp(verb, "trim") ? "no dynamic loader to load the agent into" :
			"no shared libc whose malloc_trim mfx could call");
		return 1;
	case MFX_E_NOGLIBC:
		mfx_err("cannot %s %d (%s): it does not use glibc (the agent needs glibc's libc.so.6)",
			verb, (int)pid, comm);
		return 1;
	case MFX_E_SHSTK:
		mfx_err("cannot %s %d (%s): it runs with shadow stacks (CET), which remote calls "
			"would violate", verb, (int)pid, comm);
		return 1;
	}
	return 0;
}

static int later_refusals(const char *verb, pid_t pid, int err, const struct inject_err *e,
			  const char *comm)
{
	switch (-err) {
	case MFX_E_SECCOMP:
	case MFX_E_RLIMIT:
		mfx_err("cannot %s %d (%s): %s", verb, (int)pid, comm,
			e->detail[0] ? e->detail : mfx_strerror(-err));
		return 1;
	case MFX_E_BUSY:
		mfx_err("cannot %s %d (%s): another mfx is attaching to it or recording it; try again "
			"when it is done", verb, (int)pid, comm);
		return 1;
	case MFX_E_NOSAFEPOINT:
		mfx_err("cannot %s %d (%s): no thread reached a safe point (all busy in the allocator "
			"or the loader); try again", verb, (int)pid, comm);
		return 1;
	case MFX_E_EXITED:
		mfx_err("cannot %s %d: it exited meanwhile", verb, (int)pid);
		return 1;
	case MFX_E_EXECED:
		mfx_err("cannot %s %d (%s): it ran a new program (exec) meanwhile; try again", verb,
			(int)pid, comm);
		return 1;
	case EPERM:
	case EACCES:
		eperm_line(verb, pid, comm);
		return 1;
	}
	return 0;
}

int attach_refusal(const char *verb, pid_t pid, int err, const struct inject_err *e)
{
	struct inject_err none = { 0 };
	char comm[64];
	if (!e)
		e = &none;
	if (err == -ESRCH) {
		mfx_err("cannot %s %d: no such process", verb, (int)pid);
		return EXIT_FAIL;
	}
	if (err == -MFX_E_SELF) {
		mfx_err("cannot %s %d: that is mfx itself", verb, (int)pid);
		return EXIT_USAGE;
	}
	comm_of(pid, comm, sizeof(comm));
	if (!first_refusals(verb, pid, err, e, comm) && !later_refusals(verb, pid, err, e, comm))
		mfx_err("cannot %s %d (%s): %s", verb, (int)pid, comm,
			e->detail[0] ? e->detail : mfx_strerror(-err));
	return EXIT_FAIL;
}
