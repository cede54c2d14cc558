/*
 * sites.h - allocation sites as a user names them.  A stack's site is its
 * first frame of the program's own code: frames of the allocator and the C
 * library, operator new, the C++ standard library (its headers and
 * libstdc++) and known allocation wrappers (xmalloc, g_malloc, PyMem_*,
 * palloc, zmalloc, ngx_palloc, ...; more with --wrapper REGEX) are skipped.
 * Every stack whose site is the same frame (function, file, line, module)
 * is one site; under it, its callers form a call tree with bytes and counts.
 */
#ifndef MFX_ANALYZER_SITES_H
#define MFX_ANALYZER_SITES_H

#include <regex.h>
#include <stdint.h>

#include "analyzer/analyze.h"
#include "analyzer/symbolize.h"
#include "common/hmap.h"

#define SITE_MAX_FRAMES 1024	/* frames of one stack, inlined ones included */

struct site_rules {
	regex_t *re;		/* wrapper names: defaults, then --wrapper */
	const char **src;	/* their text */
	int n;
};

/* The default rules plus `extra` (POSIX extended regular expressions,
 * matched against demangled function names).  0, or -EINVAL with the
 * offending expression's error in err. */
int site_rules_init(struct site_rules *r, const char *const *extra, int nextra, char *err,
		    size_t errn);
void site_rules_free(struct site_rules *r);
/* 1 if frame f is not the program's own code (the allocator, the C or C++
 * library, a wrapper), else 0. */
int site_frame_skipped(const struct site_rules *r, const struct sym_frame *f);
/* Index of the frame naming the site among frames[0..n) (innermost first):
 * the first not skipped; the innermost when every frame is. */
int site_pick(const struct site_rules *r, const struct sym_frame *const *frames, int n);

/* The frames of stack `id`, inlined ones expanded, innermost first
 * (at most max); returns their number (0: no stack). */
typedef int (*site_frames_fn)(void *ctx, uint32_t id, const struct sym_frame **out, int max);

struct site_info {
	const struct sym_frame *frame;	/* the frame naming the site */
	uint32_t nstacks;		/* stacks folded into it */
	uint32_t rep_stack;		/* its heaviest stack (sites_finish) */
	uint32_t next;			/* fold: next site of the same hash + 1, 0 = none */
};

struct sites {
	uint32_t *site_of;		/* [nids]: stack id -> site index */
	uint16_t *at;			/* [nids]: where the site frame is in the stack */
	uint32_t nids;
	struct site_info *v;		/* v[0]: "(no stack)" */
	uint32_t n;
	site_frames_fn frames;
	void *ctx;
	uint32_t cap;
	struct hmap byhash;		/* fold: frame hash -> first site index + 1 */
};

/* Fold stack ids 0..nids-1 into sites.  0 or -ENOMEM. */
int sites_fold(struct sites *S, const struct site_rules *r, uint32_t nids, site_frames_fn fn,
	       void *ctx);
/* After the analysis (a->sites: per stack): each site's heaviest stack. */
void sites_finish(struct sites *S, const struct analysis *a);
void sites_free(struct sites *S);
/* The grouping for analyze_trace_grouped(). */
struct an_groups sites_groups(const struct sites *S);

/* A site's callers as a tree: node 0 is the site frame itself; children
 * are the frames that called it (merged by function, file, line). */
struct site_node {
	const struct sym_frame *frame;
	uint64_t allocs, alloc_bytes;
	int64_t live_bytes, live_at_peak, live_at_exit;
	uint32_t child, next;		/* first child, next sibling (0 = none) */
	uint32_t depth;
};

struct site_tree {
	struct site_node *n;
	uint32_t count, cap;
	uint32_t dropped;		/* frames beyond SITE_TREE_MAX nodes */
};

#define SITE_TREE_MAX 4096

/* The call tree of site `site`.  0 or -ENOMEM. */
int sites_tree(const struct sites *S, const struct analysis *a, uint32_t site, struct site_tree *t);
void site_tree_free(struct site_tree *t);
/* Children of node i, heaviest first (live at the peak, then allocated
 * bytes), into out (at most max); returns how many. */
int site_tree_children(const struct site_tree *t, uint32_t i, uint32_t *out, int max);

/* Two frames are the same source location (function, file, line, module). */
int site_same_frame(const struct sym_frame *x, const struct sym_frame *y);

#endif
