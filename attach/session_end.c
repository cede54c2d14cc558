/*
 * session_end.c - the end of a capture session (capture.h): ask the agents
 * to stop, drain the spool, the last sample and marks, the smaps at the RSS
 * peak, finalise every trace, then the report and the lines that say where
 * the run is.  A full disk is said once and stops what would write more.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analyzer/report.h"
#include "attach/capture.h"
#include "attach/runend.h"
#include "attach/rundir.h"
#include "attach/session_internal.h"
#include "common/procfs.h"
#include "common/util.h"
#include "trace/spool.h"
#include "trace/tracefile.h"

#define STOP_WAIT_NS 1000000000ull	/* for agents to acknowledge a stop */
#define CHILD_STOP_NS 3000000000ull	/* attach: for children of the window to end */

int session_stop_agents(struct session *s, uint64_t timeout_ns)
{
	char path[PATH_MAX];
	/* Programs exec'ed from now on see the marker and stay untraced. */
	int fd = file_open(path_join(path, sizeof(path), s->dir, ".stop"), O_WRONLY | O_CREAT, 0600);
	if (fd >= 0)
		close(fd);
	session__scan_dir(s);
	for (int i = 0; i < s->ntr; i++)
		tfile_request_stop(&s->tr[i].tf);
	uint64_t t0 = now_ns();
	for (;;) {
		int pending = 0;
		for (int i = 0; i < s->ntr; i++) {
			struct traced *t = &s->tr[i];
			if (!t->gone && t->tf.hdr->state != MFX_ST_STOPPED && !session__process_gone(t->pid))
				pending++;
		}
		/* An agent stops at its process's next malloc-family call: an
		 * idle process may never acknowledge; nothing more gets
		 * written then either. */
		if (!pending || now_ns() - t0 >= timeout_ns)
			return pending;
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
}

/* pid maps the file of fd (its inode on its device): an agent that still
 * records into it, or one that has not yet let go of it. */
static int maps_file(pid_t pid, int fd)
{
	struct stat st;
	struct maps_iter it;
	struct maps_entry e;
	int found = 0;
	if (fstat(fd, &st) || procfs_maps_open(pid, &it))
		return 0;
	while (!found && procfs_maps_next(&it, &e) > 0)
		found = e.inode == (uint64_t)st.st_ino && e.dev_major == major(st.st_dev) &&
			e.dev_minor == minor(st.st_dev);
	procfs_maps_close(&it);
	return found;
}

/* attach: a child's recording is over once it maps its trace no more
 * (its watcher unhooked it and let go of every buffer: preload/forkchild.c;
 * or it exec'ed, and its new image has no agent) or it is gone. */
static int child_done(struct traced *t)
{
	return t->gone || session__process_gone(t->pid) || !maps_file(t->pid, t->tf.fd);
}

/*
 * attach: children the process forked during the window record into
 * trace-<pid>.mfx; their stop word is raised and each is waited for, a
 * few seconds at most, so that every trace is whole before it is
 * finalised.  Scanned again each round: a child forked just before the
 * parent's stop may create its trace now.  One line per child that did
 * not finish: it unhooks itself once mfx is gone (its pidfd says so).
 */
static void stop_children(struct session *s)
{
	uint64_t t0 = now_ns();
	int pending;
	for (;;) {
		session__scan_dir(s);
		pending = 0;
		for (int i = 0; i < s->ntr; i++) {
			struct traced *t = &s->tr[i];
			if (t->main || !t->tf.hdr)
				continue;
			tfile_request_stop(&t->tf);
			pending += !child_done(t);
		}
		pending += s->unopened;
		if (!pending || now_ns() - t0 >= CHILD_STOP_NS)
			break;
		struct timespec ts = { 0, 5000000 };
		nanosleep(&ts, NULL);
	}
	for (int i = 0; pending && i < s->ntr; i++) {
		struct traced *t = &s->tr[i];
		if (!t->main && t->tf.hdr && !child_done(t))
			mfx_err("pid %d (forked by %d during the window) did not end its recording "
				"within %llu s: %s keeps what it wrote until now; it unhooks itself "
				"once mfx exits", (int)t->pid, (int)s->pid,
				(unsigned long long)(CHILD_STOP_NS / 1000000000ull), t->name);
	}
}

static const char *end_reason(enum session_end why)
{
	switch (why) {
	case SESSION_END_DURATION: return "duration";
	case SESSION_END_INTERRUPT: return "interrupt";
	case SESSION_END_EXIT: return "exit";
	case SESSION_END_STOPPED: return "stopped";
	}
	return "unknown";
}

/* The agent's copy of smaps at its process's exit: better than ours when
 * the program ended before we sampled it, or grew after our last sample. */
static void take_exit_smaps(struct session *s, pid_t pid)
{
	char name[64], path[PATH_MAX];
	snprintf(name, sizeof(name), ".smaps-exit-%d", (int)pid);
	path_join(path, sizeof(path), s->dir, name);
	struct smaps sm;
	if (procfs_smaps_load(path, &sm))
		return;
	file_unlink(path);
	struct smaps_totals tot;
	procfs_smaps_totals(&sm, &tot);
	if (tot.rss > s->rss_peak || !s->peak_text) {
		s->rss_peak = tot.rss;
		s->heap_at_peak = tot.heap_rss;
		s->t_peak = 0;	/* at exit: after the last event */
		free(s->peak_text);
		s->peak_text = sm.text;
		s->peak_len = sm.len;
		sm.text = NULL;
	}
	procfs_smaps_free(&sm);
}

/* Exit copies of other processes of the run (an older agent wrote one per
 * process): not used, not left behind. */
static void drop_exit_smaps(struct session *s)
{
	DIR *d = dir_open(s->dir);
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, ".smaps-exit-", 12))
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
}

/* The smaps at the RSS peak becomes RUN/smaps.  0 or -errno. */
static int write_peak_smaps(struct session *s)
{
	char path[PATH_MAX];
	struct traced *mt = session__main_trace(s);
	if (mt)
		take_exit_smaps(s, mt->pid);
	drop_exit_smaps(s);
	path_join(path, sizeof(path), s->dir, "smaps");
	if (!s->peak_text) {
		struct traced *m = session__main_trace(s);
		struct smaps sm;
		if (!m || procfs_smaps_read(m->pid, &sm))
			return 0;
		s->peak_text = sm.text;
		s->peak_len = sm.len;
		sm.text = NULL;
		procfs_smaps_free(&sm);
	}
	int err = write_file(path, s->peak_text, s->peak_len);
	/* The exact peak: the highest VmHWM read, and for the process mfx
	 * launched its ru_maxrss (the kernel's high-water mark over its whole
	 * life, read at its end: its exec'ed images included, but the last
	 * one is normally the largest). */
	uint64_t hwm = s->hwm;
	if (s->child_done && mt && mt->pid == s->child && s->child_maxrss > hwm)
		hwm = s->child_maxrss;
	uint64_t vals[4] = { s->rss_peak, s->heap_at_peak, s->t_peak, hwm };
	session_mark(s, MFX_MARK_RSS_PEAK, vals, 4, "");
	return err;
}

/* The report may be linked in or not (see analyzer/report.h). */
int report_run(const char *run_dir, const struct report_opts *o) __attribute__((weak));

/* launch: the process mfx started exec'ed (a shim, env, sh -c 'exec ...'):
 * its last image's trace becomes trace.mfx, the one the report and replay
 * read; the first image's is renamed trace-<pid>.0.mfx (the images between
 * keep trace-<pid>.mfx, trace-<pid>.1.mfx, ... in exec order). */
static void name_main_trace(struct session *s)
{
	struct traced *m = session__main_trace(s);
	if (s->mode != SESSION_LAUNCH || !m || !strcmp(m->name, "trace.mfx"))
		return;
	char first[64];
	int err = run_rename_main(s->dir, m->name, m->pid, first, sizeof(first));
	if (err) {
		mfx_err("cannot rename the traces in '%s': %s", s->dir, strerror(-err));
		return;
	}
	mfx_note("pid %d exec'ed: the report is of its last image%s%s (trace.mfx); the first is %s",
		 (int)m->pid, m->tf.hdr && m->tf.hdr->exe[0] ? ", " : "",
		 m->tf.hdr ? m->tf.hdr->exe : "", first);
}

/* A trace file whose agent never wrote its header (tfile_open: -EAGAIN). */
static int no_header(const char *path)
{
	struct tfile tf;
	int err = tfile_open(path, &tf);
	if (!err)
		tfile_close(&tf);
	return err == -EAGAIN;
}

/* 0, or the first error (each is named on its own line only when it is
 * not the disk: a full disk is said once, by the caller). */
static int finalize_all(struct session *s, uint64_t tsc_hz)
{
	int first = 0;
	name_main_trace(s);
	if (s->mode == SESSION_ATTACH)
		run_adopt_forks(s->dir, 1);
	for (int i = 0; i < s->ntr; i++)
		tfile_close(&s->tr[i].tf);
	DIR *d = dir_open(s->dir);
	if (!d)
		return -errno;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!is_trace_name(e->d_name))
			continue;
		char path[PATH_MAX];
		struct finalize_stats st;
		path_join(path, sizeof(path), s->dir, e->d_name);
		int child = s->mode == SESSION_ATTACH && strcmp(e->d_name, "trace.mfx");
		if (child && no_header(path)) {
			file_unlink(path);	/* a child gone before its header: nothing in it */
			continue;
		}
		int err = tfile_finalize(path, tsc_hz, &st);
		if (err && child && err != -ENOSPC && err != -EDQUOT) {
			mfx_err("cannot finalise '%s', a child's trace (it stays readable as it is): %s",
				path, mfx_strerror(-err));
			continue;	/* the process's own trace and report are whole */
		}
		if (err) {	/* the raw trace stays: readable as it is */
			if (err != -ENOSPC && err != -EDQUOT)
				mfx_err("cannot finalise '%s' (it stays readable as it is): %s", path,
					mfx_strerror(-err));
			if (!first)
				first = err;
			continue;
		}
		if (!strcmp(e->d_name, "trace.mfx")) {
			s->main_events = st.events;
			s->main_bytes = st.final_bytes;
		}
	}
	closedir(d);
	return first;
}

/*
 * "trace: N events": the header's thread slots count them for the first
 * MFX_THREAD_SLOTS threads only (a thread past them records without a
 * slot), and as each thread last published its count.  The report counts
 * every event it reads (exact is its count); without a report, past the
 * slots, the events are counted by reading the trace (runend.c).
 */
static void say_trace(struct session *s, uint64_t exact)
{
	char path[PATH_MAX], ev[32], b[32];
	uint64_t n = exact ? exact : run_trace_events(path_join(path, sizeof(path), s->dir, "trace.mfx"),
						      s->main_events);
	if (n)
		mfx_note("trace: %s events, %s (%.2f bytes/event)", fmt_count(n, ev, sizeof(ev)),
			 fmt_bytes(s->main_bytes, b, sizeof(b)), (double)s->main_bytes / (double)n);
}

/* attach: the process ended during the window; the EXIT mark keeps its
 * status when it could be read (vals[1]: known). */
static void attach_exit(struct session *s)
{
	s->exit_known = run_zombie_status(s->pid, &s->exit_st) == 0;
	s->attach_exited = 1;
	uint64_t vals[2] = { (uint64_t)s->exit_st, (uint64_t)s->exit_known };
	session_mark(s, MFX_MARK_EXIT, vals, 2, "");
}

/* ... and one line says so, with the status: the zombie's, else the one
 * the agent's on_exit handler put in its EXITING mark (read from the
 * finalised trace). */
static void say_attach_exit(struct session *s)
{
	char path[PATH_MAX];
	if (!s->exit_known)
		s->exit_known = run_trace_exit_status(path_join(path, sizeof(path), s->dir, "trace.mfx"),
						      &s->exit_st) == 0;
	if (!s->exit_known)
		mfx_note("pid %d exited during the window", (int)s->pid);
	else if (WIFSIGNALED(s->exit_st))
		mfx_note("pid %d was killed by signal %d during the window", (int)s->pid,
			 WTERMSIG(s->exit_st));
	else
		mfx_note("pid %d exited during the window with status %d", (int)s->pid,
			 WEXITSTATUS(s->exit_st));
}

/* MFX_DEBUG: what the drain thread's encoded chunks hold, per column. */
static void debug_columns(const struct evc_stats *st)
{
	char line[512];
	int n = 0;
	if (!st->events)
		return;
	for (unsigned i = 0; i < EVC_NCOLS && n < (int)sizeof(line) - 40; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %s %.3f", evc_col_name(i),
			      (double)st->stored[i] / (double)st->events);
	mfx_note("debug: %llu events encoded in %llu chunks (%llu refused), bytes/event:%s",
		 (unsigned long long)st->events, (unsigned long long)st->chunks,
		 (unsigned long long)st->refused, line);
}

/* Events dropped in every trace of the run (back-pressure). */
static void note_dropped(struct session *s)
{
	uint64_t ev = 0, ch = 0;
	for (int i = 0; i < s->ntr; i++) {
		struct mfx_file_header *h = s->tr[i].tf.hdr;
		ev += h->dropped_events;
		ch += h->dropped_chunks;
	}
	if (!ev)	/* chunks lost to write errors alone are said by recording_failed */
		return;
	char a[32];
	mfx_note("%s events dropped (%llu chunks): mfx could not keep up with the program; "
		 "the report counts what was kept", fmt_count(ev, a, sizeof(a)),
		 (unsigned long long)ch);
}

/* Why recording stopped early, one line (0 if it did not). */
static int recording_failed(struct session *s, struct traced *m)
{
	struct spool_stats ss = { 0 };
	if (s->spool)
		spool_stats(s->spool, &ss);
	if (ss.write_errors) {
		mfx_err("cannot write the trace in '%s': %s; recording stopped, what was recorded "
			"is kept", s->dir, mfx_strerror(ss.write_errno));
		if (m && !m->tf.hdr->fail_errno) {	/* the reader says so too */
			snprintf(m->tf.hdr->fail_what, sizeof(m->tf.hdr->fail_what),
				 "mfx could not write the trace");
			m->tf.hdr->fail_errno = ss.write_errno;
			__atomic_fetch_or(&m->tf.hdr->degraded, MFX_DG_STOPPED, __ATOMIC_RELAXED);
		}
		return -ss.write_errno;
	}
	if (m && m->tf.hdr->fail_errno) {
		const char *what = m->tf.hdr->fail_what;
		mfx_err("recording stopped early: %s%s%s; what was recorded is kept in '%s'", what,
			*what ? ": " : "", mfx_strerror(m->tf.hdr->fail_errno), s->dir);
		return -m->tf.hdr->fail_errno;
	}
	return 0;
}

/* The report, unless --no-report; "trace: N events". */
static int finish_report(struct session *s, struct traced *m)
{
	int err = 0;
	if (m && !s->o.no_report) {
		if (report_run) {
			/* launch: the program's stdout is its own; mfx says
			 * everything on stderr (like time(1), strace -c) */
			uint64_t events = 0;
			struct report_opts ro = { .quiet = s->o.quiet, .top = 10,
						  .out = s->mode == SESSION_LAUNCH ? stderr : stdout,
						  .wrappers = s->o.wrappers,
						  .nwrappers = s->o.nwrappers, .events = &events };
			err = report_run(s->dir, &ro);	/* says its error in one line */
			say_trace(s, err ? 0 : events);
		} else {
			mfx_note("this mfx has no analyzer built in; the trace is in '%s'", s->dir);
		}
	} else if (m) {
		say_trace(s, 0);
	}
	if (m && s->o.sample_bytes)	/* a sample cannot be replayed */
		mfx_note("run directory: %s  (next: mfx report %s)", s->dir, s->dir);
	else if (m)
		mfx_note("run directory: %s  (next: mfx report %s, mfx replay %s)", s->dir, s->dir,
			 s->dir);
	return err;
}

/*
 * The end: stop the agents, drain the spool, last sample and marks, smaps,
 * finalise, report.  A full disk is said in one line and stops the steps
 * that would write more; the raw trace stays readable.  Returns 0, or
 * -errno when the recording, its files or the report failed (exit 1).
 */
int session_finish(struct session *s, enum session_end why)
{
	uint64_t t_end = s->t_end ? s->t_end : now_ns();	/* when session_loop saw it end */
	progress_clear();
	session__scan_dir(s);
	struct traced *m = session__main_trace(s);
	if (why != SESSION_END_EXIT && s->mode == SESSION_LAUNCH)
		session_stop_agents(s, STOP_WAIT_NS);
	if (s->mode == SESSION_ATTACH)
		stop_children(s);
	uint64_t t_drain = now_ns();
	session_drain(s);	/* every chunk into its trace file */
	t_drain = now_ns() - t_drain;
	if (s->spool && env_flag("MFX_DEBUG")) {
		struct spool_stats ss;
		spool_stats(s->spool, &ss);
		debug_columns(&ss.model);
	}
	if (m && !session__process_gone(m->pid))
		session__sample_all(s);
	if (m)	/* the agent notes its own end too, if it sees the stop in time */
		tfile_mark(&m->tf, t_end, MFX_MARK_WINDOW_END, NULL, 0, end_reason(why));
	if (s->child_done) {
		uint64_t st = (uint64_t)s->child_status;
		session_mark(s, MFX_MARK_EXIT, &st, 1, "");
	} else if (why == SESSION_END_EXIT && s->mode == SESSION_ATTACH) {
		attach_exit(s);
	}
	note_dropped(s);
	int err = recording_failed(s, m);
	if (!m && (err = run_no_room_to_start(s->dir))) {	/* a full disk from the start */
		mfx_err("cannot write the trace in '%s': %s (the agent needs %u KiB to start "
			"recording)", s->dir, mfx_strerror(-err), MFX_FIRST_CHUNK / 1024);
		s->rec_failed = 1;
		return err;
	}
	int werr = write_peak_smaps(s);
	if (m)
		run_record_wrappers(&m->tf, s->o.wrappers, s->o.nwrappers);
	uint64_t tsc_hz = 0, dns = now_ns() - s->ns0, dtsc = tfile_tsc() - s->tsc0;
	if (dns > 20000000ull)
		tsc_hz = (uint64_t)((double)dtsc * 1e9 / (double)dns);
	if (!m)
		mfx_err("no trace was written in '%s': the agent did not start in pid %d", s->dir,
			(int)s->pid);
	uint64_t t_fin = now_ns();
	int ferr = finalize_all(s, tsc_hz);
	if (s->attach_exited)
		say_attach_exit(s);
	if (env_flag("MFX_DEBUG")) {
		char a[32], b[32], c[32], d[32];
		uint64_t t = now_ns();
		mfx_note("debug: window %s, end of window %s (spool drained %s, finalised %s)",
			 fmt_duration(t_end - s->t_start, a, sizeof(a)),
			 fmt_duration(t - t_end, b, sizeof(b)), fmt_duration(t_drain, c, sizeof(c)),
			 fmt_duration(t - t_fin, d, sizeof(d)));
	}
	if (!werr)
		werr = ferr;
	int full = werr == -ENOSPC || werr == -EDQUOT || err == -ENOSPC || err == -EDQUOT;
	if (werr && !err)	/* not said yet */
		mfx_err("cannot write in '%s': %s; the trace is kept as recorded (run 'mfx report %s' "
			"once there is room)", s->dir, mfx_strerror(-werr), s->dir);
	if (!err)
		err = werr;
	s->rec_failed = err != 0;
	if (full)	/* no report: it would not fit either */
		return err;
	int rerr = finish_report(s, m);
	s->rec_failed = err || rerr;	/* launch: 1, not a success, when the report failed */
	return err ? err : rerr;
}

int session_failed(const struct session *s)
{
	return s->rec_failed;
}
