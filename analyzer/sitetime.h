/*
 * sitetime.h - live bytes of the top sites over time (report.html's
 * "memory over time by site" and sites_over_time.png): a second pass over
 * the events, on the analysis's timeline buckets, following only the
 * blocks of the SITETIME_TOP sites with the highest peaks.  A site here is
 * the frame that names it (function, file, line): the stacks that share it
 * are summed.
 */
#ifndef MFX_ANALYZER_SITETIME_H
#define MFX_ANALYZER_SITETIME_H

#include <stdint.h>

#include "analyzer/analyze.h"

struct model;

#define SITETIME_TOP 8

struct site_series {
	int n;				/* sites */
	const struct sym_frame *site[SITETIME_TOP];	/* the frame that names each */
	int64_t peak[SITETIME_TOP];	/* each one's highest live bytes */
	int64_t *v[SITETIME_TOP];	/* [ntl]: the highest live bytes in each bucket */
	uint32_t ntl;			/* = the analysis's timeline buckets */
};

/* Follow the top sites of model m through its trace.  0 or -errno. */
int site_series_build(const struct model *m, int quiet, struct site_series *s);
void site_series_free(struct site_series *s);

/* sites_over_time.png in dir (charts.c).  0 or -errno. */
int chart_sites_over_time(const struct model *m, const struct site_series *s, const char *dir);

#endif /* MFX_ANALYZER_SITETIME_H */
