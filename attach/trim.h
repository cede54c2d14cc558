/*
 * trim.h - malloc_trim(0) in a live process, measured (trim.c): used by
 * `mfx trim` and by `mfx launch --trim-at-end`.
 */
#ifndef MFX_ATTACH_TRIM_H
#define MFX_ATTACH_TRIM_H

#include <stdint.h>
#include <sys/types.h>

struct trim_result {
	pid_t pid;
	uint64_t rss_before, rss_after, heap_before, heap_after, released;
	uint64_t pause_ns;	/* the held thread's stop */
	uint64_t trim_ns;	/* the call itself */
	unsigned attempts;	/* safe-point tries */
	int ret;		/* malloc_trim's return: 1 if memory was released */
	char method[16];	/* "ptrace" or "agent" */
};

/* 0, or the inject_open()/inject_call() error. */
int trim_process(pid_t pid, struct trim_result *r);

#endif
