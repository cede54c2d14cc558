/*
 * term.c - terminal manners (see term.h): short C++ names, cut lines.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "analyzer/term.h"
#include "common/util.h"

const char *term_ellipsis(void)
{
	const char *v = getenv("LC_ALL");
	if (!v || !*v)
		v = getenv("LC_CTYPE");
	if (!v || !*v)
		v = getenv("LANG");
	return v && (strcasestr(v, "utf-8") || strcasestr(v, "utf8")) ? "\xe2\x80\xa6" : "...";
}

/* "operator<", "operator<<", "operator->", "operator()": the name's own
 * brackets, not a template argument list or parameters. */
static size_t operator_len(const char *p)
{
	static const char *const ops[] = {
		"operator<<=", "operator>>=", "operator<=>", "operator<<", "operator>>",
		"operator<=", "operator>=", "operator->*", "operator->", "operator<", "operator>",
		"operator()", "operator[]",
	};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strncmp(p, ops[i], strlen(ops[i])))
			return strlen(ops[i]);
	return 0;
}

/* Append s (up to len bytes) to out, keeping room for the NUL. */
static void put(char *out, size_t n, size_t *o, const char *s, size_t len)
{
	while (len-- && *o + 1 < n)
		out[(*o)++] = *s++;
	out[*o] = 0;
}

/* The end of the bracketed group starting at p ('<' or '('), or NULL. */
static const char *group_end(const char *p)
{
	int depth = 0;
	for (; *p; p++) {
		size_t op = operator_len(p);
		if (op) {
			p += op - 1;
			continue;
		}
		if (*p == '<' || *p == '(')
			depth++;
		else if ((*p == '>' || *p == ')') && --depth == 0)
			return p;
	}
	return NULL;
}

/* Template arguments to <…>, parameter lists dropped (the last one, with
 * the qualifiers after it, and those of an enclosing function). */
static void elide(const char *name, const char *ell, char *out, size_t n)
{
	size_t o = 0;
	out[0] = 0;
	for (const char *p = name; *p;) {
		size_t op = operator_len(p);
		const char *e;
		if (!strncmp(p, "(anonymous namespace)", 21))
			op = 21;
		if (op) {
			put(out, n, &o, p, op);
			p += op;
		} else if ((*p == '<' || *p == '(') && (e = group_end(p))) {
			int params = *p == '(';
			if (!params) {
				put(out, n, &o, "<", 1);
				put(out, n, &o, ell, strlen(ell));
				put(out, n, &o, ">", 1);
			}
			p = e + 1;
			if (params && *p == ' ' && strncmp(p + 1, "[clone", 6) && !strpbrk(p, ":(<"))
				break;	/* " const", " &&": the qualifiers of the last list */
		} else {
			put(out, n, &o, p, 1);
			p++;
		}
	}
}

char *term_short_name(const char *name, const char *ell, char *out, size_t n)
{
	if (!strchr(name, '(') && !strchr(name, '<')) {
		snprintf(out, n, "%s", name);
		return out;
	}
	char *tmp = malloc(n);
	if (!tmp) {
		snprintf(out, n, "%s", name);
		return out;
	}
	elide(name, ell, tmp, n);
	char *clone = strstr(tmp, " [clone"), suffix[64] = "";
	if (clone) {
		snprintf(suffix, sizeof(suffix), "%s", clone);
		*clone = 0;
	}
	/* A return type before the name ("void f<…>"): the name starts after
	 * the last space outside brackets, unless it is an operator's
	 * ("operator new"). */
	const char *start = tmp, *op = strstr(tmp, "operator");
	int depth = 0;
	for (const char *p = tmp; *p; p++) {
		depth += (*p == '(' || *p == '{' || *p == '[') - (*p == ')' || *p == '}' || *p == ']');
		if (*p == ' ' && !depth && p[1] && (!op || p < op))
			start = p + 1;
	}
	snprintf(out, n, "%s%s", start, suffix);
	free(tmp);
	return out;
}

void term_cut(char *line, size_t cap, int width, const char *ell)
{
	if (width <= 0)
		return;
	int cols = 0;
	size_t cut = 0, ellw = strcmp(ell, "...") ? 1 : 3;
	for (size_t i = 0; line[i]; i++) {
		if (((unsigned char)line[i] & 0xc0) == 0x80)
			continue;	/* a UTF-8 continuation byte */
		if (cols == width - (int)ellw)
			cut = i;
		if (++cols > width) {
			line[cut] = 0;
			if (cut + strlen(ell) < cap)
				strcat(line, ell);
			return;
		}
	}
}

int term_width(int fd)
{
	const char *c = getenv("COLUMNS");
	uint64_t v;
	if (c && !parse_uint(c, 10000, &v) && v >= 20)
		return (int)v;
	struct winsize ws;
	if (isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 0;
}
