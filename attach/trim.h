/*
 * trim.h - Approach A in a live process, measured (trim.c): the allocator
 * that serves its malloc gives its free memory back its own way
 * (malloc_trim(0), jemalloc's purge, tcmalloc's ReleaseFreeMemory,
 * mi_collect(true)).  Used by `mfx trim`, `mfx attach --trim-at-end` and
 * `mfx launch --trim-at-end`.
 */
#ifndef MFX_ATTACH_TRIM_H
#define MFX_ATTACH_TRIM_H

#include <stdint.h>
#include <sys/types.h>

#include "attach/alloc_remote.h"

struct trim_result {
	pid_t pid;
	uint64_t rss_before, rss_after, heap_before, heap_after, released;
	uint64_t pause_ns;	/* the held thread's stop */
	uint64_t trim_ns;	/* the release call itself */
	unsigned attempts;	/* safe-point tries */
	int64_t ret;		/* its return: malloc_trim's 1/0, mallctl's 0/errno, else 0 */
	char method[16];	/* "ptrace" or "agent" */
	char allocator[16];	/* "glibc", "jemalloc", "tcmalloc", "mimalloc", "unknown" */
	char call[64];		/* what was called: "malloc_trim(0)", ... */
	struct alloc_figs before, after;	/* the allocator's own figures */
};

struct inject_err;
/* 0, or the inject_open()/inject_call() error (why: its specifics). */
int trim_process(pid_t pid, struct trim_result *r, struct inject_err *why);
/* The release on the agent's own thread over an open channel (the agent
 * writes the figures into a file of ours).  Fills r's allocator, call,
 * ret, trim_ns, before and after.  0 or -errno. */
int trim_via_agent(int chan, struct trim_result *r);

#endif
