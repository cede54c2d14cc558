/*
 * verdict.c - the verdict rules (see verdict.h and docs/metrics.md), in
 * this order: nothing recorded; a heap mfx could not measure gets no
 * verdict (but a leak); a heap below the floor is "steady"; a leak
 * (after the program exited: anything that only grew and is still held);
 * growth held until the program exited; allocator retention;
 * fragmentation; otherwise steady.
 */
#include <stdio.h>

#include "analyzer/verdict.h"
#include "common/util.h"

int verdict_below_floor(uint64_t heap_rss, uint64_t rss_peak)
{
	return heap_rss < VERDICT_FLOOR_BYTES || heap_rss * 100 < rss_peak * VERDICT_FLOOR_PCT;
}

const char *verdict_name(enum verdict v)
{
	switch (v) {
	case V_LEAK: return "leak";
	case V_FRAGMENTATION: return "fragmentation";
	case V_RETENTION: return "retention";
	case V_STEADY: return "steady";
	case V_GROWTH: return "growth";
	default: return "none";
	}
}

static void steady_small(const struct verdict_in *in, struct verdict_out *out)
{
	char a[32], b[32], c[32], d[32];
	int n = snprintf(out->line, sizeof(out->line),
			 "steady: the heap is small (heap RSS %s of %s RSS, below the floor of %s or "
			 "%d%% of RSS); live data %s",
			 fmt_bytes(in->heap_rss, a, sizeof(a)), fmt_bytes(in->rss_peak, b, sizeof(b)),
			 fmt_bytes(VERDICT_FLOOR_BYTES, c, sizeof(c)), VERDICT_FLOOR_PCT,
			 fmt_bytes(in->live, d, sizeof(d)));
	if (in->n_leaks && n > 0 && (size_t)n < sizeof(out->line))
		snprintf(out->line + n, sizeof(out->line) - (size_t)n, "; %d site%s grew by %s",
			 in->n_leaks, in->n_leaks == 1 ? "" : "s",
			 fmt_bytes(in->leak_growth, a, sizeof(a)));
	out->kind = V_STEADY;
}

void verdict_decide(const struct verdict_in *in, struct verdict_out *out)
{
	char a[32], b[32], c[32];
	uint64_t waste = in->heap_rss > in->live ? in->heap_rss - in->live : 0;
	double frag = in->heap_rss ? (double)waste / (double)in->heap_rss : 0;
	if (!in->events) {
		out->kind = V_NONE;
		snprintf(out->line, sizeof(out->line), "no allocation calls were recorded");
	} else if (!in->heap_measured && !in->n_leaks) {
		out->kind = V_NONE;	/* a guess is no ground for a verdict (heap.c) */
		snprintf(out->line, sizeof(out->line), "no verdict on the heap: %s",
			 in->heap_why ? in->heap_why : "not measured");
	} else if (in->heap_measured && verdict_below_floor(in->heap_rss, in->rss_peak)) {
		steady_small(in, out);
	} else if (in->n_leaks && (in->exited || !in->heap_measured ||
				   (in->leak_growth * 2 >= waste && in->leak_growth >= in->trim_estimate))) {
		/* a program that exited and still held what only grew: no doubt
		 * left; a window of a live process: only when it explains the
		 * unused heap */
		out->kind = V_LEAK;
		snprintf(out->line, sizeof(out->line),
			 "LEAK suspected: %d site%s grew by %s and never shrank (largest: %s)",
			 in->n_leaks, in->n_leaks == 1 ? "" : "s",
			 fmt_bytes(in->leak_growth, a, sizeof(a)), in->leak_site);
	} else if (in->exited && in->exit_site && in->exit_growth * 2 >= in->live) {
		out->kind = V_GROWTH;
		snprintf(out->line, sizeof(out->line),
			 "GROWTH: %s grew to %s and held it until the program exited (freed only at exit)",
			 in->exit_site, fmt_bytes(in->exit_site_bytes, a, sizeof(a)));
	} else if (frag >= 0.3 && in->trim_estimate * 2 >= waste) {
		out->kind = V_RETENTION;
		snprintf(out->line, sizeof(out->line),
			 "ALLOCATOR RETENTION: %s of the %s heap RSS holds no live block; "
			 "%s could return about %s", fmt_bytes(waste, a, sizeof(a)),
			 fmt_bytes(in->heap_rss, b, sizeof(b)),
			 in->release_call ? in->release_call : "malloc_trim(0)",
			 fmt_bytes(in->trim_estimate, c, sizeof(c)));
	} else if (frag >= 0.3) {
		out->kind = V_FRAGMENTATION;
		snprintf(out->line, sizeof(out->line),
			 "FRAGMENTATION: %.0f%% of the heap RSS (%s of %s) holds no live data, "
			 "mostly in partly used pages", frag * 100, fmt_bytes(waste, a, sizeof(a)),
			 fmt_bytes(in->heap_rss, b, sizeof(b)));
	} else {
		out->kind = V_STEADY;
		snprintf(out->line, sizeof(out->line),
			 "steady: live data is %.0f%% of the %s heap RSS; no site only grew",
			 100.0 * (1 - frag), fmt_bytes(in->heap_rss, a, sizeof(a)));
	}
}
