/*
 * cmd_export.c - `mfx export`: the command line of the exports (the formats
 * themselves are analyzer/export.c).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "analyzer/export.h"
#include "analyzer/model.h"
#include "analyzer/pprof.h"
#include "attach/cmdline.h"
#include "attach/commands.h"
#include "common/util.h"
#include "trace/reader.h"

static void export_help(void)
{
	printf("usage: mfx export RUN_DIR (--csv | --folded | --pprof) [--weight W] [--at peak|end]\n"
	       "                  [--trace FILE] [-o FILE]\n\n"
	       "Write the trace of RUN_DIR in another format.  Options go before or after\n"
	       "RUN_DIR.\n\n"
	       "    --csv             mftrace_log.csv: ts_ns,event,ptr,size,tid,api,old_ptr,stack\n"
	       "                      one row per counted call in time order (the seed's columns\n"
	       "                      first: event is malloc, calloc, realloc, free or memalign;\n"
	       "                      ts_ns is CLOCK_MONOTONIC; api names the exact function)\n"
	       "    --folded          stacks.folded: 'root;...;leaf weight' per allocation stack,\n"
	       "                      for flamegraph.pl, speedscope or inferno\n"
	       "    --pprof           profile.pb.gz: a gzip'd pprof profile.proto with the sample\n"
	       "                      types alloc_objects, alloc_space, inuse_objects and\n"
	       "                      inuse_space, symbolized (inline frames, file:line) with\n"
	       "                      each module's build ID, for go tool pprof, Grafana\n"
	       "                      Pyroscope, Parca or Polar Signals\n"
	       "    --weight W        folded weights: live-bytes (at the end, default),\n"
	       "                      alloc-bytes or count (allocating calls)\n"
	       "    --at peak|end     pprof in-use figures: at the peak of live bytes\n"
	       "                      (default, as the summary's) or at the end of the window\n"
	       "    --trace FILE      another trace of the run (e.g. trace-1234.mfx)\n"
	       "    -o, --out FILE    output file (default RUN_DIR/mftrace_log.csv,\n"
	       "                      RUN_DIR/stacks.folded or RUN_DIR/profile.pb.gz; '-' for\n"
	       "                      stdout)\n\n"
	       "Examples:\n"
	       "    mfx export results/app-4242-20261125-101500 --csv\n"
	       "    mfx export RUN --folded --weight alloc-bytes -o - | flamegraph.pl > alloc.svg\n"
	       "    mfx export RUN --pprof && go tool pprof -top -sample_index=inuse_space RUN/profile.pb.gz\n");
}

/* --pprof: the model of the run (as `mfx report` builds it), as a profile. */
static int export_pprof(const char *dir, const char *trace_name, const char *out, enum pprof_at at)
{
	struct model m;
	struct model_opts mo = { .trace = trace_name, .top = 10, .quiet = mfx_quiet };
	int err = model_build(dir, &mo, &m, NULL, 0);
	if (err) {
		mfx_err("cannot read '%s' in '%s': %s", trace_name, dir,
			mfx_strerror(err == -ENOENT ? MFX_E_NOTRACE : -err));
		model_free(&m);
		return EXIT_FAIL;
	}
	char opath[PATH_MAX], tmp[PATH_MAX + 8];
	if (!out)
		out = path_join(opath, sizeof(opath), dir, "profile.pb.gz");
	int to_stdout = !strcmp(out, "-");
	FILE *f = to_stdout ? stdout : fopen_replace(out, tmp, sizeof(tmp));
	if (!f) {
		mfx_err("cannot write '%s': %s", out, strerror(errno));
		model_free(&m);
		return EXIT_FAIL;
	}
	err = pprof_write(&m, at, f);
	model_free(&m);
	if (fflush(f) && !err)
		err = -errno;
	if (!to_stdout)
		err = fclose_replace(f, tmp, out, err);
	if (err) {
		mfx_err("cannot write '%s': %s", out, mfx_strerror(-err));
		return EXIT_FAIL;
	}
	if (!to_stdout)
		mfx_note("wrote %s (in use at the %s; go tool pprof -top -sample_index=inuse_space %s)",
			 out, at == PPROF_AT_PEAK ? "peak of live bytes" : "end of the window", out);
	return EXIT_OK;
}

/* --csv, --folded: straight from the trace. */
static int export_trace(const char *dir, const char *trace_name, const char *out, int csv,
			enum export_weight w)
{
	char tpath[PATH_MAX], opath[PATH_MAX];
	if (strchr(trace_name, '/'))
		snprintf(tpath, sizeof(tpath), "%s", trace_name);
	else
		path_join(tpath, sizeof(tpath), dir, trace_name);
	struct trace *t;
	int err = trace_open(tpath, &t);
	if (err) {
		mfx_err("cannot read '%s': %s", tpath, mfx_strerror(err == -ENOENT ? MFX_E_NOTRACE : -err));
		return EXIT_FAIL;
	}
	if (!out)
		out = path_join(opath, sizeof(opath), dir, csv ? "mftrace_log.csv" : "stacks.folded");
	int to_stdout = !strcmp(out, "-");
	char tmp[PATH_MAX + 8];
	FILE *f = to_stdout ? stdout : fopen_replace(out, tmp, sizeof(tmp));
	if (!f) {
		mfx_err("cannot write '%s': %s", out, strerror(errno));
		trace_close(t);
		return EXIT_FAIL;
	}
	static char buf[1 << 16];
	setvbuf(f, buf, _IOFBF, sizeof(buf));
	err = csv ? export_csv(t, f) : export_folded(t, w, mfx_quiet, f);
	trace_close(t);
	if (fflush(f) && !err)
		err = -errno;
	if (!to_stdout)
		err = fclose_replace(f, tmp, out, err);
	if (err) {
		mfx_err("cannot export '%s': %s", tpath, mfx_strerror(-err));
		return EXIT_FAIL;
	}
	if (!to_stdout)
		mfx_note("wrote %s", out);
	return EXIT_OK;
}


int cmd_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "csv", no_argument, NULL, 'c' },
		{ "folded", no_argument, NULL, 'f' },
		{ "pprof", no_argument, NULL, 'p' },
		{ "at", required_argument, NULL, 'A' },
		{ "weight", required_argument, NULL, 'w' },
		{ "trace", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int csv = 0, folded = 0, pprof = 0, c;
	enum pprof_at at = PPROF_AT_PEAK;
	enum export_weight w = W_LIVE;
	const char *trace_name = "trace.mfx", *out = NULL;
	struct cmdline cl = { 0 };
	while ((c = cmdline_next(&cl, argc, argv, ":o:qh", longopts)) != -1) {
		switch (c) {
		case 'c': csv = 1; break;
		case 'f': folded = 1; break;
		case 'p': pprof = 1; break;
		case 'A':
			if (!strcmp(optarg, "peak"))
				at = PPROF_AT_PEAK;
			else if (!strcmp(optarg, "end"))
				at = PPROF_AT_END;
			else
				return mfx_usage("export", "invalid --at '%s' (peak or end)", optarg);
			break;
		case 'w':
			if (!strcmp(optarg, "live-bytes"))
				w = W_LIVE;
			else if (!strcmp(optarg, "alloc-bytes"))
				w = W_ALLOC;
			else if (!strcmp(optarg, "count"))
				w = W_COUNT;
			else
				return mfx_usage("export", "invalid --weight '%s' (live-bytes, "
							   "alloc-bytes or count)", optarg);
			break;
		case 't': trace_name = optarg; break;
		case 'o': out = optarg; break;
		case 'q': mfx_quiet = 1; break;
		case 'h': export_help(); return EXIT_OK;
		case ':': return mfx_usage("export", "option '%s' needs a value", argv[optind - 1]);
		default: return mfx_usage("export", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (csv + folded + pprof != 1)
		return mfx_usage("export", "give exactly one of --csv, --folded and --pprof");
	const char *dir;
	int rc = cmdline_run_dir("export", &cl, &dir);
	if (rc)
		return rc;
	if (pprof)
		return export_pprof(dir, trace_name, out, at);
	return export_trace(dir, trace_name, out, csv, w);
}
