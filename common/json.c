/*
 * json.c - the tiny streaming JSON writer (see json.h).
 */
#include <math.h>
#include <inttypes.h>

#include "common/json.h"

void json_init(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->first = 1;
	j->compact = 0;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	unsigned c = p[0];
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (c < 0xc2 || c > 0xf4)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)	/* also stops at the NUL */
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
	    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

/* JSON text must be UTF-8 (RFC 8259 section 8.1); names and paths from a
 * process need not be: a byte that does not start a well-formed sequence
 * is written as U+FFFD. */
void json_quote(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20) {
				fprintf(f, "\\u%04x", *p);
			} else if (*p < 0x80) {
				fputc(*p, f);
			} else {
				size_t n = utf8_len(p);
				if (n) {
					fwrite(p, 1, n, f);
					p += n - 1;
				} else {
					fputs("\\ufffd", f);
				}
			}
		}
	}
	fputc('"', f);
}

static void member(struct json *j, const char *key)
{
	if (j->depth > 0) {
		if (!j->first)
			fputc(',', j->f);
		if (j->compact) {
			if (!j->first)
				fputc(' ', j->f);
		} else {
			fputc('\n', j->f);
			for (int i = 0; i < j->depth; i++)
				fputs("  ", j->f);
		}
	}
	j->first = 0;
	if (key) {
		json_quote(j->f, key);
		fputs(": ", j->f);
	}
}

void json_obj(struct json *j, const char *key)
{
	member(j, key);
	fputc('{', j->f);
	j->is_arr[j->depth & 31] = 0;
	j->depth++;
	j->first = 1;
}

void json_arr(struct json *j, const char *key)
{
	member(j, key);
	fputc('[', j->f);
	j->is_arr[j->depth & 31] = 1;
	j->depth++;
	j->first = 1;
}

void json_end(struct json *j)
{
	j->depth--;
	if (!j->first && !j->compact) {
		fputc('\n', j->f);
		for (int i = 0; i < j->depth; i++)
			fputs("  ", j->f);
	}
	fputc(j->is_arr[j->depth & 31] ? ']' : '}', j->f);
	j->first = 0;
	if (j->depth == 0)
		fputc('\n', j->f);
}

void json_str(struct json *j, const char *key, const char *s)
{
	member(j, key);
	if (s)
		json_quote(j->f, s);
	else
		fputs("null", j->f);
}

void json_int(struct json *j, const char *key, int64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRId64, v);
}

void json_uint(struct json *j, const char *key, uint64_t v)
{
	member(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void json_num(struct json *j, const char *key, double v)
{
	member(j, key);
	if (isnan(v) || isinf(v))
		fputs("null", j->f);
	else if (fabs(v) < 1e15 && v == (double)(int64_t)v)	/* in range before the cast */
		fprintf(j->f, "%.1f", v);
	else
		fprintf(j->f, "%.6g", v);
}

void json_bool(struct json *j, const char *key, int v)
{
	member(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *key)
{
	member(j, key);
	fputs("null", j->f);
}
