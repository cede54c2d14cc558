/*
 * sweep.c - `mfx replay --sweep`: the window replayed under glibc with a
 * grid of tunables and under jemalloc, tcmalloc and mimalloc with their
 * usual knobs; the runs ranked by RSS peak, RSS end and time; one
 * recommendation, confirmed by alternating runs against glibc's defaults,
 * with the line that applies it to the real program.
 *
 * The knobs, and why each is in the grid:
 *   glibc.malloc.arena_max      threads' arenas are never shared back: a
 *                               program whose threads take turns keeps one
 *                               arena's worth of free memory per thread
 *   glibc.malloc.trim_threshold 0: the top of the heap is given back at
 *                               every free (setting it also stops glibc
 *                               raising its thresholds after big frees)
 *   glibc.malloc.mmap_threshold 64 KiB: big blocks are mmap'ed, and their
 *                               pages go back to the system at free
 *   glibc.malloc.top_pad        0: no extra 128 KiB at each heap growth
 *   glibc.malloc.tcache_count   0: no per-thread cache of freed blocks
 *   jemalloc dirty_decay_ms, muzzy_decay_ms (0: purge at once), narenas
 *   tcmalloc TCMALLOC_AGGRESSIVE_DECOMMIT, TCMALLOC_RELEASE_RATE
 *   mimalloc purge_delay (0: purge at once; 2.0's names are reset_delay and
 *            segment_decommit_delay: all three are set)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/replay/internal.h"
#include "common/util.h"

struct knob {
	const char *alloc;
	const char *knobs;			/* as shown */
	const char *env[REPLAY_MAX_ENV][2];	/* beside GLIBC_TUNABLES for glibc */
};

static const struct knob grid[] = {
	{ "glibc", "", { { NULL } } },
	{ "glibc", "glibc.malloc.arena_max=1", { { NULL } } },
	{ "glibc", "glibc.malloc.arena_max=2", { { NULL } } },
	{ "glibc", "glibc.malloc.arena_max=4", { { NULL } } },
	{ "glibc", "glibc.malloc.arena_max=8", { { NULL } } },
	{ "glibc", "glibc.malloc.trim_threshold=0", { { NULL } } },
	{ "glibc", "glibc.malloc.mmap_threshold=65536", { { NULL } } },
	{ "glibc", "glibc.malloc.top_pad=0", { { NULL } } },
	{ "glibc", "glibc.malloc.tcache_count=0", { { NULL } } },
	{ "jemalloc", "", { { NULL } } },
	{ "jemalloc", "dirty_decay_ms:0,muzzy_decay_ms:0",
	  { { "MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0" } } },
	{ "jemalloc", "narenas:1", { { "MALLOC_CONF", "narenas:1" } } },
	{ "jemalloc", "narenas:2", { { "MALLOC_CONF", "narenas:2" } } },
	{ "tcmalloc", "", { { NULL } } },
	{ "tcmalloc", "aggressive_decommit", { { "TCMALLOC_AGGRESSIVE_DECOMMIT", "true" } } },
	{ "tcmalloc", "release_rate=10", { { "TCMALLOC_RELEASE_RATE", "10" } } },
	{ "mimalloc", "", { { NULL } } },
	{ "mimalloc", "purge_delay=0",
	  { { "MIMALLOC_PURGE_DELAY", "0" }, { "MIMALLOC_RESET_DELAY", "0" },
	    { "MIMALLOC_SEGMENT_DECOMMIT_DELAY", "0" } } },
};

int replay__sweep_configs(struct replay_config **out, int *n)
{
	size_t ng = sizeof(grid) / sizeof(grid[0]);
	struct replay_config *v = calloc(ng, sizeof(*v));
	if (!v)
		return -ENOMEM;
	int k = 0;
	for (size_t i = 0; i < ng; i++) {
		int glibc = !strcmp(grid[i].alloc, "glibc");
		if (replay__config(&v[k], grid[i].alloc, glibc ? grid[i].knobs : NULL))
			continue;	/* not installed */
		if (!glibc)
			snprintf(v[k].knobs, sizeof(v[k].knobs), "%s", grid[i].knobs);
		for (int e = 0; e < REPLAY_MAX_ENV && grid[i].env[e][0]; e++)
			replay__config_env(&v[k], grid[i].env[e][0], grid[i].env[e][1]);
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

/* ---- ranking ------------------------------------------------------------------------ */

static const struct run_row *rank_rows;

static int usable(const struct run_row *r)
{
	return r->ok && !r->cut && !r->cfg.replay_c;
}

static int by_rank(const void *x, const void *y)
{
	const struct run_row *a = &rank_rows[*(const int *)x], *b = &rank_rows[*(const int *)y];
	if (usable(a) != usable(b))
		return usable(b) - usable(a);
	if (a->rss_peak != b->rss_peak)
		return a->rss_peak < b->rss_peak ? -1 : 1;
	if (a->rss_end != b->rss_end)
		return a->rss_end < b->rss_end ? -1 : 1;
	return a->wall_ns < b->wall_ns ? -1 : a->wall_ns > b->wall_ns;
}

void replay__sweep_rank(const struct run_row *rows, int nrows, int *rank)
{
	for (int i = 0; i < nrows; i++)
		rank[i] = i;
	rank_rows = rows;
	qsort(rank, (size_t)nrows, sizeof(*rank), by_rank);
}

/* ---- the pick ----------------------------------------------------------------------- */

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

static double pct(uint64_t x, uint64_t base)
{
	return base ? 100.0 * ((double)x - (double)base) / (double)base : 0;
}

/* SWEEP_CONFIRM runs of the defaults and of candidate c, alternating (so a
 * busy spell of the machine falls on both): the medians into p. */
static int confirm(const char *bin, const char *ops, const struct run_bounds *b,
		   const struct run_row *base, const struct run_row *c, struct sweep_pick *p)
{
	uint64_t v[6][SWEEP_CONFIRM];
	for (int i = 0; i < SWEEP_CONFIRM; i++)
		for (int k = 0; k < 2; k++) {
			struct run_row r = { 0 };
			int err = replay__run_one(bin, ops, k ? &c->cfg : &base->cfg, b, NULL, &r);
			free(r.tl);
			if (err)
				return err;
			v[3 * k][i] = r.rss_peak;
			v[3 * k + 1][i] = r.rss_end;
			v[3 * k + 2][i] = r.wall_ns;
		}
	p->base_peak = median(v[0], SWEEP_CONFIRM);
	p->base_end = median(v[1], SWEEP_CONFIRM);
	p->base_wall = median(v[2], SWEEP_CONFIRM);
	p->pick_peak = median(v[3], SWEEP_CONFIRM);
	p->pick_end = median(v[4], SWEEP_CONFIRM);
	p->pick_wall = median(v[5], SWEEP_CONFIRM);
	p->peak_pct = pct(p->pick_peak, p->base_peak);
	p->end_pct = pct(p->pick_end, p->base_end);
	p->time_pct = pct(p->pick_wall, p->base_wall);
	return 0;
}

static int default_row(const struct run_row *rows, int nrows)
{
	for (int i = 0; i < nrows; i++)
		if (usable(&rows[i]) && !strcmp(rows[i].cfg.name, "glibc") && !rows[i].cfg.knobs[0])
			return i;
	return -1;
}

/* Candidates in the order to confirm them: those within SWEEP_MIN_SAVING of
 * the lowest RSS peak are as good as each other (the noise between runs),
 * and among them a glibc tunable comes first (no other library to ship),
 * then the lower RSS end, then the faster; the rest in ranking order. */
static int candidates(const struct run_row *rows, int nrows, const int *rank, int base, int *out)
{
	int n = 0;
	uint64_t best = 0;
	for (int i = 0; i < nrows; i++)
		if (usable(&rows[rank[i]]) && rank[i] != base) {
			best = rows[rank[i]].rss_peak;
			break;
		}
	for (int pass = 0; pass < 3; pass++)
		for (int i = 0; i < nrows; i++) {
			const struct run_row *r = &rows[rank[i]];
			if (!usable(r) || rank[i] == base)
				continue;
			int near = (double)r->rss_peak <= (double)best * (1 + SWEEP_MIN_SAVING);
			int glibc = !strcmp(r->cfg.name, "glibc");
			if ((pass == 0 && near && glibc) || (pass == 1 && near && !glibc) || (pass == 2 && !near))
				out[n++] = rank[i];
		}
	/* inside the near band, non-glibc ones by RSS end then time (ranking order
	 * already sorts by peak first: a stable pass is enough for a few rows) */
	return n;
}

void replay__sweep_pick(const char *bin, const char *ops, const struct run_bounds *b,
			const struct run_row *rows, int nrows, const int *rank, int quiet,
			struct sweep_pick *p)
{
	memset(p, 0, sizeof(*p));
	p->row = -1;
	p->base = default_row(rows, nrows);
	int *cand = calloc((size_t)nrows + 1, sizeof(*cand));
	if (p->base < 0 || !cand) {
		snprintf(p->why, sizeof(p->why), "glibc's defaults were not replayed: nothing to compare with");
		free(cand);
		return;
	}
	const struct run_row *base = &rows[p->base];
	snprintf(p->why, sizeof(p->why), "no setting saved %.0f%% of the RSS peak at most %.0f%% more time: "
		 "keep the defaults", SWEEP_MIN_SAVING * 100, SWEEP_MAX_COST * 100);
	int n = candidates(rows, nrows, rank, p->base, cand);
	for (int i = 0, tried = 0; i < n && tried < 3; i++) {
		const struct run_row *c = &rows[cand[i]];
		if ((double)c->rss_peak > (double)base->rss_peak * (1 - SWEEP_MIN_SAVING))
			continue;	/* saves too little */
		if (base->wall_ns >= SWEEP_TIME_FLOOR_NS &&
		    (double)c->wall_ns > (double)base->wall_ns * (1 + 2 * SWEEP_MAX_COST))
			continue;	/* far too slow even for a noisy first run */
		char l[400];
		if (!quiet)
			progress_show("mfx: replay --sweep: confirming %s against glibc's defaults ...",
				      replay__label(&c->cfg, l, sizeof(l)));
		tried++;
		int err = confirm(bin, ops, b, base, c, p);
		progress_clear();
		if (err)
			continue;
		int timed = p->base_wall >= SWEEP_TIME_FLOOR_NS;
		if (p->peak_pct <= -100 * SWEEP_MIN_SAVING && (!timed || p->time_pct <= 100 * SWEEP_MAX_COST)) {
			p->have = 1;
			p->row = cand[i];
			break;
		}
	}
	free(cand);
}
