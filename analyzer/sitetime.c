/*
 * sitetime.c - live bytes of the top sites over time (see sitetime.h).
 *
 * The analysis keeps 16 points per stack (enough for its leak test, not
 * for a chart), so the chart's series come from a second pass over the
 * events that follows only the blocks of the chosen sites: a small table
 * of their live blocks, one probe per call.  The rules are the analysis's
 * (analyze.c): an allocation at the address of a block still live ends
 * that block; realloc frees its old block unless it failed (but
 * realloc(p, 0) frees); frees of blocks never seen change nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/model.h"
#include "analyzer/sitetime.h"
#include "common/hmap.h"
#include "common/util.h"

/* ---- choosing the sites ------------------------------------------------------------- */

struct group {
	const struct sym_frame *site;
	int64_t score;		/* the sum of its stacks' own peaks: a ranking, not a figure */
};

static int by_score(const void *x, const void *y)
{
	const struct group *a = x, *b = y;
	return a->score > b->score ? -1 : a->score < b->score;
}

static int same_site(const struct sym_frame *a, const struct sym_frame *b)
{
	return a == b || (a->function == b->function && a->file == b->file && a->line == b->line);
}

static uint64_t site_hash(const struct sym_frame *f)
{
	uint64_t h = (uint64_t)(uintptr_t)f->function * 0x9E3779B97F4A7C15ull;
	h ^= (uint64_t)(uintptr_t)f->file * 0xff51afd7ed558ccdull + f->line;
	return h ^ (h >> 29);
}

/* The group of site frame f: a common/hmap.h map from a hash of the frame
 * to its group index; frames whose hashes collide take the next key.  A
 * new group when unseen.  -1: out of memory. */
static long group_of(struct group **g, size_t *ng, size_t *cap, struct hmap *h,
		     const struct sym_frame *f)
{
	for (uint64_t k = site_hash(f);; k++) {
		int added;
		uint32_t *v = hmap_put(h, k, &added);
		if (!v)
			return -1;
		if (!added && same_site((*g)[*v].site, f))
			return (long)*v;
		if (!added)
			continue;
		if (grow_array(g, cap, *ng, sizeof(**g))) {
			hmap_del(h, k, NULL);
			return -1;
		}
		(*g)[*ng] = (struct group){ f, 0 };
		*v = (uint32_t)(*ng)++;
		return (long)*v;
	}
}

/* gof[stack] = 1 + the index of its chosen site, or 0. */
static int choose(const struct model *m, struct site_series *s, uint8_t *gof)
{
	const struct analysis *a = &m->a;
	struct group *g = NULL;
	size_t ng = 0, cap = 0;
	struct hmap h;
	hmap_init(&h, sizeof(uint32_t), 1024);
	uint32_t *gi = calloc(a->nsites + 1, sizeof(*gi));
	int err = -ENOMEM;
	if (!gi)
		goto out;
	for (uint32_t i = 0; i < a->nsites; i++) {
		const struct site_stat *st = &a->sites[i];
		if (st->peak_live <= 0)
			continue;
		struct rsite r;
		model_name_site(m, st, &r);
		long k = group_of(&g, &ng, &cap, &h, r.site);
		if (k < 0)
			goto out;
		g[k].score += st->peak_live;
		gi[i] = (uint32_t)k + 1;
	}
	/* the top groups by score, and each stack's rank among them */
	uint32_t *rank = calloc(ng + 1, sizeof(*rank));
	struct group *sorted = malloc((ng + 1) * sizeof(*sorted));
	if (!rank || !sorted) {
		free(rank);
		free(sorted);
		goto out;
	}
	if (ng)	/* g is NULL without a group: memcpy(p, NULL, 0) is undefined */
		memcpy(sorted, g, ng * sizeof(*g));
	qsort(sorted, ng, sizeof(*sorted), by_score);
	s->n = ng < SITETIME_TOP ? (int)ng : SITETIME_TOP;
	for (int k = 0; k < s->n; k++) {
		s->site[k] = sorted[k].site;
		for (size_t q = 0; q < ng; q++)
			if (g[q].site == sorted[k].site)
				rank[q] = (uint32_t)k + 1;
	}
	for (uint32_t i = 0; i < a->nsites; i++)
		gof[i] = gi[i] ? (uint8_t)rank[gi[i] - 1] : 0;
	free(rank);
	free(sorted);
	err = 0;
out:
	hmap_free(&h);
	free(gi);
	free(g);
	return err;
}

/* ---- the pass ------------------------------------------------------------------------ */

/* A followed block: the map's value, keyed by its address. */
struct tblk {
	uint64_t size;
	uint8_t group;		/* 1-based */
};

/* Take p out of the map: its block, or one with group 0.  (Most calls are
 * of blocks not followed: the inline lookup answers them.) */
static struct tblk ttake(struct hmap *t, uint64_t p)
{
	struct tblk b = { 0, 0 };
	if (hmap_get(t, p))
		hmap_del(t, p, &b);
	return b;
}

struct walk {
	struct site_series *s;
	const uint8_t *gof;
	uint32_t nsites;
	struct hmap live;		/* the followed blocks by address */
	int64_t cur[SITETIME_TOP];
	uint32_t b;		/* the current bucket */
	uint64_t t0, width;
};

static void change(struct walk *w, uint8_t group, int64_t delta)
{
	int k = group - 1;
	w->cur[k] += delta;
	if (w->cur[k] > w->s->v[k][w->b])
		w->s->v[k][w->b] = w->cur[k];
	if (w->cur[k] > w->s->peak[k])
		w->s->peak[k] = w->cur[k];
}

/* Buckets the clock passed without a change carry the values on. */
static void advance(struct walk *w, uint64_t ts)
{
	uint64_t off = ts > w->t0 ? (ts - w->t0) / w->width : 0;
	uint32_t b = off < w->s->ntl ? (uint32_t)off : w->s->ntl - 1;
	for (; w->b < b; w->b++)
		for (int k = 0; k < w->s->n; k++)
			w->s->v[k][w->b + 1] = w->cur[k];
}

static int event(struct walk *w, const struct trace_event *ev)
{
	enum trace_class c = trace_kind_class(ev->kind);
	struct tblk old;
	advance(w, ev->ts_ns);
	if (c == TC_FREE || (c == TC_REALLOC && ev->old_ptr && (!ev->failed || ev->size == 0))) {
		old = ttake(&w->live, c == TC_FREE ? ev->ptr : ev->old_ptr);
		if (old.group)
			change(w, old.group, -(int64_t)old.size);
	}
	if (c == TC_FREE || ev->failed)
		return 0;
	old = ttake(&w->live, ev->ptr);	/* a block still live at this address ends */
	if (old.group)
		change(w, old.group, -(int64_t)old.size);
	uint8_t g = ev->stack < w->nsites ? w->gof[ev->stack] : 0;
	if (!g)
		return 0;
	change(w, g, (int64_t)ev->size);
	struct tblk *b = hmap_put(&w->live, ev->ptr, NULL);
	if (!b)
		return -ENOMEM;
	*b = (struct tblk){ ev->size, g };
	return 0;
}

int site_series_build(const struct model *m, int quiet, struct site_series *s)
{
	const struct analysis *a = &m->a;
	memset(s, 0, sizeof(*s));
	s->ntl = a->ntl;
	uint8_t *gof = calloc(a->nsites + 1, 1);
	int err = gof ? choose(m, s, gof) : -ENOMEM;
	for (int k = 0; !err && k < s->n; k++)
		if (!(s->v[k] = calloc(s->ntl + 1, sizeof(int64_t))))
			err = -ENOMEM;
	if (err || !s->n || !s->ntl) {
		free(gof);
		return err;
	}
	struct walk w = { .s = s, .gof = gof, .nsites = a->nsites, .t0 = a->tl_t0, .width = a->tl_width };
	hmap_init(&w.live, sizeof(struct tblk), 4096);
	struct trace_event ev;
	int r;
	if (!quiet && progress_enabled())
		progress_show("mfx: report: following the top sites over time");
	trace_rewind(m->t);
	while (!err && (r = trace_next(m->t, &ev)) > 0)
		err = event(&w, &ev);
	advance(&w, UINT64_MAX);
	progress_clear();
	hmap_free(&w.live);
	free(gof);
	return err;
}

void site_series_free(struct site_series *s)
{
	for (int k = 0; k < SITETIME_TOP; k++)
		free(s->v[k]);
	memset(s, 0, sizeof(*s));
}
