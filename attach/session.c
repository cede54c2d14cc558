/*
 * session.c - the capture window as seen from the mfx process, beside the
 * target (capture.h): sample RSS into the trace, keep the full smaps at the RSS
 * peak, draw the progress line, notice the end of the window, then finalise the
 * traces and run the report (that end is session_end.c's).
 *
 * Signals: SIGINT, SIGTERM, SIGHUP and SIGCHLD are blocked except inside
 * ppoll(), so none is lost between a check and the wait.  In attach mode
 * Ctrl-C ends the window; in launch mode it reaches the program through the
 * terminal and mfx carries on until the program exits (like time(1)), and a
 * SIGTERM sent to mfx is passed on to the program (a second one ends mfx).
 * Once the window is over, another signal ends mfx at once (stopping.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach/deadline.h"
#include "attach/capture.h"
#include "attach/session_internal.h"
#include "attach/runend.h"
#include "attach/rundir.h"
#include "attach/stopping.h"
#include "common/procfs.h"
#include "trace/spool.h"
#include "trace/tracefile.h"
#include "common/util.h"

#define SCAN_NS 100000000ull		/* look for new trace files (children) */
#define PROGRESS_NS 250000000ull

static volatile sig_atomic_t got_int, got_term, nterm;

/*
 * attach: the high-water mark is the process's whole life's; writing "5"
 * to /proc/PID/clear_refs (Linux 4.0+, proc(5)) resets it to the RSS now,
 * so VmHWM from then on is the window's peak.  It is the one thing mfx
 * changes in the target that outlives the window: a tool reading VmHWM
 * afterwards sees the peak since then (docs/attach.md).
 */
static void reset_hwm(struct session *s)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)s->pid);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "5", 1) == 1)
		s->hwm_reset = 1;
	close(fd);
	s->hwm = 0;
}

static void on_signal(int sig)
{
	if (sig == SIGINT) {
		got_int = 1;
	} else if (sig == SIGTERM || sig == SIGHUP) {
		got_term = sig;
		nterm++;
	}
}

int session_new(const struct capture_opts *o, const char *run_dir, pid_t pid,
		enum session_mode mode, struct session **out)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	snprintf(s->dir, sizeof(s->dir), "%s", run_dir);
	s->pid = pid;
	s->mode = mode;
	s->full_every = 1;
	s->t_start = s->t_window = now_ns();
	s->tsc0 = tfile_tsc();
	s->ns0 = now_ns();
	got_int = got_term = nterm = 0;
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &s->oldmask);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &s->old_int);
	sigaction(SIGTERM, &sa, &s->old_term);
	sigaction(SIGHUP, &sa, &s->old_hup);
	sigaction(SIGCHLD, &sa, &s->old_chld);
	*out = s;
	return 0;
}

int session_set_spool(struct session *s, struct spool *sp)
{
	s->spool = sp;
	return spool_start(sp, s->dir);
}

void session_set_child(struct session *s, pid_t child)
{
	s->child = child;
}

void session_window_started(struct session *s, uint64_t ts_ns)
{
	s->t_window = ts_ns;
	if (s->mode == SESSION_ATTACH)
		reset_hwm(s);
}

int session_child_status(const struct session *s)
{
	return s->child_done ? s->child_status : -1;
}

struct traced *session__main_trace(struct session *s)
{
	for (int i = 0; i < s->ntr; i++)
		if (s->tr[i].main)
			return &s->tr[i];
	return NULL;
}

/*
 * A trace of a pid that has one already is a new image of it (the old one
 * exec'ed): the old trace is done, and samples of that pid are the new
 * image's.  For the process mfx launched, the new image becomes the main
 * trace - `mfx launch` through a shim (a script that execs, env, sh -c
 * 'exec ...') reports the image that did the work, and finalize_all()
 * names its trace trace.mfx.  What the session kept of the old image's RSS
 * peak no longer applies.
 */
static void new_image(struct session *s, struct traced *t)
{
	for (int i = 0; i < s->ntr; i++) {
		struct traced *o = &s->tr[i];
		if (o == t || o->pid != t->pid)
			continue;
		/* the directory lists them in any order: the older one is done */
		int t_newer = o->tf.hdr->start_ns <= t->tf.hdr->start_ns;
		struct traced *old = t_newer ? o : t, *young = t_newer ? t : o;
		old->gone = 1;
		if (old->main && s->mode == SESSION_LAUNCH) {
			old->main = 0;
			young->main = 1;
			s->rss_peak = s->heap_at_peak = s->hwm = 0;
			s->t_peak = s->t_peak_read = 0;
			free(s->peak_text);
			s->peak_text = NULL;
		}
	}
}

/* Open trace files that appeared in the run directory (the program's, its
 * children's after fork or exec). */
void session__scan_dir(struct session *s)
{
	if (s->mode == SESSION_ATTACH)
		run_adopt_forks(s->dir, 0);	/* a child of another user's (rundir.h) */
	DIR *d = dir_open(s->dir);
	if (!d)
		return;
	struct dirent *e;
	s->unopened = 0;
	while ((e = readdir(d)) && s->ntr < MAX_TRACES) {
		if (!is_trace_name(e->d_name))
			continue;
		int known = 0;
		for (int i = 0; i < s->ntr && !known; i++)
			known = !strcmp(s->tr[i].name, e->d_name);
		if (known)
			continue;
		struct traced *t = &s->tr[s->ntr];
		char path[PATH_MAX];
		if (tfile_open(path_join(path, sizeof(path), s->dir, e->d_name), &t->tf)) {
			/* header not written yet: next scan (its process may be
			 * a child of the window just starting: stop_children) */
			pid_t p = (pid_t)atoi(e->d_name + 6);
			s->unopened += p > 0 && !session__process_gone(p);
			continue;
		}
		snprintf(t->name, sizeof(t->name), "%s", e->d_name);
		t->pid = (pid_t)t->tf.hdr->pid;
		t->main = !strcmp(e->d_name, "trace.mfx");
		s->ntr++;
		new_image(s, t);
	}
	closedir(d);
}

int session__process_gone(pid_t pid)
{
	int st = procfs_state(pid);
	return st < 0 || st == 'Z' || st == 'X';
}

/* Record names of threads not seen before (they come and go). */
static void name_threads(struct session *s, struct traced *t)
{
	pid_t *tids;
	size_t n;
	if (procfs_tids(t->pid, &tids, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		int known = 0;
		for (size_t j = 0; j < s->nnamed && !known; j++)
			known = s->named[j] == tids[i];
		if (known)
			continue;
		char comm[64];
		if (procfs_task_comm(t->pid, tids[i], comm, sizeof(comm)))
			continue;
		tfile_thread(&t->tf, (uint32_t)tids[i], comm);
		pid_t *nn = realloc(s->named, (s->nnamed + 1) * sizeof(*nn));
		if (nn) {
			s->named = nn;
			s->named[s->nnamed++] = tids[i];
		}
	}
	free(tids);
}

/* One sample of one traced process.  The main one also gets heap RSS from a
 * full smaps read (when it is cheap enough) and the RSS-peak smaps. */
static void sample_one(struct session *s, struct traced *t, uint64_t *rss_out, uint64_t *heap_out)
{
	struct rollup r;
	uint64_t v[MFX_SF_NFIELDS] = { 0 };
	if (t->gone || procfs_rollup(t->pid, &r)) {
		t->gone = 1;
		return;
	}
	v[MFX_SF_RSS] = r.rss;
	v[MFX_SF_PSS] = r.pss;
	v[MFX_SF_ANON] = r.anon;
	v[MFX_SF_FILE] = r.file;
	v[MFX_SF_SHMEM] = r.shmem;
	v[MFX_SF_SWAP] = r.swap;
	uint64_t now = now_ns();
	int full = t->main && (s->sample_no % s->full_every == 0 ||
			       (r.rss > s->rss_peak && now - s->t_peak_read >= 1000000000ull));
	if (full) {
		struct smaps sm;
		uint64_t t0 = now_ns();
		if (procfs_smaps_read(t->pid, &sm) == 0) {
			struct smaps_totals tot;
			procfs_smaps_totals(&sm, &tot);
			/* RSS from the same read as heap RSS: never below it */
			v[MFX_SF_RSS] = r.rss = tot.rss;
			v[MFX_SF_HEAP_RSS] = tot.heap_rss;
			v[MFX_SF_MFX_RSS] = tot.kind_rss[MK_MFX];
			s->last_heap = tot.heap_rss;
			if (r.rss > s->rss_peak) {
				s->rss_peak = r.rss;
				s->heap_at_peak = tot.heap_rss;
				s->t_peak_read = s->t_peak = now;
				free(s->peak_text);
				s->peak_text = sm.text;	/* keep it: the RUN/smaps */
				s->peak_len = sm.len;
				sm.text = NULL;
			}
			procfs_smaps_free(&sm);
		}
		/* Keep full reads under ~2% of the interval. */
		uint64_t cost = now_ns() - t0;
		s->full_every = (unsigned)(cost * 50 / s->o.smaps_interval_ns) + 1;
	} else if (t->main && r.rss > s->rss_peak) {
		s->rss_peak = r.rss;	/* smaps of this peak read next time */
	}
	if (!t->main || s->mode == SESSION_LAUNCH || s->hwm_reset) {
		v[MFX_SF_HWM] = run_read_hwm(t->pid);
		if (v[MFX_SF_HWM] && v[MFX_SF_HWM] < v[MFX_SF_RSS])
			v[MFX_SF_HWM] = v[MFX_SF_RSS];	/* the counters lag the page tables */
		if (t->main && v[MFX_SF_HWM] > s->hwm)
			s->hwm = v[MFX_SF_HWM];
	}
	tfile_sample(&t->tf, now, v);
	tfile_sync(&t->tf);
	if (t->main) {
		s->last_rss = r.rss;
		if (s->sample_no % 5 == 0)
			name_threads(s, t);
	}
	if (rss_out)
		*rss_out = r.rss;
	if (heap_out)
		*heap_out = v[MFX_SF_HEAP_RSS];
}

void session__sample_all(struct session *s)
{
	for (int i = 0; i < s->ntr; i++)
		sample_one(s, &s->tr[i], NULL, NULL);
	s->sample_no++;
}

int session_sample_now(struct session *s, uint64_t *rss, uint64_t *heap_rss)
{
	struct traced *t = session__main_trace(s);
	if (!t)
		return -MFX_E_NOTRACE;
	unsigned every = s->full_every;
	s->full_every = 1;	/* force a full read: the caller wants heap RSS */
	uint64_t no = s->sample_no;
	s->sample_no = 0;
	*rss = *heap_rss = 0;
	sample_one(s, t, rss, heap_rss);
	s->sample_no = (unsigned)no;
	s->full_every = every;
	return t->gone ? -MFX_E_EXITED : 0;
}

static void draw_progress(struct session *s, uint64_t now)
{
	struct traced *m = session__main_trace(s);
	struct tfile_progress p = { 0 };
	for (int i = 0; i < s->ntr; i++) {
		struct tfile_progress q;
		tfile_progress(&s->tr[i].tf, &q);
		p.events += q.events;
		p.alloc_bytes += q.alloc_bytes;
	}
	if (s->prog_ns) {
		double dt = (now - s->prog_ns) / 1e9;
		double r = dt > 0 ? (p.events - s->prog_events) / dt : 0;
		s->rate = s->rate ? 0.6 * s->rate + 0.4 * r : r;
	}
	s->prog_events = p.events;
	s->prog_ns = now;
	char el[32], ev[32], rate[32], ab[32], rss[32], heap[32], left[48] = "";
	fmt_duration(now - s->t_window, el, sizeof(el));
	if (s->o.for_ns && now - s->t_window < s->o.for_ns) {
		char l[32];
		snprintf(left, sizeof(left), " (%s left)",
			 fmt_duration(s->o.for_ns - (now - s->t_window), l, sizeof(l)));
	}
	progress_show("mfx: pid %d %s%s  %s events (%s/s)  allocated %s  RSS %s  heap %s%s",
		      (int)s->pid, el, left, fmt_count(p.events, ev, sizeof(ev)),
		      fmt_count((uint64_t)s->rate, rate, sizeof(rate)),
		      fmt_bytes(p.alloc_bytes, ab, sizeof(ab)), fmt_bytes(s->last_rss, rss, sizeof(rss)),
		      fmt_bytes(s->last_heap, heap, sizeof(heap)),
		      m ? "" : "  (waiting for the agent)");
}

/* Why the window must end now, or 0. */
static int window_over(struct session *s, uint64_t now)
{
	if (s->child_done)
		return SESSION_END_EXIT;
	if (s->mode == SESSION_ATTACH && session__process_gone(s->pid))
		return SESSION_END_EXIT;
	if (got_term && s->mode == SESSION_LAUNCH && s->child > 0) {
		kill(s->child, got_term);	/* pass it on; end when it exits */
		got_term = 0;
		if (nterm == 1)	/* a second one ends mfx (the program runs on) */
			stop_arm(s->dir, 0);
	}
	if ((got_int || got_term) && s->mode == SESSION_ATTACH)
		return SESSION_END_INTERRUPT;
	got_int = 0;
	if (s->o.for_ns && now - s->t_window >= s->o.for_ns)
		return SESSION_END_DURATION;
	struct traced *m = session__main_trace(s);
	if (m && m->tf.hdr->state == MFX_ST_STOPPED && m->tf.hdr->fail_errno)
		return SESSION_END_STOPPED;
	if (s->spool) {	/* the drain could not write: a full disk */
		struct spool_stats st;
		spool_stats(s->spool, &st);
		if (st.write_errors)
			return SESSION_END_STOPPED;
	}
	return 0;
}

/* --for: the deadline thread watches the main trace (a new one after an
 * exec of the launched program). */
static void keep_deadline(struct session *s)
{
	struct traced *m = session__main_trace(s);
	if (!s->o.for_ns || !m || !m->tf.hdr || &m->tf == s->deadline_tf)
		return;
	deadline_end(s->deadline);
	s->deadline = NULL;
	s->deadline_tf = &m->tf;
	if (deadline_start(&s->deadline, &m->tf, s->t_window + s->o.for_ns))
		s->deadline = NULL;	/* the loop alone keeps the time, as before */
}

int session_loop(struct session *s)
{
	for (;;) {
		uint64_t now = now_ns();
		mfx_tick();
		if (s->child > 0 && !s->child_done) {
			int st;
			struct rusage ru;
			if (wait4(s->child, &st, WNOHANG, &ru) == s->child) {
				s->child_done = 1;
				s->child_status = st;
				s->child_maxrss = (uint64_t)ru.ru_maxrss * 1024;	/* KiB */
			}
		}
		if (now - s->t_scan >= SCAN_NS || !session__main_trace(s)) {
			session__scan_dir(s);
			s->t_scan = now;
		}
		keep_deadline(s);
		int why = window_over(s, now);
		if (why) {
			deadline_end(s->deadline);	/* before any trace is closed */
			s->deadline = NULL;
			s->t_end = now;	/* the window ends now, whatever follows */
			/* From here on, another signal ends mfx at once; after an
			 * interrupt, so does 5 s without progress. */
			stop_arm(s->dir, why == SESSION_END_INTERRUPT);
			if (s->spool && session__main_trace(s))	/* until the final drain */
				stop_undrained(session__main_trace(s)->tf.hdr);
			return why;
		}
		if (now - s->t_sample >= s->o.smaps_interval_ns) {
			session__sample_all(s);
			s->t_sample = now;
		}
		if (progress_enabled() && now - s->t_progress >= PROGRESS_NS) {
			draw_progress(s, now);
			s->t_progress = now;
		}
		uint64_t wait = 50000000ull;
		uint64_t next = s->t_sample + s->o.smaps_interval_ns;
		if (next > now && next - now < wait)
			wait = next - now;
		struct timespec ts = { 0, (long)wait };
		ppoll(NULL, 0, &ts, &s->oldmask);
	}
}

void session_drain(struct session *s)
{
	if (s->spool)
		spool_stop(s->spool);
	stop_undrained(NULL);
}

int session_mark(struct session *s, uint32_t kind, const uint64_t *vals, uint32_t nvals,
		 const char *text)
{
	struct traced *m = session__main_trace(s);
	if (!m) {
		session__scan_dir(s);
		if (!(m = session__main_trace(s)))
			return -MFX_E_NOTRACE;
	}
	return tfile_mark(&m->tf, now_ns(), kind, vals, nvals, text);
}

void session_free(struct session *s)
{
	if (!s)
		return;
	stop_disarm();
	deadline_end(s->deadline);
	for (int i = 0; i < s->ntr; i++)
		if (s->tr[i].tf.hdr)
			tfile_close(&s->tr[i].tf);
	sigaction(SIGINT, &s->old_int, NULL);
	sigaction(SIGTERM, &s->old_term, NULL);
	sigaction(SIGHUP, &s->old_hup, NULL);
	sigaction(SIGCHLD, &s->old_chld, NULL);
	sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
	spool_free(s->spool);
	free(s->peak_text);
	free(s->named);
	free(s);
}
