/*
 * analyze.h - the numbers behind the report, from one streaming pass over a
 * trace's events in time order: counts by the counting rules of docs/spec.md,
 * live bytes and their peak, per-site and per-thread figures, histograms, a
 * timeline, and the live blocks at the RSS peak (for fragmentation and page
 * occupancy).
 * Memory: the live-block table (32 bytes per live block) plus O(sites +
 * threads + buckets).  docs/metrics.md defines every figure.
 */
#ifndef MFX_ANALYZER_ANALYZE_H
#define MFX_ANALYZER_ANALYZE_H

#include <stdint.h>

#include "trace/reader.h"

#define AN_SITE_BUCKETS 16	/* per-site live-bytes series */
#define AN_TL_BUCKETS 1024	/* global timeline resolution */
#define AN_SIZE_CLASSES 24	/* size histogram: [0,16], (16,32], ... (2^26, inf) */
#define AN_LIFE_CLASSES 9	/* <1us, <10us, ... <10s, >=10s */
#define AN_HEAT_THREADS 64	/* heatmap rows: the busiest threads */

/* One allocation site: a stack (sites[], indexed by stack id) or a group
 * of stacks (groups[], analyze_trace_grouped: every stack named by the
 * same site). */
struct site_stat {
	uint32_t stack;			/* stack id (groups: the group's index) */
	uint64_t allocs;		/* allocating calls of this site */
	uint64_t alloc_bytes;		/* their requested bytes */
	uint64_t frees;			/* frees of its blocks (by anyone) */
	int64_t live_bytes;		/* at the end */
	uint64_t live_blocks;
	int64_t peak_live;		/* its own maximum */
	int64_t live_at_peak;		/* at the global live-bytes peak */
	uint64_t live_blocks_at_peak;	/* its blocks then */
	int64_t live_at_exit;		/* when the program began to exit (have_exit) */
	int64_t series[AN_SITE_BUCKETS];	/* live bytes at each bucket's end
						   (until the exit began) */
	/* sampled traces: the counts above as estimates (sums of 1/p), and
	 * the variance of the live-bytes estimate at the end */
	double w_allocs, w_frees, w_live_blocks, live_var;
	/* bookkeeping for live_at_peak and series (see analyze.c) */
	uint32_t epoch;
	uint32_t series_b;		/* series[] after it: live_bytes (filled at the end) */
	int64_t saved;
	uint64_t saved_blocks;
};

/* analyze_trace_grouped(): which group (site) each stack id belongs to. */
struct an_groups {
	const uint32_t *site_of;	/* [nstacks]: stack id -> group index */
	uint32_t nstacks;		/* ids >= nstacks belong to group 0 */
	uint32_t nsites;
};

struct thread_stat {
	uint32_t tid;
	uint64_t allocs, frees, alloc_bytes;
	int64_t live_bytes;
	uint64_t size_hist[AN_SIZE_CLASSES];	/* allocating calls by size class */
};

struct tl_point {
	uint64_t ts_ns;			/* bucket end, absolute ns */
	int64_t live_bytes;		/* at the bucket's end */
	int64_t live_max;		/* highest in the bucket */
	uint64_t cum_alloc_bytes;	/* allocated since the start */
	uint64_t allocs, frees;		/* calls in the bucket */
};

struct live_block {
	uint64_t ptr, size;
};

struct analysis {
	/* totals, by the counting rules of docs/spec.md */
	uint64_t counts[TC_NCLASSES];
	uint64_t api_counts[MFX_K_NKINDS];
	uint64_t nevents;
	uint64_t total_bytes_allocated;	/* requested bytes of successful allocating calls */
	uint64_t failed_calls;
	int64_t live_bytes_end;
	uint64_t live_blocks_end;
	int64_t peak_live_bytes;
	uint64_t peak_live_ts;
	uint64_t first_ts, last_ts;
	/* blocks from before the window: their frees are counted, not subtracted */
	uint64_t unknown_frees;
	uint64_t reused_live;		/* allocations at an address still live */
	uint64_t late_frees;		/* give-backs that came after such an allocation */
	/* threads, in trace order (same index as trace_event.thread) */
	struct thread_stat *threads;
	uint32_t nthreads;
	/* sites, indexed by stack id (sites[0] = no stack); grouped: the
	 * groups too, by group index */
	struct site_stat *sites;
	uint32_t nsites;
	struct site_stat *groups;
	uint32_t ngroups;
	/* the program began to exit (the agent's EXITING mark): the figures
	 * at that moment; frees after it are its teardown */
	int have_exit;
	uint64_t exit_ts;
	int64_t exit_status;		/* exit()'s argument or main's return value */
	uint32_t exit_how;		/* enum mfx_exit_how */
	int64_t live_at_exit;
	/* histograms */
	uint64_t size_count[AN_SIZE_CLASSES], size_bytes[AN_SIZE_CLASSES];
	uint64_t life_count[AN_LIFE_CLASSES];	/* freed blocks by lifetime */
	uint64_t life_live_end;			/* blocks still live at the end */
	/* timeline */
	struct tl_point tl[AN_TL_BUCKETS];
	uint32_t ntl;
	uint64_t tl_t0, tl_width;		/* ns */
	uint64_t site_t0, site_width;		/* per-site series buckets */
	/* the RSS peak (from the samples) and the live blocks at that moment */
	uint64_t rss_peak_ts;
	int have_rss_peak;
	int64_t live_at_rss_peak;
	struct live_block *peak_blocks;		/* sorted by ptr */
	uint64_t npeak_blocks;
	struct live_block *end_blocks;		/* live at the end, sorted by ptr */
	uint64_t nend_blocks;
	/* --sample: every byte figure above is an estimate (each recorded
	 * block of n bytes stands for n / p bytes, p = 1 - exp(-n / mean));
	 * counts[] and api_counts[] stay the recorded calls, w_counts[] are
	 * the estimated ones.  live_var_end, alloc_var: variances of
	 * live_bytes_end and total_bytes_allocated. */
	uint64_t sample_mean;			/* 0: every call was recorded */
	double w_counts[TC_NCLASSES];
	double live_var_end, alloc_var;
};

/* Analyse every event of t.  Progress (when tty and not quiet) on stderr.
 * 0 or -errno / -MFX_E_CORRUPT (then *a holds what came before). */
int analyze_trace(struct trace *t, int quiet, struct analysis *a);
/* The same, and the figures of groups of stacks (g->site_of): a->groups[]. */
int analyze_trace_grouped(struct trace *t, int quiet, const struct an_groups *g, struct analysis *a);
void analysis_free(struct analysis *a);

/* Size class of a request (histogram index) and its lower bound in bytes. */
unsigned an_size_class(uint64_t size);
uint64_t an_size_class_min(unsigned c);
const char *an_life_class_name(unsigned c);

#endif
