/*
 * report.h - `mfx report`: from a run directory's trace to summary.json, the
 * charts, report.html and the terminal summary.
 */
#ifndef MFX_ANALYZER_REPORT_H
#define MFX_ANALYZER_REPORT_H

struct report_opts {
	const char *trace;	/* trace file inside the run dir; NULL = trace.mfx */
	int top;		/* top sites to show (default 10) */
	int quiet;		/* no progress */
	int no_charts;		/* summary.json and terminal only */
	int json;		/* print summary.json on stdout instead of the summary */
};

/* Analyse run_dir: write summary.json, the PNG charts and report.html into it
 * and print the terminal summary on stdout.  0 or -errno / -MFX_E_*. */
int report_run(const char *run_dir, const struct report_opts *o);

#endif /* MFX_ANALYZER_REPORT_H */
