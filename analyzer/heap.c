/*
 * heap.c - the heap at the RSS peak, allocator by allocator (heap.h).
 *
 * The agent names the allocator that serves malloc and records its own
 * figures as ALLOC marks (trace/format.h, preload/allocator.c): at the
 * window's start and end, at exit, and (not glibc) every 100 ms.  The mark
 * nearest the time the kept smaps was read stands for the RSS peak.
 *
 *   allocator  heap RSS                         live bytes (launch | attach)
 *   glibc      smaps rule ([heap] + anonymous)  trace | mallinfo2 in use at the end,
 *                                                        moved back to the peak
 *   jemalloc   stats.resident                   trace | stats.allocated
 *   tcmalloc   generic.total_physical_bytes     trace | generic.current_allocated_bytes
 *   mimalloc   smaps rule, at most its commit   trace | not kept by a release build:
 *                                                        not measured
 *   other      smaps rule (a guess)             not measured
 *
 * "Not measured" means no fragmentation ratio and no verdict on the heap:
 * a guess presented as a number would send the reader the wrong way.
 */
#include <stdio.h>
#include <string.h>

#include "analyzer/heap.h"
#include "common/util.h"

static const char *const field_key[MFX_AF_NFIELDS] = {
	"in_use_bytes", "resident_bytes", "mapped_bytes", "free_bytes", "retained_bytes",
	"metadata_bytes", "active_bytes",
};
static const char *const field_name[MFX_AF_NFIELDS] = {
	"in use", "resident", "mapped", "free", "retained", "metadata", "active",
};

const char *heap_field_name(unsigned field)
{
	return field < MFX_AF_NFIELDS ? field_name[field] : "?";
}

static int is(const struct heap_view *h, const char *name)
{
	return !strcmp(h->allocator, name);
}

static void copy_figs(const struct trace_mark *mk, uint32_t *valid, uint64_t *figs)
{
	*valid = (uint32_t)mk->vals[1];
	for (unsigned i = 0; i < MFX_AF_NFIELDS; i++)
		figs[i] = 2 + i < mk->nvals ? mk->vals[2 + i] : 0;
	if (mk->nvals < 2 + MFX_AF_NFIELDS)
		*valid &= (1u << (mk->nvals > 2 ? mk->nvals - 2 : 0)) - 1;
}

/* "jemalloc /usr/lib/.../libjemalloc.so.2": name, then the module. */
static void take_name(struct heap_view *h, const char *text)
{
	size_t n = strcspn(text, " ");
	if (!h->nmarks && n && n < sizeof(h->allocator))
		snprintf(h->allocator, sizeof(h->allocator), "%.*s", (int)n, text);
	if (!h->module[0] && text[n] == ' ')
		snprintf(h->module, sizeof(h->module), "%s", text + n + 1);
}

/* The ALLOC marks: the allocator's name, the figures nearest the peak (or
 * the last ones when the peak is the process's exit), those around a trim;
 * *end_in_use / *end_free: the window's end (older traces: MALLINFO). */
static void read_marks(struct trace *t, const struct analysis *a, struct heap_view *h,
		       int *have_end, uint64_t *end_in_use, uint64_t *end_free)
{
	const struct trace_mark *mk;
	size_t n = trace_marks(t, &mk);
	uint64_t best = UINT64_MAX;
	for (size_t i = 0; i < n; i++) {
		const struct trace_mark *m = &mk[i];
		if (m->kind == MFX_MARK_MALLINFO && m->nvals >= 7 && !strcmp(m->text, "end") &&
		    !*have_end) {
			*have_end = 1;
			*end_in_use = m->vals[4] + m->vals[3];
			*end_free = m->vals[5];
		}
		if (m->kind != MFX_MARK_ALLOC || m->nvals < 2)
			continue;
		take_name(h, m->text);
		h->nmarks++;
		unsigned phase = (unsigned)m->vals[0];
		if (phase == MFX_AP_TRIM_BEFORE || phase == MFX_AP_TRIM_AFTER) {
			int k = phase == MFX_AP_TRIM_AFTER;
			copy_figs(m, &h->trim_valid[k], h->trim_figs[k]);
			h->have_trim_figs |= 1 << k;
			continue;
		}
		if (!m->vals[1])
			continue;
		if (phase == MFX_AP_END && (m->vals[1] & (1u << MFX_AF_IN_USE))) {
			*have_end = 1;
			*end_in_use = m->vals[2 + MFX_AF_IN_USE];
			*end_free = m->vals[2 + MFX_AF_FREE];
		}
		uint64_t d = !a->have_rss_peak ? UINT64_MAX - m->ts_ns :
			     m->ts_ns > a->rss_peak_ts ? m->ts_ns - a->rss_peak_ts : a->rss_peak_ts - m->ts_ns;
		if (d <= best) {
			best = d;
			h->have_figs = 1;
			h->figs_ts = m->ts_ns;
			copy_figs(m, &h->valid, h->figs);
		}
	}
}

static int fig(const struct heap_view *h, unsigned f, uint64_t *v)
{
	if (!h->have_figs || !(h->valid & (1u << f)))
		return 0;
	*v = h->figs[f];
	return 1;
}

static void not_measured(struct heap_view *h, const char *fmt, const char *arg)
{
	h->measured = 0;
	snprintf(h->why, sizeof(h->why), fmt, arg);
}

/* jemalloc and tcmalloc: their resident figure is the heap; in attach,
 * their in-use figure the live bytes (the window misses older blocks). */
static void own_figures(struct heap_view *h, int attach)
{
	uint64_t v;
	if (fig(h, MFX_AF_RESIDENT, &v)) {
		h->heap_rss = v;
		h->heap_from = "allocator";
	} else {
		not_measured(h, "%s gave no statistics (built without them?)", h->allocator);
	}
	if (attach) {
		if (fig(h, MFX_AF_IN_USE, &v)) {
			h->live = (int64_t)v;
			h->live_from = "allocator";
		} else {
			not_measured(h, "%s gave no count of the bytes in use", h->allocator);
		}
	}
	if (fig(h, MFX_AF_FREE, &v))
		h->free_cap = v;
}

void heap_view_build(struct trace *t, int attach, const struct analysis *a,
		     uint64_t smaps_heap_rss, struct heap_view *h)
{
	memset(h, 0, sizeof(*h));
	h->free_cap = UINT64_MAX;
	h->heap_rss = h->heap_rss_smaps = smaps_heap_rss;
	h->heap_from = "smaps";
	h->live = a->live_at_rss_peak;
	h->live_from = "trace";
	h->measured = 1;
	int have_end = 0;
	uint64_t end_in_use = 0, end_free = 0;
	read_marks(t, a, h, &have_end, &end_in_use, &end_free);
	if (!h->nmarks)	/* an mfx before ALLOC marks: it measured glibc's heap */
		snprintf(h->allocator, sizeof(h->allocator), "glibc");
	uint64_t v;
	if (is(h, "glibc")) {
		if (attach && have_end) {
			h->live = (int64_t)end_in_use + (a->live_at_rss_peak - a->live_bytes_end);
			h->live_from = "allocator";
			h->free_cap = end_free;	/* pages of pre-window blocks look empty */
		}
	} else if (is(h, "jemalloc") || is(h, "tcmalloc")) {
		own_figures(h, attach);
	} else if (is(h, "mimalloc")) {
		if (fig(h, MFX_AF_MAPPED, &v) && v < h->heap_rss)
			h->heap_rss = v;	/* it cannot hold more than it committed */
		if (attach)
			not_measured(h, "%s (a release build) keeps no count of the bytes in use, and "
				     "the window does not see the blocks allocated before it", "mimalloc");
	} else {
		not_measured(h, "the allocator that serves malloc (%s) is not one mfx can read",
			     h->module[0] ? h->module : "unknown");
	}
	if (!h->heap_rss && h->measured)
		not_measured(h, "%s", "no heap RSS was sampled");
	if (h->live < 0)
		h->live = 0;
}

static void json_figs(struct json *j, const char *key, uint32_t valid, const uint64_t *figs)
{
	json_obj(j, key);
	for (unsigned i = 0; i < MFX_AF_NFIELDS; i++)
		if (valid & (1u << i))
			json_uint(j, field_key[i], figs[i]);
	json_end(j);
}

void heap_json(struct json *j, const struct heap_view *h)
{
	json_obj(j, "heap");
	json_str(j, "allocator", h->allocator);
	json_str(j, "module", h->module[0] ? h->module : NULL);
	json_bool(j, "measured", h->measured);
	json_str(j, "not_measured_because", h->measured ? NULL : h->why);
	json_str(j, "heap_rss_from", h->heap_from);
	json_str(j, "live_bytes_from", h->live_from);
	json_uint(j, "heap_rss_bytes", h->heap_rss);
	json_uint(j, "heap_rss_smaps_bytes", h->heap_rss_smaps);
	json_int(j, "live_bytes", h->live);
	if (h->have_figs) {
		json_figs(j, "allocator_figures", h->valid, h->figs);
	} else {
		json_null(j, "allocator_figures");
	}
	if (h->have_trim_figs == 3) {
		json_figs(j, "allocator_before_trim", h->trim_valid[0], h->trim_figs[0]);
		json_figs(j, "allocator_after_trim", h->trim_valid[1], h->trim_figs[1]);
	}
	json_end(j);
}

void heap_print(FILE *f, const struct heap_view *h)
{
	char a[32], b[32];
	fprintf(f, "  allocator: %s%s%s%s", h->allocator, h->module[0] ? " (" : "", h->module,
		h->module[0] ? ")" : "");
	uint64_t in_use, res;
	if (fig(h, MFX_AF_RESIDENT, &res) && fig(h, MFX_AF_IN_USE, &in_use))
		fprintf(f, "; its own figures near the peak: %s resident, %s in use",
			fmt_bytes(res, a, sizeof(a)), fmt_bytes(in_use, b, sizeof(b)));
	else if (fig(h, MFX_AF_MAPPED, &res) && !fig(h, MFX_AF_IN_USE, &in_use))
		fprintf(f, "; it committed %s", fmt_bytes(res, a, sizeof(a)));
	fputc('\n', f);
	if (!h->measured)
		fprintf(f, "  heap not measured: %s; no verdict on it\n", h->why);
}

const char *heap_release_call(const struct heap_view *h)
{
	return is(h, "jemalloc") ? "a jemalloc purge ('mfx trim')" :
	       is(h, "tcmalloc") ? "tcmalloc's ReleaseFreeMemory ('mfx trim')" :
	       is(h, "mimalloc") ? "mi_collect ('mfx trim')" : "malloc_trim";
}
