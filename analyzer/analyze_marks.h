/*
 * analyze_marks.h - the moments the analyzer's pass watches for (see
 * analyze_marks.c); used by analyze.c only.
 */
#ifndef MFX_ANALYZER_ANALYZE_MARKS_H
#define MFX_ANALYZER_ANALYZE_MARKS_H

#include "analyzer/analyze.h"

/* The agent's first EXITING mark: a->have_exit, exit_ts, exit_status,
 * exit_how. */
void an_find_exit(struct trace *t, struct analysis *a);
/* The RSS peak (samples, or the kept smaps' mark): a->rss_peak_ts,
 * have_rss_peak.  After an_find_exit(). */
void an_find_rss_peak(struct trace *t, struct analysis *a);

#endif
