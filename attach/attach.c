/*
 * attach.c - `mfx attach PID`: load the agent into a running process, record
 * for the window, undo everything, report.
 *
 *   1. refuse what cannot work, before touching the process (inject_check)
 *   2. run directory, trace file and spool on our side
 *   3. hold one thread at a safe point, load the agent, start its thread,
 *      release the thread (inject/)
 *   4. START over the control channel with the trace and spool fds: the
 *      agent patches the GOT and records
 *   5. the capture session (RSS samples, progress, --for / Ctrl-C / exit)
 *   6. --trim-at-end: TRIM (malloc_trim(0) on the agent's thread)
 *   7. STOP: the agent restores the GOT and goes dormant; finalise, report
 * If mfx dies at any point after 3, the agent sees the channel close and
 * undoes everything by itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "attach/agentctl.h"
#include "attach/alloc_remote.h"
#include "attach/attach.h"
#include "attach/capture.h"
#include "attach/cmdline.h"
#include "attach/commands.h"
#include "attach/rundir.h"
#include "attach/trim.h"
#include "attach/stopping.h"
#include "common/procfs.h"
#include "trace/spool.h"
#include "common/util.h"
#include "mfx/control.h"
#include "trace/format.h"
#include "inject/inject.h"
#include "inject/load.h"

static void attach_help(void)
{
	printf("usage: mfx attach PID [OPTIONS]\n\n"
	       "Load the mfx agent into the running process PID and record every malloc,\n"
	       "calloc, realloc, free and memalign-family call for the window, with its\n"
	       "time, thread and call stack, plus the RSS timeline and the figures of the\n"
	       "allocator that serves malloc (glibc, jemalloc, tcmalloc, mimalloc).  The\n"
	       "first time, one thread is held for a few milliseconds at a safe point to\n"
	       "load the agent; the agent stays, dormant, and later attaches, trims and\n"
	       "snapshots reach it without stopping any thread.  At the end every hook is\n"
	       "undone, in the process and in the children it forked meanwhile (each of\n"
	       "them recorded into trace-<pid>.mfx in the run directory), and the\n"
	       "process runs on untouched.  Needs ptrace rights over PID (root, or the\n"
	       "same user with kernel.yama.ptrace_scope=0).\n\n"
	       "Options (before or after PID):\n%s\n"
	       "Examples:\n"
	       "    mfx attach 4242 --for 30s\n"
	       "    mfx attach $(pidof -s postgres) --no-stacks --for 1m\n"
	       "    mfx attach 4242 --for 10s --trim-at-end   (and what the allocator gives back)\n",
	       capture_options_help);
}

/* The process's name, "?" when it cannot be read. */
static const char *comm_of(pid_t pid, char *buf, size_t n)
{
	if (procfs_comm(pid, buf, n))
		snprintf(buf, n, "?");
	return buf;
}

/* --trim-at-end: the allocator's release on the agent's thread (trim.c). */
static void trim_at_end(struct session *s, int chan)
{
	uint64_t rss0, heap0, rss1, heap1;
	struct trim_result r;
	memset(&r, 0, sizeof(r));
	if (session_sample_now(s, &rss0, &heap0))
		return;
	int err = trim_via_agent(chan, &r);
	if (err) {
		mfx_err("--trim-at-end: %s failed: %s", r.call[0] ? r.call : "the release",
			mfx_strerror(-err));
		return;
	}
	if (session_sample_now(s, &rss1, &heap1))
		return;
	uint64_t vals[7] = { rss0, rss1, heap0, heap1, 0, r.trim_ns, rss0 > rss1 ? rss0 - rss1 : 0 };
	char text[96];
	snprintf(text, sizeof(text), "agent %s", r.call);
	session_mark(s, MFX_MARK_TRIM, vals, 7, text);
	char a[32], b[32], c[32], d[32];
	mfx_note("%s (%s): RSS %s -> %s (%s released) in %s, no thread paused", r.call,
		 r.allocator, fmt_bytes(rss0, a, sizeof(a)), fmt_bytes(rss1, b, sizeof(b)),
		 fmt_bytes(vals[6], c, sizeof(c)), fmt_duration(r.trim_ns, d, sizeof(d)));
}

/* The agent's control channel: through the doorbell of an agent an
 * earlier attach left (no thread stops), else loaded (inject/load.c).
 * *how: "doorbell", "reused" or "loaded". */
static int get_agent(pid_t pid, const char *agent, struct inject_agent_result *res,
		     struct inject_err *why, const char **how)
{
	memset(res, 0, sizeof(*res));
	res->chan = -1;
	*how = "doorbell";
	if (agent_ring(pid, &res->chan) == 0)
		return 0;
	struct inject_opts io = { .verbose = env_flag("MFX_DEBUG") ? atoi(getenv("MFX_DEBUG")) > 1 ? 2 : 1 : 0,
				  .no_boost = env_flag("MFX_NO_BOOST"),
				  .only_tid = getenv("MFX_HOLD_TID") ? atoi(getenv("MFX_HOLD_TID")) : 0 };
	alloc_remote_hold_opts(pid, &io, NULL);	/* no thread held inside jemalloc & co either */
	int err = inject_agent_load(pid, agent, &io, env_flag("MFX_NO_BOOT"), res, why);
	/* (its thread was started just now: on a loaded machine it may take a
	 * while to answer) */
	if (!err && res->ring && (err = inject_agent_ring(pid, agent, 5 * AGENT_RING_MS, &res->chan)))
		snprintf(res->msg, sizeof(res->msg), "the agent was loaded but did not answer: %s",
			 mfx_strerror(-err));
	*how = res->reused ? "reused" : "loaded";
	return err;
}

/* One `mfx attach`: its options, then what each phase made, undone by the
 * one cleanup path at the end of cmd_attach(). */
struct attach_run {
	struct capture_opts o;
	pid_t pid;
	uint64_t t_begin;
	char agent[PATH_MAX], comm[64];
	char *dir;			/* the run directory */
	char made[PATH_MAX];		/* the part of it this run created */
	int discard;			/* a refusal: remove what this run created */
	int tfd;			/* trace.mfx, until the agent has its copy */
	struct spool *sp;		/* the shared-memory spool, if any; the session
					 * owns it once there is one */
	struct session *s;
	struct inject_agent_result res;	/* res.chan: the agent's control channel */
	const char *how;		/* "doorbell", "reused" or "loaded" */
	struct mfx_ctl started;		/* the agent's STARTED reply */
};

/* The command line: -1 to go on, else the exit status. */
static int attach_parse(int argc, char **argv, struct attach_run *r)
{
	struct cmdline cl = { 0 };
	int idx = capture_parse("attach", argc, argv, &r->o, attach_help, &cl);
	if (idx == -2)
		return EXIT_OK;
	if (idx < 0)
		return EXIT_USAGE;
	if (cl.nops == 0)
		return mfx_usage("attach", "no PID given");
	if (cl.nops > 1)
		return mfx_usage("attach", "one PID only ('%s' is extra)", cl.ops[1]);
	uint64_t v;
	if (parse_uint(cl.ops[0], INT_MAX, &v) || v == 0)
		return mfx_usage("attach", "'%s' is not a process id", cl.ops[0]);
	r->pid = (pid_t)v;
	return -1;
}

/* Refusals first, before touching the process (inject_check); then the
 * run directory, its trace file and the spool on our side.  -1 to go on,
 * else the exit status (said in one line). */
static int attach_prepare(struct attach_run *r)
{
	struct inject_err why0;
	int err = inject_check(r->pid, NULL, &why0);
	if (err)
		return attach_refusal("attach to", r->pid, err, &why0);
	if ((err = agent_path(r->agent, sizeof(r->agent)))) {
		mfx_err("%s", mfx_strerror(-err));
		return EXIT_FAIL;
	}
	comm_of(r->pid, r->comm, sizeof(r->comm));
	r->dir = r->o.out ? strdup(r->o.out) : run_dir_default(r->comm, r->pid);
	if (r->dir)
		run_dir_missing_part(r->dir, r->made, sizeof(r->made));
	if (!r->dir || (err = run_dir_create(r->dir, r->o.force))) {
		mfx_err("cannot use '%s' as run directory: %s", r->dir ? r->dir : "?",
			mfx_strerror(err ? -err : ENOMEM));
		return err == -MFX_E_NOTEMPTY ? EXIT_USAGE : EXIT_FAIL;
	}
	r->discard = 1;
	char tpath[PATH_MAX];
	path_join(tpath, sizeof(tpath), r->dir, "trace.mfx");
	r->tfd = file_open(tpath, O_RDWR | O_CREAT, 0600);	/* in the bound run directory */
	if (r->tfd < 0) {
		mfx_err("cannot create '%s': %s", tpath, mfx_strerror(-r->tfd));
		return EXIT_FAIL;
	}
	if ((err = spool_create(&r->sp)))
		mfx_note("no shared-memory spool (%s); tracing will be slower", strerror(-err));
	return -1;
}

/* The session (which blocks SIGINT/SIGTERM: a Ctrl-C now cannot leave a
 * thread of the process in the middle of a remote call), then the agent:
 * one left by an earlier attach answers its doorbell and no thread is
 * stopped at all; otherwise hold one and load it.  -1 or the exit status. */
static int attach_agent(struct attach_run *r)
{
	int err = session_new(&r->o, r->dir, r->pid, SESSION_ATTACH, &r->s);
	if (err) {
		r->s = NULL;
		mfx_err("%s", mfx_strerror(-err));
		return EXIT_FAIL;
	}
	if (r->sp && (err = session_set_spool(r->s, r->sp))) {
		mfx_note("cannot drain the spool: %s", strerror(-err));
		r->sp = NULL;	/* the session frees it; the agent goes without */
	}
	struct inject_err ierr = { 0 };
	err = get_agent(r->pid, r->agent, &r->res, &ierr, &r->how);
	if (!err)
		return -1;
	if (!r->res.msg[0])
		return attach_refusal("attach to", r->pid, err, &ierr);
	mfx_err("cannot attach to %d (%s): %s", (int)r->pid, r->comm, r->res.msg);
	return EXIT_FAIL;
}

/* START's fds: the trace, the spool, the run directory and a pidfd of
 * mfx (children forked in the window record into the directory and
 * unhook themselves once mfx is gone: preload/forkchild.c).  The count;
 * *map says which came (include/mfx/control.h). */
static int start_fds(struct attach_run *r, int fds[MFX_CTL_MAXFDS], uint64_t *map, int *dfd,
		     int *pidfd)
{
	int n = 0;
	fds[n++] = r->tfd;
	*map = MFX_START_FDMAP;
	if (r->sp) {
		fds[n++] = spool_fd(r->sp);
		*map |= MFX_START_SPOOL;
	}
	*dfd = run_forks_dir(r->dir, r->pid);
	if (*dfd >= 0) {
		fds[n++] = *dfd;
		*map |= MFX_START_DIR;
	} else if (env_flag("MFX_DEBUG")) {
		mfx_note("debug: children forked in the window are not recorded: %s",
			 mfx_strerror(-*dfd));
	}
	*pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (*pidfd >= 0) {
		fds[n++] = *pidfd;
		*map |= MFX_START_PIDFD;
	}
	return n;
}

/* START with the trace and spool fds: the agent patches the GOT and
 * records.  -1 or the exit status (one line saying why). */
static int attach_start(struct attach_run *r)
{
	char cfg[96];
	const struct capture_opts *o = &r->o;
	if (o->sample_bytes)
		snprintf(cfg, sizeof(cfg), "depth=%u,sample=%llu", o->no_stacks ? 0 : o->stack_depth,
			 (unsigned long long)o->sample_bytes);
	else
		snprintf(cfg, sizeof(cfg), "depth=%u", o->no_stacks ? 0 : o->stack_depth);
	int fds[MFX_CTL_MAXFDS], dfd, pidfd;
	uint64_t map;
	int nfds = start_fds(r, fds, &map, &dfd, &pidfd);
	stop_boost_agent(r->pid);	/* a busy program must not starve the GOT patching */
	int err = agent_send_value(r->res.chan, MFX_CTL_START, cfg, fds, nfds, map);
	if (pidfd >= 0)
		close(pidfd);	/* the agent's copy tells it; ours is not needed */
	if (dfd >= 0)
		close(dfd);
	close(r->tfd);
	r->tfd = -1;
	if (!err)
		err = agent_recv(r->res.chan, MFX_CTL_STARTED, &r->started, AGENT_REPLY_MS);
	if (!err && r->started.status)
		err = r->started.status;
	if (!err)
		return -1;
	int st = procfs_state(r->pid);
	if (err == -EBUSY)
		mfx_err("cannot attach to %d (%s): another mfx is recording it; wait for it to "
			"end", (int)r->pid, r->comm);
	else if (st < 0 || st == 'Z' || st == 'X')	/* not "Broken pipe" */
		mfx_err("cannot attach to %d (%s): it exited meanwhile", (int)r->pid, r->comm);
	else
		mfx_err("cannot attach to %d (%s): the agent did not start recording: %s%s",
			(int)r->pid, r->comm, mfx_strerror(-err), err == -ENOMEM ?
			" (the process's address-space limit, RLIMIT_AS, leaves it too little "
			"room)" : "");
	return EXIT_FAIL;
}

/* The ATTACH mark and the "attached to" line. */
static void attach_announce(struct attach_run *r)
{
	uint64_t t_active = now_ns();
	session_window_started(r->s, t_active);
	uint64_t vals[6] = { t_active - r->t_begin, r->res.hold.held_ns, r->started.slots,
			     r->started.modules, r->res.hold.attempts, r->res.boot_ns };
	session_mark(r->s, MFX_MARK_ATTACH, vals, 6, r->how);
	char held[48], win[32], d[32];
	if (r->o.for_ns)
		snprintf(win, sizeof(win), "for %s", fmt_duration(r->o.for_ns, held, sizeof(held)));
	else
		snprintf(win, sizeof(win), "until Ctrl-C");
	if (!strcmp(r->how, "doorbell"))
		snprintf(held, sizeof(held), "no thread held (agent already there)");
	else
		snprintf(held, sizeof(held), "one thread held %s",
			 fmt_duration(r->res.hold.held_ns, d, sizeof(d)));
	struct alloc_remote ar;	/* named from outside: the agent records its own view */
	alloc_remote_detect(r->pid, &ar);
	mfx_note("attached to pid %d (%s, %s malloc): %u GOT slots in %u modules, %s; "
		 "recording %s into %s", (int)r->pid, r->comm, mfx_allocator_names[ar.kind],
		 r->started.slots, r->started.modules, held, win, r->dir);
}

/* The window, --trim-at-end, STOP (the agent restores the GOT and goes
 * dormant), the last chunks, finalise and report.  The exit status. */
static int attach_window(struct attach_run *r)
{
	struct mfx_ctl m;
	int why = session_loop(r->s);
	if (why != SESSION_END_EXIT) {
		if (r->o.trim_at_end)
			trim_at_end(r->s, r->res.chan);
		/* 5 s at most: after that mfx goes on without the answer, and the
		 * agent stops by itself when the channel closes. */
		stop_boost_agent(r->pid);
		int err = agent_send(r->res.chan, MFX_CTL_STOP, NULL, NULL, 0);
		if (!err)
			err = agent_recv(r->res.chan, MFX_CTL_STOPPED, &m, AGENT_STOP_MS);
		if (err && err != -EPIPE)
			mfx_err("the agent in pid %d did not confirm the stop (%s); it stops by itself "
				"when mfx exits", (int)r->pid, mfx_strerror(-err));
	}
	/* Every chunk into the trace before the channel closes: an agent that
	 * sees EOF while still recording writes its own chunks (mfx gone). */
	/* Not cut short by a second Ctrl-C: the agent gave its chunks back to
	 * this drain (a few ms; the signal is taken right after). */
	sigset_t stop_sigs, old_mask;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop_sigs, &old_mask);
	session_drain(r->s);
	close(r->res.chan);	/* the agent stops on EOF too */
	r->res.chan = -1;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	return session_finish(r->s, why) ? EXIT_FAIL : EXIT_OK;
}

int cmd_attach(int argc, char **argv)
{
	struct attach_run r = { .tfd = -1, .res = { .chan = -1 } };
	capture_defaults(&r.o);
	int rc = attach_parse(argc, argv, &r);
	if (rc >= 0)
		return rc;
	r.t_begin = now_ns();
	if ((rc = attach_prepare(&r)) >= 0 || (rc = attach_agent(&r)) >= 0 ||
	    (rc = attach_start(&r)) >= 0)
		goto out;	/* a refusal leaves nothing behind */
	r.discard = 0;
	attach_announce(&r);
	rc = attach_window(&r);
out:
	if (r.tfd >= 0)
		close(r.tfd);
	if (r.res.chan >= 0)
		close(r.res.chan);
	if (r.s)
		session_free(r.s);
	else
		spool_free(r.sp);
	if (r.discard)
		run_dir_discard(r.dir, r.made);
	free(r.dir);
	return rc;
}
