/*
 * heap.h - the heap at the RSS peak as the allocator that serves the
 * process sees it (heap.c): which allocator it is, its heap RSS and the live
 * bytes in it, from the allocator's own figures (ALLOC marks the agent
 * recorded) where smaps cannot tell, and whether mfx could measure it at all.
 * docs/metrics.md, "Heap RSS", is the prose.
 */
#ifndef MFX_ANALYZER_HEAP_H
#define MFX_ANALYZER_HEAP_H

#include <stdint.h>
#include <stdio.h>

#include "analyzer/analyze.h"
#include "common/json.h"
#include "trace/format.h"
#include "trace/reader.h"

struct heap_view {
	char allocator[16];		/* "glibc", "jemalloc", "tcmalloc", "mimalloc", "unknown" */
	char module[256];		/* the file whose malloc the program calls ("" unknown) */
	int measured;			/* heap RSS and live bytes known: a verdict may be given */
	char why[400];			/* when not measured: why, for people */
	const char *heap_from;		/* "smaps" or "allocator" */
	const char *live_from;		/* "trace" or "allocator" */
	uint64_t heap_rss;		/* at the RSS peak */
	uint64_t heap_rss_smaps;	/* what the smaps rule alone says (every allocator) */
	int64_t live;			/* live bytes at the RSS peak */
	uint64_t free_cap;		/* the allocator's own free (releasable) bytes, or UINT64_MAX */
	/* the allocator's figures nearest the RSS peak (ALLOC mark) */
	int have_figs;
	uint32_t valid;			/* bit i: figs[i] known (enum mfx_alloc_field) */
	uint64_t figs[MFX_AF_NFIELDS];
	uint64_t figs_ts;		/* when they were read (ns) */
	unsigned nmarks;		/* ALLOC marks in the trace */
	/* around a measured trim (--trim-at-end), when recorded */
	int have_trim_figs;
	uint32_t trim_valid[2];
	uint64_t trim_figs[2][MFX_AF_NFIELDS];	/* before, after */
};

/*
 * Build the view of trace t (attach: captured by mfx attach) from its ALLOC
 * (or, older traces, MALLINFO) marks, the analysis a (live bytes, the time
 * of the kept smaps) and the smaps rule's heap RSS at the peak.
 */
void heap_view_build(struct trace *t, int attach, const struct analysis *a,
		     uint64_t smaps_heap_rss, struct heap_view *h);
/* summary.json's "heap" object (key "heap"). */
void heap_json(struct json *j, const struct heap_view *h);
/* One line for the terminal summary: the allocator and how its heap was measured. */
void heap_print(FILE *f, const struct heap_view *h);
/* What gives this allocator's free memory back, for the verdict's words. */
const char *heap_release_call(const struct heap_view *h);
/* The allocator's name for a field, for people ("in use", "resident", ...). */
const char *heap_field_name(unsigned field);

#endif /* MFX_ANALYZER_HEAP_H */
