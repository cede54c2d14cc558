/*
 * capture.h - what `mfx launch` and `mfx attach` share: their common options
 * and the capture session that runs beside the target for the window
 * (smaps sampling, the RSS-peak `smaps`, the progress line, the end of the
 * window, finalising the traces and running the report).
 */
#ifndef MFX_ATTACH_CAPTURE_H
#define MFX_ATTACH_CAPTURE_H

#include <stdint.h>
#include <sys/types.h>

struct capture_opts {
	const char *out;		/* -o, --out DIR; NULL = results/<prog>-<pid>-<date> */
	int force;			/* --force: reuse a non-empty DIR */
	uint64_t for_ns;		/* --for DURATION; 0 = until Ctrl-C / exit */
	int no_stacks;			/* --no-stacks */
	unsigned stack_depth;		/* --stack-depth N (64) */
	uint64_t smaps_interval_ns;	/* --smaps-interval DURATION (200ms) */
	int trim_at_end;		/* --trim-at-end */
	int no_report;			/* --no-report */
	int quiet;			/* -q, --quiet */
	uint64_t sample_bytes;		/* --sample BYTES: mean bytes between samples; 0 = all */
	const char *wrappers[32];	/* --wrapper REGEX: allocation wrappers of the program */
	int nwrappers;
};

void capture_defaults(struct capture_opts *o);
struct cmdline;
/*
 * Parse the shared options of `cmd` ("launch" or "attach") from argv[1..].
 * cl == NULL (launch): stop at the first operand or after "--", and return
 * its index.  cl != NULL (attach): options before or after operands, which
 * are collected into *cl (cmdline.h); returns argc.  `help` prints the
 * command's --help screen.  -1 after printing a usage error (exit with
 * EXIT_USAGE), -2 when --help was printed (exit 0).
 */
int capture_parse(const char *cmd, int argc, char **argv, struct capture_opts *o,
		  void (*help)(void), struct cmdline *cl);

/* Text of the shared options for --help screens. */
extern const char capture_options_help[];

enum session_mode { SESSION_LAUNCH = 0, SESSION_ATTACH = 1 };
enum session_end {
	SESSION_END_DURATION = 1,	/* --for elapsed */
	SESSION_END_INTERRUPT,		/* SIGINT / SIGTERM to mfx */
	SESSION_END_EXIT,		/* the target exited */
	SESSION_END_STOPPED,		/* the agent stopped on its own */
};

struct session;

/* A session for target `pid` writing into `run_dir` (already created). */
int session_new(const struct capture_opts *o, const char *run_dir, pid_t pid,
		enum session_mode mode, struct session **out);
struct spool;
/* The spool the agents write into (trace/spool.h): the session drains it
 * while the window lasts and frees it at the end. */
int session_set_spool(struct session *s, struct spool *sp);
/* launch: the child to reap with waitpid(); its status is kept. */
void session_set_child(struct session *s, pid_t child);
/* Time the window was armed (for --for); defaults to session_new(). */
void session_window_started(struct session *s, uint64_t ts_ns);
/*
 * Run the window: sample /proc/PID/smaps_rollup every interval into the
 * trace, keep the full smaps at the RSS peak, draw the progress line, until
 * --for, Ctrl-C, the target's exit or the agent stopping.  Returns enum
 * session_end (> 0) or -errno.
 */
int session_loop(struct session *s);
/* launch: the child's wait status, once it exited (else -1). */
int session_child_status(const struct session *s);
/* Append a MARK record to the main trace (attach: ATTACH and TRIM marks). */
int session_mark(struct session *s, uint32_t kind, const uint64_t *vals, uint32_t nvals,
		 const char *text);
/* Sample RSS now (one SAMPLE record), returning rss and heap RSS. */
int session_sample_now(struct session *s, uint64_t *rss, uint64_t *heap_rss);
/* Ask every agent of the run to stop recording (header flag) and wait up to
 * timeout_ns for them to say they stopped. */
int session_stop_agents(struct session *s, uint64_t timeout_ns);
/* Stop the spool's drain thread and copy every chunk it holds into the
 * traces (attach: before the agent's channel closes). */
void session_drain(struct session *s);
/* Write `smaps`, compact the traces, run the report unless --no-report.
 * 0, or -errno when recording stopped early or its files could not be
 * written (said in one line): the command then exits 1. */
int session_finish(struct session *s, enum session_end why);
/* After session_finish: 1 if the recording itself (not the report) failed. */
int session_failed(const struct session *s);
void session_free(struct session *s);

#endif /* MFX_ATTACH_CAPTURE_H */
