/*
 * internal.h - helpers shared by the agent's own files (record.c, chunks.c,
 * agentmem.c, stack.c, modules.c, agent.c, hooks.c, ...); see agent.h for
 * the interface the attach side (control.c, got.c) uses.
 */
#ifndef MFX_PRELOAD_INTERNAL_H
#define MFX_PRELOAD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* agentmem.c */
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
/* 1 if a new mapping of len bytes leaves the program its address-space
 * headroom under RLIMIT_AS (record.c), else 0 (errno ENOMEM). */
int agent_as_room(size_t len);
/* Replace [p, p+len) (shared) with fresh zeroed agent memory (never
 * unmapped: a straggler may still read it).  0; -1: the old mapping or
 * zeros are still there; -2: a hole (see record.c). */
int agent_mmap_zero(void *p, size_t len);
/* Zero private agent memory in place (MADV_DONTNEED). 0 or < 0 as above. */
int agent_mem_clear(void *p, size_t len);
/* Close the memfd behind the agent's memory (mappings stay): dormant, the
 * agent holds only its doorbell's fds (and libunwind its pipe). */
void agent_memfd_release(void);

/* Every dl_iterate_phdr() of the agent goes through this gate, which the
 * atfork prepare handler closes (agentmem.c: why). */
struct dl_phdr_info;
int agent_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg);
void agent_phdr_enter(void);	/* around code that walks: libunwind */
void agent_phdr_leave(void);
void agent_phdr_fork_prepare(int drain);
void agent_phdr_fork_done(int child);
/* The loader's dl_load_write_lock, found once (attach, on the agent's
 * thread); in a fork child: 1 if the copy is free (the child may walk). */
void agent_loader_lock_find(void);
int agent_loader_lock_free(void);

/* chunks.c */
struct mfx_chunk_header;
void meta_append_locked(const uint8_t *r, size_t len);
void meta_append(const uint8_t *r, size_t len);	/* takes rec_lock */
void rec_meta_release_locked(void);	/* unmap the META chunk (rec_lock held, or fork) */
size_t ext_wrap(uint8_t *out, unsigned kind, const uint8_t *body, size_t blen);
int rec_map_file(int fd);
void rec_detach_header(void);
int rec_spool_attach(int fd);
void rec_spool_detach(void);
void rec_spool_drain(void);
void rec_spool_drain_exit(void);
/* A free spool slot's chunk (*slot its index), or NULL: no spool, or
 * (*full set) none free. */
struct mfx_chunk_header *rec_spool_take(int32_t *slot, int *full);
void rec_spool_give(int32_t slot);	/* full: mfx's to copy */
/* The next chunk of the trace file, mapped; NULL (recording failed). */
struct mfx_chunk_header *rec_file_take(void);
/* Blocks for [off, off+len) of the trace file (a full disk is -ENOSPC
 * here, not a SIGBUS later). 0 or -errno. */
int rec_file_reserve(uint64_t off, uint64_t len);
/* A fresh chunk's header; timebase 0: TSC (a clock pair), 1: ns. */
void rec_chunk_init(struct mfx_chunk_header *c, uint16_t type, uint32_t tid, uint32_t seq,
		    int timebase);

/* record.c */
int rec_pool_init(void);
int rec_thread_key_init(void);
void rec_end_threads(void);
int rec_forget_spool_slots(void);	/* see rec_spool_detach */
void rec_publish_self(void);
void rec_after_fork_child(void);

/* stack.c */
struct mfx_thread;
/* Unwind the program's stack from ra, the return address a hook was
 * called with (our frames above it are cut), and return its interned id,
 * 0 if none. */
uint32_t stack_capture(const void *ra);
/* 0, or -ENOMEM: stacks stay off (the table could not be cleared). */
int stack_reset(void);
/* Load libunwind and map the table: 0, -ENOENT (no libunwind), -ENOMEM. */
int stack_init(void);
/* After a dlclose: libunwind's caches of unwind info are flushed. */
void stack_modules_gone(void);
/* 0 when libunwind's own fds are no longer its (the program closed them):
 * unwinding could then block or write into the program's files. */
int stack_fds_ok(void);

/* modules.c */
void modules_init(void);	/* map the table (before the optional mappings) */
void modules_reset(void);
void modules_after_fork(void);	/* the lock may have been held by a thread gone */
/* Cheap check of the loader's add/remove counters; records changes. */
void modules_check(void);

/* drain.c: when mfx is gone, the agent writes its chunks itself. */
struct mfx_spool_header;
void rec_watch_mfx(int fd);		/* launch: read end of mfx's liveness pipe */
int rec_mfx_gone_check(void);		/* 1 once mfx is known gone (polls the pipe) */
int rec_mfx_orphan(void);		/* 1 once mfx is known gone (no syscall) */
void rec_mfx_gone(const char *why);	/* attach: the session closed while recording */
int rec_drain_slot(struct mfx_spool_header *sp, uint32_t i, uint32_t from);
void rec_drain_own(struct mfx_spool_header *sp, int owned);

/* config.c: helpers that must not allocate, and what is read before a
 * recording starts (agent_parse_config, agent_resolve: agent.h). */
#define AGENT_TSC_SHIFT 4	/* 16 TSC ticks (~6 ns at 2.5 GHz) per time unit:
				   typical deltas between calls fit one varint byte */
struct agent_config;
struct mfx_file_header;
/* A detached agent thread, every signal blocked: 0 or -errno (config.c). */
int agent_thread(void *(*fn)(void *), void *arg, size_t stack);
size_t agent_u64_to_dec(char *out, uint64_t v);		/* NUL-terminated; its length */
int agent_parse_u64(const char *s, uint64_t *v);	/* 0 or -EINVAL (also NULL, "") */
/* Read a small file into buf (NUL-terminated); returns bytes or -errno. */
long agent_read_small(const char *path, char *buf, size_t n);
int agent_tsc_usable(void);	/* 1: the hooks may time with the TSC */
void agent_fill_header(struct mfx_file_header *h, const struct agent_config *c);
uint64_t agent_vm_hwm(void);	/* VmHWM in bytes, 0 if unknown */

/* agent.c */
/* Recording cannot go on (disk full, ...): end it, keep the reason. */
void agent_fail(int err, const char *what);
/* The program begins to exit (main returned, exit() called; attach: the
 * on_exit handler): the EXITING mark, once per process, and in launch mode
 * the smaps copy of that moment.  how: enum mfx_exit_how. */
void agent_exiting(int status, unsigned how);
/* 1 in launch mode (LD_PRELOAD by mfx launch). */
int agent_launched(void);

/* forkchild.c: attach mode, a child forked during a window records itself
 * and unhooks itself at the window's end (why and how: forkchild.c). */
struct mfx_ctl;
/* START's fds after the trace's (fds[1..], taken: set to -1): the spool's
 * returned (-1: none), the run directory's and mfx's pidfd kept; an older
 * mfx's map (value 0) is the spool alone. */
int fork_watch_start(const struct mfx_ctl *m, int *fds, int nfds);
void fork_watch_set(int dir, int pidfd);	/* START's fds (-1: none); owned */
void fork_watch_clear(void);			/* the window's end: closed */
int fork_watch_dir(uint64_t *ino);		/* the run directory's fd, or -1 */
int fork_child_watched(void);			/* 1 in a recording fork child */
int fork_child_watch(int parent_fd);		/* its watcher thread: 0 or -errno */
void fork_child_end(const char *why);
int rec_trace_dup(void);			/* chunks.c: the trace fd, copied */

/* claim.c: attach mode, at load: 0 when this copy is the agent, 1 when
 * another copy is (this one stays inert: mfx_agent_inert). */
int claim_agent(void);
extern int mfx_agent_inert;

/* exit.c: attach mode: register the on_exit handler (once). */
void exit_watch_attach(void);
/* The agent gave something up (MFX_DG_* flag): set it in the header and
 * say so in a MARK AGENT_NOTE record (when one can still be written). */
void agent_note(uint32_t flag, int err, const char *what);

#endif
