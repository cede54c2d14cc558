/*
 * hold.c - seize one thread, stop it, save it, and the one path that puts
 * it back (inject.h): inject_open and inject_close.
 *
 * Every step is ordered so that mfx may die between any two of them (the
 * kernel then detaches the thread, PTRACE_O_EXITKILL is never set) and the
 * thread still resumes as it was:
 *   - the stop itself changes nothing; registers, mask and FPU state are
 *     only read at the hold;
 *   - the signal mask is changed with the first call, after its registers
 *     (call.c): from then on the call's signal frame restores it;
 *   - at the end the mask and the FPU state go back first, the registers
 *     last, while the thread stands where a resume re-runs rt_sigreturn.
 * A stop signal that reaches the thread while we hold it is delivered at
 * once, so the kernel's own group-stop rules apply (a SIGCONT after it
 * ends the stop); it used to be kept and sent again after the detach,
 * which left the process stopped for good when a SIGCONT came meanwhile.
 */
#include <elf.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "common/error.h"
#include "common/util.h"
#include "inject/glibc.h"
#include "inject/internal.h"
#include "inject/x86_64.h"

#define XSAVE_MAX 16384
#define SCRATCH_MAX 16384
#define RED_ZONE_GAP 512

void inject_note(const struct inject *ij, const char *fmt, ...)
{
	if (!ij || !ij->o.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (ij->attached)
		fprintf(stderr, "mfx: inject: %6.3f ms held: ", (double)(now_ns() - ij->t_stopped) / 1e6);
	else
		fprintf(stderr, "mfx: inject: before the hold: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int inject_peek(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
	if (n < 0 && (errno == EPERM || errno == ESRCH))
		return -errno;	/* not ours to read, or gone */
	return n == (ssize_t)len ? 0 : -EFAULT;
}

int inject_mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	/* /proc/PID/mem writes where process_vm_writev may not: a read-only
	 * page (our trampoline) is written through FOLL_FORCE */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -EFAULT;
	n = pwrite(fd, buf, len, (off_t)addr);
	close(fd);
	return n == (ssize_t)len ? 0 : -EFAULT;
}

int inject_is_stop_signal(int sig)
{
	return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

int inject_wait_stop(pid_t tid, uint64_t timeout_ns, int *sig, int *event)
{
	/* Sleep until SIGCHLD (a tracee's stop sends one), not on a timer: a
	 * remote call's end is seen at once.  SIGCHLD is blocked meanwhile so
	 * it stays pending for sigtimedwait; one that came before is harmless
	 * (waitpid is asked first).  Never longer than timeout_ns. */
	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, &old);
	uint64_t t0 = now_ns();
	int err;
	for (;;) {
		int st;
		pid_t r = waitpid(tid, &st, __WALL | WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno == ECHILD ? -MFX_E_EXITED : -errno;
			break;
		}
		if (r == tid && (WIFEXITED(st) || WIFSIGNALED(st))) {
			err = -MFX_E_EXITED;
			break;
		}
		if (r == tid && WIFSTOPPED(st)) {
			*sig = WSTOPSIG(st);
			*event = (st >> 16) & 0xff;
			err = 0;
			break;
		}
		uint64_t spent = now_ns() - t0;
		if (spent >= timeout_ns) {
			err = -ETIMEDOUT;
			break;
		}
		uint64_t left = timeout_ns - spent, nap = left < 10000000 ? left : 10000000;
		struct timespec ts = { 0, (long)nap };
		sigtimedwait(&chld, NULL, &ts);	/* a stop, or 10 ms: look again */
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

int inject_seize(struct inject *ij, pid_t tid)
{
	/* Never a task that is not a thread of the target: a tid read from
	 * the target (its own pid namespace's numbers) is translated first
	 * (tasks.c), and checked again once seized - seizing alone stops
	 * nothing, and a task that is not ours is let go at once. */
	if (!inject_is_thread_of(ij->pid, tid))
		return -ESRCH;
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)(long)PTRACE_O_TRACESYSGOOD))
		return -errno;
	if (!inject_is_thread_of(ij->pid, tid)) {
		ptrace(PTRACE_DETACH, tid, 0, 0);
		return -ESRCH;
	}
	ij->tid = tid;
	ij->ns_tid = inject_ns_id(ij->pid, tid);
	ij->attached = 1;
	ij->at = AT_NONE;
	return 0;
}

/* Interrupt the seized thread: 0 at our interrupt stop; 1 when a group
 * stop (SIGSTOP and kin) came instead: the process is being stopped. */
int inject_interrupt(struct inject *ij)
{
	if (ptrace(PTRACE_INTERRUPT, ij->tid, 0, 0))
		return errno == ESRCH ? -MFX_E_EXITED : -errno;
	for (int guard = 0; guard < 64; guard++) {
		int sig, ev, err = inject_wait_stop(ij->tid, 2000000000ull, &sig, &ev);
		if (err) {
			if (err == -MFX_E_EXITED)
				ij->attached = 0;
			return err;
		}
		ij->stops++;
		if (ev == PTRACE_EVENT_STOP) {
			ij->at = AT_TRAP;
			return sig == SIGTRAP ? 0 : 1;	/* ours, or a group stop's */
		}
		if (ev) {	/* no other events were asked for */
			if (ptrace(PTRACE_CONT, ij->tid, 0, 0))
				return -errno;
			continue;
		}
		/* A signal on its way in: delivered now, untouched, with its own
		 * siginfo (glibc's SIGSETXID and SIGCANCEL handlers ignore a copy
		 * sent by another process); a stop signal starts the group stop
		 * the kernel would start. */
		if (ij->o.verbose > 1)
			note(ij, "    thread %d: signal %d delivered before the stop", (int)ij->tid, sig);
		if (ptrace(PTRACE_CONT, ij->tid, 0, (void *)(long)sig))
			return -errno;
	}
	return -MFX_E_NOSAFEPOINT;
}

int inject_save_state(struct inject *ij)
{
	if (ptrace(PTRACE_GETREGS, ij->tid, 0, &ij->saved))
		return -errno;
	if (!ij->xsave && !(ij->xsave = malloc(XSAVE_MAX + 64)))
		return -ENOMEM;
	struct iovec iov = { ij->xsave, XSAVE_MAX };
	ij->xstate = ptrace(PTRACE_GETREGSET, ij->tid, (void *)NT_X86_XSTATE, &iov) == 0;
	if (!ij->xstate) {	/* no XSAVE: the legacy FXSAVE area */
		iov.iov_len = 512;
		if (ptrace(PTRACE_GETREGSET, ij->tid, (void *)NT_PRFPREG, &iov))
			return -errno;
	}
	ij->xsave_len = iov.iov_len;
	/* With TIF_RESTORE_SIGMASK (sigsuspend, ppoll, epoll_pwait...), this
	 * is the mask it returns to, not the temporary one. */
	if (ptrace(PTRACE_GETSIGMASK, ij->tid, (void *)sizeof(uint64_t), &ij->saved_mask))
		return -errno;
	if (inject_peek(ij->pid, ij->saved.rip - X86_SYSCALL_LEN, ij->insn_before, 2))
		memset(ij->insn_before, 0, sizeof(ij->insn_before));
	ij->scratch = (ij->saved.rsp - RED_ZONE_GAP) & ~15ull;	/* red zone and more */
	ij->scratch_lo = ij->scratch - SCRATCH_MAX;
	return 0;
}

void inject_release(struct inject *ij)
{
	if (ij->attached)
		ptrace(PTRACE_DETACH, ij->tid, 0, 0);
	ij->attached = 0;
	ij->at = AT_NONE;
}

/* Registers, FPU state, mask back; the order matters (top of the file). */
static void restore(struct inject *ij)
{
	if (!ij->attached || ij->at == AT_NONE) {
		inject_release(ij);
		return;
	}
	if (inject_calls_end(ij) == 1) {	/* rt_sigreturn puts it all back */
		inject_release(ij);
		return;
	}
	if (ij->at != AT_TRAP) {
		inject_release(ij);
		return;
	}
	struct user_regs_struct s;
	inject_resume_regs(ij, 1, &s);
	if (ij->mask_set)
		ptrace(PTRACE_SETSIGMASK, ij->tid, (void *)sizeof(uint64_t), &ij->saved_mask);
	if (ij->calls) {
		struct iovec iov = { ij->xsave, ij->xsave_len };
		ptrace(PTRACE_SETREGSET, ij->tid, (void *)(long)(ij->xstate ? NT_X86_XSTATE : NT_PRFPREG),
		       &iov);
	}
	if (ij->calls || memcmp(&s, &ij->saved, sizeof(s)))
		ptrace(PTRACE_SETREGS, ij->tid, 0, &s);
	inject_release(ij);
}

static int sched_get(pid_t tid, struct inject_sched *a)
{
	memset(a, 0, sizeof(*a));
	return (int)syscall(SYS_sched_getattr, tid, a, (unsigned)sizeof(*a), 0u);
}

static int sched_set(pid_t tid, const struct inject_sched *a)
{
	struct inject_sched c = *a;
	c.size = sizeof(c);
	return (int)syscall(SYS_sched_setattr, tid, &c, 0u);
}

/* mfx itself runs SCHED_FIFO 1 while it holds a thread, when it may
 * (CAP_SYS_NICE): each stop of the held thread is answered at once, not
 * after whatever else the CPU runs.  The held thread keeps its own
 * scheduling: a boost of it would outlive a killed mfx. */
static void boost_self(struct inject *ij)
{
	if (ij->o.no_boost || sched_get(0, &ij->self_sched) ||
	    (ij->self_sched.policy != SCHED_OTHER && ij->self_sched.policy != SCHED_BATCH))
		return;
	struct inject_sched rt = { .policy = SCHED_FIFO, .priority = 1, .flags = 1 /* RESET_ON_FORK */ };
	ij->self_boosted = sched_set(0, &rt) == 0;
}

/* Our own loader thread, parked in sleep() (load.c): only that it is
 * parked there matters, no safe point. */
static int hold_parked(struct inject *ij)
{
	uint64_t deadline = now_ns() + ij->o.timeout_ns;
	int err = inject_seize(ij, ij->o.parked_tid);
	if (err)
		return err == -ESRCH ? -MFX_E_EXITED : err;
	ij->parked = 1;
	while (now_ns() < deadline) {
		ij->attempts++;
		if ((err = inject_interrupt(ij)) < 0)
			return err;
		ij->t_stopped = now_ns();
		struct user_regs_struct r;
		if (ptrace(PTRACE_GETREGS, ij->tid, 0, &r))
			return -errno;
		long nr = (long)r.orig_rax;
		uint8_t before[X86_SYSCALL_LEN] = { 0 };
		inject_peek(ij->pid, r.rip - X86_SYSCALL_LEN, before, sizeof(before));
		/* in its sleep - not at the entry of a handler a signal just set
		 * up (SIGSETXID: orig_rax still names the call): a setuid()
		 * elsewhere waits for that handler while holding the lock the
		 * agent's dlopen needs */
		if ((nr == SYS_clock_nanosleep || nr == SYS_nanosleep) && r.fs_base == ij->o.parked_self &&
		    before[0] == 0x0f && before[1] == 0x05 && x86_restart_kind(&r) != X86_NOT_A_RESTART) {
			note(ij, "our thread %d parked in sleep() after %u stops", (int)ij->tid, ij->attempts);
			return 0;
		}
		if (ptrace(PTRACE_CONT, ij->tid, 0, 0))
			return -errno;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	inject_release(ij);
	return -MFX_E_EXITED;
}

static int open_hold(struct inject *ij, struct inject_err *e)
{
	int err;
	if (ij->o.lc)
		ij->lc = *ij->o.lc;
	else if ((err = glibc_load(ij->pid, &ij->lc)))
		return err;
	ij->errno_tls = glibc_errno_tls(ij->pid, ij->lc.fn[INJ_ERRNO_LOCATION]);
	inject_exec_maps(ij);
	boost_self(ij);
	if (ij->o.parked_tid)
		err = hold_parked(ij);
	else {
		inject_safepoint_prepare(ij);
		err = inject_hold_safe(ij);
	}
	if (!err)
		err = inject_save_state(ij);
	if (!err && ij->pf.seccomp == 2)
		err = inject_seccomp_check(ij, e);
	return err;
}

int inject_open(pid_t pid, const struct inject_opts *o, struct inject **out, struct inject_err *e)
{
	struct inject_err dummy;
	if (!e)
		e = &dummy;
	memset(e, 0, sizeof(*e));
	*out = NULL;
	struct inject *ij = calloc(1, sizeof(*ij));
	if (!ij)
		return -ENOMEM;
	ij->pid = pid;
	if (o)
		ij->o = *o;
	if (!ij->o.timeout_ns)
		ij->o.timeout_ns = 3000000000ull;
	if (!ij->o.call_timeout_ns)
		ij->o.call_timeout_ns = 10000000000ull;
	int err = inject_preflight(pid, ij->o.parked_tid, &ij->pf, e);
	ij->ns_pid = ij->pf.ns_pid;
	ij->notify_ok = ij->pf.notify_ok;
	if (!err)
		err = open_hold(ij, e);
	if (err) {
		int gone = err == -MFX_E_EXITED || err == -EFAULT || err == -ESRCH ? inject_gone(pid, &ij->pf) : 0;
		inject_close(ij, NULL);
		return gone ? gone : err;
	}
	*out = ij;
	return 0;
}

void inject_close(struct inject *ij, struct inject_stats *st)
{
	if (st)
		memset(st, 0, sizeof(*st));
	if (!ij)
		return;
	uint64_t held = ij->attached ? now_ns() - ij->t_stopped : 0;
	restore(ij);
	if (st) {
		st->held_ns = held;
		st->attempts = ij->attempts;
		st->calls = ij->calls;
		st->stops = ij->stops;
		st->tid = ij->tid;
		st->eintr_restarted = ij->eintr_restarted;
		st->mode = ij->mode_used ? ij->mode_used : "none";
	}
	if (ij->self_boosted)
		sched_set(0, &ij->self_sched);
	inject_safepoint_free(ij);
	free(ij->exec);
	free(ij->xsave);
	free(ij);
}
