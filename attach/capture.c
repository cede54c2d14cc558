/*
 * capture.c - the options `mfx launch` and `mfx attach` share (capture.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "analyzer/report.h"
#include "attach/capture.h"
#include "attach/cmdline.h"
#include "common/util.h"

const char capture_options_help[] =
	"    -o, --out DIR              run directory (default results/<prog>-<pid>-<date>)\n"
	"        --force                reuse a non-empty run directory\n"
	"        --for DURATION         length of the capture window: 500ms, 30s, 2m\n"
	"        --no-stacks            record events without call stacks (fastest)\n"
	"        --stack-depth N        deepest stack kept (default 64, at most 256)\n"
	"        --sample BYTES         record a sample of the calls: one per BYTES allocated\n"
	"                               on average (e.g. 512k); live bytes are estimates\n"
	"                               with their error; no replay, no page occupancy\n"
	"        --smaps-interval DURATION\n"
	"                               how often RSS is sampled (default 200ms)\n"
	"        --trim-at-end          at the end, make the allocator give free memory back\n"
	"                               (malloc_trim(0), jemalloc's purge, ...); record RSS\n"
	"                               before and after\n"
	"        --no-report            skip the report at the end (run 'mfx report' later)\n"
	"        --wrapper REGEX        functions matching REGEX allocate for their callers:\n"
	"                               sites are named past them (repeatable; kept for\n"
	"                               later 'mfx report' runs)\n"
	"    -q, --quiet                only errors: no progress line, no summary\n";

void capture_defaults(struct capture_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->stack_depth = 64;
	o->smaps_interval_ns = 200000000ull;
}

enum { OPT_FORCE = 256, OPT_FOR, OPT_NOSTACKS, OPT_DEPTH, OPT_SMAPS, OPT_TRIM, OPT_NOREPORT,
       OPT_HELP, OPT_SAMPLE, OPT_WRAPPER };

/* A flag of the shared options: 1 when c is one, else 0. */
static int set_flag(int c, struct capture_opts *o)
{
	switch (c) {
	case OPT_FORCE: o->force = 1; return 1;
	case OPT_NOSTACKS: o->no_stacks = 1; return 1;
	case OPT_TRIM: o->trim_at_end = 1; return 1;
	case OPT_NOREPORT: o->no_report = 1; return 1;
	case 'q':
		o->quiet = 1;
		mfx_quiet = 1;
		return 1;
	}
	return 0;
}

/* --wrapper REGEX: at most as many as o->wrappers holds, each one compiled
 * once here so that a bad one is said before the capture.  0, or -1 after
 * printing a usage error. */
static int add_wrapper(const char *cmd, char *arg, struct capture_opts *o)
{
	char why[300];
	if (o->nwrappers == (int)(sizeof(o->wrappers) / sizeof(o->wrappers[0]))) {
		mfx_usage(cmd, "at most %d --wrapper options", o->nwrappers);
		return -1;
	}
	if (report_check_wrappers((const char *const *)&arg, 1, why, sizeof(why))) {
		mfx_usage(cmd, "invalid --wrapper %s", why);
		return -1;
	}
	o->wrappers[o->nwrappers++] = arg;
	return 0;
}

/* An option of the shared ones that takes a value: 1 when set, 0 when c is
 * none of them, -1 after printing a usage error. */
static int set_value(const char *cmd, int c, char *arg, struct capture_opts *o)
{
	uint64_t v;
	switch (c) {
	case 'o':
		o->out = arg;
		return 1;
	case OPT_FOR:
		if (parse_duration(arg, &o->for_ns) || o->for_ns == 0) {
			mfx_usage(cmd, "invalid --for duration '%s' (e.g. 500ms, 30s, 2m)",
				  arg);
			return -1;
		}
		return 1;
	case OPT_DEPTH:
		if (parse_uint(arg, 256, &v) || v == 0) {
			mfx_usage(cmd, "invalid --stack-depth '%s' (1 to 256)", arg);
			return -1;
		}
		o->stack_depth = (unsigned)v;
		return 1;
	case OPT_SMAPS:
		if (parse_duration(arg, &o->smaps_interval_ns) || o->smaps_interval_ns < 10000000ull) {
			mfx_usage(cmd, "invalid --smaps-interval '%s' (at least 10ms)", arg);
			return -1;
		}
		return 1;
	case OPT_SAMPLE:
		if (parse_size(arg, &o->sample_bytes) || o->sample_bytes < 1024 ||
		    o->sample_bytes > (1ull << 40)) {
			mfx_usage(cmd, "invalid --sample '%s' (bytes between samples, "
				  "1k to 1T, e.g. 512k)", arg);
			return -1;
		}
		return 1;
	case OPT_WRAPPER:
		return add_wrapper(cmd, arg, o) ? -1 : 1;
	}
	return 0;
}

int capture_parse(const char *cmd, int argc, char **argv, struct capture_opts *o,
		  void (*help)(void), struct cmdline *cl)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "for", required_argument, NULL, OPT_FOR },
		{ "no-stacks", no_argument, NULL, OPT_NOSTACKS },
		{ "stack-depth", required_argument, NULL, OPT_DEPTH },
		{ "smaps-interval", required_argument, NULL, OPT_SMAPS },
		{ "trim-at-end", no_argument, NULL, OPT_TRIM },
		{ "no-report", no_argument, NULL, OPT_NOREPORT },
		{ "sample", required_argument, NULL, OPT_SAMPLE },
		{ "wrapper", required_argument, NULL, OPT_WRAPPER },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;
	optind = 1;
	opterr = 0;
	/* launch ('+', no cl): stop at the first operand, so `mfx launch ./app
	 * -o x` passes -o to the app.  attach: options anywhere (cmdline.h). */
	while ((c = cl ? cmdline_next(cl, argc, argv, ":o:qh", longopts) :
			 getopt_long(argc, argv, "+:o:qh", longopts, NULL)) != -1) {
		if (c == 'h') {
			help();
			return -2;
		}
		if (c == ':') {
			mfx_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
			return -1;
		}
		if (set_flag(c, o))
			continue;
		if ((r = set_value(cmd, c, optarg, o)) < 0)
			return -1;
		if (r == 0) {
			mfx_usage(cmd, "unknown option '%s'", argv[optind - 1]);
			return -1;
		}
	}
	return optind;
}
