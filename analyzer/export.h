/*
 * export.h - the trace in other formats (export.c): the seed's CSV
 * (mftrace_log.csv: one row per counted call, in time order) and folded
 * stacks (stacks.folded: one "root;...;leaf weight" line per stack, for
 * flamegraph.pl, speedscope, inferno).
 */
#ifndef MFX_ANALYZER_EXPORT_H
#define MFX_ANALYZER_EXPORT_H

#include <stdio.h>

struct trace;

/* What a folded stack's number is. */
enum export_weight {
	W_LIVE,		/* bytes still live at the end of the window */
	W_ALLOC,	/* bytes allocated */
	W_COUNT,	/* allocating calls */
};

/* The CSV, header line first.  0 or -errno / -MFX_E_*. */
int export_csv(struct trace *t, FILE *f);
/* Folded stacks weighted by w; quiet: no progress.  0 or -errno / -MFX_E_*. */
int export_folded(struct trace *t, enum export_weight w, int quiet, FILE *f);

#endif /* MFX_ANALYZER_EXPORT_H */
