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
#include "analyzer/sites.h"
#include "analyzer/symbolize.h"
#include "analyzer/verdict.h"
#include "trace/reader.h"

#define MODEL_TOP_MAX 50
#define OCC_CLASSES 5	/* pages by live-byte fill: 0, (0,25%], (25,50%], (50,75%], (75,100%] */

/* A ranked site (sites.h): its figures, its name, its heaviest stack. */
struct rsite {
	const struct site_stat *s;
	const struct sym_frame *site;	/* the frame named as the site */
	uint32_t index;			/* in model.sites */
	const uint64_t *frames;		/* its heaviest stack's return addresses */
	uint32_t depth;
	uint32_t nstacks;		/* stacks folded into it */
	int growing;			/* leak suspect: live bytes only grew */
	int freed_at_exit;		/* held it until the exit began, freed by the teardown */
};

/* Another trace of the run directory (a child, an earlier exec image). */
struct other_trace {
	char *name;
	char *exe;
	uint32_t pid;
	uint64_t events;
	int exec_image;			/* an earlier image of the same pid (a shim that exec'ed) */
};

struct model {
	char run_dir[4096];
	char trace_path[4200];
	const char *trace_name;
	char suffix[64];		/* "" for trace.mfx, "-<pid>[.N]" for another trace */
	struct trace *t;
	const struct trace_info *info;
	struct analysis a;
	struct symbolizer *sym;
	struct site_rules rules;
	struct sites sites;
	const char **wrappers;		/* --wrapper, and those the run recorded */
	int nwrappers;
	char *run_wrappers;		/* the run's, one a line (the trace's INFO) */
	int attach;			/* captured by mfx attach */
	uint64_t duration_ns;
	/* memory at the RSS peak */
	int have_smaps;
	uint64_t rss_peak;		/* the kernel's high-water mark (VmHWM) when known */
	int rss_peak_exact;		/* rss_peak is VmHWM / ru_maxrss, not a sample */
	uint64_t heap_rss;		/* allocator mappings' RSS */
	uint64_t smaps_rss;		/* RSS of the kept smaps (read at the highest sample) */
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
	/* the end: the program's exit (mfx's EXIT mark: wait status) */
	int exited;			/* the process ended during the window */
	int have_exit_status;
	int exit_wait_status;		/* as waitpid(2) gives it */
	/* sites */
	struct rsite by_live[MODEL_TOP_MAX], by_allocs[MODEL_TOP_MAX], by_peak[MODEL_TOP_MAX];
	int n_live, n_allocs, n_peak;
	struct rsite leaks[MODEL_TOP_MAX];
	int n_leaks;
	int64_t leak_growth;		/* bytes grown by the leak suspects */
	struct rsite exit_growth;	/* the largest site freed only at exit */
	int have_exit_growth;
	uint64_t exit_growth_bytes;	/* held by every such site when the exit began */
	/* verdict */
	enum verdict verdict;
	char verdict_line[512];
	/* per module of sym_modules(): what would name its frames, or NULL */
	char **hints;
	size_t nhints;
	/* other traces in the run directory */
	struct other_trace *others;
	int nothers;
	int top;			/* sites to show */
};

struct model_opts {
	const char *trace;		/* NULL: trace.mfx */
	int top;
	int quiet;
	const char *const *wrappers;	/* --wrapper REGEX... */
	int nwrappers;
};

/* Build the model of a run directory's trace.  0 or -errno / -MFX_E_*;
 * -EINVAL: a --wrapper expression is bad (err says why). */
int model_build(const char *run_dir, const struct model_opts *o, struct model *m, char *err,
		size_t errn);
void model_free(struct model *m);

/* --sample: errors stated as this many standard deviations, in bytes. */
#define MODEL_SAMPLE_SIGMAS 3
uint64_t model_sample_error(double var);

/* Outputs (summary.c, print.c, charts.c, html.c). */
int model_write_json(const struct model *m, const char *path);
/* The terminal summary; width: cut lines to it (0 = no cut). */
void model_print(const struct model *m, FILE *f, int width);
int model_write_charts(const struct model *m, const char *dir);
int model_write_html(const struct model *m, const char *path);
/* Path of an output file of this model: "<dir>/<stem><suffix><ext>"
 * (summary.json, or summary-1234.json for another trace). */
char *model_file(const struct model *m, const char *dir, const char *stem, const char *ext,
		 char *buf, size_t n);

/* Name the site of stack stats s as the report does: r->site is the frame
 * that names it, one of the frames sym_lookup() gives for some r->frames[k]
 * (the frames inner to it are the allocator and its wrappers). */
void model_name_site(const struct model *m, const struct site_stat *s, struct rsite *r);

/* A site's frames as one line: "f (file.c:12) < g < main". */
void model_stack_line(const struct model *m, const struct rsite *r, char *buf, size_t n, int max);

/* rank.c: the ranked lists, leak suspects and exit growth. */
int model_rank_sites(struct model *m);
/* Sites' callers (sites_tree) for the outputs. */
int model_site_tree(const struct model *m, const struct rsite *r, struct site_tree *t);

#endif
