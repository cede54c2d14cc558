/*
 * flame.c - building the allocation call tree (see flame.h).
 *
 * Each stack's path is walked from its outermost frame in, creating a child
 * per function name under its parent (a map keyed by parent and name
 * pointer: names are interned by the symbolizer, so the pointer is the
 * name), adding the stack's figures to every node on the
 * path.  Then, if the tree is larger than FLAME_BUDGET, the nodes are
 * ranked by their largest share of any figure's total; a child's share is
 * never above its parent's, so keeping the top FLAME_BUDGET - (folds) keeps
 * a tree, and the rest of each parent's children are summed into one
 * "(N more)" node.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/flame.h"
#include "analyzer/model.h"
#include "common/hmap.h"
#include "common/util.h"

/* Children by (parent, name) in a common/hmap.h map: its key is a mix of
 * the two, an entry holds both; two pairs whose mixes collide take the
 * next key. */
struct kid {
	uint32_t parent, node;
	const char *name;
};

struct builder {
	struct flame *f;
	size_t cap;
	struct hmap kids;
};

static uint64_t hkey(uint32_t parent, const char *name)
{
	uint64_t k = ((uint64_t)(uintptr_t)name * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)parent << 1);
	return k ^ (k >> 31);
}

/* The child `fr` of node parent, made if new; 0 when out of memory. */
static uint32_t child(struct builder *b, uint32_t parent, const struct sym_frame *fr)
{
	for (uint64_t k = hkey(parent, fr->function);; k++) {
		int added;
		struct kid *e = hmap_put(&b->kids, k, &added);
		if (!e)
			return 0;
		if (!added) {
			if (e->parent == parent && e->name == fr->function)
				return e->node;
			continue;
		}
		if (grow_array(&b->f->n, &b->cap, b->f->count, sizeof(*b->f->n))) {
			hmap_del(&b->kids, k, NULL);
			return 0;
		}
		uint32_t id = b->f->count++;
		b->f->n[id] = (struct flame_node){ parent, fr->function, fr->file, fr->line, fr->module, 0,
						   { 0 } };
		*e = (struct kid){ parent, id, fr->function };
		return id;
	}
}

static void add(struct flame_node *n, const uint64_t *v)
{
	for (int k = 0; k < FLAME_METRICS; k++)
		n->v[k] += v[k];
}

/* One stack's path, outermost frame first, down to its site's frame. */
static int add_stack(struct builder *b, const struct model *m, const struct site_stat *s)
{
	uint64_t v[FLAME_METRICS] = { (uint64_t)(s->live_at_peak > 0 ? s->live_at_peak : 0),
				      (uint64_t)(s->live_bytes > 0 ? s->live_bytes : 0), s->alloc_bytes,
				      s->allocs };
	struct rsite r;
	model_name_site(m, s, &r);
	uint32_t node = 0;
	add(&b->f->n[0], v);
	if (!r.frames || !m->sym) {
		static const struct sym_frame none = { .function = "[no stack]", .module_index = -1 };
		if (!(node = child(b, 0, &none)))
			return -ENOMEM;
		add(&b->f->n[node], v);
		return 0;
	}
	for (uint32_t k = r.depth; k-- > 0;) {
		const struct sym_frame *fr;
		int nf = sym_lookup(m->sym, r.frames[k], &fr);
		int site_here = r.site >= fr && r.site < fr + nf;
		int stop = site_here ? (int)(r.site - fr) : 0;
		for (int i = nf; i-- > stop;) {	/* the function inlined into comes first */
			if (!(node = child(b, node, &fr[i])))
				return -ENOMEM;
			add(&b->f->n[node], v);
		}
		if (site_here)
			break;
	}
	return 0;
}

/* ---- folding the small nodes -------------------------------------------------------- */

static double *sort_share;

static int by_share(const void *x, const void *y)
{
	double a = sort_share[*(const uint32_t *)x], b = sort_share[*(const uint32_t *)y];
	return a > b ? -1 : a < b;
}

/* Largest share of any figure's total, per node. */
static double *shares(const struct flame *f)
{
	double *sh = malloc((f->count + 1) * sizeof(*sh));
	if (!sh)
		return NULL;
	for (uint32_t i = 0; i < f->count; i++) {
		sh[i] = 0;
		for (int k = 0; k < FLAME_METRICS; k++)
			if (f->n[0].v[k]) {
				double s = (double)f->n[i].v[k] / (double)f->n[0].v[k];
				if (s > sh[i])
					sh[i] = s;
			}
	}
	sh[0] = 2;	/* the root stays */
	return sh;
}

/* Keep the nodes of the highest shares; per parent, one "(N more)" node
 * sums the children that go.  Parents come before children throughout. */
static int fold(struct flame *f)
{
	double *sh = shares(f);
	uint32_t *idx = malloc((f->count + 1) * sizeof(*idx)), *map = malloc((f->count + 1) * sizeof(*map));
	uint32_t *more = calloc(f->count + 1, sizeof(*more));	/* parent (old id) -> its fold (new id + 1) */
	struct flame_node *out = calloc(FLAME_BUDGET + 1, sizeof(*out));
	int err = -ENOMEM;
	if (!sh || !idx || !map || !more || !out)
		goto out;
	for (uint32_t i = 0; i < f->count; i++)
		idx[i] = i;
	sort_share = sh;
	qsort(idx, f->count, sizeof(*idx), by_share);
	/* room for the folds: at most one per kept node that loses a child */
	double cut = sh[idx[FLAME_BUDGET / 2]];
	uint32_t n = 0;
	for (uint32_t i = 0; i < f->count; i++) {	/* old ids: parents first */
		struct flame_node *x = &f->n[i];
		int keep = i == 0 || (sh[i] > cut && map[x->parent] != UINT32_MAX);
		if (keep && n < FLAME_BUDGET) {
			map[i] = n;
			out[n] = *x;
			out[n++].parent = i ? map[x->parent] : 0;
			continue;
		}
		map[i] = UINT32_MAX;
		uint32_t p = x->parent;
		if (map[p] == UINT32_MAX)
			continue;	/* inside a folded subtree: counted at its top */
		if (!more[p] && n < FLAME_BUDGET) {
			more[p] = n + 1;
			out[n++] = (struct flame_node){ map[p], "", NULL, 0, NULL, 0, { 0 } };
		}
		if (more[p]) {
			out[more[p] - 1].more++;
			add(&out[more[p] - 1], x->v);
		}
	}
	free(f->n);
	f->n = out;
	f->count = n;
	out = NULL;
	err = 0;
out:
	free(sh);
	free(idx);
	free(map);
	free(more);
	free(out);
	return err;
}

int flame_build(const struct model *m, struct flame *f)
{
	struct builder b = { .f = f };
	memset(f, 0, sizeof(*f));
	hmap_init(&b.kids, sizeof(struct kid), 1 << 12);
	static const struct sym_frame root = { .function = "all", .module_index = -1 };
	int err = 0;
	if (grow_array(&f->n, &b.cap, 0, sizeof(*f->n)))
		return -ENOMEM;
	f->n[f->count++] = (struct flame_node){ 0, root.function, NULL, 0, NULL, 0, { 0 } };
	const struct analysis *a = &m->a;
	for (uint32_t i = 0; i < a->nsites && !err; i++)
		if (a->sites[i].allocs || a->sites[i].live_blocks)
			err = add_stack(&b, m, &a->sites[i]);
	hmap_free(&b.kids);
	f->before = f->count;
	if (!err && f->count > FLAME_BUDGET)
		err = fold(f);
	return err;
}

void flame_free(struct flame *f)
{
	free(f->n);
	memset(f, 0, sizeof(*f));
}
