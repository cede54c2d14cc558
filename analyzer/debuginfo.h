/*
 * debuginfo.h - for modules whose frames the report cannot name (no debug
 * info, or a stripped file), one line saying what would name them: the
 * Debian -dbgsym package of the package owning the file, debuginfod, or
 * the user's own build's debug file.
 */
#ifndef MFX_ANALYZER_DEBUGINFO_H
#define MFX_ANALYZER_DEBUGINFO_H

#include <stddef.h>

#include "analyzer/symbolize.h"

/* 1 when some addresses of module d have no name or no file:line. */
int debuginfo_needed(const struct sym_module *d);
/* *out[i]: a malloc'ed hint for mods[i] when debuginfo_needed(), else NULL
 * (*out itself malloc'ed, n entries).  0 or -1 (no memory). */
int debuginfo_hints(const struct sym_module *mods, size_t n, char ***out);

#endif
