/*
 * cmd_report.c - `mfx report`: analyse a run directory again.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "analyzer/report.h"
#include "attach/cmdline.h"
#include "attach/commands.h"
#include "common/util.h"

static void report_help(void)
{
	printf("usage: mfx report RUN_DIR [--trace FILE] [--top N] [--wrapper REGEX]... [--json]\n"
	       "                  [--no-charts] [-q]\n\n"
	       "Analyse the trace of a run directory written by 'mfx launch' or 'mfx attach':\n"
	       "write summary.json, the charts (heatmap_allocations.png,\n"
	       "impact_memory_usage.png, page_occupancy.png) and report.html into it, and\n"
	       "print the summary: the verdict first (leak, growth, fragmentation, allocator\n"
	       "retention, or steady), then the allocation sites holding the most at the\n"
	       "peak of live bytes, the leak suspects, the busiest sites.  A site is the\n"
	       "first frame of the program's own code: the allocator, the C and C++\n"
	       "libraries and known allocation wrappers (xmalloc, g_malloc, PyMem_*, palloc,\n"
	       "zmalloc, ngx_palloc, ...) are skipped.\n\n"
	       "Options (before or after RUN_DIR):\n"
	       "        --trace FILE  another trace of the run (e.g. trace-1234.mfx, a child);\n"
	       "                      writes summary-1234.json, report-1234.html, charts-1234\n"
	       "        --top N       sites to list (default 10, at most 50)\n"
	       "        --wrapper REGEX\n"
	       "                      functions matching REGEX (extended, on demangled names)\n"
	       "                      allocate for their callers: skip them when naming sites\n"
	       "                      (repeatable)\n"
	       "        --json        print summary.json on stdout instead of the summary\n"
	       "        --no-charts   summary.json and the summary only\n"
	       "    -q, --quiet       no progress line, no summary: only the files\n\n"
	       "Examples:\n"
	       "    mfx report results/app-4242-20261125-101500\n"
	       "    mfx report results/app-4242-20261125-101500 --json | jq .fragmentation_ratio\n");
}

int cmd_report(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "trace", required_argument, NULL, 't' },
		{ "wrapper", required_argument, NULL, 'w' },
		{ "top", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-charts", no_argument, NULL, 'c' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct report_opts o = { .top = 10 };
	const char *wrappers[MFX_MAX_WRAPPERS];
	int json = 0, c;
	uint64_t v;
	struct cmdline cl = { 0 };
	while ((c = cmdline_next(&cl, argc, argv, ":qh", longopts)) != -1) {
		switch (c) {
		case 't': o.trace = optarg; break;
		case 'w':
			if (o.nwrappers == MFX_MAX_WRAPPERS)
				return mfx_usage("report", "at most %d --wrapper options", MFX_MAX_WRAPPERS);
			wrappers[o.nwrappers++] = optarg;
			o.wrappers = wrappers;
			break;
		case 'n':
			if (parse_uint(optarg, 50, &v) || !v)
				return mfx_usage("report", "invalid --top '%s' (1 to 50)", optarg);
			o.top = (int)v;
			break;
		case 'j': json = 1; break;
		case 'c': o.no_charts = 1; break;
		case 'q': o.quiet = 1; mfx_quiet = 1; break;
		case 'h': report_help(); return EXIT_OK;
		case ':': return mfx_usage("report", "option '%s' needs a value", argv[optind - 1]);
		default: return mfx_usage("report", "unknown option '%s'", argv[optind - 1]);
		}
	}
	const char *dir;
	int rc = cmdline_run_dir("report", &cl, &dir);
	if (rc)
		return rc;
	o.json = json;
	char why[300];
	if (report_check_wrappers(o.wrappers, o.nwrappers, why, sizeof(why)))
		return mfx_usage("report", "invalid --wrapper %s", why);
	/* report_run says its errors itself, in one line */
	return report_run(dir, &o) ? EXIT_FAIL : EXIT_OK;
}
