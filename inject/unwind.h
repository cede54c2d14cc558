/*
 * unwind.h - a fast remote unwind of a held thread (unwind.c): the unwind
 * tables of the target's modules are located before the hold, so the walk
 * during it costs little.
 */
#ifndef MFX_INJECT_UNWIND_H
#define MFX_INJECT_UNWIND_H

#include <stdint.h>
#include <sys/types.h>

#define STACK_READ_MAX (512u * 1024u)	/* the stack read in one go, at most */

struct inject_unwind;

/* Locate every module's .eh_frame_hdr in pid (no thread stopped). */
int inject_unwind_prepare(pid_t pid, struct inject_unwind **u);
void inject_unwind_free(struct inject_unwind *u);
/* Walk stopped thread tid's frames, innermost first: visit(ip, n, arg) for
 * each until it returns non-zero.  [sp, stack_hi) is read in one go.
 * Returns 1 if visit stopped the walk, 0 at the outermost frame, < 0 if a
 * step failed; *nframes gets the frames seen. */
int inject_unwind_walk(struct inject_unwind *u, pid_t tid, uint64_t sp, uint64_t stack_hi,
		       const uint8_t *stack, int (*visit)(uint64_t ip, int n, void *arg), void *arg,
		       int *nframes);

/* The same walk before any hold, for a thread blocked in a system call:
 * from the pc and sp /proc/PID/task/TID/syscall shows and a copy of its
 * stack.  It fails (< 0) as soon as a frame needs another register. */
int inject_unwind_walk_blocked(struct inject_unwind *u, pid_t tid, uint64_t pc, uint64_t sp,
			       uint64_t stack_hi, const uint8_t *stack,
			       int (*visit)(uint64_t ip, int n, void *arg), void *arg, int *nframes);

/* Fill the walk's cache (unwind tables) from a copy of a stack, before a hold. */
void inject_unwind_warm(struct inject_unwind *u, pid_t tid, const uint8_t *stack, size_t len);

#endif
