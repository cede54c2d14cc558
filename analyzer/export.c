/*
 * export.c - `mfx export`: the trace as the seed's CSV (mftrace_log.csv: one
 * row per counted call, in time order) or as folded stacks (stacks.folded:
 * one "root;...;leaf weight" line per stack, for flamegraph.pl, speedscope,
 * inferno).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyzer/analyze.h"
#include "analyzer/symbolize.h"
#include "analyzer/trace.h"
#include "attach/commands.h"
#include "attach/util.h"

enum weight { W_LIVE, W_ALLOC, W_COUNT };

static void export_help(void)
{
	printf("usage: mfx export (--csv | --folded) [--weight W] [--trace FILE] [-o FILE] RUN_DIR\n\n"
	       "Write the trace of RUN_DIR in another format.\n\n"
	       "    --csv             mftrace_log.csv: ts_ns,event,ptr,size,tid,api,old_ptr,stack\n"
	       "                      one row per counted call in time order (the seed's columns\n"
	       "                      first: event is malloc, calloc, realloc, free or memalign;\n"
	       "                      ts_ns is CLOCK_MONOTONIC; api names the exact function)\n"
	       "    --folded          stacks.folded: 'root;...;leaf weight' per allocation stack,\n"
	       "                      for flamegraph.pl, speedscope or inferno\n"
	       "    --weight W        folded weights: live-bytes (at the end, default),\n"
	       "                      alloc-bytes or count (allocating calls)\n"
	       "    --trace FILE      another trace of the run (e.g. trace-1234.mfx)\n"
	       "    -o, --out FILE    output file (default RUN_DIR/mftrace_log.csv or\n"
	       "                      RUN_DIR/stacks.folded; '-' for stdout)\n\n"
	       "Examples:\n"
	       "    mfx export --csv results/app-4242-20261125-101500\n"
	       "    mfx export --folded --weight alloc-bytes -o - RUN | flamegraph.pl > alloc.svg\n");
}

/* Fast formatting: CSV exports can have tens of millions of rows. */
static char *put_dec(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_hex(char *p, uint64_t v)
{
	static const char d[] = "0123456789abcdef";
	char tmp[20];
	int n = 0;
	*p++ = '0';
	*p++ = 'x';
	do {
		tmp[n++] = d[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static int write_csv(struct trace *t, FILE *f)
{
	char line[256];
	struct trace_event ev;
	int r;
	fputs("ts_ns,event,ptr,size,tid,api,old_ptr,stack\n", f);
	while ((r = trace_next(t, &ev)) > 0) {
		char *p = line;
		p = put_dec(p, ev.ts_ns);
		*p++ = ',';
		p = put_str(p, trace_class_name(trace_kind_class(ev.kind)));
		*p++ = ',';
		p = put_hex(p, ev.ptr);
		*p++ = ',';
		p = put_dec(p, ev.size);
		*p++ = ',';
		p = put_dec(p, ev.tid);
		*p++ = ',';
		p = put_str(p, trace_kind_name(ev.kind));
		*p++ = ',';
		if (ev.kind == MFX_K_REALLOC || ev.kind == MFX_K_REALLOCARRAY)
			p = put_hex(p, ev.old_ptr);
		*p++ = ',';
		p = put_dec(p, ev.stack);
		*p++ = '\n';
		fwrite(line, 1, (size_t)(p - line), f);
	}
	return r;
}

struct fline {
	char *text;
	uint64_t weight;
};

/* One folded stack: frames outermost first, ';' kept out of names. */
static char *folded_stack(struct symbolizer *sym, const uint64_t *frames, uint32_t depth)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	int first = 1;
	for (uint32_t i = depth; i-- > 0;) {
		const struct sym_frame *fr;
		int n = sym_lookup(sym, frames[i], &fr);
		for (int k = n; k-- > 0;) {	/* inlined frames: outer one first */
			if (!first)
				fputc(';', f);
			first = 0;
			for (const char *c = fr[k].function; *c; c++)
				fputc(*c == ';' ? ':' : *c == '\n' ? ' ' : *c, f);
		}
	}
	if (first)
		fputs("[no stack]", f);
	fclose(f);
	return buf;
}

static int cmp_fline(const void *x, const void *y)
{
	return strcmp(((const struct fline *)x)->text, ((const struct fline *)y)->text);
}

/* Stacks that symbolize alike (return addresses in the same function)
 * become one line: sorted, equal neighbours merged. */
static int write_folded(struct trace *t, enum weight w, int quiet, FILE *f)
{
	struct analysis a;
	int err = analyze_trace(t, quiet, &a);
	struct symbolizer *sym = NULL;
	if (err || (err = sym_open(t, NULL, &sym))) {
		analysis_free(&a);
		return err;
	}
	struct fline *v = calloc(a.nsites + 1, sizeof(*v));
	size_t n = 0;
	for (uint32_t i = 0; v && i < a.nsites; i++) {
		const struct site_stat *s = &a.sites[i];
		uint64_t weight = w == W_LIVE ? (uint64_t)(s->live_bytes > 0 ? s->live_bytes : 0)
				: w == W_ALLOC ? s->alloc_bytes : s->allocs;
		if (!weight)
			continue;
		uint32_t depth = 0;
		const uint64_t *frames = trace_stack(t, s->stack, &depth);
		char *text = folded_stack(sym, frames, frames ? depth : 0);
		if (text)
			v[n++] = (struct fline){ text, weight };
	}
	if (!v)
		err = -ENOMEM;
	qsort(v, n, sizeof(*v), cmp_fline);
	for (size_t i = 0; i < n; i++) {
		uint64_t sum = v[i].weight;
		while (i + 1 < n && !strcmp(v[i].text, v[i + 1].text)) {
			free(v[i].text);
			sum += v[++i].weight;
		}
		fprintf(f, "%s %" PRIu64 "\n", v[i].text, sum);
		free(v[i].text);
	}
	free(v);
	sym_close(sym);
	analysis_free(&a);
	return err;
}

int cmd_export(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "csv", no_argument, NULL, 'c' },
		{ "folded", no_argument, NULL, 'f' },
		{ "weight", required_argument, NULL, 'w' },
		{ "trace", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int csv = 0, folded = 0, c;
	enum weight w = W_LIVE;
	const char *trace_name = "trace.mfx", *out = NULL;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":o:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': csv = 1; break;
		case 'f': folded = 1; break;
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
	if (csv + folded != 1)
		return mfx_usage("export", "give exactly one of --csv and --folded");
	if (optind != argc - 1)
		return mfx_usage("export", optind >= argc ? "no run directory given" :
							   "one run directory expected");
	const char *dir = argv[optind];
	struct stat st;
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		mfx_err("'%s' is not a run directory", dir);
		return EXIT_FAIL;
	}
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
	err = csv ? write_csv(t, f) : write_folded(t, w, mfx_quiet, f);
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
