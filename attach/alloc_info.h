/*
 * alloc_info.h - the statistics of the allocator that serves a process's
 * malloc, for `mfx snapshot` (alloc_info.c): asked of the agent's own thread
 * when an earlier attach left it there (nothing stops), else only its name,
 * found from outside (alloc_remote.c).
 */
#ifndef MFX_ATTACH_ALLOC_INFO_H
#define MFX_ATTACH_ALLOC_INFO_H

#include <stdint.h>
#include <sys/types.h>

#include "attach/alloc_remote.h"

struct alloc_info {
	int from_agent;			/* figures and text were asked of the agent */
	char name[16];			/* "glibc", "jemalloc", "tcmalloc", "mimalloc", "unknown" */
	char module[4096];		/* the file whose malloc the program calls */
	char call[64];			/* its release call ("mfx trim") */
	struct alloc_figs figs;		/* its own figures */
	/* glibc: from malloc_info(3) and mallinfo2 */
	int glibc_ok;
	unsigned arenas;
	uint64_t free_bytes;		/* in bins and fastbins, all arenas */
	uint64_t top_bytes;		/* the main arena's top chunk (keepcost) */
	uint64_t mmap_bytes;		/* mmapped chunks */
	uint64_t system_bytes;		/* obtained from the system, all arenas */
	uint64_t in_use_bytes;		/* uordblks + hblkhd */
	/* jemalloc, per arena (the first 64 arenas in use) */
	struct alloc_arena {
		unsigned id, threads;
		uint64_t active, dirty, muzzy, resident;	/* bytes */
	} arena[64];
	unsigned narenas;
	char *text;			/* the allocator's own statistics text (malloc'ed), or NULL */
	const char *text_suffix;	/* where it is saved: FILE + this ("" none) */
};

/* 0 (ai->from_agent says whether the agent answered), or -errno when not
 * even the name could be found. */
int alloc_info_get(pid_t pid, struct alloc_info *ai);
void alloc_info_free(struct alloc_info *ai);

#endif /* MFX_ATTACH_ALLOC_INFO_H */
