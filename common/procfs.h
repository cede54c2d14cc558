/*
 * procfs.h - reading a process's memory from /proc: smaps_rollup for the
 * cheap periodic sample, smaps parsed per mapping with each mapping
 * classified (heap, stack, file, ...), and the totals the report uses.
 *
 * Heap RSS (docs/spec.md, summary.json "fragmentation_ratio"), as smaps
 * shows it: the resident bytes of the mappings the allocator uses: `[heap]`
 * plus anonymous private writable mappings that are not a thread stack and
 * not mfx's own.  A thread stack is
 * `[stack]`, or an anonymous mapping directly above a PROT_NONE guard page
 * that holds a thread's stack pointer (/proc/PID/task/TID/syscall, when
 * readable).  docs/metrics.md has the details.
 */
#ifndef MFX_COMMON_PROCFS_H
#define MFX_COMMON_PROCFS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* One line of /proc/PID/maps (also the header line of each smaps entry):
 * "lo-hi perms offset major:minor inode   path". */
struct maps_entry {
	uint64_t lo, hi;		/* [lo, hi) */
	char perms[5];			/* "r-xp" */
	uint64_t offset;
	unsigned dev_major, dev_minor;
	uint64_t inode;
	const char *path;		/* "" when anonymous; "[heap]", "/x/y (deleted)",
					 * ...: points into the line */
};
/* Parse one such line in place (a trailing newline is cut off); 0 or
 * -EINVAL.  e->path points into line. */
int procfs_maps_parse(char *line, struct maps_entry *e);

/* Walk /proc/PID/maps (pid 0: our own), one mapping at a time:
 *
 *	struct maps_iter it;
 *	struct maps_entry e;
 *	if ((err = procfs_maps_open(pid, &it)))
 *		return err;
 *	while (procfs_maps_next(&it, &e) > 0)
 *		... e.path is valid until the next call ...
 *	procfs_maps_close(&it);
 *
 * Lines of any length (a path is up to PATH_MAX).  Lines that do not parse
 * are skipped. */
struct maps_iter {
	FILE *f;
	char *line;
	size_t cap;
};
int procfs_maps_open(pid_t pid, struct maps_iter *it);	/* 0 or -errno */
int procfs_maps_next(struct maps_iter *it, struct maps_entry *e);	/* 1, or 0 at the end */
void procfs_maps_close(struct maps_iter *it);

struct rollup {
	uint64_t rss, pss, anon, file, shmem, swap;	/* bytes */
};
/* /proc/PID/smaps_rollup (falls back to summing smaps). 0 or -errno. */
int procfs_rollup(pid_t pid, struct rollup *r);

enum map_kind {
	MK_HEAP,	/* [heap] (brk) */
	MK_ANON,	/* anonymous private writable: arenas, mmap'ed chunks */
	MK_STACK,	/* [stack] or a thread stack */
	MK_FILE,	/* file-backed */
	MK_SHMEM,	/* shared anonymous, /dev/shm, memfd, SysV */
	MK_MFX,		/* mfx's own: trace pages, libmfx.so, [anon:mfx...] */
	MK_OTHER,	/* guard pages, vdso, vvar, vsyscall, read-only anon */
	MK_NKINDS,
};
const char *map_kind_name(enum map_kind k);

struct smaps_map {
	uint64_t lo, hi;		/* [lo, hi) */
	char perms[5];			/* "rw-p" */
	uint64_t offset;
	uint64_t inode;
	const char *path;		/* "" for anonymous; points into smaps.text */
	uint64_t rss, pss, anon, swap, private_dirty, shared_clean, private_clean;
	enum map_kind kind;
	int allocator;			/* counted in heap RSS */
};

struct smaps {
	struct smaps_map *maps;
	size_t n;
	char *text;			/* the raw text (kept: written to RUN/smaps) */
	size_t len;
	char *strings;			/* parsed copy the paths point into */
};

/* Read and parse /proc/PID/smaps; thread stacks found from the task list. */
int procfs_smaps_read(pid_t pid, struct smaps *s);
/* Parse a saved smaps file (no task list: stacks by the guard-page rule).
 * Takes ownership of text (malloc'ed). */
int procfs_smaps_parse(char *text, size_t len, struct smaps *s);
int procfs_smaps_load(const char *path, struct smaps *s);
void procfs_smaps_free(struct smaps *s);

struct smaps_totals {
	uint64_t rss, pss, swap;
	uint64_t heap_rss;		/* allocator mappings (see above) */
	uint64_t brk_rss;		/* [heap] alone */
	uint64_t kind_rss[MK_NKINDS];
	uint64_t allocator_mappings;	/* how many mappings count as heap */
};
void procfs_smaps_totals(const struct smaps *s, struct smaps_totals *t);

/* Mark as allocator mappings those holding any of the given addresses
 * (sorted ascending), e.g. the live blocks of a trace: arenas and mmap'ed
 * chunks the heuristic missed.  Returns how many mappings changed. */
size_t procfs_smaps_mark_allocator(struct smaps *s, const uint64_t *addrs, size_t n);

/* Process state letter from /proc/PID/stat ('R', 'S', 'Z', 'T', ...) or
 * -errno (-ESRCH: no such process). */
int procfs_state(pid_t pid);
/* Comm name (/proc/PID/comm) into buf. 0 or -errno. */
int procfs_comm(pid_t pid, char *buf, size_t n);
/* Comm name of thread tid of pid (/proc/PID/task/TID/comm) into buf. 0 or
 * -errno. */
int procfs_task_comm(pid_t pid, pid_t tid, char *buf, size_t n);
/* Thread ids of PID (/proc/PID/task, malloc'ed array, in directory order).
 * 0 or -errno (-ESRCH: no such process). */
int procfs_tids(pid_t pid, pid_t **tids, size_t *n);
/* A "Name:   value kB" field of /proc/PID/status (e.g. "RssAnon", "VmHWM")
 * in bytes (kB fields) or as the number it is.  0, -ENOENT (no such field)
 * or -errno. */
int procfs_status_field(pid_t pid, const char *name, uint64_t *out);

#endif /* MFX_COMMON_PROCFS_H */
