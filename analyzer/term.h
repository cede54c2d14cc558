/*
 * term.h - terminal manners: C++ names shortened (template arguments and
 * parameter lists elided), lines cut to the terminal's width, "…" only on
 * a UTF-8 terminal.  JSON and HTML keep the full names.
 */
#ifndef MFX_ANALYZER_TERM_H
#define MFX_ANALYZER_TERM_H

#include <stddef.h>

/* "…" when the locale's character set is UTF-8 (LC_ALL, LC_CTYPE, LANG),
 * else "...". */
const char *term_ellipsis(void);
/* The short form of a demangled name: "std::vector<…>::_M_default_append"
 * for "std::vector<char, std::allocator<char> >::_M_default_append(unsigned
 * long)"; C names unchanged.  Returns out. */
char *term_short_name(const char *name, const char *ell, char *out, size_t n);
/* Cut line (NUL-terminated, no newline) to width display columns, ending
 * it with ell when cut.  width <= 0: no cut. */
void term_cut(char *line, size_t cap, int width, const char *ell);
/* Columns of the terminal behind fd: $COLUMNS when set, else the
 * terminal's width, else 0 (not a terminal: no cut). */
int term_width(int fd);

#endif
