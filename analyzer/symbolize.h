/*
 * symbolize.h - return addresses to function, file:line and module, with
 * elfutils (libdwfl): DWARF line tables and inlined frames where the binary
 * or its separate debug file (build-id, .gnu_debuglink) has them, the
 * symbol table or .dynsym otherwise.  Each address is resolved once.
 */
#ifndef MFX_ANALYZER_SYMBOLIZE_H
#define MFX_ANALYZER_SYMBOLIZE_H

#include <stdint.h>

struct trace;

/* One source-level frame.  An address can expand to several (inlined
 * functions first, the function they were inlined into last). */
struct sym_frame {
	const char *function;	/* demangled; without a symbol "module+0xoffset"
				   (offset from the load bias), "??" without a
				   module; never NULL */
	const char *file;	/* source file, or NULL */
	unsigned line;		/* 0 when unknown */
	const char *module;	/* path of the ELF module, or NULL */
	uint64_t addr;		/* the return address as recorded */
	int inlined;		/* inlined into the next frame */
	int named;		/* a symbol or DWARF name was found */
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

/* Short module name: basename of the path. */
const char *sym_basename(const char *path);

#endif
