/*
 * session_internal.h - the capture session's insides, shared by session.c
 * (the window: sampling, progress, its end noticed) and session_end.c
 * (stopping the agents, smaps at the peak, finalising, the report).  The
 * API is capture.h; nothing else includes this.
 */
#ifndef MFX_ATTACH_SESSION_INTERNAL_H
#define MFX_ATTACH_SESSION_INTERNAL_H

#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach/capture.h"
#include "trace/tracefile.h"

struct deadline;

#define MAX_TRACES 256		/* trace files of one run the session follows */

/* One trace file of the run: a process's (or an exec'ed image's). */
struct traced {
	struct tfile tf;
	char name[256];		/* in the run directory */
	pid_t pid;
	int main;		/* the one the report is about (trace.mfx) */
	int gone;		/* its process exited, or its image exec'ed */
};

/* The session: its options, the traces it follows, the RSS peak and what
 * it read there, the progress line's figures, the signals it took over. */

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
	int unopened;			/* trace files of live pids without a header yet */
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

/* The trace of the process the report is about (trace.mfx), or NULL. */
struct traced *session__main_trace(struct session *s);
/* Open trace files that appeared in the run directory. */
void session__scan_dir(struct session *s);
/* One RSS sample of every traced process. */
void session__sample_all(struct session *s);
/* 1 when pid is gone or a zombie. */
int session__process_gone(pid_t pid);

#endif /* MFX_ATTACH_SESSION_INTERNAL_H */
