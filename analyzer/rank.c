/*
 * rank.c - the model's ranked sites (model.h): by live bytes at the peak of
 * live bytes, at the end, by allocation calls; leak suspects (live bytes
 * only grew and are still held) and growth freed only by the program's
 * teardown at exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/model.h"

static const struct analysis *sort_a;

#define CMP_FIELD(name, field)								\
	static int name(const void *x, const void *y)					\
	{										\
		const struct site_stat *a = &sort_a->groups[*(const uint32_t *)x];	\
		const struct site_stat *b = &sort_a->groups[*(const uint32_t *)y];	\
		return a->field < b->field ? 1 : a->field > b->field ? -1 : 0;		\
	}
CMP_FIELD(by_live, live_bytes)
CMP_FIELD(by_allocs, allocs)
CMP_FIELD(by_peak, live_at_peak)

/* How much a site grew over the program's life (the series stops when the
 * exit began): its last value less what it held before it first had
 * anything; -1 when its live bytes ever went down. */
static int64_t growth(const struct site_stat *s)
{
	int64_t base = -1;
	for (int i = 0; i < AN_SITE_BUCKETS; i++) {
		if (i > 0 && s->series[i] < s->series[i - 1])
			return -1;
		if (base < 0 && s->series[i] > 0)
			base = i > 0 ? s->series[i - 1] : 0;
	}
	return base < 0 ? -1 : s->series[AN_SITE_BUCKETS - 1] - base;
}

/* The least growth worth a word: 5% of the peak live bytes, at most 1 MiB. */
static int64_t min_growth(const struct model *m)
{
	int64_t min = m->a.peak_live_bytes / 20;
	return min > (1 << 20) ? (1 << 20) : min;
}

/* Leak suspect: grew over the whole window and still holds it at the end. */
static int64_t leak_growth(const struct model *m, const struct site_stat *s)
{
	int64_t g = growth(s);
	if (g <= 0 || s->live_bytes <= 0 || !s->live_blocks || s->allocs < 2)
		return 0;
	int64_t kept = g - (s->series[AN_SITE_BUCKETS - 1] - s->live_bytes);	/* less the teardown's */
	return kept >= min_growth(m) && kept > 0 ? kept : 0;
}

/* Grew until the exit began and the teardown freed most of it. */
static int freed_at_exit(const struct model *m, const struct site_stat *s)
{
	if (!m->a.have_exit || s->allocs < 2 || s->live_at_exit <= 0)
		return 0;
	int64_t g = growth(s);
	return g > 0 && g >= min_growth(m) && s->live_bytes * 2 <= s->live_at_exit;
}

static void fill(struct model *m, struct rsite *r, uint32_t i)
{
	const struct site_info *v = &m->sites.v[i];
	memset(r, 0, sizeof(*r));
	r->s = &m->a.groups[i];
	r->site = v->frame;
	r->index = i;
	r->nstacks = v->nstacks;
	r->frames = v->rep_stack ? trace_stack(m->t, v->rep_stack, &r->depth) : NULL;
	r->growing = leak_growth(m, r->s) > 0;
	r->freed_at_exit = freed_at_exit(m, r->s);
}

static void rank_leaks(struct model *m, const uint32_t *idx, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct site_stat *s = &m->a.groups[idx[i]];
		int64_t g = leak_growth(m, s);
		if (g > 0 && m->n_leaks < MODEL_TOP_MAX) {
			fill(m, &m->leaks[m->n_leaks++], idx[i]);
			m->leak_growth += g;
		}
		if (freed_at_exit(m, s)) {
			if (!m->have_exit_growth ||
			    s->live_at_exit > m->exit_growth.s->live_at_exit)
				fill(m, &m->exit_growth, idx[i]);
			m->have_exit_growth = 1;
			m->exit_growth_bytes += (uint64_t)s->live_at_exit;
		}
	}
}

int model_rank_sites(struct model *m)
{
	struct analysis *a = &m->a;
	uint32_t *idx = malloc((a->ngroups + 1) * sizeof(*idx)), n = 0;
	if (!idx)
		return -ENOMEM;
	for (uint32_t i = 0; i < a->ngroups && i < m->sites.n; i++)
		if (a->groups[i].allocs)
			idx[n++] = i;
	sort_a = a;
	int top = m->top < MODEL_TOP_MAX ? m->top : MODEL_TOP_MAX;
	qsort(idx, n, sizeof(*idx), by_live);
	for (uint32_t i = 0; i < n && m->n_live < top; i++)
		if (a->groups[idx[i]].live_bytes > 0)
			fill(m, &m->by_live[m->n_live++], idx[i]);
	rank_leaks(m, idx, n);
	qsort(idx, n, sizeof(*idx), by_allocs);
	for (uint32_t i = 0; i < n && m->n_allocs < top; i++)
		fill(m, &m->by_allocs[m->n_allocs++], idx[i]);
	qsort(idx, n, sizeof(*idx), by_peak);
	for (uint32_t i = 0; i < n && m->n_peak < top; i++)
		if (a->groups[idx[i]].live_at_peak > 0)
			fill(m, &m->by_peak[m->n_peak++], idx[i]);
	free(idx);
	return 0;
}

/* The site of one stack (s: its figures, a->sites[stack]): r->site is the
 * very frame object sym_lookup() gives for one of its addresses (flame.c
 * cuts the stack there), the S->at[id]-th of its frames. */
void model_name_site(const struct model *m, const struct site_stat *s, struct rsite *r)
{
	static const struct sym_frame none = { "(no stack)", NULL, 0, NULL, 0, 0, 0, 0, -1 };
	uint32_t id = s->stack;
	memset(r, 0, sizeof(*r));
	r->s = s;
	r->site = &none;
	r->frames = trace_stack(m->t, id, &r->depth);
	if (id >= m->sites.nids || !r->frames || !m->sym)
		return;
	r->index = m->sites.site_of[id];
	r->nstacks = m->sites.v[r->index].nstacks;
	r->site = m->sites.v[r->index].frame;
	int k = m->sites.at[id], seen = 0;
	for (uint32_t i = 0; i < r->depth; i++) {
		const struct sym_frame *f;
		int nf = sym_lookup(m->sym, r->frames[i], &f);
		if (k < seen + nf) {
			r->site = &f[k - seen];
			return;
		}
		seen += nf;
	}
}

int model_site_tree(const struct model *m, const struct rsite *r, struct site_tree *t)
{
	return sites_tree(&m->sites, &m->a, r->index, t);
}

void model_stack_line(const struct model *m, const struct rsite *r, char *buf, size_t n, int max)
{
	size_t len = 0;
	buf[0] = 0;
	int shown = 0;
	for (uint32_t i = 0; r->frames && i < r->depth && shown < max; i++) {
		const struct sym_frame *f;
		int k = m->sym ? sym_lookup(m->sym, r->frames[i], &f) : 0;
		for (int j = 0; j < k && shown < max; j++, shown++) {
			char loc[256] = "";
			if (f[j].file)
				snprintf(loc, sizeof(loc), " (%s:%u)", sym_basename(f[j].file), f[j].line);
			int w = snprintf(buf + len, n - len, "%s%s%s", shown ? " < " : "", f[j].function, loc);
			if (w < 0 || (size_t)w >= n - len)
				return;
			len += (size_t)w;
		}
	}
	if (r->frames && shown >= max && len + 6 < n)
		strcat(buf, " < ...");
}
