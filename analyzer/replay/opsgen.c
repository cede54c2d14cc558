/*
 * opsgen.c - the trace's calls as RUN/replay.ops (ops.h): one stream per
 * thread, in recorded order, every block named by a dense id (an address
 * the allocator reused is a new block), failed calls kept (they are made
 * again, result dropped), frees of blocks allocated before the window
 * dropped (attach: their sizes are unknown) and counted.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/replay/internal.h"
#include "analyzer/replay/ops.h"
#include "common/hmap.h"
#include "common/util.h"
#include "trace/reader.h"

/* ---- pointer -> block id ----------------------------------------------------------- */

/* common/hmap.h, values uint32_t; id 0 is "none", as is pointer NULL. */
static int idmap_put(struct hmap *m, uint64_t k, uint32_t v)
{
	uint32_t *p = k ? hmap_put(m, k, NULL) : &v;
	if (!p)
		return -ENOMEM;
	*p = v;
	return 0;
}

static uint32_t idmap_get(const struct hmap *m, uint64_t k)
{
	const uint32_t *p = k ? hmap_get(m, k) : NULL;
	return p ? *p : 0;
}

/* Remove k; its id, or 0. */
static uint32_t idmap_take(struct hmap *m, uint64_t k)
{
	uint32_t v = 0;
	if (k)
		hmap_del(m, k, &v);
	return v;
}

/* ---- the streams ------------------------------------------------------------------- */

struct stream {
	struct op *ops;
	size_t n, cap;
};

/* Where each block was made: its thread and its op's index there. */
struct origin {
	uint32_t thread, index;
};

struct opsgen {
	struct stream *st;
	uint32_t nt;
	struct hmap map;
	struct origin *org;
	size_t org_cap;
	uint32_t next_id;
	struct gen_stats *gs;
};

/* Append o to thread th's stream; its seq is its place in the window. */
static int push(struct opsgen *g, uint32_t th, struct op *o)
{
	struct stream *s = &g->st[th];
	if (grow_array(&s->ops, &s->cap, s->n, sizeof(*s->ops)))
		return -ENOMEM;
	o->seq = (uint32_t)g->gs->ops++;
	s->ops[s->n++] = *o;
	if (o->flags & OPF_IMPLIED)
		g->gs->implied_frees++;
	else
		g->gs->counts[o->kind]++;
	return 0;
}

/* Block id is freed or reallocated on thread th: its size; if another
 * thread made it, the op waits (OPF_WAIT) and the making op says when the
 * block exists (OPF_PUBLISH). */
static uint64_t use_block(struct opsgen *g, uint32_t id, uint32_t th, struct op *o)
{
	struct op *made = &g->st[g->org[id].thread].ops[g->org[id].index];
	if (g->org[id].thread != th) {
		o->flags |= OPF_WAIT;
		made->flags |= OPF_PUBLISH;
		g->gs->cross_thread++;
	}
	return made->size;
}

static void memalign_op(struct op *o, const struct trace_event *ev)
{
	o->kind = OP_MEMALIGN;
	o->size = ev->size;
	uint64_t a = ev->align ? ev->align : 4096;
	while ((1ull << o->align_log2) < a && o->align_log2 < 30)
		o->align_log2++;
	if (o->align_log2 < 3)
		o->align_log2 = 3;
}

/* One event as an op of its thread's stream (frees of unknown blocks and
 * other kinds: none). */
static int gen_event(struct opsgen *g, struct trace_event *ev)
{
	struct op o = { 0 };
	uint32_t th = ev->thread < g->nt ? ev->thread : 0;
	if (ev->failed)	/* replayed too: it fails again (or its result is dropped) */
		g->gs->failed++;
	switch (ev->kind) {
	case MFX_K_MALLOC:
	case MFX_K_CALLOC:
		o.kind = ev->kind == MFX_K_MALLOC ? OP_MALLOC : OP_CALLOC;
		o.size = ev->size;
		break;
	case MFX_K_POSIX_MEMALIGN:
	case MFX_K_ALIGNED_ALLOC:
	case MFX_K_MEMALIGN:
	case MFX_K_VALLOC:
	case MFX_K_PVALLOC:
		memalign_op(&o, ev);
		break;
	case MFX_K_FREE:
		o.kind = OP_FREE;
		if (!(o.id = idmap_take(&g->map, ev->ptr))) {
			g->gs->skipped_frees++;	/* allocated before the window */
			return 0;
		}
		o.size = use_block(g, o.id, th, &o);
		return push(g, th, &o);
	case MFX_K_REALLOC:
	case MFX_K_REALLOCARRAY:
		o.kind = OP_REALLOC;
		o.size = ev->size;
		if (ev->failed && ev->size) {	/* the old block stays where it was */
			o.old = ev->old_ptr ? idmap_get(&g->map, ev->old_ptr) : 0;
			ev->ptr = 0;
		} else {	/* moved; or realloc(p, 0) gave NULL: it freed p (as analyze.c) */
			o.old = ev->old_ptr ? idmap_take(&g->map, ev->old_ptr) : 0;
		}
		if (o.old)
			use_block(g, o.old, th, &o);
		break;
	default:
		return 0;
	}
	if (ev->ptr && !ev->failed) {
		int err;
		uint32_t stale = idmap_take(&g->map, ev->ptr);
		if (stale) {	/* its free was not seen: the analysis ends it here too */
			struct op z = { .kind = OP_FREE, .flags = OPF_IMPLIED, .id = stale };
			z.size = use_block(g, stale, th, &z);
			if ((err = push(g, th, &z)))
				return err;
		}
		o.id = g->next_id++;
		if ((err = idmap_put(&g->map, ev->ptr, o.id)) ||
		    (err = grow_array(&g->org, &g->org_cap, o.id, sizeof(*g->org))))
			return err;
		g->org[o.id] = (struct origin){ th, (uint32_t)g->st[th].n };
	}
	return push(g, th, &o);
}

static int gen_write(const struct opsgen *g, const struct trace_info *ti, const char *out)
{
	char tmp[PATH_MAX + 16];	/* 0600, O_EXCL, renamed over (util.h) */
	FILE *f = fopen_replace(out, tmp, sizeof(tmp));
	if (!f)
		return -errno;
	int err = 0;
	struct ops_header h = { OPS_MAGIC, g->nt, ti->pid, g->next_id, g->gs->ops };
	fwrite(&h, sizeof(h), 1, f);
	for (uint32_t i = 0; i < g->nt; i++) {
		struct ops_thread ot = { i < ti->nthreads ? ti->tids[i] : 0, 0, g->st[i].n };
		fwrite(&ot, sizeof(ot), 1, f);
	}
	for (uint32_t i = 0; i < g->nt; i++)
		if (g->st[i].n && fwrite(g->st[i].ops, sizeof(struct op), g->st[i].n, f) != g->st[i].n)
			err = -EIO;
	return fclose_replace(f, tmp, out, err);
}

int replay__write_ops(const char *trace_path, const char *out, struct gen_stats *gs)
{
	struct trace *t;
	int err = trace_open(trace_path, &t);
	if (err)
		return err;
	const struct trace_info *ti = trace_info(t);
	struct opsgen g = { .nt = ti->nthreads ? ti->nthreads : 1, .next_id = 1, .gs = gs };
	hmap_init(&g.map, sizeof(uint32_t), 1 << 16);
	memset(gs, 0, sizeof(*gs));
	g.st = calloc(g.nt, sizeof(*g.st));
	struct trace_event ev;
	int r = 0;
	if (!g.st)
		err = -ENOMEM;
	while (!err && (r = trace_next(t, &ev)) > 0) {
		if (gs->ops >= UINT32_MAX || g.next_id == UINT32_MAX)
			err = -EFBIG;	/* 4G calls: beyond what a replay can name */
		else
			err = gen_event(&g, &ev);
	}
	(void)r;	/* a damaged tail: the calls before it are replayed */
	if (!err)
		err = gen_write(&g, ti, out);
	gs->blocks = g.next_id - 1;
	gs->nthreads = g.nt;
	for (uint32_t i = 0; g.st && i < g.nt; i++)
		free(g.st[i].ops);
	free(g.st);
	hmap_free(&g.map);
	free(g.org);
	trace_close(t);
	return err;
}
