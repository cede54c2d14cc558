/*
 * verdict.h - the one-line verdict of a report, from a few figures (a pure
 * function: tests/unit/verdict.c checks its rules).  docs/metrics.md "The
 * verdict" states them.
 */
#ifndef MFX_ANALYZER_VERDICT_H
#define MFX_ANALYZER_VERDICT_H

#include <stddef.h>
#include <stdint.h>

enum verdict { V_NONE, V_LEAK, V_FRAGMENTATION, V_RETENTION, V_STEADY, V_GROWTH };

/* Below this heap RSS, or below VERDICT_FLOOR_PCT % of the RSS peak, the
 * heap is too small to worry about: the verdict is "steady" with the
 * figures, whatever they are. */
#define VERDICT_FLOOR_BYTES (8ull << 20)
#define VERDICT_FLOOR_PCT 5

struct verdict_in {
	uint64_t events;		/* allocation calls recorded */
	int heap_measured;		/* heap RSS and live bytes known (heap.h) */
	const char *heap_why;		/* when not: why, for people */
	const char *release_call;	/* what gives free memory back: "malloc_trim(0)", ... */
	uint64_t rss_peak;		/* bytes */
	uint64_t heap_rss;		/* the allocator's resident bytes at the RSS peak */
	uint64_t live;			/* live bytes then */
	uint64_t trim_estimate;		/* resident heap pages holding no live byte */
	/* leak suspects: sites whose live bytes only grew and still hold them */
	int n_leaks;
	uint64_t leak_growth;
	const char *leak_site;		/* the largest one's name */
	/* grown until the program began to exit, freed by its teardown */
	int exited;			/* the EXITING mark was seen */
	uint64_t exit_growth;
	const char *exit_site;
	uint64_t exit_site_bytes;	/* what that site held when the exit began */
};

struct verdict_out {
	enum verdict kind;
	char line[512];
};

/* 1 when a heap of heap_rss bytes in a process of rss_peak is below the floor. */
int verdict_below_floor(uint64_t heap_rss, uint64_t rss_peak);
void verdict_decide(const struct verdict_in *in, struct verdict_out *out);
/* "leak", "fragmentation", "retention", "steady", "growth", "none" */
const char *verdict_name(enum verdict v);

#endif
