/*
 * summary.c - the model as summary.json: every key docs/spec.md requires, and
 * more (docs/metrics.md lists them).  The terminal summary is text.c's.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/json.h"
#include "analyzer/debuginfo.h"
#include "analyzer/model.h"
#include "analyzer/recording.h"
#include "common/util.h"

/* --sample: the error stated with an estimate is MODEL_SAMPLE_SIGMAS
 * standard deviations (3: the truth lies within it 99.7% of the time). */
uint64_t model_sample_error(double var)
{
	return (uint64_t)llround(MODEL_SAMPLE_SIGMAS * sqrt(var > 0 ? var : 0));
}

#define TREE_DEPTH 12		/* caller levels kept in summary.json (its nesting is bounded) */
#define TREE_WIDTH 8		/* callers kept per node, heaviest first */

static void json_frame_loc(struct json *j, const struct sym_frame *f)
{
	json_str(j, "function", f->function);
	json_str(j, "file", f->file);
	json_uint(j, "line", f->line);
	json_str(j, "module", f->module);
}

/* Every frame of the site's heaviest stack, inlined ones included. */
static void json_frames(struct json *j, const struct model *m, const struct rsite *r)
{
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
			char addr[24], pc[24];
			snprintf(addr, sizeof(addr), "0x%llx", (unsigned long long)f[k].addr);
			snprintf(pc, sizeof(pc), "0x%llx", (unsigned long long)f[k].pc);
			json_obj(j, NULL);
			json_frame_loc(j, &f[k]);
			json_str(j, "address", addr);
			json_str(j, "pc", f[k].module ? pc : NULL);
			json_bool(j, "inlined", f[k].inlined);
			json_end(j);
		}
	}
	json_end(j);
}

/* Node i's callers, heaviest first, TREE_WIDTH of them, TREE_DEPTH deep. */
static void json_callers(struct json *j, const struct model *m, const struct site_tree *t,
			 uint32_t i)
{
	uint32_t kids[TREE_WIDTH];
	int n = site_tree_children(t, i, kids, TREE_WIDTH), all = 0;
	for (uint32_t c = t->n[i].child; c; c = t->n[c].next)
		all++;
	json_arr(j, "callers");
	for (int k = 0; k < n && t->n[i].depth < TREE_DEPTH; k++) {
		const struct site_node *c = &t->n[kids[k]];
		json_obj(j, NULL);
		json_frame_loc(j, c->frame);
		json_uint(j, "allocations", c->allocs);
		json_uint(j, "allocated_bytes", c->alloc_bytes);
		json_int(j, "live_bytes", c->live_bytes);
		json_int(j, "live_bytes_at_peak", c->live_at_peak);
		if (m->a.have_exit)
			json_int(j, "live_bytes_at_exit", c->live_at_exit);
		json_callers(j, m, t, kids[k]);
		json_end(j);
	}
	json_end(j);
	if (all > n || (n && t->n[i].depth >= TREE_DEPTH))
		json_uint(j, "callers_not_shown", (uint64_t)(t->n[i].depth >= TREE_DEPTH ? all : all - n));
}

static void json_site(struct json *j, const struct model *m, const struct rsite *r)
{
	json_obj(j, NULL);
	json_frame_loc(j, r->site);
	json_int(j, "live_bytes", r->s->live_bytes);
	json_uint(j, "allocations", r->s->allocs);
	json_uint(j, "live_blocks", r->s->live_blocks);
	json_uint(j, "allocated_bytes", r->s->alloc_bytes);
	json_uint(j, "frees", r->s->frees);
	json_int(j, "peak_live_bytes", r->s->peak_live);
	json_int(j, "live_bytes_at_peak", r->s->live_at_peak);
	if (m->a.sample_mean)
		json_uint(j, "live_bytes_error", model_sample_error(r->s->live_var));
	if (m->a.have_exit) {
		json_int(j, "live_bytes_at_exit", r->s->live_at_exit);
		json_bool(j, "freed_at_exit", r->freed_at_exit);
	}
	json_bool(j, "growing", r->growing);
	json_uint(j, "stacks", r->nstacks);
	json_uint(j, "site_id", r->index);
	json_frames(j, m, r);
	struct site_tree t;
	if (model_site_tree(m, r, &t) == 0) {
		json_callers(j, m, &t, 0);
		site_tree_free(&t);
	}
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

/* The keys docs/spec.md requires, in its order (but top_sites_by_peak,
 * which the caller writes next). */
static void json_spec(struct json *j, const struct model *m)
{
	const struct analysis *a = &m->a;
	json_uint(j, "pid", m->info->pid);
	json_str(j, "command", m->info->command);
	json_str(j, "mode", m->attach ? "attach" : "launch");
	json_uint(j, "duration_ns", m->duration_ns);
	json_obj(j, "counts");
	json_uint(j, "malloc", a->counts[TC_MALLOC]);
	json_uint(j, "calloc", a->counts[TC_CALLOC]);
	json_uint(j, "realloc", a->counts[TC_REALLOC]);
	json_uint(j, "free", a->counts[TC_FREE]);
	json_uint(j, "memalign", a->counts[TC_MEMALIGN]);
	json_end(j);
	json_uint(j, "total_bytes_allocated", a->total_bytes_allocated);
	json_int(j, "peak_live_bytes", a->peak_live_bytes);
	json_int(j, "live_bytes_end", a->live_bytes_end);
	json_uint(j, "threads", a->nthreads);
	json_uint(j, "rss_peak_bytes", m->rss_peak);
	json_uint(j, "heap_rss_bytes", m->heap_rss);
	if (m->heap.measured)
		json_num(j, "fragmentation_ratio", m->frag);
	else
		json_null(j, "fragmentation_ratio");	/* not measured: heap.why says why */
	json_str(j, "allocator", m->heap.allocator);
	json_sites(j, m, "top_sites", m->by_live, m->n_live);
}

/* How the program ended, and its exit. */
static void json_end_of_run(struct json *j, const struct model *m)
{
	const struct analysis *a = &m->a;
	json_bool(j, "exited", m->exited);
	if (m->have_exit_status && WIFEXITED(m->exit_wait_status))
		json_int(j, "exit_status", WEXITSTATUS(m->exit_wait_status));
	else
		json_null(j, "exit_status");
	if (m->have_exit_status && WIFSIGNALED(m->exit_wait_status))
		json_int(j, "exit_signal", WTERMSIG(m->exit_wait_status));
	if (a->have_exit) {
		json_obj(j, "exit_began");
		json_uint(j, "time_ns", a->exit_ts > a->first_ts ? a->exit_ts - a->first_ts : 0);
		json_str(j, "how", a->exit_how == MFX_EXIT_MAIN_RETURN ? "main returned" :
				   a->exit_how == MFX_EXIT_CALL ? "exit() called" : "exit handler");
		json_int(j, "status", a->exit_status);
		json_int(j, "live_bytes", a->live_at_exit);
		json_uint(j, "freed_by_teardown_bytes",
			  a->live_at_exit > a->live_bytes_end ? (uint64_t)(a->live_at_exit - a->live_bytes_end) : 0);
		json_end(j);
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
	json_uint(j, "error_sigmas", MODEL_SAMPLE_SIGMAS);
	json_uint(j, "live_bytes_end_error", model_sample_error(a->live_var_end));
	json_uint(j, "total_bytes_allocated_error", model_sample_error(a->alloc_var));
	json_end(j);
}

static void json_memory(struct json *j, const struct model *m)
{
	const struct analysis *a = &m->a;
	json_bool(j, "rss_peak_exact", m->rss_peak_exact);
	json_uint(j, "peak_live_time_ns", a->peak_live_ts > a->first_ts ? a->peak_live_ts - a->first_ts : 0);
	json_int(j, "live_bytes_at_rss_peak", m->live_at_rss_peak);
	json_uint(j, "mfx_rss_bytes", m->mfx_rss);
	json_bool(j, "smaps_at_peak", m->have_smaps);
	heap_json(j, &m->heap);
	if (m->a.sample_mean)
		json_null(j, "page_occupancy");	/* needs every live block */
	else
		json_occupancy(j, m);
	json_arr(j, "rss_timeline");
	const struct trace_sample *s;
	size_t n = trace_samples(m->t, &s);
	size_t step = n > 2000 ? (n + 1999) / 2000 : 1;
	for (size_t i = 0; i < n; i += step) {
		json_obj(j, NULL);
		json_uint(j, "time_ns", s[i].ts_ns > m->info->start_ns ? s[i].ts_ns - m->info->start_ns : 0);
		json_uint(j, "rss_bytes", s[i].v[MFX_SF_RSS]);
		json_uint(j, "heap_rss_bytes", s[i].v[MFX_SF_HEAP_RSS]);
		json_uint(j, "hwm_bytes", s[i].v[MFX_SF_HWM]);
		json_end(j);
	}
	json_end(j);
}

static void json_attach_trim(struct json *j, const struct model *m)
{
	if (m->have_attach) {
		json_obj(j, "attach");
		json_uint(j, "start_to_active_ns", m->attach_vals[0]);
		json_uint(j, "thread_held_ns", m->attach_vals[1]);
		json_uint(j, "got_slots_patched", m->attach_vals[2]);
		json_uint(j, "modules_patched", m->attach_vals[3]);
		json_uint(j, "safe_point_attempts", m->attach_vals[4]);
		json_uint(j, "loader_thread_ns", m->attach_vals[5]);
		json_str(j, "agent", m->attach_agent);
		json_end(j);
	}
	json_obj(j, "trim");
	json_uint(j, "estimated_reclaimable_bytes", m->trim_estimate);
	if (m->have_trim) {
		json_str(j, "method", m->trim_method);
		json_str(j, "call", m->trim_call);
		json_uint(j, "rss_before_bytes", m->trim_vals[0]);
		json_uint(j, "rss_after_bytes", m->trim_vals[1]);
		json_uint(j, "heap_rss_before_bytes", m->trim_vals[2]);
		json_uint(j, "heap_rss_after_bytes", m->trim_vals[3]);
		json_uint(j, "released_bytes", m->trim_vals[0] > m->trim_vals[1] ?
						     m->trim_vals[0] - m->trim_vals[1] : 0);
	}
	json_end(j);
}

static void json_histograms(struct json *j, const struct model *m)
{
	const struct analysis *a = &m->a;
	json_arr(j, "size_histogram");
	for (unsigned c = 0; c < AN_SIZE_CLASSES; c++) {
		if (!a->size_count[c])
			continue;
		json_obj(j, NULL);
		json_uint(j, "min_bytes", an_size_class_min(c));
		json_uint(j, "max_bytes", c + 1 < AN_SIZE_CLASSES ? 1ull << (c + 4) : 0);
		json_uint(j, "allocations", a->size_count[c]);
		json_uint(j, "bytes", a->size_bytes[c]);
		json_end(j);
	}
	json_end(j);
	json_obj(j, "lifetime_histogram");
	for (unsigned c = 0; c < AN_LIFE_CLASSES; c++)
		json_uint(j, an_life_class_name(c), a->life_count[c]);
	json_uint(j, "still_live", a->life_live_end);
	json_end(j);
	json_arr(j, "thread_stats");
	for (uint32_t i = 0; i < a->nthreads; i++) {
		const struct thread_stat *t = &a->threads[i];
		json_obj(j, NULL);
		json_uint(j, "tid", t->tid);
		json_str(j, "name", trace_thread_name(m->t, t->tid));
		json_uint(j, "allocations", t->allocs);
		json_uint(j, "frees", t->frees);
		json_uint(j, "allocated_bytes", t->alloc_bytes);
		json_int(j, "live_bytes_change", t->live_bytes);
		json_end(j);
	}
	json_end(j);
}

/* Modules whose frames have no names or no file:line, and what would
 * name them; modules whose file changed since the run. */
static void json_modules(struct json *j, const struct model *m)
{
	const struct sym_module *mods;
	size_t n = m->sym ? sym_modules(m->sym, &mods) : 0;
	json_arr(j, "modules_without_symbols");
	for (size_t i = 0; i < n; i++) {
		const struct sym_module *d = &mods[i];
		if (!debuginfo_needed(d))
			continue;
		json_obj(j, NULL);
		json_str(j, "module", d->path);
		json_str(j, "build_id", d->build_id);
		json_str(j, "symbols", d->has_dwarf ? "debug info" : d->has_symtab ? "symbol table" :
							       "dynamic symbols only");
		json_uint(j, "addresses", d->addrs);
		json_uint(j, "unnamed_addresses", d->unnamed);
		json_uint(j, "addresses_without_line", d->no_line);
		json_str(j, "how_to_name_them", i < m->nhints ? m->hints[i] : NULL);
		json_end(j);
	}
	json_end(j);
	json_arr(j, "modules_changed");
	for (size_t i = 0; i < n; i++) {
		const struct sym_module *d = &mods[i];
		if (!d->addrs || (!d->stale && !d->missing))
			continue;
		json_obj(j, NULL);
		json_str(j, "module", d->path);
		json_str(j, "build_id", d->build_id);
		json_str(j, "build_id_on_disk", d->missing ? NULL : d->disk_build_id);
		json_bool(j, "missing", d->missing);
		json_end(j);
	}
	json_end(j);
}

static void json_others(struct json *j, const struct model *m)
{
	json_arr(j, "other_traces");
	for (int i = 0; i < m->nothers; i++)
		json_str(j, NULL, m->others[i].name);
	json_end(j);
	json_arr(j, "exec_images");
	for (int i = 0; i < m->nothers; i++) {
		const struct other_trace *o = &m->others[i];
		if (!o->exec_image)
			continue;
		json_obj(j, NULL);
		json_str(j, "trace", o->name);
		json_str(j, "exe", o->exe);
		json_uint(j, "events", o->events);
		json_end(j);
	}
	json_end(j);
	json_arr(j, "wrappers");
	for (int i = 0; i < m->nwrappers; i++)
		json_str(j, NULL, m->wrappers[i]);
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
	json_spec(&j, m);
	/* the last key docs/spec.md requires; what follows is beyond it */
	json_sites(&j, m, "top_sites_by_peak", m->by_peak, m->n_peak);
	if (a->sample_mean)
		json_sampled(&j, a);
	json_obj(&j, "verdict");
	json_str(&j, "kind", verdict_name(m->verdict));
	json_str(&j, "text", m->verdict_line);
	json_end(&j);
	json_end_of_run(&j, m);
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
	json_uint(&j, "late_give_backs", a->late_frees);
	json_uint(&j, "live_blocks_end", a->live_blocks_end);
	json_memory(&j, m);
	json_attach_trim(&j, m);
	json_int(&j, "leak_growth_bytes", m->leak_growth);
	json_sites(&j, m, "leak_suspects", m->leaks, m->n_leaks);
	json_sites(&j, m, "top_sites_by_allocations", m->by_allocs, m->n_allocs);
	json_histograms(&j, m);
	json_modules(&j, m);
	json_others(&j, m);
	recording_json(&j, m);
	json_end(&j);
	return fclose_replace(f, tmp, path, 0);
}
