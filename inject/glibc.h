/*
 * glibc.h - what inject/ assumes about the target's glibc, in one place
 * (glibc.c), each assumption checked before it is used:
 *
 *   - the version: the highest GLIBC_2.x version its libc.so.6 defines;
 *   - struct pthread_attr's bytes (for a detached loader thread with a
 *     small stack, without two more remote calls): only for 2.34 to
 *     GLIBC_ATTR_MAX, the versions whose layout is known;
 *   - struct pthread's tid: the offset libthread_db reads
 *     (_thread_db_pthread_tid, a { bits, count, offset } descriptor);
 *   - __restore_rt, the rt_sigreturn trampoline: found by its code bytes
 *     in libc's own executable mapping;
 *   - errno's offset from the thread pointer: read from the code of the
 *     target's __errno_location when it is the usual three instructions.
 */
#ifndef MFX_INJECT_GLIBC_H
#define MFX_INJECT_GLIBC_H

#include <stdint.h>
#include <sys/types.h>

#define GLIBC_ATTR_MIN 234	/* 2.34: pthread_create in libc.so.6 */
#define GLIBC_ATTR_MAX 242	/* the newest layout checked */

struct inject_libc;

/* Fill lc for pid: libc and ld.so ranges, the functions remote calls use,
 * malloc.c's code range, the functions that take the thread-stack lock,
 * the facts above.  Nothing is read from a file.  0, -MFX_E_NOGLIBC,
 * -MFX_E_NOSYM. */
int glibc_load(pid_t pid, struct inject_libc *lc);

/* struct pthread_attr for pthread_create: detached, stack of stack_size
 * bytes.  0, or -ENOTSUP outside the known versions. */
struct glibc_attr {
	int32_t schedparam, schedpolicy, flags, pad;
	uint64_t guardsize, stackaddr, stacksize, extension, unused;
};
int glibc_attr_detached(const struct inject_libc *lc, uint64_t stack_size, struct glibc_attr *a);

/* errno's offset from fs_base in pid, from __errno_location's code; 0 if
 * the code is not the expected pattern. */
uint64_t glibc_errno_tls(pid_t pid, uint64_t errno_location);

#endif /* MFX_INJECT_GLIBC_H */
