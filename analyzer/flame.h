/*
 * flame.h - the call tree of a run's allocations, for report.html's flame
 * graph: every stack from its outermost frame down to the frame that names
 * its site (inline frames included), merged by function name level by
 * level, each node with four figures (live at the peak, live at the end,
 * bytes allocated, allocating calls), inclusive of its callees.
 *
 * A trace can have 100k distinct stacks; the tree is cut to at most
 * FLAME_BUDGET nodes: those whose share of the total is the smallest in
 * every figure are folded, per parent, into one "(N more)" node, so the
 * page stays light and the big paths stay exact.
 */
#ifndef MFX_ANALYZER_FLAME_H
#define MFX_ANALYZER_FLAME_H

#include <stdint.h>
#include <stdio.h>

struct model;

#define FLAME_METRICS 4		/* live at the peak, live at the end, allocated, calls */
#define FLAME_BUDGET 20000

struct flame_node {
	uint32_t parent;	/* index; the root (0) is its own parent */
	const char *name;	/* function (interned by the symbolizer), or a label */
	const char *file;	/* source file of its first frame, or NULL */
	unsigned line;
	const char *module;
	uint32_t more;		/* > 0: this node folds that many small siblings */
	uint64_t v[FLAME_METRICS];
};

struct flame {
	struct flame_node *n;	/* parents before children */
	uint32_t count;
	uint32_t before;	/* nodes before folding */
};

/* The tree of model m.  0 or -ENOMEM. */
int flame_build(const struct model *m, struct flame *f);
void flame_free(struct flame *f);

#endif /* MFX_ANALYZER_FLAME_H */
