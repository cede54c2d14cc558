/*
 * symbolize.h - return addresses to source frames with elfutils (libdwfl),
 * as `addr2line -i -f -C -e MODULE PC` prints them: every inlined function
 * the address is in, innermost first, then the function that holds them,
 * each with its own file:line (an inlined function's caller is shown at the
 * line of the call).  Debug info is found where elfutils looks: the module,
 * its .gnu_debugdata (MiniDebugInfo), .gnu_debuglink, /usr/lib/debug and
 * its .build-id/ tree (and debuginfod when DEBUGINFOD_URLS is set); without
 * it, the symbol table, then .dynsym.  A module whose file changed since
 * the run (another build-id) is not symbolized: its frames stay addresses.
 * Each address is resolved once.
 */
#ifndef MFX_ANALYZER_SYMBOLIZE_H
#define MFX_ANALYZER_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

struct trace;

/* One source-level frame.  An address can expand to several (inlined
 * functions first, the function they were inlined into last). */
struct sym_frame {
	const char *function;	/* demangled, full; without a symbol
				   "module+0xoffset" (offset = pc), "??" without
				   a module; never NULL */
	const char *file;	/* source file, or NULL */
	unsigned line;		/* 0 when unknown */
	const char *module;	/* path of the ELF module, or NULL */
	uint64_t addr;		/* the return address as recorded */
	uint64_t pc;		/* the address looked up, in the module's own ELF
				   addresses (ra - 1 - load bias): what
				   `addr2line -e module` takes; 0 without module */
	int inlined;		/* inlined into the next frame */
	int named;		/* a symbol or DWARF name was found */
	int module_index;	/* index into sym_modules(), -1 without module */
};

/* What the symbolizer found for one module of the trace. */
struct sym_module {
	const char *path;	/* as recorded */
	char build_id[129];	/* hex, as recorded ("" when none) */
	char disk_build_id[129];	/* hex, of the file on disk now */
	int missing;		/* the file is gone */
	int stale;		/* the file on disk has another build-id */
	int has_dwarf;		/* DWARF found (file:line, inlined frames) */
	int has_symtab;		/* a full symbol table (.symtab, MiniDebugInfo) */
	uint64_t addrs;		/* distinct addresses looked up in it */
	uint64_t unnamed;	/* ... of which no symbol named */
	uint64_t no_line;	/* ... of which no file:line */
};

struct symbolizer;

/* A symbolizer for the modules of trace t.  `root`: a directory to look
 * for module paths under first (e.g. "/proc/1234/root" when the target
 * lived in another mount namespace), or NULL. */
int sym_open(const struct trace *t, const char *root, struct symbolizer **out);
void sym_close(struct symbolizer *s);

/* The source frames of return address `ra` (looked up at ra - 1).
 * *frames stays valid until sym_close.  Returns the number of frames (>= 1). */
int sym_lookup(struct symbolizer *s, uint64_t ra, const struct sym_frame **frames);

/* The trace's modules as the symbolizer saw them (counts grow with lookups). */
size_t sym_modules(const struct symbolizer *s, const struct sym_module **mods);

/* A stable copy of str owned by the symbolizer (equal strings share it). */
const char *sym_intern(struct symbolizer *s, const char *str);

/* Short module name: basename of the path. */
const char *sym_basename(const char *path);

#endif
