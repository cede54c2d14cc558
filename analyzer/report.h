/*
 * report.h - `mfx report`: from a run directory's trace to summary.json, the
 * charts, report.html and the terminal summary.
 */
#ifndef MFX_ANALYZER_REPORT_H
#define MFX_ANALYZER_REPORT_H

#include <stdio.h>

#include <stddef.h>
#include <stdint.h>

#define MFX_MAX_WRAPPERS 32	/* --wrapper options */

struct report_opts {
	const char *trace;	/* trace file inside the run dir; NULL = trace.mfx.  Another
				   trace's outputs are summary-<pid>.json, report-<pid>.html
				   and charts with the same suffix */
	int top;		/* top sites to show (default 10) */
	int quiet;		/* no progress, no summary */
	int no_charts;		/* summary.json and terminal only */
	int json;		/* print summary.json instead of the summary */
	FILE *out;		/* where the summary goes; NULL = stdout */
	const char *const *wrappers;	/* --wrapper REGEX: more allocation wrappers */
	int nwrappers;
	uint64_t *events;	/* when not NULL: the events the report read */
};

/* Analyse run_dir: write summary.json, the PNG charts and report.html into it
 * and print the terminal summary.  0 or -errno / -MFX_E_*; -EINVAL: a
 * --wrapper expression is not a regular expression (said on stderr). */
int report_run(const char *run_dir, const struct report_opts *o);
/* 0 when every --wrapper expression compiles, else -EINVAL with the first
 * bad one's error in err ("'x(': unmatched ( or \\(") */
int report_check_wrappers(const char *const *w, int n, char *err, size_t errn);

#endif /* MFX_ANALYZER_REPORT_H */
