/*
 * json_fuzz.c - libFuzzer target for the JSON writer (common/json.c): the
 * input is a little program of writer calls (objects, arrays, keys and
 * strings of any bytes, integers, doubles, booleans, nulls; pretty or
 * compact).  Its output is decoded by a strict RFC 8259 decoder written
 * here, which must accept it and give back exactly what was written:
 * strings byte for byte, except that a byte which does not start a
 * well-formed UTF-8 sequence (Unicode table 3-7, checked here from the
 * table, not with json.c's code) comes back as U+FFFD; integers exactly;
 * doubles to the writer's 6 significant digits; NaN and infinities as null.
 * Built and run by scripts/fuzz.sh (`make fuzz`, and briefly `make check`).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

enum tok { T_OBJ, T_OBJ_END, T_ARR, T_ARR_END, T_KEY, T_STR, T_NULL, T_TRUE, T_FALSE,
	   T_INT, T_UINT, T_NUM };

struct token {
	enum tok t;
	char *s;		/* T_KEY, T_STR: the bytes expected back */
	size_t len;
	int64_t i;
	uint64_t u;
	double d;
};

#define MAX_TOKENS 4096
static struct token want[MAX_TOKENS];
static size_t nwant, ngot;

static void die(const char *what)
{
	fprintf(stderr, "json_fuzz: %s (token %zu)\n", what, ngot);
	abort();
}

/* Length of the well-formed UTF-8 sequence at s (Unicode 15, table 3-7),
 * 0 if none; n: bytes available. */
static size_t wellformed(const unsigned char *s, size_t n)
{
	static const struct { unsigned char lo0, hi0, lo1, hi1; size_t len; } t[] = {
		{ 0x00, 0x7f, 0, 0, 1 }, { 0xc2, 0xdf, 0x80, 0xbf, 2 },
		{ 0xe0, 0xe0, 0xa0, 0xbf, 3 }, { 0xe1, 0xec, 0x80, 0xbf, 3 },
		{ 0xed, 0xed, 0x80, 0x9f, 3 }, { 0xee, 0xef, 0x80, 0xbf, 3 },
		{ 0xf0, 0xf0, 0x90, 0xbf, 4 }, { 0xf1, 0xf3, 0x80, 0xbf, 4 },
		{ 0xf4, 0xf4, 0x80, 0x8f, 4 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (s[0] < t[i].lo0 || s[0] > t[i].hi0)
			continue;
		if (t[i].len > n)
			return 0;
		if (t[i].len > 1 && (s[1] < t[i].lo1 || s[1] > t[i].hi1))
			return 0;
		for (size_t k = 2; k < t[i].len; k++)
			if (s[k] < 0x80 || s[k] > 0xbf)
				return 0;
		return t[i].len;
	}
	return 0;
}

/* s as it must decode: bad bytes as U+FFFD. */
static void expect_str(enum tok t, const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;
	for (size_t i = 0; i < n;) {
		size_t k = wellformed((const unsigned char *)s + i, n - i);
		if (k) {
			memcpy(o, s + i, k);
			o += k;
			i += k;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	want[nwant++] = (struct token){ .t = t, .s = out, .len = (size_t)(o - out) };
}

/* ---- the strict decoder ------------------------------------------------ */

struct dec {
	const unsigned char *p, *end;
	int depth;
};

static void ws(struct dec *d)
{
	while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
		d->p++;
}

static struct token *next_want(void)
{
	if (ngot >= nwant)
		die("more values than written");
	return &want[ngot++];
}

static unsigned hex4(struct dec *d)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++, d->p++) {
		if (d->p >= d->end)
			die("cut \\u escape");
		unsigned c = *d->p;
		v = v << 4 | (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			      c >= 'A' && c <= 'F' ? c - 'A' + 10 : (die("bad \\u escape"), 0));
	}
	return v;
}

static size_t put_utf8(char *o, unsigned c)
{
	if (c < 0x80)
		return (size_t)(o[0] = (char)c, 1);
	if (c < 0x800)
		return o[0] = (char)(0xc0 | c >> 6), o[1] = (char)(0x80 | (c & 63)), 2;
	if (c < 0x10000)
		return o[0] = (char)(0xe0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 63)),
		       o[2] = (char)(0x80 | (c & 63)), 3;
	return o[0] = (char)(0xf0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 63)),
	       o[2] = (char)(0x80 | (c >> 6 & 63)), o[3] = (char)(0x80 | (c & 63)), 4;
}

static unsigned escape(struct dec *d)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e = d->p < d->end && *d->p ? strchr(from, *d->p) : NULL;
	if (e) {
		d->p++;
		return (unsigned char)to[e - from];
	}
	if (d->p >= d->end || *d->p++ != 'u')
		die("bad escape");
	unsigned c = hex4(d);
	if (c >= 0xdc00 && c < 0xe000)
		die("lone low surrogate");
	if (c >= 0xd800 && c < 0xdc00) {
		if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u')
			die("lone high surrogate");
		d->p += 2;
		unsigned lo = hex4(d);
		if (lo < 0xdc00 || lo >= 0xe000)
			die("bad surrogate pair");
		c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
	}
	return c;
}

static void string(struct dec *d, enum tok t)
{
	if (d->p >= d->end || *d->p++ != '"')
		die("string expected");
	char *buf = malloc(4 * (size_t)(d->end - d->p) + 1);
	size_t n = 0;
	for (;;) {
		if (d->p >= d->end)
			die("unterminated string");
		unsigned c = *d->p;
		if (c == '"')
			break;
		if (c < 0x20)
			die("raw control character in a string");
		if (c == '\\') {
			d->p++;
			n += put_utf8(buf + n, escape(d));
			continue;
		}
		size_t k = wellformed(d->p, (size_t)(d->end - d->p));
		if (!k)
			die("string is not UTF-8");
		memcpy(buf + n, d->p, k);
		n += k;
		d->p += k;
	}
	d->p++;
	struct token *w = next_want();
	if (w->t != t || w->len != n || memcmp(w->s, buf, n))
		die("string differs");
	free(buf);
}

static void number(struct dec *d)
{
	const unsigned char *s = d->p;
	int integral = 1;
	if (d->p < d->end && *d->p == '-')
		d->p++;
	if (d->p >= d->end || *d->p < '0' || *d->p > '9')
		die("bad number");
	if (*d->p == '0')
		d->p++;
	else
		while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
			d->p++;
	if (d->p < d->end && *d->p == '.') {
		integral = 0;
		if (++d->p >= d->end || *d->p < '0' || *d->p > '9')
			die("bad fraction");
		while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
			d->p++;
	}
	if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
		integral = 0;
		if (++d->p < d->end && (*d->p == '+' || *d->p == '-'))
			d->p++;
		if (d->p >= d->end || *d->p < '0' || *d->p > '9')
			die("bad exponent");
		while (d->p < d->end && *d->p >= '0' && *d->p <= '9')
			d->p++;
	}
	char text[400];
	size_t n = (size_t)(d->p - s);
	if (n >= sizeof(text))
		die("number too long");
	memcpy(text, s, n);
	text[n] = 0;
	struct token *w = next_want();
	if (w->t == T_INT) {
		if (!integral || strtoll(text, NULL, 10) != w->i)
			die("integer differs");
	} else if (w->t == T_UINT) {
		if (!integral || text[0] == '-' || strtoull(text, NULL, 10) != w->u)
			die("unsigned differs");
	} else if (w->t == T_NUM) {
		double v = strtod(text, NULL);
		if (!(fabs(v - w->d) <= fabs(w->d) * 1e-5 + 1e-300))
			die("double differs");
	} else {
		die("a number where something else was written");
	}
}

static void literal(struct dec *d, const char *lit, enum tok t)
{
	size_t n = strlen(lit);
	if ((size_t)(d->end - d->p) < n || memcmp(d->p, lit, n))
		die("bad literal");
	d->p += n;
	struct token *w = next_want();
	if (w->t != t && !(t == T_NULL && w->t == T_NUM && !isfinite(w->d)))
		die("literal differs");
}

static void value(struct dec *d);

static void container(struct dec *d, int obj)
{
	if (++d->depth > 64)
		die("too deep");
	d->p++;
	if (next_want()->t != (obj ? T_OBJ : T_ARR))
		die("container differs");
	ws(d);
	if (d->p < d->end && *d->p == (obj ? '}' : ']')) {
		d->p++;
	} else {
		for (;;) {
			if (obj) {
				ws(d);
				string(d, T_KEY);
				ws(d);
				if (d->p >= d->end || *d->p++ != ':')
					die("':' expected");
			}
			value(d);
			ws(d);
			if (d->p < d->end && *d->p == ',') {
				d->p++;
				continue;
			}
			if (d->p >= d->end || *d->p++ != (obj ? '}' : ']'))
				die("',' or end of container expected");
			break;
		}
	}
	if (next_want()->t != (obj ? T_OBJ_END : T_ARR_END))
		die("container end differs");
	d->depth--;
}

static void value(struct dec *d)
{
	ws(d);
	if (d->p >= d->end)
		die("value expected");
	switch (*d->p) {
	case '{': container(d, 1); break;
	case '[': container(d, 0); break;
	case '"': string(d, T_STR); break;
	case 't': literal(d, "true", T_TRUE); break;
	case 'f': literal(d, "false", T_FALSE); break;
	case 'n': literal(d, "null", T_NULL); break;
	default: number(d); break;
	}
}

static void decode_all(const char *text, size_t len)
{
	struct dec d = { (const unsigned char *)text, (const unsigned char *)text + len, 0 };
	value(&d);
	ws(&d);
	if (d.p != d.end)
		die("text after the value");
	if (ngot != nwant)
		die("fewer values than written");
}

/* ---- the program ------------------------------------------------------- */

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t byte(struct in *in)
{
	return in->n ? (in->n--, *in->p++) : 0;
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | byte(in);
	return v;
}

static char *cstr(struct in *in, char *buf)
{
	size_t n = byte(in);
	n = n < in->n ? n : in->n;
	memcpy(buf, in->p, n);
	buf[n] = 0;	/* a C string: up to its first NUL */
	in->p += n;
	in->n -= n;
	return buf;
}

/* Write what the program says; each value expected back in want[]. */
static void run(struct json *j, struct in *in)
{
	unsigned char is_arr[33] = { 0 };
	char kbuf[256], sbuf[256];
	while (in->n && nwant < MAX_TOKENS - 40) {
		int op = byte(in) % 10, arr = is_arr[j->depth];
		const char *key = arr ? NULL : cstr(in, kbuf);
		if (op == 9 && j->depth == 1)
			op = 8;	/* the top object stays open */
		if ((op == 0 || op == 1) && j->depth >= 32)
			op = 2;
		if (key && op != 9)
			expect_str(T_KEY, key);
		switch (op) {
		case 0: json_obj(j, key); want[nwant++].t = T_OBJ; is_arr[j->depth] = 0; break;
		case 1: json_arr(j, key); want[nwant++].t = T_ARR; is_arr[j->depth] = 1; break;
		case 2: json_str(j, key, cstr(in, sbuf)); expect_str(T_STR, sbuf); break;
		case 3: { int64_t v = (int64_t)u64(in); json_int(j, key, v);
			  want[nwant++] = (struct token){ .t = T_INT, .i = v }; break; }
		case 4: { uint64_t v = u64(in); json_uint(j, key, v);
			  want[nwant++] = (struct token){ .t = T_UINT, .u = v }; break; }
		case 5: { uint64_t b = u64(in); double v; memcpy(&v, &b, sizeof(v));
			  json_num(j, key, v); want[nwant++] = (struct token){ .t = T_NUM, .d = v }; break; }
		case 6: { int v = byte(in) & 1; json_bool(j, key, v);
			  want[nwant++].t = v ? T_TRUE : T_FALSE; break; }
		case 7: json_str(j, key, NULL); want[nwant++].t = T_NULL; break;
		case 8: json_null(j, key); want[nwant++].t = T_NULL; break;
		case 9: json_end(j); want[nwant++].t = arr ? T_ARR_END : T_OBJ_END; break;
		}
	}
	while (j->depth > 0) {
		want[nwant++].t = is_arr[j->depth] ? T_ARR_END : T_OBJ_END;
		json_end(j);
	}
}

static void reset(void)
{
	for (size_t i = 0; i < nwant; i++)
		free(want[i].s);
	memset(want, 0, nwant * sizeof(want[0]));
	nwant = ngot = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = NULL;
	size_t len = 0;
	/* 1: the input as one string, quoted */
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = 0;
	FILE *f = open_memstream(&text, &len);
	json_quote(f, s);
	fclose(f);
	expect_str(T_STR, s);
	decode_all(text, len);
	reset();
	free(text);
	free(s);
	/* 2: the input as a program of writer calls */
	struct in in = { data, size };
	struct json j;
	f = open_memstream(&text, &len);
	json_init(&j, f);
	j.compact = byte(&in) & 1;
	json_obj(&j, NULL);
	want[nwant++].t = T_OBJ;
	run(&j, &in);
	fclose(f);
	decode_all(text, len);
	reset();
	free(text);
	return 0;
}
