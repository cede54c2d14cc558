/*
 * session.c - the capture window as seen from the mfx process, beside the
 * target (capture.h): sample RSS into the trace, keep the full smaps at the RSS
 * peak, draw the progress line, notice the end of the window, then finalise the
 * traces and run the report.
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

#include "analyzer/report.h"
#include "attach/deadline.h"
#include "attach/capture.h"
#include "attach/runend.h"
#include "attach/stopping.h"
#include "common/procfs.h"
#include "trace/spool.h"
#include "trace/tracefile.h"
#include "common/util.h"

#define MAX_TRACES 64
#define SCAN_NS 100000000ull		/* look for new trace files (children) */
#define PROGRESS_NS 250000000ull
#define STOP_WAIT_NS 1000000000ull	/* for agents to acknowledge a stop */

struct traced {
	struct tfile tf;
	char name[256];
	pid_t pid;
	int main;
	int gone;
};

struct session {
	struct capture_opts o;
	char dir[PATH_MAX];
	pid_t pid;
	enum session_mode mode;
	pid_t child;
	int child_status, child_done;
	uint64_t child_maxrss;		/* launch: ru_maxrss of the reaped child (bytes) */
	uint64_t hwm;			/* highest VmHWM read (attach: since the window began) */
	uint64_t main_events, main_bytes;	/* trace.mfx, finalised: header's count, size */
	int attach_exited, exit_known, exit_st;	/* attach: the process ended in the window */
	int hwm_reset;			/* attach: clear_refs reset the high-water mark */
	struct traced tr[MAX_TRACES];
	int ntr;
	uint64_t t_start, t_window, t_sample, t_scan, t_progress, t_end;
	struct deadline *deadline;	/* --for: raises the main trace's stop word on time */
	struct tfile *deadline_tf;
	/* RSS peak and its smaps */
	uint64_t rss_peak, heap_at_peak, t_peak_read;
	uint64_t t_peak;		/* when the kept smaps was read; 0 = at exit */
	char *peak_text;
	size_t peak_len;
	/* full smaps reads cost: do them every `full_every` samples */
	unsigned sample_no, full_every;
	uint64_t last_rss, last_heap;
	/* clock pairs for the TSC rate */
	uint64_t tsc0, ns0;
	/* progress */
	uint64_t prog_events, prog_ns;
	double rate;
	/* thread names already recorded */
	pid_t *named;
	size_t nnamed;
	struct spool *spool;
	int rec_failed;			/* recording or its files failed (exit 1) */
	sigset_t oldmask;
	struct sigaction old_int, old_term, old_hup, old_chld;
};

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

static struct traced *main_trace(struct session *s)
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
static void scan_dir(struct session *s)
{
	DIR *d = dir_open(s->dir);
	if (!d)
		return;
	struct dirent *e;
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
		if (tfile_open(path_join(path, sizeof(path), s->dir, e->d_name), &t->tf))
			continue;	/* header not written yet: next scan */
		snprintf(t->name, sizeof(t->name), "%s", e->d_name);
		t->pid = (pid_t)t->tf.hdr->pid;
		t->main = !strcmp(e->d_name, "trace.mfx");
		s->ntr++;
		new_image(s, t);
	}
	closedir(d);
}

static int process_gone(pid_t pid)
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

static void sample_all(struct session *s)
{
	for (int i = 0; i < s->ntr; i++)
		sample_one(s, &s->tr[i], NULL, NULL);
	s->sample_no++;
}

int session_sample_now(struct session *s, uint64_t *rss, uint64_t *heap_rss)
{
	struct traced *t = main_trace(s);
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
	struct traced *m = main_trace(s);
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
	if (s->mode == SESSION_ATTACH && process_gone(s->pid))
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
	struct traced *m = main_trace(s);
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
	struct traced *m = main_trace(s);
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
		if (now - s->t_scan >= SCAN_NS || !main_trace(s)) {
			scan_dir(s);
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
			return why;
		}
		if (now - s->t_sample >= s->o.smaps_interval_ns) {
			sample_all(s);
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

int session_failed(const struct session *s)
{
	return s->rec_failed;
}

void session_drain(struct session *s)
{
	if (s->spool)
		spool_stop(s->spool);
}

int session_mark(struct session *s, uint32_t kind, const uint64_t *vals, uint32_t nvals,
		 const char *text)
{
	struct traced *m = main_trace(s);
	if (!m) {
		scan_dir(s);
		if (!(m = main_trace(s)))
			return -MFX_E_NOTRACE;
	}
	return tfile_mark(&m->tf, now_ns(), kind, vals, nvals, text);
}

int session_stop_agents(struct session *s, uint64_t timeout_ns)
{
	char path[PATH_MAX];
	/* Programs exec'ed from now on see the marker and stay untraced. */
	int fd = file_open(path_join(path, sizeof(path), s->dir, ".stop"), O_WRONLY | O_CREAT, 0600);
	if (fd >= 0)
		close(fd);
	scan_dir(s);
	for (int i = 0; i < s->ntr; i++)
		tfile_request_stop(&s->tr[i].tf);
	uint64_t t0 = now_ns();
	for (;;) {
		int pending = 0;
		for (int i = 0; i < s->ntr; i++) {
			struct traced *t = &s->tr[i];
			if (!t->gone && t->tf.hdr->state != MFX_ST_STOPPED && !process_gone(t->pid))
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
	struct traced *mt = main_trace(s);
	if (mt)
		take_exit_smaps(s, mt->pid);
	drop_exit_smaps(s);
	path_join(path, sizeof(path), s->dir, "smaps");
	if (!s->peak_text) {
		struct traced *m = main_trace(s);
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
	struct traced *m = main_trace(s);
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

/* 0, or the first error (each is named on its own line only when it is
 * not the disk: a full disk is said once, by the caller). */
static int finalize_all(struct session *s, uint64_t tsc_hz)
{
	int first = 0;
	name_main_trace(s);
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
		int err = tfile_finalize(path, tsc_hz, &st);
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
			err = report_run(s->dir, &ro);
			say_trace(s, err ? 0 : events);
			if (err)
				mfx_err("report failed: %s", mfx_strerror(-err));
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
	scan_dir(s);
	struct traced *m = main_trace(s);
	if (why != SESSION_END_EXIT && s->mode == SESSION_LAUNCH)
		session_stop_agents(s, STOP_WAIT_NS);
	uint64_t t_drain = now_ns();
	session_drain(s);	/* every chunk into its trace file */
	t_drain = now_ns() - t_drain;
	if (s->spool && env_flag("MFX_DEBUG")) {
		struct spool_stats ss;
		spool_stats(s->spool, &ss);
		debug_columns(&ss.model);
	}
	if (m && !process_gone(m->pid))
		sample_all(s);
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
	return err ? err : rerr;
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
