/*
 * allocators.h - what mfx knows about the allocators a process may use, for
 * both sides: the agent (preload/allocator.c, on its own thread inside the
 * process) and mfx (attach/alloc_remote.c, through ptrace when no agent is
 * there).  Which allocator serves malloc is decided by the module the
 * program's malloc binds to (the first in load order that defines it), and
 * that module's own symbols:
 *
 *   glibc     __libc_malloc          mallinfo2(), malloc_trim(0), malloc_info()
 *   jemalloc  mallctl (je_mallctl,   mallctl("epoch"), mallctl("stats.*"),
 *             _rjem_mallctl)         mallctl("arena.4096.purge"), malloc_stats_print()
 *   tcmalloc  MallocExtension_*      MallocExtension_GetNumericProperty(),
 *                                    MallocExtension_ReleaseFreeMemory(), _GetStats()
 *   mimalloc  mi_process_info        mi_process_info(), mi_collect(true),
 *                                    mi_stats_print_out()
 *
 * No allocator's header is needed: the few prototypes are declared where
 * they are called, and the functions are found by name at run time.
 */
#ifndef MFX_ALLOCATORS_H
#define MFX_ALLOCATORS_H

#include "trace/format.h"

enum mfx_allocator {
	MFX_ALLOC_UNKNOWN = 0, MFX_ALLOC_GLIBC, MFX_ALLOC_JEMALLOC, MFX_ALLOC_TCMALLOC,
	MFX_ALLOC_MIMALLOC, MFX_ALLOC_N,
};

static const char *const mfx_allocator_names[MFX_ALLOC_N] = {
	"unknown", "glibc", "jemalloc", "tcmalloc", "mimalloc",
};

/* jemalloc names prefixed builds use for mallctl: upstream redis and
 * others build it in with "je_", Rust's tikv-jemallocator with "_rjem_". */
static const char *const mfx_je_prefixes[] = { "", "je_", "_rjem_" };
#define MFX_JE_NPREFIX 3

/* mallctl names (size_t values) for the enum mfx_alloc_field figures.
 * MFX_AF_FREE is computed: (stats.arenas.<ALL>.pdirty + .pmuzzy) pages,
 * the pages a purge gives back.  "epoch" must be written first: jemalloc
 * refreshes its cached statistics only then. */
static const char *const mfx_je_stat[MFX_AF_NFIELDS] = {
	[MFX_AF_IN_USE] = "stats.allocated", [MFX_AF_RESIDENT] = "stats.resident",
	[MFX_AF_MAPPED] = "stats.mapped", [MFX_AF_RETAINED] = "stats.retained",
	[MFX_AF_METADATA] = "stats.metadata", [MFX_AF_ACTIVE] = "stats.active",
};
/* 4096 = MALLCTL_ARENAS_ALL: every arena at once. */
#define MFX_JE_PDIRTY "stats.arenas.4096.pdirty"
#define MFX_JE_PMUZZY "stats.arenas.4096.pmuzzy"
#define MFX_JE_PURGE "arena.4096.purge"
#define MFX_JE_DECAY "arena.4096.decay"	/* where purge is not there */

/* MallocExtension_GetNumericProperty names (gperftools) for the figures. */
static const char *const mfx_tc_prop[MFX_AF_NFIELDS] = {
	[MFX_AF_IN_USE] = "generic.current_allocated_bytes",
	[MFX_AF_RESIDENT] = "generic.total_physical_bytes",
	[MFX_AF_MAPPED] = "generic.heap_size",
	[MFX_AF_FREE] = "tcmalloc.pageheap_free_bytes",
	[MFX_AF_RETAINED] = "tcmalloc.pageheap_unmapped_bytes",
};

/* What each allocator's "give memory back" call is called, for people. */
static const char *const mfx_release_call[MFX_ALLOC_N] = {
	"none", "malloc_trim(0)", "mallctl(\"" MFX_JE_PURGE "\")",
	"MallocExtension_ReleaseFreeMemory()", "mi_collect(true)",
};

#endif /* MFX_ALLOCATORS_H */
