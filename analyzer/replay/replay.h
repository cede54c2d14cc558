/*
 * replay.h - Approach B (replay.c): the captured window's calls replayed
 * under other allocators and glibc tunables, measured from outside.
 */
#ifndef MFX_ANALYZER_REPLAY_H
#define MFX_ANALYZER_REPLAY_H

#include <stdint.h>

#define REPLAY_MAX_TUNABLES 8

struct replay_opts {
	const char *allocators;		/* --allocator LIST (names or a .so path); NULL = all */
	const char *tunables[REPLAY_MAX_TUNABLES];	/* --tunable T, replayed under glibc */
	int ntunables;
	uint64_t max_ops;		/* --max-ops N; UINT64_MAX = every call */
	uint64_t max_live_bytes;	/* --max-live-bytes SIZE; UINT64_MAX = no bound */
	uint64_t c_max_calls;		/* --c-max-calls N (50000) */
	int no_compile;			/* --no-compile */
	int sweep;			/* --sweep: the grid of sweep.c, ranked, one recommendation */
	int quiet;			/* -q */
};

/*
 * Replay the trace of run directory `dir` as `o` says: write replay.ops,
 * replay.c (and replay), replay.json, smaps_replay*, rss_comparison.png,
 * print the comparison table on stdout (ranked, with one recommendation,
 * under --sweep), refresh report.html.  The names in
 * o->allocators are known ones or readable paths (the caller checked).
 * Prints its own errors; returns the command's exit status.
 */
int replay_run(const char *dir, const struct replay_opts *o);

#endif /* MFX_ANALYZER_REPLAY_H */
