/*
 * results.c - what a replay run leaves: replay.json (one object per run,
 * one run per line; the sweep's ranking and recommendation), the terminal
 * table, and rss_comparison.png (the original's heap RSS against each
 * replay's RSS, on one axis of progress).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/chart.h"
#include "analyzer/replay/internal.h"
#include "common/json.h"
#include "common/util.h"
#include "trace/reader.h"

void replay__original(const struct trace *t, struct replay_summary *s)
{
	const struct trace_sample *sm;
	size_t ns = trace_samples(t, &sm);
	for (size_t i = 0; i < ns; i++)
		if (sm[i].v[MFX_SF_HEAP_RSS] > s->orig_heap_peak)
			s->orig_heap_peak = sm[i].v[MFX_SF_HEAP_RSS];
	const struct trace_mark *mk;
	size_t nm = trace_marks(t, &mk);
	for (size_t i = 0; i < nm; i++)
		if (mk[i].kind == MFX_MARK_TRIM && mk[i].nvals >= 4) {
			s->have_trim = 1;
			s->trim_rss_before = mk[i].vals[0];
			s->trim_rss_after = mk[i].vals[1];
		}
}

/* ---- replay.json -------------------------------------------------------------------- */

/* One row: mfx's fields, then the replayer's, then what mfx measured. */
static void write_row(FILE *f, const struct run_row *row)
{
	char apply[1600];
	/* the replayer's line starts {"replayer": "X", ...: ours goes first */
	const char *j = strstr(row->json, "\", ");
	j = j ? j + 3 : "";
	fprintf(f, "{\"allocator\": ");
	json_quote(f, row->cfg.name);
	fprintf(f, ", \"tunables\": ");
	json_quote(f, row->cfg.knobs);
	fprintf(f, ", \"apply\": ");
	json_quote(f, replay__apply_line(&row->cfg, apply, sizeof(apply)));
	fprintf(f, ", \"replayer\": \"%s\", ", row->cfg.replay_c ? "replay.c" : "native");
	fprintf(f, "%s, \"rss_peak_bytes\": %llu, \"rss_end_bytes\": %llu, \"smaps\": \"%s\", "
		   "\"rss_samples\": %zu, \"rss_timeline\": [", j,
		(unsigned long long)row->rss_peak, (unsigned long long)row->rss_end, row->smaps,
		row->ntl);
	/* at most 400 points: each the highest sample of its stretch */
	size_t step = row->ntl > 400 ? (row->ntl + 399) / 400 : 1;
	for (size_t i = 0, k = 0; i < row->ntl; i += step, k++) {
		double m = 0, t = row->tl[i].s;
		for (size_t q = i; q < i + step && q < row->ntl; q++)
			if (row->tl[q].mib > m)
				m = row->tl[q].mib;
		fprintf(f, "%s[%.4f, %llu]", k ? ", " : "", t, (unsigned long long)(m * 1048576.0));
	}
	fprintf(f, "]}");
}

/* "GLIBC_TUNABLES=glibc.malloc.arena_max=2: RSS peak -31%, time +2%" */
static char *pick_text(const struct run_row *rows, const struct sweep_pick *p, char *buf, size_t n)
{
	char apply[1600];
	replay__apply_line(&rows[p->row].cfg, apply, sizeof(apply));
	snprintf(buf, n, "%s: RSS peak %+.0f%%, time %+.0f%%", apply, p->peak_pct, p->time_pct);
	return buf;
}

static void write_sweep(FILE *f, const struct run_row *rows, int nrows, const int *jidx,
			const struct replay_summary *s)
{
	const struct sweep_pick *p = s->pick;
	fprintf(f, ",\n \"sweep\": {\"ranking\": [");
	for (int i = 0, k = 0; i < nrows; i++)
		if (jidx[s->rank[i]] >= 0)
			fprintf(f, "%s%d", k++ ? ", " : "", jidx[s->rank[i]]);
	fprintf(f, "],\n  \"min_saving_pct\": %.0f, \"max_time_cost_pct\": %.0f, \"confirm_runs\": %d,\n",
		SWEEP_MIN_SAVING * 100, SWEEP_MAX_COST * 100, SWEEP_CONFIRM);
	if (p->have) {
		char text[2000], apply[1600], label[400];
		fprintf(f, "  \"recommendation\": {\"run\": %d, \"label\": ", jidx[p->row]);
		json_quote(f, replay__label(&rows[p->row].cfg, label, sizeof(label)));
		fprintf(f, ", \"apply\": ");
		json_quote(f, replay__apply_line(&rows[p->row].cfg, apply, sizeof(apply)));
		fprintf(f, ", \"text\": ");
		json_quote(f, pick_text(rows, p, text, sizeof(text)));
		fprintf(f, ",\n   \"rss_peak_bytes\": %llu, \"rss_end_bytes\": %llu, \"wall_ns\": %llu, "
			   "\"baseline\": {\"rss_peak_bytes\": %llu, \"rss_end_bytes\": %llu, \"wall_ns\": %llu},\n"
			   "   \"rss_peak_change_pct\": %.1f, \"rss_end_change_pct\": %.1f, "
			   "\"time_change_pct\": %.1f},\n",
			(unsigned long long)p->pick_peak, (unsigned long long)p->pick_end,
			(unsigned long long)p->pick_wall, (unsigned long long)p->base_peak,
			(unsigned long long)p->base_end, (unsigned long long)p->base_wall, p->peak_pct,
			p->end_pct, p->time_pct);
	} else {
		fprintf(f, "  \"recommendation\": null, \"why\": ");
		json_quote(f, p->why);
		fprintf(f, ",\n");
	}
	fprintf(f, "  \"live_trim\": {\"measured\": %s, \"rss_before_bytes\": %llu, \"rss_after_bytes\": %llu, "
		   "\"released_bytes\": %llu}}", s->have_trim ? "true" : "false",
		(unsigned long long)s->trim_rss_before, (unsigned long long)s->trim_rss_after,
		(unsigned long long)(s->trim_rss_before > s->trim_rss_after ?
				     s->trim_rss_before - s->trim_rss_after : 0));
}

int replay__write_json(const char *path, const struct run_row *rows, int nrows,
		       const struct replay_summary *s)
{
	char tmp[PATH_MAX + 8];
	FILE *f = fopen_replace(path, tmp, sizeof(tmp));
	int *jidx = calloc((size_t)nrows + 1, sizeof(*jidx));	/* row -> index in "runs" */
	if (!f || !jidx) {
		int err = f ? -ENOMEM : -errno;
		free(jidx);
		return f ? fclose_replace(f, tmp, path, err) : err;
	}
	fprintf(f, "{\"runs\": [\n");
	for (int i = 0, k = 0; i < nrows; i++) {
		jidx[i] = rows[i].ok ? k : -1;
		if (!rows[i].ok)
			continue;
		fputs(k++ ? ",\n  " : "  ", f);
		write_row(f, &rows[i]);
	}
	const struct gen_stats *gs = s->gs;
	fprintf(f, "\n],\n \"trace_ops\": %llu, \"skipped_frees\": %llu, \"failed_calls\": %llu, "
		   "\"cross_thread_frees\": %llu, \"implied_frees\": %llu, \"replay_c_calls\": %llu, "
		   "\"replay_compiled\": %s, "
		   "\"original_heap_rss_peak_bytes\": %llu",
		(unsigned long long)(gs->ops - gs->implied_frees), (unsigned long long)gs->skipped_frees,
		(unsigned long long)gs->failed, (unsigned long long)gs->cross_thread,
		(unsigned long long)gs->implied_frees, (unsigned long long)s->c_calls, s->compiled ? "true" : "false",
		(unsigned long long)s->orig_heap_peak);
	if (s->rank)
		write_sweep(f, rows, nrows, jidx, s);
	fprintf(f, "}\n");
	free(jidx);
	return fclose_replace(f, tmp, path, 0);
}

static double pct_of(uint64_t x, uint64_t base)
{
	return base ? 100.0 * ((double)x - (double)base) / (double)base : 0;
}

/* ---- the terminal ------------------------------------------------------------------- */

static void print_row(const struct run_row *r, const struct run_row *base, int rank)
{
	char n[400], a[32], b[32], d[32], e[32], pk[16] = "", tm[16] = "";
	if (base && base != r && base->rss_peak && base->wall_ns) {
		snprintf(pk, sizeof(pk), "%+.0f%%", pct_of(r->rss_peak, base->rss_peak));
		snprintf(tm, sizeof(tm), "%+.0f%%", pct_of(r->wall_ns, base->wall_ns));
	}
	replay__label(&r->cfg, n, sizeof(n));
	if (rank)
		printf("%3d. ", rank);
	printf("%-*s %11s %6s %11s %11s %10s %6s\n", rank ? 40 : 45, n,
	       fmt_bytes(r->rss_peak, a, sizeof(a)), pk, fmt_bytes(r->rss_end, b, sizeof(b)),
	       fmt_bytes((uint64_t)(r->peak_live > 0 ? r->peak_live : 0), d, sizeof(d)),
	       fmt_duration(r->wall_ns, e, sizeof(e)), tm);
}

void replay__print_table(const struct run_row *rows, int nrows, const struct replay_summary *s)
{
	char hb[32];
	int base = -1;
	for (int i = 0; i < nrows && base < 0; i++)
		if (rows[i].ok && !rows[i].cfg.replay_c && !strcmp(rows[i].cfg.name, "glibc") &&
		    !rows[i].cfg.knobs[0])
			base = i;
	printf("original heap RSS peak: %s\n", fmt_bytes(s->orig_heap_peak, hb, sizeof(hb)));
	printf("%-*s %11s %6s %11s %11s %10s %6s\n", s->rank ? 45 : 45, "replayed under", "RSS peak",
	       "", "RSS end", "live peak", "time", "");
	for (int i = 0; i < nrows; i++) {
		int r = s->rank ? s->rank[i] : i;
		if (rows[r].ok)
			print_row(&rows[r], base >= 0 ? &rows[base] : NULL, s->rank ? i + 1 : 0);
	}
	if (s->rank || base < 0)
		return;
	int best = -1;
	for (int i = 0; i < nrows; i++)
		if (rows[i].ok && !rows[i].cfg.replay_c && (best < 0 || rows[i].rss_peak < rows[best].rss_peak))
			best = i;
	if (best >= 0 && best != base && rows[base].rss_peak > rows[best].rss_peak) {
		char a[32], l[400];
		printf("lowest RSS peak: %s, %s (%.0f%%) below glibc's\n",
		       replay__label(&rows[best].cfg, l, sizeof(l)),
		       fmt_bytes(rows[base].rss_peak - rows[best].rss_peak, a, sizeof(a)),
		       -pct_of(rows[best].rss_peak, rows[base].rss_peak));
	}
}

void replay__print_sweep(const struct run_row *rows, int nrows, const struct replay_summary *s)
{
	const struct sweep_pick *p = s->pick;
	char a[32], b[32], text[2000];
	(void)nrows;
	if (p->have) {
		printf("\nrecommended: %s\n", pick_text(rows, p, text, sizeof(text)));
		char c[32], d[32], e[32], f[32];
		printf("  RSS peak %s -> %s, RSS end %s -> %s, time %s -> %s: medians of %d alternating\n"
		       "  replays against glibc's defaults\n",
		       fmt_bytes(p->base_peak, a, sizeof(a)), fmt_bytes(p->pick_peak, b, sizeof(b)),
		       fmt_bytes(p->base_end, c, sizeof(c)), fmt_bytes(p->pick_end, d, sizeof(d)),
		       fmt_duration(p->base_wall, e, sizeof(e)), fmt_duration(p->pick_wall, f, sizeof(f)),
		       SWEEP_CONFIRM);
	} else {
		printf("\nno recommendation: %s\n", p->why);
	}
	if (s->have_trim)
		printf("  beside a live mfx trim, which released %s (RSS %s -> %s)\n",
		       fmt_bytes(s->trim_rss_before > s->trim_rss_after ?
				 s->trim_rss_before - s->trim_rss_after : 0, text, sizeof(text)),
		       fmt_bytes(s->trim_rss_before, a, sizeof(a)), fmt_bytes(s->trim_rss_after, b, sizeof(b)));
	else
		printf("  (no live trim was measured: 'mfx trim PID' or 'mfx attach --trim-at-end' shows what "
		       "malloc_trim gives back in the running process)\n");
}

/* ---- the chart ---------------------------------------------------------------------- */

static const uint32_t run_colours[] = { CHART_ORANGE, CHART_GREEN, CHART_RED, CHART_PURPLE,
					CHART_TEAL, CHART_GREY, CHART_BROWN };
#define CHART_MAX_RUNS 7	/* more lines than that are a tangle */

/* The original's heap RSS over its window, on 0-100% of it. */
static size_t original_line(const struct trace *t, double *ox, double *oy, double *max)
{
	const struct trace_sample *sm;
	size_t ns = trace_samples(t, &sm), no = 0;
	const struct trace_info *ti = trace_info(t);
	uint64_t t0 = ti->window_start_ns, t1 = ti->window_end_ns;
	if ((!t0 || !t1 || t1 <= t0) && ns) {
		t0 = sm[0].ts_ns;
		t1 = sm[ns - 1].ts_ns;
	}
	for (size_t i = 0; i < ns; i++) {
		if (sm[i].ts_ns < t0 || sm[i].ts_ns > t1 + 1000000000ull || !sm[i].v[MFX_SF_HEAP_RSS])
			continue;	/* (a sample without smaps has no heap figure) */
		double x = t1 > t0 ? 100.0 * (double)(sm[i].ts_ns - t0) / (double)(t1 - t0) : 0;
		ox[no] = x > 100 ? 100 : x;
		oy[no] = (double)sm[i].v[MFX_SF_HEAP_RSS] / 1048576.0;
		if (oy[no] > *max)
			*max = oy[no];
		no++;
	}
	return no;
}

static void replay_line(struct chart *c, const struct run_row *r, uint32_t colour)
{
	double *x = calloc(2 * r->ntl, sizeof(double)), *y = x + r->ntl;
	if (!x)
		return;
	double d = r->tl[r->ntl - 1].s;
	for (size_t j = 0; j < r->ntl; j++) {
		x[j] = d > 0 ? 100.0 * r->tl[j].s / d : 0;
		y[j] = r->tl[j].mib;
	}
	char label[400], l[300];
	snprintf(label, sizeof(label), "%s (B)", replay__label(&r->cfg, l, sizeof(l)));
	chart_line(c, x, y, r->ntl, colour, label, 0);
	free(x);
}

/* RSS against progress through each run (0-100% of its own duration): the
 * original's heap RSS (and after malloc_trim: Approach A) and the replays'
 * (Approach B; with a ranking, the defaults and the best ranked). */
int replay__chart(const char *dir, const struct trace *t, const struct run_row *rows, int nrows,
		  const int *rank)
{
	const struct trace_sample *sm;
	size_t ns = trace_samples(t, &sm);
	double max = 0, trim_after = -1;
	double *ox = calloc(ns + 1, sizeof(double)), *oy = calloc(ns + 1, sizeof(double));
	struct chart *c = chart_new(1200, 700, "Allocator RSS: the original against its replays");
	int err = -ENOMEM, shown[CHART_MAX_RUNS], nshown = 0;
	if (!ox || !oy || !c)
		goto out;
	size_t no = original_line(t, ox, oy, &max);
	const struct trace_mark *mk;
	size_t nm = trace_marks(t, &mk);
	for (size_t i = 0; i < nm; i++)
		if (mk[i].kind == MFX_MARK_TRIM && mk[i].nvals >= 4)
			trim_after = (double)mk[i].vals[3] / 1048576.0;
	for (int i = 0; i < nrows && nshown < CHART_MAX_RUNS; i++) {
		int r = rank ? rank[i] : i;
		if (rows[r].ok && rows[r].ntl)
			shown[nshown++] = r;
	}
	for (int i = 0; i < nshown; i++)
		for (size_t k = 0; k < rows[shown[i]].ntl; k++)
			if (rows[shown[i]].tl[k].mib > max)
				max = rows[shown[i]].tl[k].mib;
	chart_subtitle(c, rank ? "A: the original's heap RSS (and after malloc_trim); B: the best "
				 "ranked replays, RssAnon sampled from outside"
			       : "A: the original's heap RSS (and after malloc_trim); B: the same calls "
				 "replayed, RssAnon sampled from outside");
	chart_axes(c, 0, 100, 0, max > 0 ? max * 1.1 : 1, "progress through the run (% of its duration)",
		   "RSS (MiB)");
	if (no)
		chart_line(c, ox, oy, no, CHART_BLUE, "original heap RSS (A)", 0);
	if (trim_after >= 0) {
		double tx[2] = { 90, 100 }, ty[2] = { trim_after, trim_after };
		chart_line(c, tx, ty, 2, CHART_BLUE, "original after malloc_trim (A)", 1);
	}
	for (int i = 0; i < nshown; i++)
		replay_line(c, &rows[shown[i]], run_colours[i % CHART_MAX_RUNS]);
	if (!no && !nshown)
		chart_note(c, "no RSS samples");
	chart_legend(c);
	char path[PATH_MAX];
	err = chart_save(c, path_join(path, sizeof(path), dir, "rss_comparison.png"));
out:
	chart_free(c);
	free(ox);
	free(oy);
	return err;
}
