/*
 * pprof.h - the run as a pprof profile (profile.proto, gzip'd): what
 * Grafana Pyroscope, Parca, Polar Signals and `go tool pprof` read.  One
 * sample per allocation stack, from the frame that names its site outward,
 * with the sample types Go's heap profiles use:
 *
 *   alloc_objects/count  alloc_space/bytes    allocating calls, their bytes
 *   inuse_objects/count  inuse_space/bytes    blocks live at the peak of
 *                                             live bytes (or at the end)
 *
 * Locations keep their inline chains (several Line entries, the function
 * they were inlined into last); mappings keep the modules' build IDs.
 */
#ifndef MFX_ANALYZER_PPROF_H
#define MFX_ANALYZER_PPROF_H

#include <stdio.h>

struct model;

enum pprof_at {
	PPROF_AT_PEAK,	/* in use at the peak of live bytes (the summary's "at the peak") */
	PPROF_AT_END,	/* in use at the end of the window */
};

/* Write the gzip'd profile of model m to f.  0 or -errno / -ENOMEM. */
int pprof_write(const struct model *m, enum pprof_at at, FILE *f);

#endif /* MFX_ANALYZER_PPROF_H */
