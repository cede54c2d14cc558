/*
 * analyze_marks.c - what the analyzer's pass needs to know before the
 * events (analyze.c): when the program began to exit and when its RSS
 * peaked, from the trace's marks and samples.
 */
#include "analyzer/analyze_marks.h"

/* The agent's EXITING mark (the first one: exit() may be called again by
 * a handler). */
void an_find_exit(struct trace *t, struct analysis *a)
{
	const struct trace_mark *m;
	size_t n = trace_marks(t, &m);
	for (size_t i = 0; i < n && !a->have_exit; i++)
		if (m[i].kind == MFX_MARK_EXITING && m[i].nvals >= 2) {
			a->have_exit = 1;
			a->exit_ts = m[i].ts_ns;
			a->exit_status = (int64_t)m[i].vals[0];
			a->exit_how = (uint32_t)m[i].vals[1];
		}
}

void an_find_rss_peak(struct trace *t, struct analysis *a)
{
	const struct trace_sample *s;
	size_t n = trace_samples(t, &s);
	uint64_t best = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i].v[MFX_SF_RSS] > best) {
			best = s[i].v[MFX_SF_RSS];
			a->rss_peak_ts = s[i].ts_ns;
			a->have_rss_peak = 1;
		}
	const struct trace_mark *m;
	n = trace_marks(t, &m);
	for (size_t i = 0; i < n; i++) {
		/* The kept smaps is what fragmentation is measured on: the live
		 * blocks must be taken at its time (0: at exit, i.e. the end). */
		if (m[i].kind != MFX_MARK_RSS_PEAK || m[i].nvals < 3 || !m[i].vals[0])
			continue;
		/* 0: the agent's copy at the program's exit, read when the exit
		 * began (or, without the EXITING mark, after the last event) */
		a->rss_peak_ts = m[i].vals[2] ? m[i].vals[2] : a->exit_ts;
		a->have_rss_peak = a->rss_peak_ts != 0;
	}
}
