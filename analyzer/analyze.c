/*
 * analyze.c - one streaming pass over the events (see analyze.h).
 *
 * Live blocks are kept in analyzer/livetab.h's compact open-addressing
 * table keyed by pointer (one cache line per probe; deletion by backward
 * shift: no tombstones, so long traces with heavy churn do not degrade it).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/analyze.h"
#include "analyzer/analyze_marks.h"
#include "analyzer/livetab.h"
#include "common/util.h"
#include "common/error.h"

unsigned an_size_class(uint64_t size)
{
	if (size <= 16)
		return 0;
	unsigned c = (unsigned)(64 - __builtin_clzll(size - 1)) - 4;
	return c < AN_SIZE_CLASSES ? c : AN_SIZE_CLASSES - 1;
}

uint64_t an_size_class_min(unsigned c)
{
	return c == 0 ? 0 : (1ull << (c + 3)) + 1;
}

const char *an_life_class_name(unsigned c)
{
	static const char *const n[AN_LIFE_CLASSES] = {
		"<1us", "<10us", "<100us", "<1ms", "<10ms", "<100ms", "<1s", "<10s", ">=10s",
	};
	return c < AN_LIFE_CLASSES ? n[c] : "?";
}

static unsigned life_class(uint64_t ns)
{
	unsigned c = 0;
	for (uint64_t lim = 1000; c < AN_LIFE_CLASSES - 1 && ns >= lim; lim *= 10)
		c++;
	return c;
}

/* ---- the pass state ------------------------------------------------------------ */

struct pass {
	struct analysis *a;
	struct ltab live;
	struct ltab late;		/* give-backs owed to blocks ended early (do_alloc) */
	uint32_t peak_epoch;
	unsigned site_shift;		/* per-site bucket width, 2^shift ns */
	unsigned tl_shift;		/* a->tl_width = 2^tl_shift ns */
	uint32_t sites_cap, groups_cap;
	int snap_done;
	int exiting;			/* past the EXITING mark: series frozen */
	const struct an_groups *g;	/* NULL: no groups */
};

/* Entry id of a table of figures (capacity *cap, in use *n), grown and
 * zeroed as needed; NULL without memory. */
static struct site_stat *stat_grow(struct site_stat **v, uint32_t *cap, uint32_t *n, uint32_t id)
{
	if (id >= *cap) {
		uint32_t nc = *cap ? *cap : 1024;
		while (nc <= id)
			nc *= 2;
		struct site_stat *t = realloc(*v, (size_t)nc * sizeof(*t));
		if (!t)
			return NULL;
		memset(t + *cap, 0, (size_t)(nc - *cap) * sizeof(*t));
		for (uint32_t i = *cap; i < nc; i++)
			t[i].stack = i;
		*v = t;
		*cap = nc;
	}
	if (id >= *n)
		*n = id + 1;
	return &(*v)[id];
}

static inline struct site_stat *stat_at(struct site_stat **v, uint32_t *cap, uint32_t *n,
					uint32_t id)
{
	if (__builtin_expect(id >= *cap, 0))
		return stat_grow(v, cap, n, id);
	if (id >= *n)
		*n = id + 1;
	return &(*v)[id];
}

/* The figures of stack id. */
static struct site_stat *site(struct pass *p, uint32_t id)
{
	return stat_at(&p->a->sites, &p->sites_cap, &p->a->nsites, id);
}

/* The figures of stack id's group (grouped only, else NULL). */
static struct site_stat *group(struct pass *p, uint32_t id)
{
	if (!p->g)
		return NULL;
	uint32_t gid = id < p->g->nstacks ? p->g->site_of[id] : 0;
	return stat_at(&p->a->groups, &p->groups_cap, &p->a->ngroups, gid);
}

/*
 * series[b] is the live bytes at the end of bucket b.  A change writes only
 * its own bucket (and fills the ones skipped since the site's last change,
 * series_b); the buckets after series_b hold live_bytes, written out by
 * series_fill() before the series are halved, when the exit begins (the
 * series stop there) and at the end.
 */
static void series_fill(struct site_stat *v, uint32_t n)
{
	for (uint32_t s = 0; s < n; s++) {
		for (unsigned b = v[s].series_b + 1; b < AN_SITE_BUCKETS; b++)
			v[s].series[b] = v[s].live_bytes;
		v[s].series_b = AN_SITE_BUCKETS - 1;
	}
}

static void halve_series(struct site_stat *v, uint32_t n)
{
	series_fill(v, n);
	for (uint32_t s = 0; s < n; s++) {
		v[s].series_b = AN_SITE_BUCKETS / 2 - 1;
		for (unsigned b = 0; b < AN_SITE_BUCKETS / 2; b++)
			v[s].series[b] = v[s].series[2 * b + 1];
		for (unsigned b = AN_SITE_BUCKETS / 2; b < AN_SITE_BUCKETS; b++)
			v[s].series[b] = v[s].live_bytes;
	}
}

/* Per-site series: bucket of ts, merging pairs when the window outgrows it. */
static unsigned site_bucket(struct pass *p, uint64_t ts)
{
	struct analysis *a = p->a;
	uint64_t off = ts > a->site_t0 ? ts - a->site_t0 : 0;
	while ((off >> p->site_shift) >= AN_SITE_BUCKETS) {
		halve_series(a->sites, a->nsites);
		halve_series(a->groups, a->ngroups);
		p->site_shift++;
	}
	return (unsigned)(off >> p->site_shift);
}

/*
 * live_at_peak without a second pass: the first time a site changes after
 * the global peak moved (its epoch is older than the pass's), what it held
 * then is its share of the latest peak; at the end, a site whose epoch is
 * current saved its share, any other has held the same since.
 */
static void stat_change(struct pass *p, struct site_stat *s, int64_t delta, int dblocks, unsigned b)
{
	if (s->epoch != p->peak_epoch) {	/* first change since the last peak */
		s->saved = s->live_bytes;
		s->saved_blocks = s->live_blocks;
		s->epoch = p->peak_epoch;
	}
	s->live_blocks += (uint64_t)(int64_t)dblocks;
	s->live_bytes += delta;
	if (s->live_bytes > s->peak_live)
		s->peak_live = s->live_bytes;
	if (p->exiting)
		return;		/* the series shows the program's life, not its teardown */
	/* the bucket holds the value at its end; the ones skipped since the
	 * last change, the value before this one */
	if (b > s->series_b)
		for (unsigned i = s->series_b + 1; i < b; i++)
			s->series[i] = s->live_bytes - delta;
	s->series_b = b;
	s->series[b] = s->live_bytes;
}

/* Stack id's live bytes (and its group's) change by delta, its live blocks
 * by dblocks, at time ts. */
static void site_change(struct pass *p, uint32_t id, int64_t delta, int dblocks, uint64_t ts)
{
	unsigned b = p->exiting ? 0 : site_bucket(p, ts);
	struct site_stat *s = site(p, id), *g = group(p, id);
	if (s)
		stat_change(p, s, delta, dblocks, b);
	if (g)
		stat_change(p, g, delta, dblocks, b);
}

static void tl_merge(struct analysis *a)
{
	/* pairs of buckets become one; an odd last bucket is merged alone (its
	 * pair was never filled), ending where the merged bucket ends */
	for (uint32_t i = 0; 2 * i < a->ntl; i++) {
		struct tl_point *x = &a->tl[2 * i], *y = 2 * i + 1 < a->ntl ? &a->tl[2 * i + 1] : x;
		struct tl_point m = *y;
		m.ts_ns = a->tl_t0 + (uint64_t)(i + 1) * 2 * a->tl_width;
		m.live_max = x->live_max > y->live_max ? x->live_max : y->live_max;
		m.allocs = x->allocs + (y != x ? y->allocs : 0);
		m.frees = x->frees + (y != x ? y->frees : 0);
		a->tl[i] = m;
	}
	a->ntl = (a->ntl + 1) / 2;
	a->tl_width *= 2;
}

static struct tl_point *tl_at(struct pass *p, uint64_t ts, int64_t live, uint64_t cum)
{
	struct analysis *a = p->a;
	uint64_t off = ts > a->tl_t0 ? ts - a->tl_t0 : 0;
	while ((off >> p->tl_shift) >= AN_TL_BUCKETS) {
		tl_merge(a);
		p->tl_shift++;
	}
	uint32_t b = (uint32_t)(off >> p->tl_shift);
	/* empty buckets in between carry the values on */
	for (uint32_t i = a->ntl; i <= b; i++) {
		a->tl[i].ts_ns = a->tl_t0 + (uint64_t)(i + 1) * a->tl_width;
		a->tl[i].live_bytes = a->tl[i].live_max = live;
		a->tl[i].cum_alloc_bytes = cum;
		a->tl[i].allocs = a->tl[i].frees = 0;
	}
	if (b >= a->ntl)
		a->ntl = b + 1;
	return &a->tl[b];
}

static int cmp_block(const void *x, const void *y)
{
	const struct live_block *a = x, *b = y;
	return a->ptr < b->ptr ? -1 : a->ptr > b->ptr;
}

/* The live blocks now, sorted by address. */
static int snapshot(const struct ltab *t, struct live_block **out, uint64_t *n)
{
	struct live_block *v = malloc((t->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	uint64_t k = 0;
	for (size_t i = 0; i < t->cap; i++)
		if (t->v[i].ptr)
			v[k++] = (struct live_block){ t->v[i].ptr, t->v[i].size };
	qsort(v, k, sizeof(*v), cmp_block);
	*out = v;
	*n = k;
	return 0;
}

/* ---- sampled traces -------------------------------------------------------------- */

/*
 * A block of n bytes was recorded with probability p = 1 - exp(-n / mean)
 * (Poisson sampling of bytes: preload/sample.c).  Weighing each recorded
 * block by 1/p makes every sum an unbiased estimate (Horvitz-Thompson):
 * bytes n/p, calls 1/p.  Its variance is the sum over the whole population
 * of n^2 (1-p)/p, estimated from the sample by the sum of n^2 (1-p)/p^2.
 * The live table keeps the true size; the books are kept in estimated
 * bytes, so peaks, timelines and sites come out as estimates too.
 */
static inline double sample_p(const struct analysis *a, uint64_t n)
{
	return n ? -expm1(-(double)n / (double)a->sample_mean) : 1.0;
}

/* Bytes a block of n recorded bytes stands for (n when not sampled). */
static inline uint64_t est_bytes(const struct analysis *a, uint64_t n)
{
	return a->sample_mean && n ? (uint64_t)llround((double)n / sample_p(a, n)) : n;
}

/* Calls one recorded call of n bytes stands for. */
static inline double est_calls(const struct analysis *a, uint64_t n)
{
	return a->sample_mean ? 1.0 / sample_p(a, n) : 1.0;
}

/* At the end: the estimated live blocks and the variance of the live
 * bytes, per site (and group) and in all. */
static void sampled_end(struct pass *p)
{
	struct analysis *a = p->a;
	for (size_t i = 0; i < p->live.cap; i++) {
		const struct lent *e = &p->live.v[i];
		if (!e->ptr || e->stack >= a->nsites)
			continue;
		double q = sample_p(a, e->size), b = (double)e->size / q;
		double v = b * b * (1 - q);
		struct site_stat *g = group(p, e->stack);
		a->sites[e->stack].w_live_blocks += 1 / q;
		a->sites[e->stack].live_var += v;
		if (g) {
			g->w_live_blocks += 1 / q;
			g->live_var += v;
		}
		a->live_var_end += v;
	}
}

/* Not sampled: every recorded call stands for one. */
static void exact_weights(struct site_stat *v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		v[i].w_allocs = (double)v[i].allocs;
		v[i].w_frees = (double)v[i].frees;
	}
}

static void sampled_sites(struct site_stat *v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct site_stat *s = &v[i];
		s->allocs = (uint64_t)llround(s->w_allocs);
		s->frees = (uint64_t)llround(s->w_frees);
		s->live_blocks = (uint64_t)llround(s->w_live_blocks);
	}
}

/* Counts as estimates (the recorded calls stay in nevents, api_counts). */
static void sampled_counts(struct analysis *a)
{
	double live = 0;
	for (unsigned c = 0; c < TC_NCLASSES; c++)
		a->counts[c] = (uint64_t)llround(a->w_counts[c]);
	for (uint32_t i = 0; i < a->nsites; i++)
		live += a->sites[i].w_live_blocks;
	sampled_sites(a->sites, a->nsites);
	sampled_sites(a->groups, a->ngroups);
	a->live_blocks_end = (uint64_t)llround(live);
}

/* ---- events -------------------------------------------------------------------- */

static int do_alloc(struct pass *p, const struct trace_event *ev, uint64_t ptr, uint64_t size)
{
	struct analysis *a = p->a;
	int added = 1;
	struct lent *e = ptr ? lt_put(&p->live, ptr, &added) : NULL;
	if (ptr && !e)
		return -ENOMEM;
	if (!added) {
		/* Still live in our books: its free raced with this allocation
		 * across threads (or was not seen).  End the old block here;
		 * its give-back, when it comes, is owed (lt_owe). */
		a->reused_live++;
		int64_t ob = (int64_t)est_bytes(a, e->size);
		site_change(p, e->stack, -ob, -1, ev->ts_ns);
		a->threads[e->thread].live_bytes -= ob;
		a->live_bytes_end -= ob;
		if (lt_owe(&p->late, ptr, ev->ts_ns))
			return -ENOMEM;
	}
	if (e)	/* one probe: the entry is the old block's, or new */
		*e = (struct lent){ ptr, size, ev->ts_ns, ev->stack, ev->thread };
	struct site_stat *s = site(p, ev->stack), *g = group(p, ev->stack);
	if (!s || (p->g && !g))
		return -ENOMEM;
	uint64_t b = est_bytes(a, size);
	s->allocs++;
	s->alloc_bytes += b;
	if (g) {
		g->allocs++;
		g->alloc_bytes += b;
	}
	if (a->sample_mean) {	/* else w_allocs = allocs, at the end */
		double w = est_calls(a, size);
		s->w_allocs += w;
		if (g)
			g->w_allocs += w;
	}
	site_change(p, ev->stack, (int64_t)b, 1, ev->ts_ns);
	a->threads[ev->thread].live_bytes += (int64_t)b;
	a->live_bytes_end += (int64_t)b;
	if (a->live_bytes_end > a->peak_live_bytes) {
		a->peak_live_bytes = a->live_bytes_end;
		a->peak_live_ts = ev->ts_ns;
		p->peak_epoch++;	/* every site's value now is its share of the peak */
	}
	return 0;
}

/* Free ptr; `lifetime`: count it in the lifetime histogram (real frees). */
static void do_free(struct pass *p, const struct trace_event *ev, uint64_t ptr, int lifetime)
{
	struct analysis *a = p->a;
	struct lent copy, *e = &copy;
	if (ptr && p->late.n && lt_pay(&p->late, &p->live, ptr, ev->thread, ev->ts_ns)) {
		a->late_frees++;
		return;
	}
	if (!ptr || !lt_del(&p->live, ptr, &copy)) {	/* one probe */
		a->unknown_frees++;
		return;
	}
	int64_t b = (int64_t)est_bytes(a, e->size);
	double w = est_calls(a, e->size);
	struct site_stat *s = site(p, e->stack), *g = group(p, e->stack);
	if (s)
		s->frees++;
	if (g)
		g->frees++;
	if (a->sample_mean) {	/* else w_frees = frees, at the end */
		if (s)
			s->w_frees += w;
		if (g)
			g->w_frees += w;
	}
	site_change(p, e->stack, -b, -1, ev->ts_ns);
	if (lifetime)
		a->life_count[life_class(ev->ts_ns - e->ts)]++;
	a->threads[e->thread].live_bytes -= b;
	a->live_bytes_end -= b;
	if (lifetime)	/* a free call, not a realloc's */
		a->w_counts[TC_FREE] += w;
}

/* The program began to exit: what every site holds now is what it held
 * for the program's life; what it frees from now on, its teardown. */
static void exit_began(struct pass *p)
{
	struct analysis *a = p->a;
	series_fill(a->sites, a->nsites);
	series_fill(a->groups, a->ngroups);
	p->exiting = 1;
	a->live_at_exit = a->live_bytes_end;
	for (uint32_t i = 0; i < a->nsites; i++)
		a->sites[i].live_at_exit = a->sites[i].live_bytes;
	for (uint32_t i = 0; i < a->ngroups; i++)
		a->groups[i].live_at_exit = a->groups[i].live_bytes;
}

/* trace_kind_class() as a table (kinds by number: trace/format.h) */
static const uint8_t kind_class[MFX_K_NKINDS] = {
	TC_MEMALIGN, TC_MALLOC, TC_CALLOC, TC_REALLOC, TC_REALLOC, TC_FREE, TC_MEMALIGN,
	TC_MEMALIGN, TC_MEMALIGN, TC_MEMALIGN, TC_MEMALIGN, TC_MEMALIGN, TC_MEMALIGN,
	TC_MEMALIGN, TC_MEMALIGN, TC_MEMALIGN,
};
_Static_assert(MFX_K_MALLOC == 1 && MFX_K_CALLOC == 2 && MFX_K_REALLOC == 3 &&
	       MFX_K_REALLOCARRAY == 4 && MFX_K_FREE == 5 && MFX_K_NKINDS == 16,
	       "kind_class follows trace/format.h");

static int event(struct pass *p, const struct trace_event *ev)
{
	struct analysis *a = p->a;
	struct thread_stat *th = &a->threads[ev->thread];
	enum trace_class cls = ev->kind < MFX_K_NKINDS ? (enum trace_class)kind_class[ev->kind]
						 : TC_MEMALIGN;
	if (a->have_exit && !p->exiting && ev->ts_ns > a->exit_ts)
		exit_began(p);
	a->counts[cls]++;
	a->api_counts[ev->kind]++;
	a->nevents++;
	if (!a->first_ts)
		a->first_ts = ev->ts_ns;
	a->last_ts = ev->ts_ns;
	if (a->have_rss_peak && !p->snap_done && ev->ts_ns > a->rss_peak_ts) {
		a->live_at_rss_peak = a->live_bytes_end;
		if (snapshot(&p->live, &a->peak_blocks, &a->npeak_blocks))
			return -ENOMEM;
		p->snap_done = 1;
	}
	int err = 0;
	if (cls == TC_FREE) {
		th->frees++;
		do_free(p, ev, ev->ptr, 1);
	} else if (cls == TC_REALLOC) {
		if (ev->old_ptr && (!ev->failed || ev->size == 0))
			do_free(p, ev, ev->old_ptr, 0);	/* moved, or realloc(p, 0) */
		if (!ev->failed)
			err = do_alloc(p, ev, ev->ptr, ev->size);
	} else if (!ev->failed) {
		err = do_alloc(p, ev, ev->ptr, ev->size);
	}
	if (cls != TC_FREE) {
		if (ev->failed) {
			a->failed_calls++;
		} else {
			unsigned c = an_size_class(ev->size);
			uint64_t b = est_bytes(a, ev->size);
			a->total_bytes_allocated += b;
			a->size_count[c]++;
			a->size_bytes[c] += b;
			th->allocs++;
			th->alloc_bytes += b;
			th->size_hist[c]++;
			a->w_counts[cls] += est_calls(a, ev->size);
			if (a->sample_mean) {
				double q = sample_p(a, ev->size), eb = (double)ev->size / q;
				a->alloc_var += eb * eb * (1 - q);
			}
		}
	}
	struct tl_point *tp = tl_at(p, ev->ts_ns, a->live_bytes_end, a->total_bytes_allocated);
	tp->live_bytes = a->live_bytes_end;
	if (a->live_bytes_end > tp->live_max)
		tp->live_max = a->live_bytes_end;
	tp->cum_alloc_bytes = a->total_bytes_allocated;
	if (cls == TC_FREE)
		tp->frees++;
	else
		tp->allocs++;
	return err;
}

/* At the end: every site's share of the last peak (see stat_change). */
static void peak_shares(const struct pass *p, struct site_stat *v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct site_stat *s = &v[i];
		s->live_at_peak = s->epoch == p->peak_epoch ? s->saved : s->live_bytes;
		s->live_blocks_at_peak = s->epoch == p->peak_epoch ? s->saved_blocks : s->live_blocks;
	}
}

int analyze_trace(struct trace *t, int quiet, struct analysis *a)
{
	return analyze_trace_grouped(t, quiet, NULL, a);
}

int analyze_trace_grouped(struct trace *t, int quiet, const struct an_groups *g, struct analysis *a)
{
	memset(a, 0, sizeof(*a));
	const struct trace_info *in = trace_info(t);
	struct pass p = { .a = a, .g = g };
	a->sample_mean = in->sample_bytes;
	a->nthreads = in->nthreads;
	a->threads = calloc(in->nthreads + 1, sizeof(*a->threads));
	if (!a->threads)
		return -ENOMEM;
	for (uint32_t i = 0; i < in->nthreads; i++)
		a->threads[i].tid = in->tids[i];
	an_find_exit(t, a);
	an_find_rss_peak(t, a);
	a->tl_t0 = a->site_t0 = in->start_ns;
	p.tl_shift = 17;
	a->tl_width = 1ull << p.tl_shift;	/* 131 us; doubles as the window grows */
	p.site_shift = 20;		/* ~1 ms */
	if (!site(&p, 0) || lt_init(&p.live, 12))
		return -ENOMEM;
	if (lt_init(&p.late, 4)) {
		lt_free(&p.live);
		return -ENOMEM;
	}
	struct trace_event ev;
	int err = 0, r;
	uint64_t next_progress = 4000000;
	int show = !quiet && progress_enabled();
	trace_rewind(t);
	while ((r = trace_next(t, &ev)) > 0) {
		if (!a->nevents && ev.ts_ns < a->tl_t0)
			a->tl_t0 = a->site_t0 = ev.ts_ns;
		if ((err = event(&p, &ev)))
			break;
		if (show && a->nevents >= next_progress) {
			char x[32], y[32];
			progress_show("mfx: analysing: %s of %s events", fmt_count(a->nevents, x, sizeof(x)),
				      fmt_count(in->nevents, y, sizeof(y)));
			next_progress += 4000000;
		}
	}
	if (show)
		progress_clear();
	if (r < 0 && !err)
		err = r;
	if (a->have_exit && !p.exiting)
		exit_began(&p);
	if (!p.exiting) {
		series_fill(a->sites, a->nsites);
		series_fill(a->groups, a->ngroups);
	}
	if (!p.snap_done && !err) {
		a->live_at_rss_peak = a->live_bytes_end;
		err = snapshot(&p.live, &a->peak_blocks, &a->npeak_blocks);
	}
	if (!err)
		err = snapshot(&p.live, &a->end_blocks, &a->nend_blocks);
	a->live_blocks_end = p.live.n;
	a->life_live_end = p.live.n;
	if (a->sample_mean && !err)
		sampled_end(&p);
	if (a->sample_mean) {	/* the counts too become estimates */
		sampled_counts(a);
	} else {
		exact_weights(a->sites, a->nsites);
		exact_weights(a->groups, a->ngroups);
	}
	peak_shares(&p, a->sites, a->nsites);
	peak_shares(&p, a->groups, a->ngroups);
	lt_free(&p.live);
	lt_free(&p.late);
	return err;
}

void analysis_free(struct analysis *a)
{
	free(a->threads);
	free(a->sites);
	free(a->groups);
	free(a->peak_blocks);
	free(a->end_blocks);
	memset(a, 0, sizeof(*a));
}
