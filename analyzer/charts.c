/*
 * charts.c - the report's three charts, from the model:
 *   heatmap_allocations.png   thread x size class, colour = allocating calls
 *   impact_memory_usage.png   live and cumulative allocated MB, RSS and heap
 *                             RSS against time
 *   page_occupancy.png        allocator pages at the RSS peak by how full of
 *                             live blocks they are
 *   sites_over_time.png       live bytes of the top sites against time, under
 *                             RSS and heap RSS (drawn by report.html's writer,
 *                             which follows the sites: sitetime.c)
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/chart.h"
#include "analyzer/model.h"
#include "analyzer/sitetime.h"
#include "common/util.h"

#define W 1200
#define H 700
#define MB (1024.0 * 1024.0)

static const char *size_label(unsigned c, char *buf, size_t n)
{
	uint64_t hi = c + 1 < AN_SIZE_CLASSES ? 1ull << (c + 4) : 0;
	if (!hi)
		snprintf(buf, n, ">64M");
	else if (hi >= 1 << 20)
		snprintf(buf, n, "<=%lluM", (unsigned long long)(hi >> 20));
	else if (hi >= 1 << 10)
		snprintf(buf, n, "<=%lluK", (unsigned long long)(hi >> 10));
	else
		snprintf(buf, n, "<=%llu", (unsigned long long)hi);
	return buf;
}

static const struct analysis *sort_a;

static int busiest(const void *x, const void *y)
{
	const struct thread_stat *a = &sort_a->threads[*(const uint32_t *)x];
	const struct thread_stat *b = &sort_a->threads[*(const uint32_t *)y];
	return a->allocs < b->allocs ? 1 : a->allocs > b->allocs ? -1 : 0;
}

static int heatmap(const struct model *m, const char *path)
{
	const struct analysis *a = &m->a;
	unsigned lo = AN_SIZE_CLASSES, hi = 0;
	for (unsigned c = 0; c < AN_SIZE_CLASSES; c++)
		if (a->size_count[c]) {
			if (c < lo)
				lo = c;
			hi = c;
		}
	uint32_t *idx = calloc(a->nthreads + 1, sizeof(*idx)), rows = 0;
	if (!idx)
		return -ENOMEM;
	for (uint32_t i = 0; i < a->nthreads; i++)
		if (a->threads[i].allocs)
			idx[rows++] = i;
	sort_a = a;
	qsort(idx, rows, sizeof(*idx), busiest);
	if (rows > AN_HEAT_THREADS)
		rows = AN_HEAT_THREADS;
	struct chart *c = chart_new(W, rows > 24 ? 900 : H, "Allocations by thread and size");
	if (!c) {
		free(idx);
		return -ENOMEM;
	}
	char sub[160];
	snprintf(sub, sizeof(sub), "allocating calls per thread (rows, busiest first%s) and requested size",
		 a->nthreads > AN_HEAT_THREADS ? ", 64 shown" : "");
	chart_subtitle(c, sub);
	int err = 0;
	if (lo > hi || !rows) {
		chart_axes(c, 0, 1, 0, 1, "requested size (bytes)", "thread");
		chart_note(c, "no allocations recorded");
	} else {
		size_t cols = hi - lo + 1;
		double *v = calloc(rows * cols, sizeof(*v));
		char (*rl)[64] = calloc(rows, 64), (*cl)[16] = calloc(cols, 16);
		const char **rlp = calloc(rows, sizeof(*rlp)), **clp = calloc(cols, sizeof(*clp));
		if (!v || !rl || !cl || !rlp || !clp) {
			err = -ENOMEM;
		} else {
			for (uint32_t r = 0; r < rows; r++) {
				const struct thread_stat *t = &a->threads[idx[r]];
				const char *name = trace_thread_name(m->t, t->tid);
				snprintf(rl[r], 64, "%u %s", t->tid, name ? name : "");
				rlp[r] = rl[r];
				for (size_t k = 0; k < cols; k++)
					v[r * cols + k] = (double)t->size_hist[lo + k];
			}
			for (size_t k = 0; k < cols; k++)
				clp[k] = size_label(lo + (unsigned)k, cl[k], 16);
			chart_heatmap(c, v, rows, cols, rlp, clp, "requested size (bytes)",
				      "thread (tid name)", "calls (log)");
		}
		free(v);
		free(rl);
		free(cl);
		free(rlp);
		free(clp);
	}
	if (!err)
		err = chart_save(c, path);
	chart_free(c);
	free(idx);
	return err;
}

/* The lines of the impact chart, in MiB against seconds since t0: the
 * analysis's timeline (live, cumulative allocated), the RSS samples, and
 * heap RSS where it was measured (its own x array). */
struct impact_lines {
	uint64_t t0;
	size_t n, ns, nh;		/* timeline points, samples, heap samples */
	double *x, *live, *cum;		/* n each */
	double *sx, *rss, *hx, *heap;	/* ns + 1 each */
	double xmax, ymax, cmax;
};

static void impact_lines_free(struct impact_lines *l)
{
	free(l->x);
	free(l->live);
	free(l->cum);
	free(l->sx);
	free(l->rss);
	free(l->hx);
	free(l->heap);
}

/* The timeline starts at zero before the first bucket; each bucket's
 * highest value keeps the peaks visible at any zoom. */
static void impact_timeline(const struct analysis *a, struct impact_lines *l)
{
	l->x[0] = (double)(a->tl_t0 > l->t0 ? a->tl_t0 - l->t0 : 0) / 1e9;
	for (uint32_t i = 0; i < a->ntl; i++) {
		l->x[i + 1] = (double)(a->tl[i].ts_ns - l->t0) / 1e9;
		l->live[i + 1] = (double)(a->tl[i].live_max > 0 ? a->tl[i].live_max : 0) / MB;
		l->cum[i + 1] = (double)a->tl[i].cum_alloc_bytes / MB;
		if (l->x[i + 1] > l->xmax)
			l->xmax = l->x[i + 1];
		if (l->live[i + 1] > l->ymax)
			l->ymax = l->live[i + 1];
		if (l->cum[i + 1] > l->cmax)
			l->cmax = l->cum[i + 1];
	}
}

/* RSS without mfx's own mappings; heap RSS only where measured. */
static void impact_samples(const struct trace_sample *s, struct impact_lines *l)
{
	for (size_t i = 0; i < l->ns; i++) {
		l->sx[i] = (double)(s[i].ts_ns > l->t0 ? s[i].ts_ns - l->t0 : 0) / 1e9;
		uint64_t own = s[i].v[MFX_SF_MFX_RSS] < s[i].v[MFX_SF_RSS] ? s[i].v[MFX_SF_MFX_RSS] : 0;
		l->rss[i] = (double)(s[i].v[MFX_SF_RSS] - own) / MB;
		if (l->sx[i] > l->xmax)
			l->xmax = l->sx[i];
		if (l->rss[i] > l->ymax)
			l->ymax = l->rss[i];
	}
	for (size_t i = 0; i < l->ns; i++)
		if (s[i].v[MFX_SF_HEAP_RSS]) {
			l->hx[l->nh] = l->sx[i];
			l->heap[l->nh++] = (double)s[i].v[MFX_SF_HEAP_RSS] / MB;
			if (l->heap[l->nh - 1] > l->ymax)
				l->ymax = l->heap[l->nh - 1];	/* older traces: heap and RSS from two reads */
		}
}

/* The lines of the chart, from the analysis and the trace's samples. */
static int impact_fill(const struct model *m, struct impact_lines *l)
{
	const struct analysis *a = &m->a;
	const struct trace_sample *s;
	memset(l, 0, sizeof(*l));
	l->ns = trace_samples(m->t, &s);
	l->t0 = m->info->window_start_ns ? m->info->window_start_ns : a->first_ts;
	if (a->ntl && a->tl_t0 < l->t0)
		l->t0 = a->tl_t0;
	if (l->ns && s[0].ts_ns < l->t0)
		l->t0 = s[0].ts_ns;
	l->n = a->ntl + 1;
	l->x = calloc(l->n, sizeof(double));
	l->live = calloc(l->n, sizeof(double));
	l->cum = calloc(l->n, sizeof(double));
	l->sx = calloc(l->ns + 1, sizeof(double));
	l->rss = calloc(l->ns + 1, sizeof(double));
	l->hx = calloc(l->ns + 1, sizeof(double));
	l->heap = calloc(l->ns + 1, sizeof(double));
	if (!l->x || !l->live || !l->cum || !l->sx || !l->rss || !l->hx || !l->heap)
		return -ENOMEM;
	impact_timeline(a, l);
	impact_samples(s, l);
	return 0;
}

static int impact(const struct model *m, const char *path)
{
	const struct analysis *a = &m->a;
	struct impact_lines l;
	struct chart *c = chart_new(W, H, "Memory over time");
	int err = impact_fill(m, &l);
	if (!err && !c)
		err = -ENOMEM;
	if (err)
		goto out;
	char sub[200], b1[32], b2[32];
	snprintf(sub, sizeof(sub), "pid %u: peak live %s, RSS peak %s; cumulative allocated on the right axis",
		 m->info->pid, fmt_bytes((uint64_t)(a->peak_live_bytes > 0 ? a->peak_live_bytes : 0), b1, sizeof(b1)),
		 fmt_bytes(m->rss_peak, b2, sizeof(b2)));
	chart_subtitle(c, sub);
	chart_axis2(c, 0, l.cmax > 0 ? l.cmax * 1.08 : 1, "cumulative allocated (MiB)");
	chart_axes(c, 0, l.xmax > 0 ? l.xmax : 1, 0, l.ymax > 0 ? l.ymax * 1.08 : 1,
		   "time since start (s)", "resident / live (MiB)");
	if (l.ns)
		chart_line(c, l.sx, l.rss, l.ns, CHART_RED, "RSS", 0);
	if (l.nh)
		chart_line(c, l.hx, l.heap, l.nh, CHART_ORANGE, "heap RSS (allocator mappings)", 0);
	chart_line(c, l.x, l.live, l.n, CHART_BLUE, "live (allocated, not freed)", 0);
	chart_line2(c, l.x, l.cum, l.n, CHART_GREY, "cumulative allocated (right axis)", 1);
	if (a->peak_live_ts > l.t0)
		chart_vline(c, (double)(a->peak_live_ts - l.t0) / 1e9, CHART_BLUE, "live peak");
	const struct trace_mark *mk;
	size_t nm = trace_marks(m->t, &mk);
	for (size_t i = 0; i < nm; i++)
		if (mk[i].kind == MFX_MARK_TRIM && mk[i].ts_ns > l.t0)
			chart_vline(c, (double)(mk[i].ts_ns - l.t0) / 1e9, CHART_GREEN, "malloc_trim");
	if (!a->ntl && !l.ns)
		chart_note(c, "no data recorded");
	chart_legend(c);
	err = chart_save(c, path);
out:
	impact_lines_free(&l);
	chart_free(c);
	return err;
}

static int occupancy(const struct model *m, const char *path)
{
	struct chart *c = chart_new(W, H, "Heap pages at the RSS peak, by live data");
	if (!c)
		return -ENOMEM;
	char sub[240], b1[32], b2[32];
	snprintf(sub, sizeof(sub),
		 "%llu pages mapped by the allocator, %llu resident, %llu hold live blocks; "
		 "resident but empty: about %s of %s heap RSS",
		 (unsigned long long)m->pages_mapped, (unsigned long long)m->pages_resident,
		 (unsigned long long)m->pages_with_live, fmt_bytes(m->trim_estimate, b1, sizeof(b1)),
		 fmt_bytes(m->heap_rss, b2, sizeof(b2)));
	chart_subtitle(c, sub);
	static const char *const cats[OCC_CLASSES] = {
		"no live block", "1-25% live", "26-50% live", "51-75% live", "76-100% live",
	};
	double v[OCC_CLASSES], max = 0;
	for (int i = 0; i < OCC_CLASSES; i++) {
		v[i] = (double)m->occ[i];
		if (v[i] > max)
			max = v[i];
	}
	chart_categorical(c);
	chart_axes(c, 0, 1, 0, max > 0 ? max * 1.1 : 1, "share of the 4 KiB page covered by live blocks",
		   "pages");
	if (!m->have_smaps)
		chart_note(c, "no smaps was captured at the RSS peak");
	else
		chart_bars(c, cats, v, OCC_CLASSES, CHART_TEAL, "pages", 1);
	int err = chart_save(c, path);
	chart_free(c);
	return err;
}

int model_write_charts(const struct model *m, const char *dir)
{
	char path[PATH_MAX];
	int err = heatmap(m, model_file(m, dir, "heatmap_allocations", ".png", path, sizeof(path)));
	int e2 = impact(m, model_file(m, dir, "impact_memory_usage", ".png", path, sizeof(path)));
	/* a sampled run has no page occupancy (it needs every live block) */
	int e3 = m->a.sample_mean ? 0 :
		 occupancy(m, model_file(m, dir, "page_occupancy", ".png", path, sizeof(path)));
	return err ? err : e2 ? e2 : e3;
}

/* Time zero of the time axes: the window's start, or the first event,
 * sample or timeline bucket if earlier. */
static uint64_t time_zero(const struct model *m)
{
	const struct analysis *a = &m->a;
	const struct trace_sample *s;
	size_t ns = trace_samples(m->t, &s);
	uint64_t t0 = m->info->window_start_ns ? m->info->window_start_ns : a->first_ts;
	if (a->ntl && a->tl_t0 < t0)
		t0 = a->tl_t0;
	if (ns && s[0].ts_ns < t0)
		t0 = s[0].ts_ns;
	return t0;
}

static const uint32_t site_colours[SITETIME_TOP] = {
	CHART_BLUE, CHART_GREEN, CHART_PURPLE, CHART_BROWN, CHART_TEAL, 0xbcbd22u, 0xe377c2u, CHART_GREY,
};

/* RSS and heap RSS samples (MiB) on the time axis; *ymax raised. */
static void rss_lines(struct chart *c, const struct model *m, uint64_t t0, double *buf, size_t ns)
{
	const struct trace_sample *s;
	trace_samples(m->t, &s);
	double *x = buf, *y = buf + ns, *hx = buf + 2 * ns, *hy = buf + 3 * ns;
	size_t nh = 0;
	for (size_t i = 0; i < ns; i++) {
		x[i] = (double)(s[i].ts_ns > t0 ? s[i].ts_ns - t0 : 0) / 1e9;
		uint64_t own = s[i].v[MFX_SF_MFX_RSS] < s[i].v[MFX_SF_RSS] ? s[i].v[MFX_SF_MFX_RSS] : 0;
		y[i] = (double)(s[i].v[MFX_SF_RSS] - own) / MB;
		if (s[i].v[MFX_SF_HEAP_RSS]) {
			hx[nh] = x[i];
			hy[nh++] = (double)s[i].v[MFX_SF_HEAP_RSS] / MB;
		}
	}
	if (ns)
		chart_line(c, x, y, ns, CHART_RED, "RSS", 0);
	if (nh)
		chart_line(c, hx, hy, nh, CHART_ORANGE, "heap RSS", 0);
}

int chart_sites_over_time(const struct model *m, const struct site_series *ss, const char *dir)
{
	const struct analysis *a = &m->a;
	const struct trace_sample *s;
	size_t ns = trace_samples(m->t, &s), n = ss->ntl;
	uint64_t t0 = time_zero(m);
	double *buf = calloc(4 * ns + 2 * n + 2, sizeof(double)), *x = buf + 4 * ns, *y = x + n + 1;
	struct chart *c = chart_new(W, H, "Live bytes of the top sites over time");
	int err = -ENOMEM;
	if (!buf || !c)
		goto out;
	double xmax = 0, ymax = 0;
	for (size_t i = 0; i < ns; i++) {
		double t = (double)(s[i].ts_ns > t0 ? s[i].ts_ns - t0 : 0) / 1e9;
		xmax = t > xmax ? t : xmax;
		double r = (double)s[i].v[MFX_SF_RSS] / MB;
		ymax = r > ymax ? r : ymax;
	}
	for (uint32_t i = 0; i < n; i++) {
		x[i] = (double)(a->tl[i].ts_ns - t0) / 1e9;
		xmax = x[i] > xmax ? x[i] : xmax;
		double l = (double)(a->tl[i].live_max > 0 ? a->tl[i].live_max : 0) / MB;
		ymax = l > ymax ? l : ymax;
	}
	char sub[200], b1[32];
	snprintf(sub, sizeof(sub), "pid %u: the %d sites with the highest peaks (the highest value of "
		 "each time step), under RSS, heap RSS and all live bytes", m->info->pid, ss->n);
	chart_subtitle(c, sub);
	chart_axes(c, 0, xmax > 0 ? xmax : 1, 0, ymax > 0 ? ymax * 1.08 : 1, "time since start (s)", "MiB");
	rss_lines(c, m, t0, buf, ns);
	for (uint32_t i = 0; i < n; i++)
		y[i] = (double)(a->tl[i].live_max > 0 ? a->tl[i].live_max : 0) / MB;
	if (n)
		chart_line(c, x, y, n, CHART_GREY, "all live bytes", 1);
	for (int k = 0; k < ss->n; k++) {
		for (uint32_t i = 0; i < n; i++)
			y[i] = (double)(ss->v[k][i] > 0 ? ss->v[k][i] : 0) / MB;
		char label[300];
		snprintf(label, sizeof(label), "%.60s (peak %s)", ss->site[k]->function,
			 fmt_bytes((uint64_t)ss->peak[k], b1, sizeof(b1)));
		chart_line(c, x, y, n, site_colours[k], label, 0);
	}
	if (!n && !ns)
		chart_note(c, "no data recorded");
	chart_legend(c);
	char path[PATH_MAX];
	err = chart_save(c, model_file(m, dir, "sites_over_time", ".png", path, sizeof(path)));
out:
	free(buf);
	chart_free(c);
	return err;
}
