/*
 * model.h - everything a report shows, computed once from a run directory
 * (trace + smaps) and then rendered as summary.json, the terminal summary,
 * the charts and report.html.
 */
#ifndef MFX_ANALYZER_MODEL_H
#define MFX_ANALYZER_MODEL_H

#include <stdint.h>
#include <stdio.h>

#include "analyzer/analyze.h"
#include "analyzer/heap.h"
#include "analyzer/symbolize.h"
#include "trace/reader.h"

#define MODEL_TOP_MAX 50
#define OCC_CLASSES 5	/* pages by live-byte fill: 0, (0,25%], (25,50%], (50,75%], (75,100%] */

struct rsite {
	const struct site_stat *s;
	const struct sym_frame *site;	/* the frame named as the site */
	const uint64_t *frames;		/* raw return addresses */
	uint32_t depth;
	int growing;			/* leak suspect: live bytes only grew */
};

enum verdict { V_NONE, V_LEAK, V_FRAGMENTATION, V_RETENTION, V_STEADY };

struct model {
	char run_dir[4096];
	char trace_path[4200];
	const char *trace_name;
	struct trace *t;
	const struct trace_info *info;
	struct analysis a;
	struct symbolizer *sym;
	int attach;			/* captured by mfx attach */
	uint64_t duration_ns;
	/* memory at the RSS peak */
	int have_smaps;
	uint64_t rss_peak;		/* excluding mfx's own mappings */
	uint64_t heap_rss;		/* allocator mappings' RSS */
	uint64_t mfx_rss;
	double frag;			/* SPEC: (heap_rss - live) / heap_rss */
	int64_t live_at_rss_peak;
	/* page occupancy of the allocator mappings at the RSS peak */
	uint64_t pages_mapped, pages_resident, pages_with_live;
	uint64_t occ[OCC_CLASSES];
	uint64_t trim_estimate;		/* resident heap bytes holding no live block */
	struct heap_view heap;		/* the allocator's view of the heap (heap.h) */
	/* measured trim (mfx attach --trim-at-end, mfx trim) */
	int have_attach;		/* the ATTACH mark: how the attach went */
	uint64_t attach_vals[6];	/* start_to_active_ns, held_ns, slots, modules, attempts,
					   loader_thread_ns (0: none; older traces: absent) */
	char attach_agent[16];		/* "loaded" or "reused" */
	int have_trim;
	uint64_t trim_vals[7];
	char trim_method[16];		/* "agent" or "ptrace" */
	char trim_call[64];		/* what was called: "malloc_trim(0)", ... */
	/* sites */
	struct rsite by_live[MODEL_TOP_MAX], by_allocs[MODEL_TOP_MAX], by_peak[MODEL_TOP_MAX];
	int n_live, n_allocs, n_peak;
	struct rsite leaks[MODEL_TOP_MAX];
	int n_leaks;
	int64_t leak_growth;		/* bytes grown by the leak suspects */
	/* verdict */
	enum verdict verdict;
	char verdict_line[512];
	/* other traces in the run directory */
	char **others;
	int nothers;
	int top;			/* sites to show */
};

/* Build the model of run_dir's trace `trace_name` (NULL: trace.mfx). */
int model_build(const char *run_dir, const char *trace_name, int top, int quiet, struct model *m);
void model_free(struct model *m);

/* Outputs (summary.c, charts.c, html.c). */
int model_write_json(const struct model *m, const char *path);
void model_print(const struct model *m, FILE *f);
int model_write_charts(const struct model *m, const char *dir);
int model_write_html(const struct model *m, const char *path);

/* Name the site of stack stats s as the report does: r->site is the frame
 * that names it, one of the frames sym_lookup() gives for some r->frames[k]
 * (the frames inner to it are the allocator and its wrappers). */
void model_name_site(const struct model *m, const struct site_stat *s, struct rsite *r);

/* A site's frames as one line: "f (file.c:12) < g < main". */
void model_stack_line(const struct model *m, const struct rsite *r, char *buf, size_t n, int max);

#endif
