/*
 * export.c - the trace as the seed's CSV (mftrace_log.csv: one
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
#include "analyzer/export.h"
#include "analyzer/symbolize.h"
#include "trace/reader.h"
#include "common/util.h"

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

int export_csv(struct trace *t, FILE *f)
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
int export_folded(struct trace *t, enum export_weight w, int quiet, FILE *f)
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
