/*
 * model.c - computing what a report shows (see model.h): symbolized stacks
 * folded into sites, the analysis pass, memory at the RSS peak from the
 * kept smaps, page occupancy, the trim estimate, the exit, and the verdict
 * (ranking: rank.c; rules: verdict.c).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/debuginfo.h"
#include "analyzer/model.h"
#include "common/procfs.h"
#include "common/util.h"
#include "common/error.h"

#define PAGE 4096ull

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

/*
 * The RSS peak: the kernel's high-water mark (VmHWM, attach: since the
 * window began; launch: also the agent's reading at the exit and the
 * child's ru_maxrss), which mfx's session put in the RSS_PEAK mark and in
 * every sample.  A sample, or the kept smaps, may still see a few pages
 * more: the kernel's RSS counters lag behind the page tables smaps walks.
 */
static void rss_peak(struct model *m)
{
	const struct trace_sample *sm;
	size_t n = trace_samples(m->t, &sm);
	for (size_t i = 0; i < n; i++) {
		if (sm[i].v[MFX_SF_HWM])
			m->rss_peak_exact = 1;
		if (sm[i].v[MFX_SF_RSS] > m->rss_peak)
			m->rss_peak = sm[i].v[MFX_SF_RSS];
		if (sm[i].v[MFX_SF_HWM] > m->rss_peak)
			m->rss_peak = sm[i].v[MFX_SF_HWM];
	}
	const struct trace_mark *mk;
	n = trace_marks(m->t, &mk);
	for (size_t i = 0; i < n; i++) {
		uint64_t hwm = 0;
		if (mk[i].kind == MFX_MARK_RSS_PEAK && mk[i].nvals >= 4)
			hwm = mk[i].vals[3];
		else if (mk[i].kind == MFX_MARK_EXITING && mk[i].nvals >= 3)
			hwm = mk[i].vals[2];
		if (hwm) {
			m->rss_peak_exact = 1;
			if (hwm > m->rss_peak)
				m->rss_peak = hwm;
		}
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
		m->rss_peak = m->smaps_rss = tot.rss;
		if (!m->a.sample_mean)	/* a sample of the blocks cannot say */
			occupancy(m, &s);
		procfs_smaps_free(&s);
	}
	const struct trace_sample *sm;
	size_t n = trace_samples(m->t, &sm);
	for (size_t i = 0; i < n; i++)
		if (!m->have_smaps && sm[i].v[MFX_SF_HEAP_RSS] > m->heap_rss)
			m->heap_rss = sm[i].v[MFX_SF_HEAP_RSS];
	rss_peak(m);
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

/* ---- the end --------------------------------------------------------------------- */

/* The process ended during the window: mfx's EXIT mark (launch: the
 * child's wait status; attach: read while it was a zombie, or the agent's
 * exit status), or the window ended because it was gone. */
static void the_end(struct model *m)
{
	const struct trace_mark *mk;
	size_t n = trace_marks(m->t, &mk);
	for (size_t i = 0; i < n; i++) {
		if (mk[i].kind == MFX_MARK_EXIT) {
			m->exited = 1;
			if (mk[i].nvals >= 1 && (mk[i].nvals < 2 || mk[i].vals[1])) {
				m->have_exit_status = 1;
				m->exit_wait_status = (int)mk[i].vals[0];
			}
		} else if (mk[i].kind == MFX_MARK_WINDOW_END && !strcmp(mk[i].text, "exit")) {
			m->exited = 1;
		}
	}
	if (m->exited && !m->have_exit_status && m->a.have_exit) {
		/* exit(n) / return n from main: wait status n << 8 */
		m->have_exit_status = 1;
		m->exit_wait_status = (int)((m->a.exit_status & 0xff) << 8);
	}
}

static void verdict(struct model *m)
{
	struct verdict_in in = {
		.events = m->a.nevents,
		.heap_measured = m->heap.measured,
		.heap_why = m->heap.why,
		.release_call = heap_release_call(&m->heap),
		.rss_peak = m->rss_peak > m->mfx_rss ? m->rss_peak - m->mfx_rss : m->rss_peak,
		.heap_rss = m->heap_rss,
		.live = (uint64_t)(m->live_at_rss_peak > 0 ? m->live_at_rss_peak : 0),
		.trim_estimate = m->trim_estimate,
		.n_leaks = m->n_leaks,
		.leak_growth = m->leak_growth > 0 ? (uint64_t)m->leak_growth : 0,
		.leak_site = m->n_leaks ? m->leaks[0].site->function : NULL,
		.exited = m->a.have_exit,
		.exit_growth = m->exit_growth_bytes,
		.exit_site = m->have_exit_growth ? m->exit_growth.site->function : NULL,
		.exit_site_bytes = m->have_exit_growth ? (uint64_t)m->exit_growth.s->live_at_exit : 0,
	};
	struct verdict_out out;
	verdict_decide(&in, &out);
	m->verdict = out.kind;
	snprintf(m->verdict_line, sizeof(m->verdict_line), "%s", out.line);
}

/* ---- other traces ------------------------------------------------------------------------- */

static void add_other(struct model *m, const char *name)
{
	char path[PATH_MAX];
	struct trace *t;
	struct other_trace o = { .name = strdup(name) };
	if (trace_open(path_join(path, sizeof(path), m->run_dir, name), &t) == 0) {
		const struct trace_info *in = trace_info(t);
		o.exe = strdup(in->exe);
		o.pid = in->pid;
		o.events = in->nevents;
		o.exec_image = in->pid == m->info->pid;
		trace_close(t);
	}
	struct other_trace *n = realloc(m->others, (size_t)(m->nothers + 1) * sizeof(*n));
	if (!n || !o.name) {
		free(o.name);
		free(o.exe);
		return;
	}
	m->others = n;
	m->others[m->nothers++] = o;
}

static int cmp_other(const void *x, const void *y)
{
	const struct other_trace *a = x, *b = y;
	if (a->exec_image != b->exec_image)
		return b->exec_image - a->exec_image;	/* the same pid's images first */
	return strcmp(a->name, b->name);
}

static void list_others(struct model *m)
{
	DIR *d = opendir(m->run_dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!is_trace_name(e->d_name) || !strcmp(e->d_name, sym_basename(m->trace_name)))
			continue;
		add_other(m, e->d_name);
	}
	if (d)
		closedir(d);
	if (m->nothers > 1)
		qsort(m->others, (size_t)m->nothers, sizeof(*m->others), cmp_other);
}

/* ---- building ------------------------------------------------------------------------------ */

/* site_frames_fn over the trace's stacks: every return address's frames. */
static int stack_frames(void *ctx, uint32_t id, const struct sym_frame **out, int max)
{
	struct model *m = ctx;
	uint32_t depth;
	const uint64_t *raw = trace_stack(m->t, id, &depth);
	int n = 0;
	for (uint32_t i = 0; raw && i < depth && n < max; i++) {
		const struct sym_frame *f;
		int k = sym_lookup(m->sym, raw[i], &f);
		for (int j = 0; j < k && n < max; j++)
			out[n++] = &f[j];
	}
	return n;
}

/* "" for the run's own trace.mfx; "-1234" for trace-1234.mfx, "-1234.2"
 * for trace-1234.2.mfx: the suffix of its summary, report and charts. */
static void output_suffix(struct model *m)
{
	const char *b = sym_basename(m->trace_name);
	size_t l = strlen(b);
	m->suffix[0] = 0;
	if (!strcmp(b, "trace.mfx") && !strchr(m->trace_name, '/'))
		return;
	if (!strncmp(b, "trace-", 6) && l > 10)
		snprintf(m->suffix, sizeof(m->suffix), "-%.*s", (int)(l - 10), b + 6);
	else
		snprintf(m->suffix, sizeof(m->suffix), "-%u", m->info->pid);
}

char *model_file(const struct model *m, const char *dir, const char *stem, const char *ext,
		 char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s%s%s", dir, stem, m->suffix, ext);
	return buf;
}

static int open_trace(const char *run_dir, const struct model_opts *o, struct model *m)
{
	snprintf(m->run_dir, sizeof(m->run_dir), "%s", run_dir);
	m->trace_name = o->trace ? o->trace : "trace.mfx";
	m->top = o->top > 0 ? o->top : 10;
	if (strchr(m->trace_name, '/'))
		snprintf(m->trace_path, sizeof(m->trace_path), "%s", m->trace_name);
	else
		path_join(m->trace_path, sizeof(m->trace_path), run_dir, m->trace_name);
	int err = trace_open(m->trace_path, &m->t);
	if (err)
		return err == -ENOENT ? -MFX_E_NOTRACE : err;
	m->info = trace_info(m->t);
	m->attach = !!(m->info->flags & MFX_HF_ATTACH);
	output_suffix(m);
	return 0;
}

/* Symbolize every stack and fold them into sites, then the pass. */
static int sites_and_pass(struct model *m, int quiet)
{
	char root[64];
	snprintf(root, sizeof(root), "/proc/%u/root", m->info->pid);
	int err = sym_open(m->t, m->attach ? root : NULL, &m->sym);
	if (err)
		return err;
	if ((err = sites_fold(&m->sites, &m->rules, trace_nstacks(m->t), stack_frames, m)))
		return err;
	struct an_groups g = sites_groups(&m->sites);
	if ((err = analyze_trace_grouped(m->t, quiet, &g, &m->a)))
		return err;
	sites_finish(&m->sites, &m->a);
	return 0;
}

/* The --wrapper expressions of this report and those the run recorded
 * (mfx launch/attach --wrapper: the trace's INFO "wrappers"). */
static int wrappers(struct model *m, const struct model_opts *o, char *err, size_t errn)
{
	const char *rec = trace_info_value(m->t, "wrappers");
	int n = o->nwrappers + 1;
	m->run_wrappers = strdup(rec ? rec : "");
	for (const char *p = m->run_wrappers; p && *p; p++)
		n += *p == '\n';
	m->wrappers = calloc((size_t)n + 1, sizeof(*m->wrappers));
	if (!m->wrappers || !m->run_wrappers)
		return -ENOMEM;
	for (int i = 0; i < o->nwrappers; i++)
		m->wrappers[m->nwrappers++] = o->wrappers[i];
	for (char *p = m->run_wrappers, *save = NULL, *w; (w = strtok_r(p, "\n", &save)); p = NULL) {
		int dup = 0;
		for (int i = 0; i < m->nwrappers && !dup; i++)
			dup = !strcmp(m->wrappers[i], w);
		if (!dup)
			m->wrappers[m->nwrappers++] = w;
	}
	return site_rules_init(&m->rules, m->wrappers, m->nwrappers, err, errn);
}

int model_build(const char *run_dir, const struct model_opts *o, struct model *m, char *err,
		size_t errn)
{
	memset(m, 0, sizeof(*m));
	int e = open_trace(run_dir, o, m);
	if (e || (e = wrappers(m, o, err, errn)) || (e = sites_and_pass(m, o->quiet)))
		return e;
	/* The window: armed to disarmed, else to the process's end or last event. */
	uint64_t t0 = m->info->window_start_ns ? m->info->window_start_ns : m->a.first_ts;
	uint64_t t1 = m->info->window_end_ns ? m->info->window_end_ns : m->info->end_ns;
	if (t1 < m->a.last_ts)
		t1 = m->a.last_ts;
	m->duration_ns = t1 > t0 ? t1 - t0 : 0;
	memory_at_peak(m);
	the_end(m);
	if ((e = model_rank_sites(m)))
		return e;
	verdict(m);
	list_others(m);
	const struct sym_module *mods;
	m->nhints = sym_modules(m->sym, &mods);
	if (debuginfo_hints(mods, m->nhints, &m->hints))
		m->nhints = 0;
	return 0;
}

void model_free(struct model *m)
{
	sites_free(&m->sites);
	site_rules_free(&m->rules);
	free(m->wrappers);
	free(m->run_wrappers);
	sym_close(m->sym);
	analysis_free(&m->a);
	if (m->t)
		trace_close(m->t);
	for (int i = 0; i < m->nothers; i++) {
		free(m->others[i].name);
		free(m->others[i].exe);
	}
	free(m->others);
	for (size_t i = 0; m->hints && i < m->nhints; i++)
		free(m->hints[i]);
	free(m->hints);
	memset(m, 0, sizeof(*m));
}
