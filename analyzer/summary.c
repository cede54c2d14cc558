/*
 * summary.c - the model as summary.json (every key SPEC.md requires, and
 * more) and as the terminal summary, verdict first.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "analyzer/model.h"
#include "common/util.h"

/* --sample: the error stated with an estimate is 3 standard deviations
 * (the truth lies within it 99.7% of the time). */
#define SAMPLE_SIGMAS 3
static uint64_t sample_error(double var)
{
	return (uint64_t)llround(SAMPLE_SIGMAS * sqrt(var > 0 ? var : 0));
}

static void json_site(struct json *j, const struct model *m, const struct rsite *r)
{
	json_obj(j, NULL);
	json_str(j, "function", r->site->function);
	json_str(j, "file", r->site->file);
	json_uint(j, "line", r->site->line);
	json_str(j, "module", r->site->module);
	json_int(j, "live_bytes", r->s->live_bytes);
	json_uint(j, "allocations", r->s->allocs);
	json_uint(j, "live_blocks", r->s->live_blocks);
	json_uint(j, "allocated_bytes", r->s->alloc_bytes);
	json_uint(j, "frees", r->s->frees);
	json_int(j, "peak_live_bytes", r->s->peak_live);
	json_int(j, "live_bytes_at_peak", r->s->live_at_peak);
	if (m->a.sample_mean)
		json_uint(j, "live_bytes_error", sample_error(r->s->live_var));
	json_bool(j, "growing", r->growing);
	json_uint(j, "stack_id", r->s->stack);
	json_arr(j, "stack");
	for (uint32_t i = 0; r->frames && i < r->depth; i++) {
		const struct sym_frame *f;
		int n = m->sym ? sym_lookup(m->sym, r->frames[i], &f) : 0;
		for (int k = 0; k < n; k++)
			json_str(j, NULL, f[k].function);
	}
	json_end(j);
	json_arr(j, "frames");
	for (uint32_t i = 0; r->frames && i < r->depth; i++) {
		const struct sym_frame *f;
		int n = m->sym ? sym_lookup(m->sym, r->frames[i], &f) : 0;
		for (int k = 0; k < n; k++) {
			char addr[24];
			snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)f[k].addr);
			json_obj(j, NULL);
			json_str(j, "function", f[k].function);
			json_str(j, "file", f[k].file);
			json_uint(j, "line", f[k].line);
			json_str(j, "module", f[k].module);
			json_str(j, "address", addr);
			json_bool(j, "inlined", f[k].inlined);
			json_end(j);
		}
	}
	json_end(j);
	json_end(j);
}

static void json_sites(struct json *j, const struct model *m, const char *key,
		       const struct rsite *v, int n)
{
	json_arr(j, key);
	for (int i = 0; i < n; i++)
		json_site(j, m, &v[i]);
	json_end(j);
}

static const char *verdict_name(enum verdict v)
{
	switch (v) {
	case V_LEAK: return "leak";
	case V_FRAGMENTATION: return "fragmentation";
	case V_RETENTION: return "retention";
	case V_STEADY: return "steady";
	default: return "none";
	}
}

/* Pages of the allocator mappings by live data at the RSS peak. */
static void json_occupancy(struct json *j, const struct model *m)
{
	json_obj(j, "page_occupancy");
	json_uint(j, "pages_mapped", m->pages_mapped);
	json_uint(j, "pages_resident", m->pages_resident);
	json_uint(j, "pages_with_live_data", m->pages_with_live);
	json_arr(j, "pages_by_fill");	/* 0, (0,25%], (25,50%], (50,75%], (75,100%] */
	for (int i = 0; i < OCC_CLASSES; i++)
		json_uint(j, NULL, m->occ[i]);
	json_end(j);
	json_end(j);
}

/* --sample: what the estimates rest on.  Bytes and counts everywhere else
 * are estimates; api_counts and events are the recorded calls. */
static void json_sampled(struct json *j, const struct analysis *a)
{
	json_obj(j, "sampled");
	json_uint(j, "mean_bytes", a->sample_mean);
	json_uint(j, "recorded_calls", a->nevents);
	json_bool(j, "counts_are_estimates", 1);
	json_uint(j, "error_sigmas", SAMPLE_SIGMAS);
	json_uint(j, "live_bytes_end_error", sample_error(a->live_var_end));
	json_uint(j, "total_bytes_allocated_error", sample_error(a->alloc_var));
	json_end(j);
}

int model_write_json(const struct model *m, const char *path)
{
	char tmp[4300];
	FILE *f = fopen_replace(path, tmp, sizeof(tmp));
	if (!f)
		return -errno;
	const struct analysis *a = &m->a;
	struct json j;
	json_init(&j, f);
	json_obj(&j, NULL);
	json_uint(&j, "pid", m->info->pid);
	json_str(&j, "command", m->info->command);
	json_str(&j, "mode", m->attach ? "attach" : "launch");
	json_uint(&j, "duration_ns", m->duration_ns);
	json_obj(&j, "counts");
	json_uint(&j, "malloc", a->counts[TC_MALLOC]);
	json_uint(&j, "calloc", a->counts[TC_CALLOC]);
	json_uint(&j, "realloc", a->counts[TC_REALLOC]);
	json_uint(&j, "free", a->counts[TC_FREE]);
	json_uint(&j, "memalign", a->counts[TC_MEMALIGN]);
	json_end(&j);
	json_uint(&j, "total_bytes_allocated", a->total_bytes_allocated);
	json_int(&j, "peak_live_bytes", a->peak_live_bytes);
	json_int(&j, "live_bytes_end", a->live_bytes_end);
	json_uint(&j, "threads", a->nthreads);
	json_uint(&j, "rss_peak_bytes", m->rss_peak);
	json_uint(&j, "heap_rss_bytes", m->heap_rss);
	if (m->heap.measured)
		json_num(&j, "fragmentation_ratio", m->frag);
	else
		json_null(&j, "fragmentation_ratio");	/* not measured: heap.why says why */
	json_str(&j, "allocator", m->heap.allocator);
	json_sites(&j, m, "top_sites", m->by_live, m->n_live);
	/* beyond SPEC.md */
	if (a->sample_mean)
		json_sampled(&j, a);
	json_obj(&j, "verdict");
	json_str(&j, "kind", verdict_name(m->verdict));
	json_str(&j, "text", m->verdict_line);
	json_end(&j);
	json_str(&j, "exe", m->info->exe);
	json_str(&j, "trace", m->trace_name);
	json_uint(&j, "events", a->nevents);
	json_obj(&j, "api_counts");
	for (unsigned k = 1; k <= MFX_K_PVALLOC; k++)
		json_uint(&j, trace_kind_name(k), a->api_counts[k]);
	json_end(&j);
	json_uint(&j, "failed_calls", a->failed_calls);
	json_uint(&j, "frees_of_unknown_blocks", a->unknown_frees);
	json_uint(&j, "allocations_over_live_blocks", a->reused_live);
	json_uint(&j, "live_blocks_end", a->live_blocks_end);
	json_uint(&j, "peak_live_time_ns", a->peak_live_ts > a->first_ts ? a->peak_live_ts - a->first_ts : 0);
	json_int(&j, "live_bytes_at_rss_peak", m->live_at_rss_peak);
	json_uint(&j, "mfx_rss_bytes", m->mfx_rss);
	json_bool(&j, "smaps_at_peak", m->have_smaps);
	heap_json(&j, &m->heap);
	if (a->sample_mean)
		json_null(&j, "page_occupancy");	/* needs every live block */
	else
		json_occupancy(&j, m);
	if (m->have_attach) {
		json_obj(&j, "attach");
		json_uint(&j, "start_to_active_ns", m->attach_vals[0]);
		json_uint(&j, "thread_held_ns", m->attach_vals[1]);
		json_uint(&j, "got_slots_patched", m->attach_vals[2]);
		json_uint(&j, "modules_patched", m->attach_vals[3]);
		json_uint(&j, "safe_point_attempts", m->attach_vals[4]);
		json_uint(&j, "loader_thread_ns", m->attach_vals[5]);
		json_str(&j, "agent", m->attach_agent);
		json_end(&j);
	}
	json_obj(&j, "trim");
	json_uint(&j, "estimated_reclaimable_bytes", m->trim_estimate);
	if (m->have_trim) {
		json_str(&j, "method", m->trim_method);
		json_str(&j, "call", m->trim_call);
		json_uint(&j, "rss_before_bytes", m->trim_vals[0]);
		json_uint(&j, "rss_after_bytes", m->trim_vals[1]);
		json_uint(&j, "heap_rss_before_bytes", m->trim_vals[2]);
		json_uint(&j, "heap_rss_after_bytes", m->trim_vals[3]);
		json_uint(&j, "released_bytes", m->trim_vals[0] > m->trim_vals[1] ?
						     m->trim_vals[0] - m->trim_vals[1] : 0);
	}
	json_end(&j);
	json_int(&j, "leak_growth_bytes", m->leak_growth);
	json_sites(&j, m, "leak_suspects", m->leaks, m->n_leaks);
	json_sites(&j, m, "top_sites_by_allocations", m->by_allocs, m->n_allocs);
	json_sites(&j, m, "top_sites_by_peak", m->by_peak, m->n_peak);
	json_arr(&j, "size_histogram");
	for (unsigned c = 0; c < AN_SIZE_CLASSES; c++) {
		if (!a->size_count[c])
			continue;
		json_obj(&j, NULL);
		json_uint(&j, "min_bytes", an_size_class_min(c));
		json_uint(&j, "max_bytes", c + 1 < AN_SIZE_CLASSES ? 1ull << (c + 4) : 0);
		json_uint(&j, "allocations", a->size_count[c]);
		json_uint(&j, "bytes", a->size_bytes[c]);
		json_end(&j);
	}
	json_end(&j);
	json_obj(&j, "lifetime_histogram");
	for (unsigned c = 0; c < AN_LIFE_CLASSES; c++)
		json_uint(&j, an_life_class_name(c), a->life_count[c]);
	json_uint(&j, "still_live", a->life_live_end);
	json_end(&j);
	json_arr(&j, "thread_stats");
	for (uint32_t i = 0; i < a->nthreads; i++) {
		const struct thread_stat *t = &a->threads[i];
		const char *name = trace_thread_name(m->t, t->tid);
		json_obj(&j, NULL);
		json_uint(&j, "tid", t->tid);
		json_str(&j, "name", name);
		json_uint(&j, "allocations", t->allocs);
		json_uint(&j, "frees", t->frees);
		json_uint(&j, "allocated_bytes", t->alloc_bytes);
		json_int(&j, "live_bytes_change", t->live_bytes);
		json_end(&j);
	}
	json_end(&j);
	json_arr(&j, "other_traces");
	for (int i = 0; i < m->nothers; i++)
		json_str(&j, NULL, m->others[i]);
	json_end(&j);
	json_end(&j);
	return fclose_replace(f, tmp, path, 0);
}

static void print_site(FILE *f, const struct model *m, const struct rsite *r, int i, int what)
{
	char a[32], b[32], line[4096], loc[300] = "";
	if (r->site->file)
		snprintf(loc, sizeof(loc), " %s:%u", sym_basename(r->site->file), r->site->line);
	char err[48] = "";
	if (m->a.sample_mean)
		snprintf(err, sizeof(err), " +-%s", fmt_bytes(sample_error(r->s->live_var), b,
							       sizeof(b)));
	if (what == 0)
		fprintf(f, "  %2d. %10s%s live in %s blocks%s  %s%s  [%s]\n", i + 1,
			fmt_bytes((uint64_t)(r->s->live_bytes > 0 ? r->s->live_bytes : 0), a, sizeof(a)),
			err, fmt_count(r->s->live_blocks, b, sizeof(b)), r->growing ? " (growing)" : "",
			r->site->function, loc, sym_basename(r->site->module));
	else
		fprintf(f, "  %2d. %10s calls, %s allocated  %s%s  [%s]\n", i + 1,
			fmt_count(r->s->allocs, a, sizeof(a)), fmt_bytes(r->s->alloc_bytes, b, sizeof(b)),
			r->site->function, loc, sym_basename(r->site->module));
	model_stack_line(m, r, line, sizeof(line), 6);
	if (line[0])
		fprintf(f, "        %s\n", line);
}

void model_print(const struct model *m, FILE *f)
{
	const struct analysis *a = &m->a;
	char b1[32], b2[32], b3[32], b4[32];
	fprintf(f, "pid %u  %s\n", m->info->pid, m->info->command[0] ? m->info->command : m->info->exe);
	fprintf(f, "%s %s, %s calls in %u thread%s\n\n", m->attach ? "attached for" : "traced for",
		fmt_duration(m->duration_ns, b1, sizeof(b1)), fmt_count(a->nevents, b2, sizeof(b2)),
		a->nthreads, a->nthreads == 1 ? "" : "s");
	fprintf(f, "verdict: %s\n", m->verdict_line);
	heap_print(f, &m->heap);
	if (m->heap_rss && m->heap.measured) {
		fprintf(f, "  at the RSS peak (%s): heap RSS %s, live blocks %s, fragmentation %.0f%%\n",
			fmt_bytes(m->rss_peak, b1, sizeof(b1)), fmt_bytes(m->heap_rss, b2, sizeof(b2)),
			fmt_bytes((uint64_t)(m->live_at_rss_peak > 0 ? m->live_at_rss_peak : 0), b3, sizeof(b3)),
			m->frag * 100);
		if (a->sample_mean)
			fprintf(f, "  page occupancy and the trim estimate: not measured on a sampled run "
				"(they need every live block)\n");
		else
			fprintf(f, "  %s could return about %s (resident heap pages holding no live "
				"block)\n", heap_release_call(&m->heap),
				fmt_bytes(m->trim_estimate, b1, sizeof(b1)));
	}
	if (m->have_trim)
		fprintf(f, "  %s measured (%s): RSS %s -> %s, heap RSS %s -> %s\n", m->trim_call,
			m->trim_method,
			fmt_bytes(m->trim_vals[0], b1, sizeof(b1)), fmt_bytes(m->trim_vals[1], b2, sizeof(b2)),
			fmt_bytes(m->trim_vals[2], b3, sizeof(b3)), fmt_bytes(m->trim_vals[3], b4, sizeof(b4)));
	if (m->attach)
		fprintf(f, "  (attach: blocks allocated before the window are not known; their %s frees "
			"were counted, not subtracted)\n", fmt_count(a->unknown_frees, b1, sizeof(b1)));
	fprintf(f, "\ncounts: malloc %llu  calloc %llu  realloc %llu  free %llu  memalign %llu\n",
		(unsigned long long)a->counts[TC_MALLOC], (unsigned long long)a->counts[TC_CALLOC],
		(unsigned long long)a->counts[TC_REALLOC], (unsigned long long)a->counts[TC_FREE],
		(unsigned long long)a->counts[TC_MEMALIGN]);
	fprintf(f, "live:   peak %s, end %s in %s blocks; %s allocated in all\n",
		fmt_bytes((uint64_t)(a->peak_live_bytes > 0 ? a->peak_live_bytes : 0), b1, sizeof(b1)),
		fmt_bytes((uint64_t)(a->live_bytes_end > 0 ? a->live_bytes_end : 0), b2, sizeof(b2)),
		fmt_count(a->live_blocks_end, b3, sizeof(b3)),
		fmt_bytes(a->total_bytes_allocated, b4, sizeof(b4)));
	if (a->sample_mean)
		fprintf(f, "sampled: one call per %s allocated on average (%s calls recorded): bytes "
			"and counts are estimates; live at the end +-%s (%d sigma)\n",
			fmt_bytes(a->sample_mean, b1, sizeof(b1)), fmt_count(a->nevents, b2, sizeof(b2)),
			fmt_bytes(sample_error(a->live_var_end), b3, sizeof(b3)), SAMPLE_SIGMAS);
	if (m->n_leaks) {
		fprintf(f, "\nleak suspects (live bytes only grew):\n");
		for (int i = 0; i < m->n_leaks && i < m->top; i++)
			print_site(f, m, &m->leaks[i], i, 0);
	}
	if (m->n_live) {
		fprintf(f, "\ntop sites by live bytes at the end:\n");
		for (int i = 0; i < m->n_live && i < m->top; i++)
			print_site(f, m, &m->by_live[i], i, 0);
	}
	if (m->n_allocs) {
		fprintf(f, "\ntop sites by allocations:\n");
		for (int i = 0; i < m->n_allocs && i < 5 && i < m->top; i++)
			print_site(f, m, &m->by_allocs[i], i, 1);
	}
	if (m->nothers) {
		fprintf(f, "\nalso traced in this run (children):");
		for (int i = 0; i < m->nothers; i++)
			fprintf(f, "%s %s", i ? "," : "", m->others[i]);
		fprintf(f, "\n  report one with: mfx report --trace %s %s\n", m->others[0], m->run_dir);
	}
}
