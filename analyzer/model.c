/*
 * model.c - computing what a report shows (see model.h): the analysis pass,
 * memory at the RSS peak from the kept smaps, page occupancy, the trim
 * estimate, ranked and symbolized sites, leak suspects and the verdict.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/model.h"
#include "common/procfs.h"
#include "common/util.h"
#include "common/error.h"

#define PAGE 4096ull

/* Modules whose frames are the allocator or thin wrappers around it: the
 * site is the first frame outside them. */
static int wrapper_module(const char *path)
{
	static const char *const names[] = {
		"libc.so", "libc-", "libstdc++.so", "ld-linux", "libmfx.so", "libjemalloc",
		"libtcmalloc", "libmimalloc", "libgcc_s",
	};
	const char *b = sym_basename(path);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strncmp(b, names[i], strlen(names[i])))
			return 1;
	return 0;
}

/* The frame that names site s: the first one outside the wrappers (or the
 * innermost when all are wrappers). */
static void name_site(struct model *m, struct rsite *r, const struct site_stat *s)
{
	static const struct sym_frame unknown = { "(no stack)", NULL, 0, NULL, 0, 0, 0 };
	r->s = s;
	r->site = &unknown;
	r->frames = trace_stack(m->t, s->stack, &r->depth);
	if (!r->frames || !m->sym)
		return;
	/* The first named frame outside the wrappers; failing that, the first
	 * frame outside them (a stripped binary's static function). */
	const struct sym_frame *first = NULL, *outside = NULL;
	for (uint32_t i = 0; i < r->depth; i++) {
		const struct sym_frame *f;
		int n = sym_lookup(m->sym, r->frames[i], &f);
		if (!first)
			first = &f[0];
		if (n > 0 && !wrapper_module(f[n - 1].module)) {
			if (f[0].named) {
				r->site = &f[0];
				return;
			}
			if (!outside)
				outside = &f[0];
		}
	}
	r->site = outside ? outside : first ? first : r->site;
}

void model_name_site(const struct model *m, const struct site_stat *s, struct rsite *r)
{
	memset(r, 0, sizeof(*r));
	name_site((struct model *)m, r, s);	/* (it only reads the model) */
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

/* ---- sites ----------------------------------------------------------------------- */

static const struct analysis *sort_a;

static int by_live(const void *x, const void *y)
{
	const struct site_stat *a = &sort_a->sites[*(const uint32_t *)x], *b = &sort_a->sites[*(const uint32_t *)y];
	return a->live_bytes < b->live_bytes ? 1 : a->live_bytes > b->live_bytes ? -1 : 0;
}

static int by_allocs(const void *x, const void *y)
{
	const struct site_stat *a = &sort_a->sites[*(const uint32_t *)x], *b = &sort_a->sites[*(const uint32_t *)y];
	return a->allocs < b->allocs ? 1 : a->allocs > b->allocs ? -1 : 0;
}

static int by_peak(const void *x, const void *y)
{
	const struct site_stat *a = &sort_a->sites[*(const uint32_t *)x], *b = &sort_a->sites[*(const uint32_t *)y];
	return a->live_at_peak < b->live_at_peak ? 1 : a->live_at_peak > b->live_at_peak ? -1 : 0;
}

/* Leak suspect: live bytes at the end, never lower at a later bucket than an
 * earlier one, grown by at least 1 MiB or 5% of the peak, and some blocks
 * still live. */
static int is_growing(const struct model *m, const struct site_stat *s)
{
	if (s->live_bytes <= 0 || s->live_blocks == 0)
		return 0;
	int64_t first = -1;
	for (int i = 0; i < AN_SITE_BUCKETS; i++) {
		if (i > 0 && s->series[i] < s->series[i - 1])
			return 0;
		if (first < 0 && s->series[i] > 0)
			first = i > 0 ? s->series[i - 1] : 0;
	}
	int64_t growth = s->live_bytes - (first < 0 ? 0 : first);
	int64_t min = m->a.peak_live_bytes / 20;
	if (min > (1 << 20))
		min = 1 << 20;
	return growth > 0 && growth >= min && s->allocs >= 2;
}

static int rank_sites(struct model *m)
{
	struct analysis *a = &m->a;
	uint32_t *idx = malloc((a->nsites + 1) * sizeof(*idx)), n = 0;
	if (!idx)
		return -ENOMEM;
	for (uint32_t i = 0; i < a->nsites; i++)
		if (a->sites[i].allocs)
			idx[n++] = i;
	sort_a = a;
	int top = m->top < MODEL_TOP_MAX ? m->top : MODEL_TOP_MAX;
	qsort(idx, n, sizeof(*idx), by_live);
	for (uint32_t i = 0; i < n && m->n_live < top; i++)
		if (a->sites[idx[i]].live_bytes > 0)
			name_site(m, &m->by_live[m->n_live++], &a->sites[idx[i]]);
	for (uint32_t i = 0; i < n && m->n_leaks < MODEL_TOP_MAX; i++) {
		const struct site_stat *s = &a->sites[idx[i]];
		if (!is_growing(m, s))
			continue;
		struct rsite *r = &m->leaks[m->n_leaks++];
		name_site(m, r, s);
		r->growing = 1;
		int64_t base = 0;
		for (int b = 0; b < AN_SITE_BUCKETS; b++)
			if (s->series[b] > 0) {
				base = b ? s->series[b - 1] : 0;
				break;
			}
		m->leak_growth += s->live_bytes - base;
	}
	for (int i = 0; i < m->n_live; i++)
		m->by_live[i].growing = is_growing(m, m->by_live[i].s);
	qsort(idx, n, sizeof(*idx), by_allocs);
	for (uint32_t i = 0; i < n && m->n_allocs < top; i++)
		name_site(m, &m->by_allocs[m->n_allocs++], &a->sites[idx[i]]);
	qsort(idx, n, sizeof(*idx), by_peak);
	for (uint32_t i = 0; i < n && m->n_peak < top; i++)
		if (a->sites[idx[i]].live_at_peak > 0)
			name_site(m, &m->by_peak[m->n_peak++], &a->sites[idx[i]]);
	free(idx);
	return 0;
}

/* ---- memory at the RSS peak ---------------------------------------------------------- */

/* Pages of the allocator mappings by how full of live blocks they are. */
static void occupancy(struct model *m, const struct smaps *s)
{
	const struct live_block *b = m->a.peak_blocks;
	uint64_t nb = m->a.npeak_blocks, j = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct smaps_map *map = &s->maps[i];
		if (!map->allocator)
			continue;
		uint64_t npages = (map->hi - map->lo) / PAGE;
		uint32_t *fill = calloc(npages + 1, sizeof(*fill));
		if (!fill)
			return;
		while (j > 0 && b[j - 1].ptr + b[j - 1].size > map->lo)
			j--;	/* a block may straddle into this mapping */
		while (j < nb && b[j].ptr + b[j].size <= map->lo)
			j++;
		for (uint64_t k = j; k < nb && b[k].ptr < map->hi; k++) {
			uint64_t lo = b[k].ptr > map->lo ? b[k].ptr : map->lo;
			uint64_t hi = b[k].ptr + (b[k].size ? b[k].size : 1);
			if (hi > map->hi)
				hi = map->hi;
			while (lo < hi) {
				uint64_t pg = (lo - map->lo) / PAGE, end = map->lo + (pg + 1) * PAGE;
				uint64_t take = (end < hi ? end : hi) - lo;
				fill[pg] += (uint32_t)take;
				lo += take;
			}
		}
		uint64_t with = 0;
		for (uint64_t p = 0; p < npages; p++) {
			uint32_t f = fill[p];
			unsigned c = f == 0 ? 0 : f <= PAGE / 4 ? 1 : f <= PAGE / 2 ? 2 : f <= 3 * PAGE / 4 ? 3 : 4;
			m->occ[c]++;
			with += f > 0;
		}
		free(fill);
		uint64_t resident = map->rss / PAGE;
		m->pages_mapped += npages;
		m->pages_resident += resident;
		m->pages_with_live += with;
		/* Resident pages beyond those holding live data hold none:
		 * the allocator could give them back (malloc_trim). */
		if (resident > with)
			m->trim_estimate += (resident - with) * PAGE;
	}
}

static void memory_at_peak(struct model *m)
{
	char path[PATH_MAX];
	struct smaps s;
	m->live_at_rss_peak = m->a.live_at_rss_peak;
	if (procfs_smaps_load(path_join(path, sizeof(path), m->run_dir, "smaps"), &s) == 0) {
		/* Mappings that hold live blocks are the allocator's, whatever
		 * the heuristic said (arenas, mmapped chunks). */
		uint64_t *addrs = malloc((m->a.npeak_blocks + 1) * sizeof(*addrs));
		for (uint64_t i = 0; addrs && i < m->a.npeak_blocks; i++)
			addrs[i] = m->a.peak_blocks[i].ptr;
		if (addrs)
			procfs_smaps_mark_allocator(&s, addrs, m->a.npeak_blocks);
		free(addrs);
		struct smaps_totals tot;
		procfs_smaps_totals(&s, &tot);
		m->have_smaps = 1;
		m->heap_rss = tot.heap_rss;
		m->mfx_rss = tot.kind_rss[MK_MFX];
		m->rss_peak = tot.rss - tot.kind_rss[MK_MFX];
		if (!m->a.sample_mean)	/* a sample of the blocks cannot say */
			occupancy(m, &s);
		procfs_smaps_free(&s);
	}
	/* The samples may have seen a higher RSS than the kept smaps. */
	const struct trace_sample *sm;
	size_t n = trace_samples(m->t, &sm);
	for (size_t i = 0; i < n; i++) {
		uint64_t rss = sm[i].v[MFX_SF_RSS] - (sm[i].v[MFX_SF_MFX_RSS] < sm[i].v[MFX_SF_RSS] ?
						      sm[i].v[MFX_SF_MFX_RSS] : 0);
		if (rss > m->rss_peak)
			m->rss_peak = rss;
		if (!m->have_smaps && sm[i].v[MFX_SF_HEAP_RSS] > m->heap_rss)
			m->heap_rss = sm[i].v[MFX_SF_HEAP_RSS];
	}
	/* The allocator that serves malloc: its heap RSS and live bytes at the
	 * peak, from its own figures where smaps cannot tell (heap.c). */
	heap_view_build(m->t, m->attach, &m->a, m->heap_rss, &m->heap);
	m->heap_rss = m->heap.heap_rss;
	m->live_at_rss_peak = m->heap.live;
	if (m->trim_estimate > m->heap.free_cap)
		m->trim_estimate = m->heap.free_cap;	/* attach: pages of older blocks look empty */
	int64_t live = m->live_at_rss_peak;
	m->frag = m->heap_rss && m->heap.measured ?
		((double)m->heap_rss - (double)(live > 0 ? live : 0)) / (double)m->heap_rss : 0;
	if (m->frag < 0)
		m->frag = 0;
	const struct trace_mark *mk;
	n = trace_marks(m->t, &mk);
	for (size_t i = 0; i < n; i++)
		if (mk[i].kind == MFX_MARK_TRIM && mk[i].nvals >= 4) {
			m->have_trim = 1;
			memcpy(m->trim_vals, mk[i].vals, sizeof(m->trim_vals));
			/* "agent mallctl(...)": the way, then the allocator's call */
			size_t w = strcspn(mk[i].text, " ");
			snprintf(m->trim_method, sizeof(m->trim_method), "%.*s", (int)w, mk[i].text);
			snprintf(m->trim_call, sizeof(m->trim_call), "%s",
				 mk[i].text[w] ? mk[i].text + w + 1 : "malloc_trim(0)");
		} else if (mk[i].kind == MFX_MARK_ATTACH && mk[i].nvals >= 5) {
			m->have_attach = 1;
			memcpy(m->attach_vals, mk[i].vals, sizeof(m->attach_vals));
			snprintf(m->attach_agent, sizeof(m->attach_agent), "%s", mk[i].text);
		}
}

/* ---- verdict ---------------------------------------------------------------------------- */

static void verdict(struct model *m)
{
	char a[32], b[32], c[32];
	uint64_t waste = m->heap_rss > (uint64_t)(m->live_at_rss_peak > 0 ? m->live_at_rss_peak : 0)
				 ? m->heap_rss - (uint64_t)(m->live_at_rss_peak > 0 ? m->live_at_rss_peak : 0)
				 : 0;
	uint64_t leak = m->leak_growth > 0 ? (uint64_t)m->leak_growth : 0;
	if (!m->a.nevents) {
		m->verdict = V_NONE;
		snprintf(m->verdict_line, sizeof(m->verdict_line),
			 "no allocation calls were recorded");
	} else if (!m->heap.measured && !leak) {
		m->verdict = V_NONE;	/* a guess is no ground for a verdict (heap.c) */
		snprintf(m->verdict_line, sizeof(m->verdict_line),
			 "no verdict on the heap: %s", m->heap.why);
	} else if (leak && ((leak * 2 >= waste && leak >= m->trim_estimate) || !m->heap.measured)) {
		m->verdict = V_LEAK;
		snprintf(m->verdict_line, sizeof(m->verdict_line),
			 "LEAK suspected: %d site%s grew by %s and never shrank (largest: %s)",
			 m->n_leaks, m->n_leaks == 1 ? "" : "s", fmt_bytes(leak, a, sizeof(a)),
			 m->leaks[0].site->function);
	} else if (m->heap_rss >= (1u << 20) && m->frag >= 0.3 && m->trim_estimate * 2 >= waste) {
		m->verdict = V_RETENTION;
		snprintf(m->verdict_line, sizeof(m->verdict_line),
			 "ALLOCATOR RETENTION: %s of the %s heap RSS holds no live block; "
			 "%s could return about %s", fmt_bytes(waste, a, sizeof(a)),
			 fmt_bytes(m->heap_rss, b, sizeof(b)), heap_release_call(&m->heap),
			 fmt_bytes(m->trim_estimate, c, sizeof(c)));
	} else if (m->heap_rss >= (1u << 20) && m->frag >= 0.3) {
		m->verdict = V_FRAGMENTATION;
		snprintf(m->verdict_line, sizeof(m->verdict_line),
			 "FRAGMENTATION: %.0f%% of the heap RSS (%s of %s) holds no live data, "
			 "mostly in partly used pages", m->frag * 100, fmt_bytes(waste, a, sizeof(a)),
			 fmt_bytes(m->heap_rss, b, sizeof(b)));
	} else {
		m->verdict = V_STEADY;
		snprintf(m->verdict_line, sizeof(m->verdict_line),
			 "no leak or fragmentation stands out: live data is %.0f%% of the heap RSS",
			 m->heap_rss ? 100.0 * (1 - m->frag) : 100.0);
	}
}

/* ---- other traces ------------------------------------------------------------------------- */

static void list_others(struct model *m)
{
	DIR *d = opendir(m->run_dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!is_trace_name(e->d_name) || !strcmp(e->d_name, m->trace_name))
			continue;
		char **n = realloc(m->others, (size_t)(m->nothers + 1) * sizeof(*n));
		if (!n)
			break;
		m->others = n;
		m->others[m->nothers++] = strdup(e->d_name);
	}
	if (d)
		closedir(d);
}

int model_build(const char *run_dir, const char *trace_name, int top, int quiet, struct model *m)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->run_dir, sizeof(m->run_dir), "%s", run_dir);
	m->trace_name = trace_name ? trace_name : "trace.mfx";
	m->top = top > 0 ? top : 10;
	if (strchr(m->trace_name, '/'))
		snprintf(m->trace_path, sizeof(m->trace_path), "%s", m->trace_name);
	else
		path_join(m->trace_path, sizeof(m->trace_path), run_dir, m->trace_name);
	int err = trace_open(m->trace_path, &m->t);
	if (err)
		return err == -ENOENT ? -MFX_E_NOTRACE : err;
	m->info = trace_info(m->t);
	m->attach = !!(m->info->flags & MFX_HF_ATTACH);
	if ((err = analyze_trace(m->t, quiet, &m->a)))
		return err;
	/* The window: armed to disarmed, else to the process's end or last event. */
	uint64_t t0 = m->info->window_start_ns ? m->info->window_start_ns : m->a.first_ts;
	uint64_t t1 = m->info->window_end_ns ? m->info->window_end_ns : m->info->end_ns;
	if (t1 < m->a.last_ts)
		t1 = m->a.last_ts;
	m->duration_ns = t1 > t0 ? t1 - t0 : 0;
	char root[64];
	snprintf(root, sizeof(root), "/proc/%u/root", m->info->pid);
	sym_open(m->t, m->attach ? root : NULL, &m->sym);
	memory_at_peak(m);
	if ((err = rank_sites(m)))
		return err;
	verdict(m);
	list_others(m);
	return 0;
}

void model_free(struct model *m)
{
	sym_close(m->sym);
	analysis_free(&m->a);
	if (m->t)
		trace_close(m->t);
	for (int i = 0; i < m->nothers; i++)
		free(m->others[i]);
	free(m->others);
	memset(m, 0, sizeof(*m));
}
