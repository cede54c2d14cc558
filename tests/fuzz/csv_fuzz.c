/*
 * csv_fuzz.c - libFuzzer target for `mfx export --csv` (analyzer/export.c)
 * on fuzzed traces: whatever the trace reader accepts, export_csv() must
 * write a header and then one line per event with the eight fields of the
 * event that trace_next() gives back (read again here, and the CSV parsed
 * here field by field); it ends with the reader's own status.  Never a
 * crash, a leak, a line cut short or a field out of place.
 * Built and run by scripts/fuzz.sh (`make fuzz`, and briefly `make check`).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/export.h"
#include "trace/format.h"
#include "trace/reader.h"

#define MAX_EVENTS 200000	/* libFuzzer's time per input stays short */

static void die(const char *what, unsigned long line)
{
	fprintf(stderr, "csv_fuzz: line %lu: %s\n", line, what);
	abort();
}

/* The next comma-separated field of *p (up to ',' or '\n'), NUL-ended in place. */
static char *field(char **p, int last)
{
	char *s = *p, *e = s + strcspn(s, last ? "\n" : ",\n");
	if (*e != (last ? '\n' : ','))
		return NULL;
	*e = 0;
	*p = e + 1;
	return s;
}

static int num(const char *s, uint64_t want, int hex)
{
	if (!*s || (hex && strncmp(s, "0x", 2)))
		return 0;
	char *end;
	uint64_t v = strtoull(hex ? s + 2 : s, &end, hex ? 16 : 10);
	return !*end && v == want && (s[hex ? 2 : 0] != '0' || !s[hex ? 3 : 1]);
}

static void check_line(char **p, const struct trace_event *ev, unsigned long line)
{
	char *f[8];
	for (int i = 0; i < 8; i++)
		if (!(f[i] = field(p, i == 7)))
			die("not eight fields", line);
	int realloc_kind = ev->kind == MFX_K_REALLOC || ev->kind == MFX_K_REALLOCARRAY;
	if (!num(f[0], ev->ts_ns, 0) || !num(f[2], ev->ptr, 1) || !num(f[3], ev->size, 0) ||
	    !num(f[4], ev->tid, 0) || !num(f[7], ev->stack, 0))
		die("a number differs from the event", line);
	if (strcmp(f[1], trace_class_name(trace_kind_class(ev->kind))) ||
	    strcmp(f[5], trace_kind_name(ev->kind)) || !*f[1] || !*f[5])
		die("event or api differs", line);
	if (realloc_kind ? !num(f[6], ev->old_ptr, 1) : *f[6] != 0)
		die("old_ptr differs", line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace *t;
	if (trace_open_mem(data, size, &t))
		return 0;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int r = export_csv(t, f);
	fclose(f);
	char *p = text, *hdr = field(&p, 1);
	if (!hdr || strcmp(hdr, "ts_ns,event,ptr,size,tid,api,old_ptr,stack"))
		die("header", 1);
	int r2 = trace_rewind(t);
	struct trace_event ev;
	unsigned long line = 1;
	while (r2 >= 0 && (r2 = trace_next(t, &ev)) > 0 && line < MAX_EVENTS) {
		if (!*p)
			die("fewer lines than events", line + 1);
		check_line(&p, &ev, ++line);
	}
	if (line < MAX_EVENTS && (*p || r != r2))
		die("more lines than events, or another end status", line);
	free(text);
	trace_close(t);
	return 0;
}
