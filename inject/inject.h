/*
 * inject.h - getting into a live process: stop one of its threads at a safe
 * point with ptrace, call functions inside it, and put everything back.
 * Used by `mfx attach` (load the agent) and `mfx trim` (malloc_trim(0)).
 *
 *   struct inject ij;
 *   inject_open(pid, &opts, &ij);          seize + stop one thread, safely
 *   inject_call(&ij, fn, args, n, &ret);   fn(args...) in that thread
 *   inject_close(&ij);                     registers, signal mask back; detach
 *
 * Only the chosen thread is ever stopped; the others run on.  While it is
 * held, every signal is blocked in it (process-wide signals go to the other
 * threads; its own stay pending and arrive after the detach), and the
 * system call it was blocked in, if any, is restarted exactly as before.
 * docs/attach.md explains the safe point.
 */
#ifndef MFX_INJECT_INJECT_H
#define MFX_INJECT_INJECT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct inject_unwind;

/* A mapped ELF module of the target (from /proc/PID/maps). */
struct inject_module {
	char path[4096];		/* as the target sees it */
	uint64_t base;			/* load bias: address of file offset 0 minus its vaddr */
	uint64_t lo, hi;		/* lowest and highest mapped address */
	uint64_t text_lo, text_hi;	/* the executable mapping */
};

/* The libc functions remote calls use. */
enum inject_fn {
	INJ_DLOPEN, INJ_DLSYM, INJ_DLERROR, INJ_MEMFD_CREATE, INJ_SOCKETPAIR, INJ_CLOSE,
	INJ_MALLOC_TRIM, INJ_ERRNO_LOCATION, INJ_PTHREAD_CREATE, INJ_PAUSE,
	INJ_NFN,
};

/* A code range no held thread may be inside (nor have a caller in). */
struct inject_range {
	uint64_t lo, hi;
};
#define INJ_MAX_BUSY 24

/* The target's C library, loader and malloc code ranges, and the addresses
 * of the functions above (0 = missing), all read before a thread is held. */
struct inject_libc {
	struct inject_module libc, ld;
	int have_ld;
	uint64_t malloc_lo, malloc_hi;	/* malloc.c's code, from exported symbols */
	/* pthread_create, _join, _detach, _exit, set*id: the thread-stack lock */
	struct inject_range busy[INJ_MAX_BUSY];
	int nbusy;
	uint64_t restore_rt;		/* the signal return trampoline (0: not found) */
	uint32_t tid_off;		/* struct pthread's tid (libthread_db's table; 0: unknown) */
	uint64_t fn[INJ_NFN];
};

/* sched_getattr/sched_setattr's struct (VER0, 48 bytes; glibc has no wrapper). */
struct inject_sched {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

/* A mapping of the target, from /proc/PID/maps read before the hold. */
struct inject_map {
	uint64_t lo, hi;
	int stack;			/* [stack]: grows down on demand */
};

struct inject_opts {
	uint64_t timeout_ns;		/* to reach a safe point (default 3 s) */
	uint64_t call_timeout_ns;	/* for one remote call (default 10 s) */
	int verbose;			/* notes on stderr (MFX_DEBUG) */
	/* Hold this thread of ours instead of choosing one: a thread mfx
	 * started (pthread_create(.., pause, ..)) and that is parked in
	 * pause(); parked_self is its pthread_t.  lc: reuse these facts. */
	pid_t parked_tid;
	uint64_t parked_self;
	int no_boot;			/* load the agent in the held thread itself */
	int no_boost;			/* leave the held thread's scheduling alone */
	const struct inject_libc *lc;
};

struct inject {
	pid_t pid, tid;			/* process, and the thread held */
	int attached;
	struct user_regs_struct saved;	/* registers at the stop */
	uint8_t *xsave;			/* XSAVE area at the stop */
	size_t xsave_len;
	uint64_t saved_mask;		/* its signal mask at the stop */
	int in_syscall;			/* was blocked in a system call */
	long syscall_nr;
	uint64_t t_stopped;		/* CLOCK_MONOTONIC ns when it stopped */
	uint64_t held_ns;		/* set by inject_close */
	unsigned attempts;		/* interrupts until a safe point */
	uint64_t scratch;		/* next free byte of the scratch area (stack) */
	uint64_t scratch_lo;		/* its lowest usable address */
	int pending_sig[8];		/* signals that hit it while held */
	int npending;
	uint64_t errno_addr;		/* the held thread's errno, kept across calls */
	uint64_t errno_tls;		/* its offset from fs_base (0: ask __errno_location) */
	int saved_errno;
	struct inject_libc lc;
	struct inject_opts o;
	struct inject_unwind *unw;	/* the modules' unwind tables, found before the hold */
	struct inject_map *maps;	/* the target's mappings, read before the hold */
	size_t nmaps;
	uint8_t *stack;			/* a buffer for the held thread's stack, touched before */
	int safe_by_scan;		/* the safe point was proven by the stack scan alone */
	uint8_t *prestack;		/* a blocked thread's stack, read and unwound before */
	struct {			/* the hold (a verdict the hold reuses if unchanged) */
		pid_t tid;
		long nr;
		uint64_t sp, pc;
		size_t len;
		int walk, n;
	} pre;
	int finish_parked;		/* inject_close: let the parked thread's pause() return 0 */
	/* While it is held, the thread (and mfx) run SCHED_FIFO 1 when we may
	 * (root): its calls are not queued behind the load; put back after. */
	int boosted, self_boosted, was_boosted;
	struct inject_sched sched_saved, self_sched;
};

/*
 * Refusals come first, before anything touches the target:
 *   -ESRCH (no such process), -MFX_E_SELF, -MFX_E_ZOMBIE, -MFX_E_TRACED
 *   (another tracer: *tracer gets its pid), -MFX_E_STOPPED (job-control
 *   stopped), -MFX_E_STATIC (no dynamic loader), -MFX_E_NOGLIBC.
 * Then -EPERM (ptrace not allowed), -MFX_E_NOSAFEPOINT, -MFX_E_EXITED.
 */
int inject_check(pid_t pid, pid_t *tracer);
/* A note on stderr with MFX_DEBUG (o.verbose), stamped with the hold so far. */
void inject_note(const struct inject *ij, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int inject_open(pid_t pid, const struct inject_opts *o, struct inject *ij);
/* Call fn(args[0..n-1]) (n <= 6, integer/pointer arguments) in the held
 * thread; *ret gets rax.  -MFX_E_REMOTE when it faulted (the fault is
 * swallowed: the target never sees it), -MFX_E_EXITED, -ETIMEDOUT. */
int inject_call(struct inject *ij, uint64_t fn, const uint64_t *args, int n, uint64_t *ret);
/* Give thread tid the held thread's own scheduling (a thread it started
 * while boosted). */
void inject_sched_copy(const struct inject *ij, pid_t tid);
/* After the hold: threads named `comm` (the agent's, started by a call in
 * the held thread while it was boosted) get its own scheduling. */
void inject_sched_fix(const struct inject *ij, const char *comm);
/* The parked thread (o.parked_tid) returns from pause() when closed. */
void inject_finish_parked(struct inject *ij);
/* Copy len bytes into the scratch area below the held thread's stack
 * pointer (and its red zone); *addr gets their address in the target. */
int inject_push(struct inject *ij, const void *data, size_t len, uint64_t *addr);
/* Read the target's memory (process_vm_readv; no thread needs to be held). */
int inject_peek(pid_t pid, uint64_t addr, void *buf, size_t len);
/* Put registers, XSAVE state and signal mask back, deliver what arrived
 * meanwhile, detach.  Safe to call on a half-opened inject. */
void inject_close(struct inject *ij);

/* Find the module whose path ends with `suffix` (e.g. "/libc.so.6"). */
int inject_find_module(pid_t pid, const char *suffix, struct inject_module *m);
/* Look up functions' and data objects' st_value in an ELF file's .dynsym (or .symtab), in
 * one pass: vals[i] (and sizes[i] when sizes != NULL) for the NULL-ended
 * names[i], 0 if absent.  Returns how many were found. */
int inject_elf_syms(const char *path, const char *const *names, uint64_t *vals, uint64_t *sizes);
/* Load libc/ld ranges and the remote-call functions for pid (the file the
 * target mapped, through /proc/PID/root; inject_open does it). */
int inject_load_libc(pid_t pid, struct inject_libc *lc);

#endif /* MFX_INJECT_INJECT_H */
