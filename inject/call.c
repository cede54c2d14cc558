/*
 * call.c - remote calls that survive mfx's death (inject.h).
 *
 * Before the first call of a hold, a complete signal frame is written below
 * the held thread's stack (x86_64.h): the registers it must resume with
 * (its interrupted system call already set up to restart, as the kernel
 * would), its own signal mask, and its FPU/XSAVE state.  Each call runs
 * with the stack pointer on that frame, so the function returns into the
 * frame's first word: the address of an rt_sigreturn stub.
 *
 *  - If mfx lives, it stops the thread at that stub and carries on (the
 *    next call, or the exact restore of inject_close, which never lets
 *    rt_sigreturn run: rt_sigreturn clears the kernel's restart_block, and
 *    a nanosleep would then fail with EINTR instead of sleeping on).
 *  - If mfx dies - SIGKILL at any instant - the kernel detaches the thread,
 *    the call finishes, returns into the stub, and rt_sigreturn restores
 *    the thread from the frame, mfx or no mfx.  Nothing of the program waits
 *    on mfx.
 *
 * The stub and how mfx sees the call end:
 *  - syscall mode: glibc's own __restore_rt; the thread runs under
 *    PTRACE_SYSCALL and the end is the syscall-entry stop of rt_sigreturn
 *    at that address with the stack pointer just above our frame.  Every
 *    system call inside the call costs two more stops, and the call's
 *    return value is lost (the stub overwrites rax): inject_call reports
 *    the last system call's result instead.  PTRACE_O_TRACESYSGOOD matters
 *    here: had mfx died during a syscall stop, ptrace_report_syscall()
 *    would send the thread the stop's code as a signal - 0x85 is no signal,
 *    a bare SIGTRAP would kill the process.
 *  - notify mode: a page of ours (mmap'ed PROT_READ|PROT_EXEC by a first
 *    syscall-mode call, filled through /proc/PID/mem) holding `mov
 *    %rax,-8(%rsp)`, tgkill(self, N), rt_sigreturn.  N is a signal the
 *    program ignores (SIG_IGN, or SIGURG/SIGWINCH/SIGCHLD left at their
 *    ignoring default), that no thread blocks or waits for: traced, it
 *    makes a signal-delivery stop, and mfx suppresses it; untraced (mfx
 *    dead) the kernel drops it.  One stop per call, the exact return value.
 *    The page is unmapped at the end (by a syscall-mode call).
 * Between calls the thread always stands at a stop inside the kernel's
 * signal path (an interrupt or signal-delivery stop), where registers can
 * be set and the kernel's restart logic runs after the detach.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "common/error.h"
#include "common/procfs.h"
#include "common/util.h"
#include "inject/internal.h"
#include "inject/x86_64.h"

#define SIGSETXID (__SIGRTMIN + 1)	/* glibc's own, for setuid() in threads */
#define TRAMP_PAGE 4096
#define BIT(s) (1ull << ((s) - 1))

/* Where a call returns and how its end shows (the top of the file). */
struct ret_target {
	uint64_t pc;		/* the frame's first word: the stub */
	uint64_t sigret_at;	/* the stub's `mov $15,%eax`: re-running it restores */
	uint64_t sigret_end;	/* pc at rt_sigreturn's syscall-entry stop */
	uint64_t notify_end;	/* pc at our tgkill's signal stop (0: syscall mode) */
};

static struct ret_target restore_target(const struct inject *ij)
{
	uint64_t r = ij->lc.restore_rt;
	return (struct ret_target){ r, r, r + X86_RESTORE_RT_LEN, 0 };
}

static struct ret_target tramp_target(const struct inject *ij)
{
	uint64_t t = ij->tramp;
	return (struct ret_target){ t, t + ij->tramp_sigret_at, t + ij->tramp_sigret_end,
				    ij->tramp_notify ? t + ij->tramp_notify : 0 };
}

/* A signal (or a thread-directed copy of one) pending for the thread that
 * the program catches and the thread does not block: the kernel would run
 * that handler, and an EINTR is then the program's to see. */
static int handled_pending(const struct inject *ij)
{
	char p[96], buf[2048];
	unsigned long long pnd = 0, shd = 0, cgt = 0;
	snprintf(p, sizeof(p), "/proc/%d/task/%d/status", (int)ij->pid, (int)ij->tid);
	if (read_small(p, buf, sizeof(buf)) < 0)
		return 1;	/* cannot tell: leave the EINTR */
	const char *a = strstr(buf, "\nSigPnd:"), *b = strstr(buf, "\nShdPnd:"), *c = strstr(buf, "\nSigCgt:");
	if (!a || !b || !c || sscanf(a + 8, "%llx", &pnd) != 1 || sscanf(b + 8, "%llx", &shd) != 1 ||
	    sscanf(c + 8, "%llx", &cgt) != 1)
		return 1;
	return ((pnd | shd) & cgt & ~ij->saved_mask) != 0;
}

void inject_resume_regs(struct inject *ij, int alive, struct user_regs_struct *r)
{
	*r = ij->saved;
	if (ij->parked) {	/* our loader thread: sleep() returns 0, the thread ends */
		r->rax = 0;
		r->orig_rax = (unsigned long long)-1;
		return;
	}
	long nr = (long)r->orig_rax;
	enum x86_restart k = x86_restart_kind(r);
	int rewind = 0;
	if (k == X86_EINTR && x86_eintr_after_stop(nr) && !handled_pending(ij))
		rewind = 2;	/* the stop's EINTR: restart it (with its full timeout) */
	else if (k == X86_RESTARTBLOCK && (!alive || ij->sig_delivered))
		rewind = 1;	/* restart_block gone (rt_sigreturn ran): from the start */
	else if (k == X86_RESTART && !alive)
		rewind = 1;	/* what the kernel's restart does */
	if (rewind && x86_rewind_syscall(r, ij->insn_before) == 0 && rewind == 2 && alive)
		ij->eintr_restarted = 1;
}

/* The completion signal: one the program ignores and nobody blocks (preflight
 * found those), not blocked by this thread either. */
static void choose_notify(struct inject *ij)
{
	static const int prefer[] = { SIGURG, SIGWINCH, SIGCHLD };
	uint64_t ok = ij->notify_ok & ~ij->saved_mask;
	ij->notify = 0;
	for (size_t i = 0; i < sizeof(prefer) / sizeof(prefer[0]) && !ij->notify; i++)
		if (ok & BIT(prefer[i]))
			ij->notify = prefer[i];
	for (int s = 1; s <= 64 && !ij->notify; s++)
		if (ok & BIT(s))
			ij->notify = s;
}

static int frame_write(struct inject *ij)
{
	struct user_regs_struct r;
	struct x86_rt_sigframe f;
	uint8_t *fpbuf = malloc(ij->xsave_len + 4);
	if (!fpbuf)
		return -ENOMEM;
	choose_notify(ij);
	inject_resume_regs(ij, 0, &r);
	uint64_t fp = (ij->scratch_lo - ij->xsave_len - 4 - X86_XSAVE_ALIGN) & ~(uint64_t)(X86_XSAVE_ALIGN - 1);
	uint64_t frame = ((fp - sizeof(f)) & ~15ull) - 8;	/* 8 mod 16: a callee's entry */
	x86_frame_build(&f, ij->lc.restore_rt, &r, ij->saved_mask, fp, ij->xsave, ij->xsave_len,
			ij->xstate, fpbuf);
	int err = inject_mem_write(ij->pid, fp, fpbuf, ij->xsave_len + 4);
	if (!err)
		err = inject_mem_write(ij->pid, frame, &f, sizeof(f));
	free(fpbuf);
	if (!err)
		ij->frame = frame;
	return err;
}

/* Blocked while a call runs: everything but the synchronous faults (a
 * fault with its signal blocked makes the kernel reset the handler to
 * SIG_DFL), glibc's SIGSETXID (a setuid() in another thread holds the
 * thread-stack lock until every thread ran its handler: delivered at once)
 * and our completion signal. */
static uint64_t call_mask(const struct inject *ij)
{
	uint64_t m = ~0ull;
	m &= ~(BIT(SIGSEGV) | BIT(SIGBUS) | BIT(SIGILL) | BIT(SIGFPE) | BIT(SIGTRAP) | BIT(SIGSETXID));
	if (ij->notify)
		m &= ~BIT(ij->notify);
	return m;
}

static int resume(struct inject *ij, const struct ret_target *t, int sig)
{
	ij->at = AT_NONE;
	if (ptrace(t->notify_end ? PTRACE_CONT : PTRACE_SYSCALL, ij->tid, 0, (void *)(long)sig))
		return errno == ESRCH ? -MFX_E_EXITED : -errno;
	return 0;
}

/* Wait out the interrupt stop asked for (after PTRACE_INTERRUPT). */
static int interrupt_wait(struct inject *ij)
{
	for (int guard = 0; guard < 64; guard++) {
		int sig, ev, err = inject_wait_stop(ij->tid, 2000000000ull, &sig, &ev);
		if (err) {
			ij->attached = err == -MFX_E_EXITED ? 0 : ij->attached;
			return err;
		}
		ij->stops++;
		if (ev == PTRACE_EVENT_STOP) {
			ij->at = AT_TRAP;
			return 0;
		}
		if (!ev && sig != SIGSETXID && !inject_is_stop_signal(sig))
			sig = 0;	/* blocked ones never stop; a fault's retry faults again */
		if (ij->o.verbose > 1)
			note(ij, "    interrupt wait: signal %d event %d, resumed with %d", sig, ev, ev ? 0 : sig);
		if (ptrace(PTRACE_CONT, ij->tid, 0, (void *)(long)(ev ? 0 : sig)))
			return -errno;
	}
	return -MFX_E_REMOTE;
}

/* At rt_sigreturn's entry stop: skip it, and stop at once in the signal
 * path, with the pc back on the stub (should mfx die now, the thread runs
 * rt_sigreturn again and is restored). */
static int finish_at_sigreturn(struct inject *ij)
{
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, ij->tid, 0, &r))
		return -errno;
	r.orig_rax = (unsigned long long)-1;
	r.rip = ij->sigret_at;
	if (ptrace(PTRACE_SETREGS, ij->tid, 0, &r) || ptrace(PTRACE_INTERRUPT, ij->tid, 0, 0) ||
	    ptrace(PTRACE_CONT, ij->tid, 0, 0))
		return errno == ESRCH ? -MFX_E_EXITED : -errno;
	return interrupt_wait(ij);
}

static int on_syscall_stop(struct inject *ij, const struct ret_target *t, int *done)
{
	struct __ptrace_syscall_info si;
	if (ptrace(PTRACE_GET_SYSCALL_INFO, ij->tid, (void *)sizeof(si), &si) <= 0)
		return -errno;
	if (si.op == PTRACE_SYSCALL_INFO_ENTRY && si.entry.nr == X86_NR_RT_SIGRETURN &&
	    si.instruction_pointer == t->sigret_end && si.stack_pointer == ij->frame + 8) {
		*done = 1;
		ij->at = AT_SIGRET;	/* left there: the next call or the close decides */
		ij->sigret_at = t->sigret_at;
		return 0;
	}
	if (si.op == PTRACE_SYSCALL_INFO_EXIT)
		ij->last_sys_ret = (long)si.exit.rval;
	if (ij->o.verbose > 1)
		note(ij, "    syscall %s %lld", si.op == PTRACE_SYSCALL_INFO_ENTRY ? "entry" : "exit",
		     si.op == PTRACE_SYSCALL_INFO_ENTRY ? (long long)si.entry.nr : (long long)si.exit.rval);
	return resume(ij, t, 0);
}

/* Our tgkill, or someone else's copy of the (ignored) signal? */
static int on_notify(struct inject *ij, const struct ret_target *t, int *done)
{
	siginfo_t si;
	struct __ptrace_syscall_info in;
	if (ptrace(PTRACE_GETSIGINFO, ij->tid, 0, &si) ||
	    ptrace(PTRACE_GET_SYSCALL_INFO, ij->tid, (void *)sizeof(in), &in) <= 0)
		return -errno;
	if (si.si_code == SI_TKILL && si.si_pid == ij->ns_pid && in.instruction_pointer == t->notify_end) {
		ij->at = AT_TRAP;
		*done = 1;
		return 0;
	}
	return resume(ij, t, 0);	/* ignored by the program anyway */
}

static int on_signal(struct inject *ij, const struct ret_target *t, int sig)
{
	if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP) {
		ij->at = AT_TRAP;	/* swallowed: restored exactly at close */
		note(ij, "remote call faulted: signal %d", sig);
		return -MFX_E_REMOTE;
	}
	/* SIGSETXID (its handler is one system call), a stop signal (the
	 * kernel's group stop; a SIGCONT ends it), anything else: delivered as
	 * the kernel would. */
	if (!inject_is_stop_signal(sig))
		ij->sig_delivered = 1;
	return resume(ij, t, sig);
}

static int call_wait(struct inject *ij, const struct ret_target *t)
{
	uint64_t t0 = now_ns();
	for (;;) {
		uint64_t spent = now_ns() - t0;
		int sig = 0, ev = 0, done = 0, err;
		err = spent >= ij->o.call_timeout_ns ? -ETIMEDOUT :
			inject_wait_stop(ij->tid, ij->o.call_timeout_ns - spent, &sig, &ev);
		if (err == -ETIMEDOUT) {	/* take it back; what the call left half done stays */
			if (ptrace(PTRACE_INTERRUPT, ij->tid, 0, 0) == 0 && interrupt_wait(ij) == 0)
				return -ETIMEDOUT;
			return -MFX_E_EXITED;
		}
		if (err) {
			ij->attached = 0;
			return err;
		}
		ij->stops++;
		if (ij->o.verbose > 1)
			note(ij, "    stop: signal %d event %d", sig, ev);
		if (sig == (SIGTRAP | 0x80))
			err = on_syscall_stop(ij, t, &done);
		else if (ev)	/* a group stop: the rest of the process stops, we go on */
			err = resume(ij, t, 0);
		else if (t->notify_end && sig == ij->notify)
			err = on_notify(ij, t, &done);
		else
			err = on_signal(ij, t, sig);
		if (err || done)
			return err;
	}
}

/* Every address mfx calls must lie in an executable mapping of a file the
 * target has mapped (a module, or our agent's memfd): never in anonymous
 * memory, never where a lying ELF file pointed.  The list is read before
 * the hold (inject_exec_maps), again once for an address newer than it
 * (the agent, mapped by a call). */
void inject_exec_maps(struct inject *ij)
{
	struct maps_iter it;
	struct maps_entry e;
	size_t cap = 0;
	ij->nexec = 0;
	if (procfs_maps_open(ij->pid, &it))
		return;
	while (procfs_maps_next(&it, &e) > 0)
		if (e.perms[2] == 'x' && e.inode && e.path[0] == '/' &&
		    grow_array(&ij->exec, &cap, ij->nexec, sizeof(*ij->exec)) == 0)
			ij->exec[ij->nexec++] = (struct inject_range){ e.lo, e.hi };
	procfs_maps_close(&it);
}

static int callable(struct inject *ij, uint64_t fn)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ij->nexec; i++)
			if (fn >= ij->exec[i].lo && fn < ij->exec[i].hi)
				return 1;
		if (!pass)
			inject_exec_maps(ij);
	}
	return 0;
}

static int call_raw(struct inject *ij, uint64_t fn, const uint64_t *args, int n,
		    const struct ret_target *t, uint64_t *ret)
{
	if (!ij->attached || ij->at == AT_NONE || n > 6 || !fn || !t->pc)
		return -EINVAL;
	if (!callable(ij, fn)) {
		note(ij, "refused to call %#llx: not in an executable mapping of a file",
		     (unsigned long long)fn);
		return -MFX_E_NOSYM;
	}
	int err = ij->frame ? 0 : frame_write(ij);
	if (!err)
		err = inject_mem_write(ij->pid, ij->frame, &t->pc, sizeof(t->pc));
	if (err)
		return err;
	struct user_regs_struct r = ij->saved;
	x86_call_regs(&r, fn, args, n, ij->frame);
	if (ptrace(PTRACE_SETREGS, ij->tid, 0, &r))
		return -errno;
	uint64_t m = call_mask(ij);	/* after the registers: see hold.c */
	if (!ij->mask_set && ptrace(PTRACE_SETSIGMASK, ij->tid, (void *)sizeof(m), &m))
		return -errno;
	ij->mask_set = 1;
	ij->calls++;
	ij->last_sys_ret = 0;
	uint64_t t0 = now_ns();
	if (!(err = resume(ij, t, 0)))
		err = call_wait(ij, t);
	note(ij, "  call %#llx: %s in %llu us", (unsigned long long)fn, err ? mfx_strerror(-err) : "done",
	     (unsigned long long)(now_ns() - t0) / 1000);
	if (!err && ret && (!ij->tramp || t->pc != ij->tramp || inject_peek(ij->pid, ij->frame, ret, 8)))
		*ret = (uint64_t)ij->last_sys_ret;
	return err;
}

/* Our trampoline page, once per hold (the top of the file). */
static void tramp_setup(struct inject *ij)
{
	ij->tramp_tried = 1;
	struct ret_target rt = restore_target(ij);
	uint64_t args[6] = { 0, TRAMP_PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
			     (uint64_t)-1, 0 };
	if (!ij->lc.fn[INJ_MMAP] || call_raw(ij, ij->lc.fn[INJ_MMAP], args, 6, &rt, NULL))
		return;
	long a = ij->last_sys_ret;
	if (a < 0 || (a & (TRAMP_PAGE - 1)))
		return;
	uint8_t code[X86_TRAMP_MAX], back[X86_TRAMP_MAX];
	size_t len = x86_tramp_code(code, ij->ns_pid, ij->ns_tid, ij->notify, &ij->tramp_notify,
				    &ij->tramp_sigret_at, &ij->tramp_sigret_end);
	if (inject_mem_write(ij->pid, (uint64_t)a, code, len) ||
	    inject_peek(ij->pid, (uint64_t)a, back, len) || memcmp(code, back, len)) {
		uint64_t un[2] = { (uint64_t)a, TRAMP_PAGE };
		call_raw(ij, ij->lc.fn[INJ_MUNMAP], un, 2, &rt, NULL);
		return;
	}
	ij->tramp = (uint64_t)a;
	note(ij, "trampoline at %#lx, %s", a, ij->notify ? "notify mode" : "syscall mode");
}

pid_t inject_pid(const struct inject *ij)
{
	return ij->pid;
}

int inject_exact_ret(const struct inject *ij)
{
	return ij->tramp != 0;
}

int inject_call(struct inject *ij, uint64_t fn, const uint64_t *args, int n, uint64_t *ret)
{
	if (!ij->lc.restore_rt)
		return -MFX_E_NOSYM;
	/* The calls set errno in the held thread; the program may be about to
	 * read the value a call of its own left there: kept, put back.  Its
	 * address from the thread pointer, else from __errno_location(). */
	uint64_t a = 0;
	if (!ij->errno_addr && !ij->parked && ij->errno_tls)
		a = ij->saved.fs_base + ij->errno_tls;
	if (!ij->tramp_tried && !ij->no_tramp)
		tramp_setup(ij);
	struct ret_target t = ij->tramp ? tramp_target(ij) : restore_target(ij);
	if (!a && !ij->errno_addr && !ij->parked && ij->tramp &&
	    call_raw(ij, ij->lc.fn[INJ_ERRNO_LOCATION], NULL, 0, &t, &a))
		a = 0;
	if (a && inject_peek(ij->pid, a, &ij->saved_errno, sizeof(int)) == 0)
		ij->errno_addr = a;
	ij->mode_used = t.notify_end ? "notify" : "syscall";
	return call_raw(ij, fn, args, n, &t, ret);
}

/* A call whose result is in memory (load.c's pthread_create): no
 * trampoline needed, glibc's stub and syscall mode. */
int inject_call_noret(struct inject *ij, uint64_t fn, const uint64_t *args, int n)
{
	if (!ij->lc.restore_rt)
		return -MFX_E_NOSYM;
	struct ret_target t = restore_target(ij);
	ij->mode_used = "syscall";
	return call_raw(ij, fn, args, n, &t, NULL);
}

/* Detaching at rt_sigreturn restores exactly what inject_close would: the
 * frame's state is the exact one (no restart_block to keep, no EINTR
 * decision that changed) and no handled signal waits (delivered after
 * rt_sigreturn, its handler would find the call set to restart instead of
 * failing with EINTR: as if it came just before the call). */
static int sigreturn_is_exact(struct inject *ij)
{
	struct user_regs_struct a, b;
	inject_resume_regs(ij, 0, &a);
	inject_resume_regs(ij, 1, &b);
	return x86_restart_kind(&ij->saved) != X86_RESTARTBLOCK && !memcmp(&a, &b, sizeof(a)) &&
	       (ij->parked || !handled_pending(ij));
}

int inject_calls_end(struct inject *ij)
{
	if (ij->tramp && ij->at != AT_NONE) {
		struct ret_target rt = restore_target(ij);
		uint64_t un[2] = { ij->tramp, TRAMP_PAGE };
		if (call_raw(ij, ij->lc.fn[INJ_MUNMAP], un, 2, &rt, NULL) == 0)
			ij->tramp = 0;
	}
	if (ij->errno_addr && ij->at != AT_NONE)
		inject_mem_write(ij->pid, ij->errno_addr, &ij->saved_errno, sizeof(int));
	if (ij->at == AT_SIGRET && sigreturn_is_exact(ij))
		return 1;
	if (ij->at == AT_SIGRET && finish_at_sigreturn(ij))
		ij->at = AT_NONE;
	return 0;
}

int inject_push(struct inject *ij, const void *data, size_t len, uint64_t *addr)
{
	uint64_t a = (ij->scratch - len) & ~15ull;
	if (len > ij->scratch || a < ij->scratch_lo)
		return -ENOSPC;
	int err = inject_mem_write(ij->pid, a, data, len);
	if (err)
		return err;
	ij->scratch = a;
	*addr = a;
	return 0;
}

int inject_lookup(struct inject *ij, const char *suffix, const char *name, uint64_t *addr)
{
	struct inject_module m;
	const char *names[2] = { name, NULL };
	*addr = 0;
	if (suffix && inject_find_module(ij->pid, suffix, &m))
		return -ENOENT;
	int n = inject_module_syms(ij->pid, suffix ? &m : &ij->lc.libc, names, addr, NULL);
	return n > 0 && *addr ? 0 : -ENOENT;
}

int inject_trim(struct inject *ij, int *ret, uint64_t *trim_ns)
{
	uint64_t fn = ij->lc.fn[INJ_MALLOC_TRIM], r = 0, args[1] = { 0 };
	*ret = -1;
	if (!fn)
		return -MFX_E_NOSYM;
	uint64_t t0 = now_ns();
	int err = inject_call(ij, fn, args, 1, &r);
	*trim_ns = now_ns() - t0;
	if (!err && inject_exact_ret(ij))
		*ret = (int)(uint32_t)r;
	return err;
}
