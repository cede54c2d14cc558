/*
 * internal.h - inject/'s own view of a hold (struct inject) and what its
 * files share.  Outside inject/ the handle is opaque (inject.h).
 *
 *   preflight.c  refusals before anything touches the target; seccomp,
 *                limits, namespaces, why ptrace was denied
 *   seccomp.c    the target thread's seccomp filters, evaluated
 *   tasks.c      thread ids in the host's terms (NSpid), tgid checks
 *   safepoint.c  which thread, and whether it is safe to borrow
 *   hold.c       seize, stop, save, restore, detach: the one cleanup path
 *   call.c       remote calls that survive mfx's death
 *   elfmem.c     modules and symbols from the target's memory
 *   glibc.c      glibc layout assumptions, checked
 *   x86_64.c     the ABI: signal frame, trampoline, restart rules
 *   load.c       the agent: loading it (agent.c: the doorbell)
 *   unwind.c     remote unwinding for the safe point
 */
#ifndef MFX_INJECT_INTERNAL_H
#define MFX_INJECT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "inject/inject.h"

struct inject_unwind;

#define INJ_MAX_TEXT 4

/* A mapped ELF module of the target (from /proc/PID/maps). */
struct inject_module {
	char path[4096];		/* as the target sees it (informative only) */
	uint64_t base;			/* the mapping of file offset 0 */
	uint64_t lo, hi;		/* lowest and highest mapped address */
	struct { uint64_t lo, hi; } text[INJ_MAX_TEXT];	/* its executable mappings */
	int ntext;
	unsigned dev_major, dev_minor;
	uint64_t inode;
};

/* The libc functions remote calls use (glibc.c's fn_names order). */
enum inject_fn {
	INJ_DLOPEN, INJ_DLERROR, INJ_DLCLOSE, INJ_MEMFD_CREATE, INJ_SOCKETPAIR, INJ_CLOSE,
	INJ_MALLOC_TRIM, INJ_ERRNO_LOCATION, INJ_PTHREAD_CREATE, INJ_SLEEP, INJ_MMAP, INJ_MUNMAP,
	INJ_NFN,
};

struct inject_range {
	uint64_t lo, hi;
};
#define INJ_MAX_BUSY 24

/* The target's C library, read before a thread is held (glibc.c). */
struct inject_libc {
	struct inject_module libc, ld;
	int have_ld;
	int version;			/* 236 = glibc 2.36; 0 unknown */
	uint64_t malloc_lo, malloc_hi;	/* malloc.c's code, from exported symbols */
	struct inject_range busy[INJ_MAX_BUSY];	/* take the thread-stack lock */
	int nbusy;
	uint64_t restore_rt;		/* __restore_rt (0: not found) */
	uint32_t tid_off;		/* struct pthread's tid (0: unknown) */
	uint64_t fn[INJ_NFN];
};

struct inject_map {
	uint64_t lo, hi;
	int stack;			/* [stack]: grows down on demand */
};

struct inject_sched {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

/* Where the held thread stands between calls. */
enum inject_at {
	AT_NONE,	/* not stopped */
	AT_TRAP,	/* a stop inside the kernel's signal path (interrupt,
			 * group stop or signal delivery): registers may be set,
			 * the kernel's restart logic runs on resume */
	AT_SIGRET,	/* the syscall-entry stop of rt_sigreturn on our frame
			 * (syscall mode): the next call skips it; a detach lets
			 * it run and restore the thread from the frame */
};

enum inject_mode {
	MODE_SYSCALL,	/* PTRACE_SYSCALL; done at rt_sigreturn's entry */
	MODE_NOTIFY,	/* PTRACE_CONT; done at our trampoline's tgkill of `notify` */
};

struct inject {
	pid_t pid, tid;			/* host view: what ptrace takes */
	pid_t ns_pid, ns_tid;		/* the target's own view (its pid namespace) */
	int attached;
	struct inject_opts o;
	struct inject_libc lc;
	struct inject_preflight pf;	/* what preflight found */

	/* the thread at the stop */
	struct user_regs_struct saved;
	uint8_t *xsave;
	size_t xsave_len;
	int xstate;			/* NT_X86_XSTATE (else the FXSAVE area) */
	uint64_t saved_mask;
	uint8_t insn_before[2];		/* the code bytes before its pc */
	int parked;			/* our own loader thread (o.parked_tid) */
	uint64_t t_stopped;
	unsigned attempts;

	/* remote calls (call.c) */
	int at;
	int mask_set;			/* the call mask is in force */
	uint64_t scratch, scratch_lo;	/* data pushed for calls: [scratch, rsp - gap) */
	uint64_t frame;			/* the rt_sigframe (0: not written yet) */
	uint64_t tramp;			/* our trampoline page (0: none) */
	size_t tramp_notify, tramp_sigret_at, tramp_sigret_end;
	uint64_t sigret_at;		/* AT_SIGRET: the stub's start, to run it again */
	int tramp_tried, no_tramp;
	int notify;			/* the signal our trampoline raises (0: none) */
	uint64_t notify_ok;		/* signals fit for it (preflight) */
	int sig_delivered;		/* a handler ran in the thread during the hold */
	long last_sys_ret;		/* the last system call's result in a call */
	unsigned calls, stops;
	const char *mode_used;		/* how the caller's calls ended */
	uint64_t errno_addr, errno_tls;
	int saved_errno;
	int eintr_restarted;

	/* the safe point (safepoint.c) */
	struct inject_unwind *unw;
	struct inject_map *maps;
	size_t nmaps;
	struct inject_range *exec;	/* executable file mappings: what a call may target */
	size_t nexec;
	uint8_t *stack, *prestack;
	int safe_by_scan;
	struct {
		pid_t tid;
		long nr;
		uint64_t sp, pc;
		size_t len;
		int walk, n;
	} pre;

	/* mfx's own scheduling while it holds */
	int self_boosted;
	struct inject_sched self_sched;
};

/* elfmem.c */
int inject_find_modules(pid_t pid, const char *suffix, struct inject_module *m, int max);
int inject_find_module(pid_t pid, const char *suffix, struct inject_module *m);
int inject_in_text(const struct inject_module *m, uint64_t a);
/* Addresses of the NULL-ended names in module m's dynamic symbols, from
 * memory: vals[i] (0: absent or not inside the module's code/data).
 * Returns how many, or -error. */
int inject_module_syms(pid_t pid, const struct inject_module *m, const char *const *names,
		       uint64_t *vals, uint64_t *sizes);
/* The highest version "PREFIXmajor.minor" m defines, as major*100+minor. */
int inject_module_version(pid_t pid, const struct inject_module *m, const char *prefix, int *best);

/* tasks.c */
/* The host tid of thread ns_tid (as the target sees it) of pid; 0 or -ESRCH. */
int inject_host_tid(pid_t pid, pid_t ns_tid, pid_t *tid);
/* pid's and tid's ids in the target's own pid namespace (NSpid's last). */
pid_t inject_ns_id(pid_t pid, pid_t tid);
/* Is tid a thread of pid right now (its Tgid)? */
int inject_is_thread_of(pid_t pid, pid_t tid);

/* preflight.c */
/* ours: a thread of ours in it (the loader) whose mask does not count. */
int inject_preflight(pid_t pid, pid_t ours, struct inject_preflight *pf, struct inject_err *e);

/* seccomp.c: evaluate the held thread's filters for what mfx will do. */
int inject_seccomp_check(struct inject *ij, struct inject_err *e);

/* safepoint.c */
int inject_hold_safe(struct inject *ij);
void inject_safepoint_prepare(struct inject *ij);
void inject_safepoint_free(struct inject *ij);

/* hold.c */
int inject_seize(struct inject *ij, pid_t tid);
int inject_interrupt(struct inject *ij);
/* Wait for the held thread's next stop: 0 (*sig, *event), -MFX_E_EXITED,
 * -ETIMEDOUT. */
int inject_wait_stop(pid_t tid, uint64_t timeout_ns, int *sig, int *event);
int inject_save_state(struct inject *ij);
void inject_release(struct inject *ij);
int inject_mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len);
/* A stop signal met on the way: delivered at once (the kernel's own
 * group-stop rules then apply, SIGCONT included). */
int inject_is_stop_signal(int sig);

/* call.c */
/* Registers and mask the thread resumes with, for the end of the hold
 * (alive: `alive`) or written into the frame for mfx's death. */
void inject_resume_regs(struct inject *ij, int alive, struct user_regs_struct *r);
/* Undo the calls' traces before the restore: the trampoline page, errno.
 * 1 when the thread may now simply be detached at rt_sigreturn (the frame
 * holds exactly the state the restore would put back). */
int inject_calls_end(struct inject *ij);
/* Read the executable file mappings calls may target (before the hold). */
void inject_exec_maps(struct inject *ij);
/* A call whose result lands in memory: glibc's __restore_rt, syscall mode,
 * no trampoline page. */
int inject_call_noret(struct inject *ij, uint64_t fn, const uint64_t *args, int n);

#define note inject_note

#endif /* MFX_INJECT_INTERNAL_H */
