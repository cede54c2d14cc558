/*
 * alloc_remote.h - the allocator of a process seen from outside, without the
 * agent (alloc_remote.c): which one serves its malloc, and, with one of its
 * threads held (inject/), its own figures and its own way of giving memory
 * back.  Used by `mfx trim` (ptrace path), `mfx attach` and `mfx snapshot`
 * to name it.
 */
#ifndef MFX_ATTACH_ALLOC_REMOTE_H
#define MFX_ATTACH_ALLOC_REMOTE_H

#include <stdint.h>
#include <sys/types.h>

#include "mfx/allocators.h"

/* An allocator's own figures (enum mfx_alloc_field); bit i of valid: v[i] known. */
struct alloc_figs {
	uint32_t valid;
	uint64_t v[MFX_AF_NFIELDS];
};

enum { AR_MALLCTL, AR_TC_PROP, AR_TC_RELEASE, AR_MI_COLLECT, AR_TRIM, AR_MALLINFO2, AR_NFN };

struct alloc_remote {
	int kind;			/* enum mfx_allocator */
	char module[4096];		/* the file whose malloc the program calls, as it sees it */
	uint64_t text_lo, text_hi;	/* its code (no thread may be held inside it) */
	uint64_t fn[AR_NFN];		/* addresses in the target, 0 = absent */
};

/* Which allocator serves pid's malloc: the first module in the loader's
 * order (r_debug's link_map) whose ELF file defines it.  0 or -errno;
 * a == unknown when nothing could be read. */
int alloc_remote_detect(pid_t pid, struct alloc_remote *a);

struct inject;
struct inject_opts;
/* What a hold needs to know: the code of the allocator that serves malloc
 * among the places no held thread (nor a caller on its stack) may be
 * (o->avoid_lo/hi): a remote call that allocates (the agent's dlopen, a new
 * thread's TLS) or the allocator's own calls must not re-enter it.  *a (if
 * not NULL) gets the allocator.  0 or the alloc_remote_detect() error. */
int alloc_remote_hold_opts(pid_t pid, struct inject_opts *o, struct alloc_remote *a);
/*
 * With ij holding a thread at a safe point: its figures (before), its
 * release call (*call names it, *ret its return), its figures (after).
 * *release_ns: how long the release call ran.  0 or -errno.
 */
int alloc_remote_release(struct inject *ij, const struct alloc_remote *a, struct alloc_figs *before,
			 struct alloc_figs *after, int64_t *ret, const char **call,
			 uint64_t *release_ns);

#endif /* MFX_ATTACH_ALLOC_REMOTE_H */
