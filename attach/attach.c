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
	       "undone, in the process and in the children it forked meanwhile, and the\n"
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

int cmd_attach(int argc, char **argv)
{
	struct capture_opts o;
	capture_defaults(&o);
	struct cmdline cl = { 0 };
	int idx = capture_parse("attach", argc, argv, &o, attach_help, &cl);
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
	pid_t pid = (pid_t)v;
	uint64_t t_begin = now_ns();

	struct inject_err why0;
	int err = inject_check(pid, NULL, &why0);
	if (err)
		return attach_refusal("attach to", pid, err, &why0);
	char agent[PATH_MAX], comm[64];
	if ((err = agent_path(agent, sizeof(agent)))) {
		mfx_err("%s", mfx_strerror(-err));
		return EXIT_FAIL;
	}
	comm_of(pid, comm, sizeof(comm));
	char *dir = o.out ? strdup(o.out) : run_dir_default(comm, pid), made[PATH_MAX] = "";
	if (dir)
		run_dir_missing_part(dir, made, sizeof(made));
	if (!dir || (err = run_dir_create(dir, o.force))) {
		mfx_err("cannot use '%s' as run directory: %s", dir ? dir : "?",
			mfx_strerror(err ? -err : ENOMEM));
		free(dir);
		return err == -MFX_E_NOTEMPTY ? EXIT_USAGE : EXIT_FAIL;
	}
	char tpath[PATH_MAX];
	path_join(tpath, sizeof(tpath), dir, "trace.mfx");
	int tfd = file_open(tpath, O_RDWR | O_CREAT, 0600);	/* in the bound run directory */
	if (tfd < 0) {
		mfx_err("cannot create '%s': %s", tpath, mfx_strerror(-tfd));
		run_dir_discard(dir, made);
		free(dir);
		return EXIT_FAIL;
	}
	struct spool *sp = NULL;
	if ((err = spool_create(&sp)))
		mfx_note("no shared-memory spool (%s); tracing will be slower", strerror(-err));

	/* The session blocks SIGINT/SIGTERM: a Ctrl-C now cannot leave a
	 * thread of the process in the middle of a remote call. */
	struct session *s;
	if ((err = session_new(&o, dir, pid, SESSION_ATTACH, &s))) {
		mfx_err("%s", mfx_strerror(-err));
		close(tfd);
		spool_free(sp);
		run_dir_discard(dir, made);
		free(dir);
		return EXIT_FAIL;
	}
	if (sp && (err = session_set_spool(s, sp))) {
		mfx_note("cannot drain the spool: %s", strerror(-err));
		sp = NULL;
	}

	/* An agent left by an earlier attach answers its doorbell: no thread
	 * is stopped at all.  Otherwise hold one and load it. */
	struct inject_agent_result res;
	struct inject_err ierr = { 0 };
	const char *how = "doorbell";
	err = get_agent(pid, agent, &res, &ierr, &how);
	if (err) {
		int rc = res.msg[0] ? (mfx_err("cannot attach to %d (%s): %s", (int)pid, comm, res.msg),
				       EXIT_FAIL) :
				      attach_refusal("attach to", pid, err, &ierr);
		close(tfd);
		session_free(s);
		run_dir_discard(dir, made);
		free(dir);
		return rc;
	}

	char cfg[96];
	if (o.sample_bytes)
		snprintf(cfg, sizeof(cfg), "depth=%u,sample=%llu", o.no_stacks ? 0 : o.stack_depth,
			 (unsigned long long)o.sample_bytes);
	else
		snprintf(cfg, sizeof(cfg), "depth=%u", o.no_stacks ? 0 : o.stack_depth);
	int fds[2] = { tfd, sp ? spool_fd(sp) : -1 };
	struct mfx_ctl m;
	stop_boost_agent(pid);	/* a busy program must not starve the GOT patching */
	err = agent_send(res.chan, MFX_CTL_START, cfg, fds, sp ? 2 : 1);
	close(tfd);
	if (!err)
		err = agent_recv(res.chan, MFX_CTL_STARTED, &m, AGENT_REPLY_MS);
	if (!err && m.status)
		err = m.status;
	if (err) {
		int st = procfs_state(pid);
		if (err == -EBUSY)
			mfx_err("cannot attach to %d (%s): another mfx is recording it; wait for it to "
				"end", (int)pid, comm);
		else if (st < 0 || st == 'Z' || st == 'X')	/* not "Broken pipe" */
			mfx_err("cannot attach to %d (%s): it exited meanwhile", (int)pid, comm);
		else
			mfx_err("cannot attach to %d (%s): the agent did not start recording: %s%s",
				(int)pid, comm, mfx_strerror(-err), err == -ENOMEM ?
				" (the process's address-space limit, RLIMIT_AS, leaves it too little "
				"room)" : "");
		close(res.chan);
		session_free(s);
		run_dir_discard(dir, made);	/* a refusal leaves nothing behind */
		free(dir);
		return EXIT_FAIL;
	}
	uint64_t t_active = now_ns();
	session_window_started(s, t_active);
	uint64_t vals[6] = { t_active - t_begin, res.hold.held_ns, m.slots, m.modules,
			     res.hold.attempts, res.boot_ns };
	session_mark(s, MFX_MARK_ATTACH, vals, 6, how);
	char held[48], win[32];
	if (o.for_ns)
		snprintf(win, sizeof(win), "for %s", fmt_duration(o.for_ns, held, sizeof(held)));
	else
		snprintf(win, sizeof(win), "until Ctrl-C");
	char d[32];
	if (!strcmp(how, "doorbell"))
		snprintf(held, sizeof(held), "no thread held (agent already there)");
	else
		snprintf(held, sizeof(held), "one thread held %s",
			 fmt_duration(res.hold.held_ns, d, sizeof(d)));
	struct alloc_remote ar;	/* named from outside: the agent records its own view */
	alloc_remote_detect(pid, &ar);
	mfx_note("attached to pid %d (%s, %s malloc): %u GOT slots in %u modules, %s; "
		 "recording %s into %s", (int)pid, comm, mfx_allocator_names[ar.kind], m.slots,
		 m.modules, held, win, dir);

	int why = session_loop(s);
	if (why != SESSION_END_EXIT) {
		if (o.trim_at_end)
			trim_at_end(s, res.chan);
		/* 5 s at most: after that mfx goes on without the answer, and the
		 * agent stops by itself when the channel closes. */
		stop_boost_agent(pid);
		err = agent_send(res.chan, MFX_CTL_STOP, NULL, NULL, 0);
		if (!err)
			err = agent_recv(res.chan, MFX_CTL_STOPPED, &m, AGENT_STOP_MS);
		if (err && err != -EPIPE)
			mfx_err("the agent in pid %d did not confirm the stop (%s); it stops by itself "
				"when mfx exits", (int)pid, mfx_strerror(-err));
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
	session_drain(s);
	close(res.chan);	/* the agent stops on EOF too */
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	err = session_finish(s, why);
	session_free(s);
	free(dir);
	return err ? EXIT_FAIL : EXIT_OK;
}
