/*
 * inject.h - getting into a live process without harming it: hold one of
 * its threads at a safe point with ptrace, call functions in it, put it
 * back.  Used by `mfx attach` (load the agent: load.h) and `mfx trim`.
 *
 *   struct inject *h;
 *   if ((err = inject_open(pid, &opts, &h, &why)))   refusals, then one
 *           ...                                      thread held, safely
 *   inject_push(h, data, len, &addr);                a block on its stack
 *   inject_call(h, fn, args, n, &ret);               fn(args...) in it
 *   inject_close(h, &stats);                         everything back
 *
 * Only the held thread stops; the others run on.  Whatever happens to mfx
 * (even SIGKILL in the middle of a call) the thread resumes as it was:
 * every call returns through a signal frame that restores its registers,
 * signal mask and FPU state by itself (docs/attach.md, "Remote calls").
 * The system call it was blocked in is restarted as the kernel would; one
 * that a stop makes fail with EINTR (epoll_wait, sigtimedwait, recv with
 * SO_RCVTIMEO, semtimedop, ...) is restarted too.
 */
#ifndef MFX_INJECT_INJECT_H
#define MFX_INJECT_INJECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct inject;
struct inject_libc;

struct inject_opts {
	uint64_t timeout_ns;		/* to reach a safe point (default 3 s) */
	uint64_t call_timeout_ns;	/* one remote call (default 10 s) */
	int verbose;			/* notes on stderr (MFX_DEBUG) */
	int no_boost;			/* mfx keeps its own priority while it holds */
	pid_t only_tid;			/* hold this thread or none (MFX_HOLD_TID: tests) */
	uint64_t avoid_lo, avoid_hi;	/* code no held thread may be in, nor have a caller
					 * in: another allocator's library */
	/* load.c: hold this thread of ours (parked in sleep(), its pthread_t
	 * parked_self), reusing the libc facts lc */
	pid_t parked_tid;
	uint64_t parked_self;
	const struct inject_libc *lc;
};

/* What preflight read about the target (inject_check). */
struct inject_preflight {
	pid_t ns_pid;			/* its pid in its own pid namespace */
	int seccomp, seccomp_filters;	/* Seccomp: 0 none, 1 strict, 2 filter */
	int no_new_privs;
	uint64_t as_limit, as_used;	/* RLIMIT_AS (0: none) and VmSize, bytes */
	uint64_t nofile_limit, nofile_used;
	int other_pidns, other_mntns, other_userns;
	uint64_t sig_ignored, sig_caught;	/* SigIgn, SigCgt: bit n-1 = signal n */
	uint64_t notify_ok;		/* signals fit for our completion notice */
	uint64_t start_time;		/* /proc/PID/stat starttime */
	uint64_t exe_dev, exe_ino;	/* /proc/PID/exe: an exec changes it */
};

/* Why something was refused, for the one error line. */
struct inject_err {
	pid_t tracer;			/* -MFX_E_TRACED: the tracer's pid */
	char detail[256];		/* the specifics, or "" */
};

/* What a hold cost, returned by inject_close. */
struct inject_stats {
	uint64_t held_ns;		/* the thread was stopped this long */
	unsigned attempts;		/* interrupts until a safe point */
	unsigned calls, stops;		/* remote calls, ptrace stops they took */
	pid_t tid;			/* the thread held (host pid) */
	int eintr_restarted;		/* its system call failed with EINTR: restarted */
	const char *mode;		/* "notify", "syscall" or "none" */
};

/*
 * Refusals, before anything touches the target:
 *   -ESRCH (no such process, or a thread id), -MFX_E_SELF, -MFX_E_KTHREAD,
 *   -MFX_E_ZOMBIE, -MFX_E_TRACED (e->tracer), -MFX_E_STOPPED,
 *   -MFX_E_STATIC, -MFX_E_NOGLIBC, -MFX_E_SECCOMP (strict mode, or filters
 *   mfx may not read), -MFX_E_SHSTK (shadow stacks), -EPERM.
 * pf (may be NULL) gets what was read.
 */
int inject_check(pid_t pid, struct inject_preflight *pf, struct inject_err *e);
/* The checks, then hold one thread at a safe point.  Also -MFX_E_SECCOMP
 * (a filter would kill or fail a call mfx makes), -MFX_E_NOSAFEPOINT,
 * -MFX_E_EXITED, -MFX_E_EXECED, -MFX_E_STOPPED (stopped during the attach). */
int inject_open(pid_t pid, const struct inject_opts *o, struct inject **h, struct inject_err *e);
/* fn(args[0..n-1]) (n <= 6, integers and pointers) in the held thread; *ret
 * gets its return value (or, without our trampoline - inject_exact_ret()
 * is 0 - the result of the last system call it made).  -MFX_E_REMOTE (it
 * faulted: swallowed), -MFX_E_EXITED, -ETIMEDOUT. */
int inject_call(struct inject *h, uint64_t fn, const uint64_t *args, int n, uint64_t *ret);
int inject_exact_ret(const struct inject *h);
/* Copy len bytes onto the held thread's stack, below its stack pointer, red
 * zone and what earlier pushes put there; *addr gets their address (16-byte
 * aligned).  Valid for the calls of this hold.  -ENOSPC past 16 KiB. */
int inject_push(struct inject *h, const void *data, size_t len, uint64_t *addr);
/* A function of a module of the target (its path ends with module_suffix,
 * e.g. "/libjemalloc.so.2"; NULL: libc), from the module's dynamic symbols
 * in memory; it lies in that module's executable mapping.  -ENOENT. */
int inject_lookup(struct inject *h, const char *module_suffix, const char *name, uint64_t *addr);
/* The process held. */
pid_t inject_pid(const struct inject *h);
/* malloc_trim(0) in the held thread: its return value (-1: unknown), time. */
int inject_trim(struct inject *h, int *ret, uint64_t *trim_ns);
/* Everything back (registers, XSAVE state, signal mask, errno, the system
 * call it was in), detach, free.  Safe after a failed call; h may be NULL. */
void inject_close(struct inject *h, struct inject_stats *st);

/* The module of pid whose path (as the target sees it) ends with suffix:
 * its full path and the address of its file offset 0.  0 or -ENOENT. */
int inject_module_base(pid_t pid, const char *suffix, char *path, size_t n, uint64_t *base);
/* Its executable mapping (the first).  0 or -ENOENT. */
int inject_module_text(pid_t pid, const char *suffix, uint64_t *lo, uint64_t *hi);
/* Addresses of the NULL-ended names (0: absent) among the dynamic symbols
 * of pid's module whose path ends with suffix, read from its memory - not
 * from a file someone may have put at its path - each inside that module
 * (functions: in its code).  How many were found, or -ENOENT. */
int inject_syms(pid_t pid, const char *suffix, const char *const *names, uint64_t *vals);
/* Symbols' st_value (and st_size) in an ELF file, .dynsym then .symtab,
 * for the NULL-ended names; 0 if absent.  The file is opened without
 * blocking and must be regular (common/elffile.c); it may lie: a remote
 * call's address must lie in an executable mapping of the target
 * (inject_call checks).  Returns how many were found. */
int inject_elf_syms(const char *path, const char *const *names, uint64_t *vals, uint64_t *sizes);
/* Read the target's memory (no thread needs to be held). */
int inject_peek(pid_t pid, uint64_t addr, void *buf, size_t len);
/* A note on stderr with MFX_DEBUG, stamped with the hold so far. */
void inject_note(const struct inject *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Why ptrace was refused with EPERM, for a hint that names the real cause. */
enum inject_eperm_why {
	EPERM_UNKNOWN,		/* nothing we can see: a security module */
	EPERM_NOT_DUMPABLE,	/* it changed user IDs or called PR_SET_DUMPABLE 0: root only */
	EPERM_OTHER_USER,	/* it runs as another user */
	EPERM_YAMA,		/* kernel.yama.ptrace_scope (yama: the value) */
	EPERM_NO_CAP,		/* we are root without CAP_SYS_PTRACE (a container) */
	EPERM_USERNS,		/* it is in a user namespace we have no rights in */
};
struct inject_eperm {
	enum inject_eperm_why why;
	int yama;
	uid_t uid;		/* the target's real uid */
};
void inject_eperm_cause(pid_t pid, struct inject_eperm *c);
/* After a failure: did pid exit (-MFX_E_EXITED) or exec (-MFX_E_EXECED)
 * since pf was read?  0 when it is still the same program. */
int inject_gone(pid_t pid, const struct inject_preflight *pf);

#endif /* MFX_INJECT_INJECT_H */
