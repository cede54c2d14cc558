/*
 * internal.h - helpers shared by the agent's own files (record.c, stack.c,
 * modules.c, agent.c, hooks.c); see agent.h for the interface the attach
 * side (control.c, got.c) uses.
 */
#ifndef MFX_PRELOAD_INTERNAL_H
#define MFX_PRELOAD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* record.c */
/* The program may close any fd of ours (daemons close them all) and get the
 * number again for a file or socket of its own.  So an fd of the agent is
 * known by its inode and checked before each use: never read, written,
 * mapped or closed once it is not ours.  agent_fd_ino(): fd's inode if it
 * is open and of file type `type` (S_IFSOCK, S_IFIFO, ...; 0 = any), else 0. */
uint64_t agent_fd_ino(int fd, unsigned type);
static inline int agent_fd_is(int fd, uint64_t ino, unsigned type)
{
	return fd >= 0 && ino && agent_fd_ino(fd, type) == ino;
}

extern volatile int rec_lock;
void spin_lock(volatile int *l);
void spin_unlock(volatile int *l);
uint64_t agent_tsc(void);
void *agent_mmap_anon(size_t len);
/* Replace [p, p+len) with fresh zeroed agent memory (never unmapped: a
 * straggler may still read it). */
void agent_mmap_zero(void *p, size_t len);
void meta_append_locked(const uint8_t *r, size_t len);
size_t ext_wrap(uint8_t *out, unsigned kind, const uint8_t *body, size_t blen);
int rec_map_file(int fd);
int rec_thread_key_init(void);
void rec_end_threads(void);
int rec_spool_attach(int fd);
void rec_spool_detach(void);
void rec_publish_self(void);
void rec_detach_header(void);
void rec_after_fork_child(void);

/* stack.c */
struct mfx_thread;
/* Unwind the program's stack from ra, the return address a hook was
 * called with (our frames above it are cut), and return its interned id,
 * 0 if none. */
uint32_t stack_capture(const void *ra);
void stack_reset(void);
int stack_init(void);
/* After a dlclose: libunwind's caches of unwind info are flushed. */
void stack_modules_gone(void);
/* 0 when libunwind's own fds are no longer its (the program closed them):
 * unwinding could then block or write into the program's files. */
int stack_fds_ok(void);

/* modules.c */
void modules_reset(void);
void modules_after_fork(void);	/* the lock may have been held by a thread gone */
/* Cheap check of the loader's add/remove counters; records changes. */
void modules_check(void);

/* agent.c */
/* Recording cannot go on (disk full, ...): end it, keep the reason. */
void agent_fail(int err, const char *what);
/* The program begins to exit (main returned, exit() called; attach: the
 * on_exit handler): the EXITING mark, once per process, and in launch mode
 * the smaps copy of that moment.  how: enum mfx_exit_how. */
void agent_exiting(int status, unsigned how);
/* 1 in launch mode (LD_PRELOAD by mfx launch). */
int agent_launched(void);

/* exit.c: attach mode: register the on_exit handler (once). */
void exit_watch_attach(void);

#endif
