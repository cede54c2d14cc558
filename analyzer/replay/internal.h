/*
 * internal.h - what the parts of Approach B share (replay__* functions):
 *
 *   opsgen.c   the trace's calls -> RUN/replay.ops (ops.h)
 *   cgen.c     replay.ops -> RUN/replay.c, the window as a plain C program
 *   runner.c   the allocators, one replay run measured from outside
 *   sweep.c    `--sweep`: the grid of allocators and settings, the ranking
 *              and the one recommendation
 *   results.c  replay.json, the terminal table, rss_comparison.png
 *   replay.c   replay_run(): the command's steps in order
 */
#ifndef MFX_ANALYZER_REPLAY_INTERNAL_H
#define MFX_ANALYZER_REPLAY_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "analyzer/replay/replay.h"

struct trace;

/* ---- opsgen.c ---------------------------------------------------------------------- */

struct gen_stats {
	uint64_t ops, blocks, skipped_frees, failed, nthreads, cross_thread;
	uint64_t implied_frees;		/* OPF_IMPLIED: in ops, not calls of the trace */
	uint64_t counts[6];
};

/* RUN/replay.ops from the trace at trace_path.  0 or -errno / -MFX_E_*. */
int replay__write_ops(const char *trace_path, const char *out, struct gen_stats *gs);

/* ---- cgen.c ------------------------------------------------------------------------ */

/* RUN/replay.c from RUN/replay.ops: the first max_calls calls of the window
 * in the recorded order; *written gets how many.  0 or -errno. */
int replay__write_c(const char *path, const char *ops_path, const char *trace_path,
		    uint64_t max_calls, uint64_t *written);

/* ---- runner.c ---------------------------------------------------------------------- */

struct allocator {
	const char *name;
	const char *libs[3];	/* first that exists; NULL: glibc itself */
	const char *pkg;
};

extern const struct allocator replay__allocators[];
extern const size_t replay__nallocators;

/* The allocator's library on this machine, NULL when not installed (and
 * for glibc, which needs none). */
const char *replay__alloc_lib(const struct allocator *a);

#define REPLAY_MAX_ENV 4

/* One way to run the replay: an allocator and its settings. */
struct replay_config {
	char name[64];		/* glibc, jemalloc, tcmalloc, mimalloc, or a library's file name */
	char lib[PATH_MAX];	/* LD_PRELOAD; "" = glibc itself */
	char knobs[256];	/* the settings as a user writes them; "" = the defaults */
	char env[REPLAY_MAX_ENV][320];	/* "NAME=VALUE" put into the run's environment */
	int nenv;
	int replay_c;		/* run RUN/replay (the generated program), not mfx-replay */
};

/* A config for allocator `name` (a known name or a library path) with
 * glibc tunables `tunables` ("M_ARENA_MAX=2", "glibc.malloc.trim_threshold=0";
 * NULL = none).  0, or -ENOENT when the allocator is not installed. */
int replay__config(struct replay_config *c, const char *name, const char *tunables);
/* Add "NAME=VALUE" to c's environment. */
void replay__config_env(struct replay_config *c, const char *name, const char *value);
/* How to apply c to the real program: "GLIBC_TUNABLES=... ", "LD_PRELOAD=...
 * MALLOC_CONF=...", or "" for glibc's defaults. */
char *replay__apply_line(const struct replay_config *c, char *buf, size_t n);
/* "jemalloc dirty_decay_ms:0", "glibc", "glibc M_ARENA_MAX=2 (replay.c)". */
char *replay__label(const struct replay_config *c, char *buf, size_t n);

struct tl_pt {
	double s, mib;		/* seconds since the replay's exec, RssAnon */
};

struct run_row {
	struct replay_config cfg;
	char json[2048];	/* the replayer's line, without its closing brace */
	uint64_t rss_peak, rss_end, ops, wall_ns;
	int64_t peak_live;
	uint64_t threads_alive_max, threads_overlap_max;
	char smaps[300];	/* its smaps_replay file */
	struct tl_pt *tl;	/* RSS timeline, sampled from outside */
	size_t ntl, captl;
	int ok, cut;
};

struct run_bounds {
	uint64_t max_ops, max_live;	/* UINT64_MAX: none */
};

/* Run `bin` (mfx-replay or RUN/replay) once on `ops` under config c,
 * sample its RSS from outside and copy its smaps at the highest RSS into
 * smaps_path (NULL: none); its JSON line and figures into row.
 * 0 or -errno / -MFX_E_REMOTE (it failed or printed nothing). */
int replay__run_one(const char *bin, const char *ops, const struct replay_config *c,
		    const struct run_bounds *b, const char *smaps_path, struct run_row *row);
/* Run argv (PATH searched), its output to /dev/null: its exit status, or -1. */
int replay__run_quiet(const char *const *argv);

/* ---- sweep.c ----------------------------------------------------------------------- */

/* The sweep's configs (glibc with its defaults first) for the installed
 * allocators, into a malloc'ed array.  0 or -ENOMEM. */
int replay__sweep_configs(struct replay_config **out, int *n);

#define SWEEP_MIN_SAVING 0.05	/* below 5% an RSS difference is noise between runs */
#define SWEEP_MAX_COST 0.25	/* a setting that slows the calls by more is not worth it */
#define SWEEP_CONFIRM 3		/* alternating runs of the defaults and the candidate */
#define SWEEP_TIME_FLOOR_NS 5000000ull	/* shorter replays are too short to judge a cost by */

struct sweep_pick {
	int have;			/* a setting is recommended */
	int row;			/* its row */
	int base;			/* the defaults' row (glibc), -1 if none */
	uint64_t base_peak, pick_peak;	/* RSS peaks: medians of the confirming runs */
	uint64_t base_end, pick_end;
	uint64_t base_wall, pick_wall;
	double peak_pct, end_pct, time_pct;	/* the candidate against the defaults */
	char why[240];			/* when nothing is recommended: why */
};

/* Rank the rows (rank[] gets row indices: lowest RSS peak first, then
 * RSS end, then time; runs cut short or of replay.c last), then confirm
 * the best candidates in turn with SWEEP_CONFIRM alternating runs against
 * the defaults (medians): the first that saves at least SWEEP_MIN_SAVING
 * of the RSS peak at a time cost of at most SWEEP_MAX_COST is the pick. */
void replay__sweep_rank(const struct run_row *rows, int nrows, int *rank);
void replay__sweep_pick(const char *bin, const char *ops, const struct run_bounds *b,
			const struct run_row *rows, int nrows, const int *rank, int quiet,
			struct sweep_pick *p);

/* ---- results.c --------------------------------------------------------------------- */

struct replay_summary {
	const struct gen_stats *gs;
	uint64_t c_calls;		/* calls in replay.c */
	int compiled;
	const int *rank;		/* sweep: the ranking, NULL without --sweep */
	const struct sweep_pick *pick;
	uint64_t orig_heap_peak;	/* the original's highest heap RSS */
	int have_trim;			/* a live malloc_trim was measured */
	uint64_t trim_rss_before, trim_rss_after;
};

/* The original's figures from its trace: heap RSS peak, measured trim. */
void replay__original(const struct trace *t, struct replay_summary *s);
int replay__write_json(const char *path, const struct run_row *rows, int nrows,
		       const struct replay_summary *s);
void replay__print_table(const struct run_row *rows, int nrows, const struct replay_summary *s);
void replay__print_sweep(const struct run_row *rows, int nrows, const struct replay_summary *s);
/* rank: the sweep's ranking (the best ranked are drawn), or NULL. */
int replay__chart(const char *dir, const struct trace *t, const struct run_row *rows, int nrows,
		  const int *rank);

#endif /* MFX_ANALYZER_REPLAY_INTERNAL_H */
