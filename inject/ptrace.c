/*
 * ptrace.c - hold one thread of a live process at a safe point and call
 * functions in it (inject.h).
 *
 * The safe point.  A remote dlopen() or malloc_trim() takes the loader's and
 * the allocator's locks; if the held thread already owns one, the call
 * deadlocks the process.  So the thread is chosen and checked:
 *   1. Candidates: threads blocked in a system call that the allocator and
 *      the loader never make while holding a lock (epoll_wait, futex, poll,
 *      nanosleep, read, accept, ...: /proc/PID/task/TID/syscall) come
 *      first, then running threads, then the rest.
 *   2. At the stop: the PC must not be in ld.so nor in malloc.c's code,
 *      the system call (if any) must not be mmap/munmap/brk/mprotect/
 *      madvise/mremap, and no caller on its stack (unwound with
 *      libunwind from the target's own unwind tables, located before the
 *      hold: unwind.c) may be in ld.so or malloc.c.  Otherwise a running thread is let
 *      go for a millisecond and interrupted again; a blocked one is released
 *      and the next candidate tried.
 *
 * While held, every signal is blocked in the thread (PTRACE_SETSIGMASK), so
 * nothing of the program runs on our borrowed stack frame; a signal that
 * still reports a stop is remembered and sent again after the detach.
 * Remote calls run with orig_rax = -1 (no syscall restart in the middle of
 * them) and return to address 0, which faults with rip = 0: the fault is
 * ours, never delivered.  inject_close() restores registers, XSAVE state and
 * signal mask; the kernel then restarts the interrupted system call as if
 * nothing happened (ERESTARTSYS and friends are in the saved rax).
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/procfs.h"
#include "common/util.h"
#include "inject/inject.h"
#include "inject/unwind.h"

#define XSAVE_MAX 16384
#define MIN_STACK_ROOM (256u * 1024u)	/* dlopen and the agent's start need room */
#define SCRATCH_MAX 16384
#define SIGSETXID (__SIGRTMIN + 1)	/* glibc's own, for setuid() in threads */

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
	nanosleep(&ts, NULL);
}

#define note inject_note
void inject_note(const struct inject *ij, const char *fmt, ...)
{
	if (!ij->o.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (ij->attached)
		fprintf(stderr, "mfx: inject: %6.3f ms held: ",
			(double)(now_ns() - ij->t_stopped) / 1e6);
	else
		fprintf(stderr, "mfx: inject: before the hold: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- refusals ---------------------------------------------------------------- */

static int read_text(const char *path, char *buf, size_t n)
{
	ssize_t r = read_small(path, buf, n);
	return r < 0 ? (int)r : 0;
}

int inject_check(pid_t pid, pid_t *tracer)
{
	char path[64], buf[4096];
	*tracer = 0;
	if (pid <= 0)
		return -ESRCH;
	if (pid == getpid())
		return -MFX_E_SELF;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	int err = read_text(path, buf, sizeof(buf));
	if (err)
		return err == -ENOENT ? -ESRCH : err;
	const char *st = strstr(buf, "\nState:\t");
	const char *tp = strstr(buf, "\nTracerPid:\t");
	const char *tg = strstr(buf, "\nTgid:\t");
	if (tg && atoi(tg + 7) != pid)
		return -ESRCH;	/* a thread id, not a process */
	if (st && (st[8] == 'Z' || st[8] == 'X'))
		return -MFX_E_ZOMBIE;
	if (tp && atoi(tp + 12) > 0) {
		*tracer = atoi(tp + 12);
		return -MFX_E_TRACED;
	}
	if (st && st[8] == 'T')
		return -MFX_E_STOPPED;
	/* A static program maps no loader; musl and others map their own. */
	struct inject_module m;
	if (inject_find_module(pid, "/libc.so.6", &m)) {
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
		if (read_text(path, buf, sizeof(buf)) == -EACCES)
			return -EPERM;
		if (inject_find_module(pid, "/ld-linux-x86-64.so.2", &m) &&
		    inject_find_module(pid, ".so.1", &m))	/* ld-musl-x86_64.so.1 */
			return -MFX_E_STATIC;
		return -MFX_E_NOGLIBC;
	}
	return 0;
}

/* ---- threads ------------------------------------------------------------------- */

static int syscall_quiet(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_write: case SYS_poll: case SYS_select: case SYS_pause:
	case SYS_nanosleep: case SYS_accept: case SYS_recvfrom: case SYS_recvmsg:
	case SYS_sendto: case SYS_sendmsg: case SYS_connect: case SYS_wait4: case SYS_msgrcv:
	case SYS_rt_sigtimedwait: case SYS_rt_sigsuspend: case SYS_futex: case SYS_io_getevents:
	case SYS_semtimedop: case SYS_clock_nanosleep: case SYS_epoll_wait: case SYS_waitid:
	case SYS_pselect6: case SYS_ppoll: case SYS_epoll_pwait: case SYS_accept4:
	case SYS_recvmmsg: case SYS_io_uring_enter: case 441 /* epoll_pwait2 */:
		return 1;
	}
	return 0;
}

static int syscall_unsafe(long nr)
{
	switch (nr) {
	case SYS_mmap: case SYS_munmap: case SYS_brk: case SYS_mprotect: case SYS_madvise:
	case SYS_mremap: case SYS_openat: case SYS_open: case SYS_fstat: case SYS_newfstatat:
	case SYS_close: case SYS_pread64: case SYS_clone: case SYS_clone3: case SYS_fork:
	case SYS_vfork: case SYS_execve:
		return 1;
	}
	return 0;
}

struct cand {
	pid_t tid;
	int score;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	return x->score != y->score ? x->score - y->score : (x->tid > y->tid) - (x->tid < y->tid);
}

/* Is thread tid of pid named `name` (/proc/PID/task/TID/comm)? */
static int task_named(pid_t pid, pid_t tid, const char *name)
{
	char buf[64];
	return procfs_task_comm(pid, tid, buf, sizeof(buf)) == 0 && !strcmp(buf, name);
}

/* Threads in the order to try them. */
static int candidates(pid_t pid, struct cand **out, size_t *n)
{
	pid_t *tids;
	size_t nt;
	int err = procfs_tids(pid, &tids, &nt);
	if (err)
		return err;
	struct cand *c = NULL;
	size_t k = 0, cap = 0;
	for (size_t i = 0; i < nt; i++) {
		pid_t tid = tids[i];
		char buf[512], p[96];
		if (task_named(pid, tid, "mfx-agent"))
			continue;	/* our own agent's thread: it serves the doorbell */
		snprintf(p, sizeof(p), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
		int score = 2;
		if (read_text(p, buf, sizeof(buf)) == 0) {
			if (!strncmp(buf, "running", 7))
				score = 1;
			else if (buf[0] != '-' && syscall_quiet(strtol(buf, NULL, 10)))
				score = 0;
			else if (buf[0] != '-' && syscall_unsafe(strtol(buf, NULL, 10)))
				score = 3;
		}
		if (grow_array(&c, &cap, k, sizeof(*c))) {
			free(c);
			free(tids);
			return -ENOMEM;
		}
		c[k].tid = tid;
		c[k++].score = score;
	}
	free(tids);
	qsort(c, k, sizeof(*c), cand_cmp);
	*out = c;
	*n = k;
	return k ? 0 : -ESRCH;
}

/* ---- stops ----------------------------------------------------------------------- */

/* Wait for tid's next stop.  Returns 0 at a ptrace-stop (*sig = stop signal,
 * *event = PTRACE_EVENT_*), -MFX_E_EXITED if it died, -ETIMEDOUT. */
static int wait_stop(pid_t tid, uint64_t timeout_ns, int *sig, int *event)
{
	/* Sleep until SIGCHLD (a tracee's stop sends one), not on a timer: a
	 * remote call's end is seen at once.  SIGCHLD is blocked meanwhile so
	 * it stays pending for sigtimedwait; one that came before is harmless
	 * (waitpid is asked first). */
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
		if (r == tid) {
			if (WIFEXITED(st) || WIFSIGNALED(st)) {
				err = -MFX_E_EXITED;
				break;
			}
			if (WIFSTOPPED(st)) {
				*sig = WSTOPSIG(st);
				*event = (st >> 16) & 0xff;
				err = 0;
				break;
			}
			continue;
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

static void remember_signal(struct inject *ij, int sig)
{
	for (int i = 0; i < ij->npending; i++)
		if (ij->pending_sig[i] == sig)
			return;	/* standard signals do not queue anyway */
	if (ij->npending < (int)(sizeof(ij->pending_sig) / sizeof(ij->pending_sig[0])))
		ij->pending_sig[ij->npending++] = sig;
}

/* Interrupt the seized thread and wait for the interrupt stop; signals
 * that come first are remembered and suppressed. */
static int interrupt_stop(struct inject *ij)
{
	if (ptrace(PTRACE_INTERRUPT, ij->tid, 0, 0))
		return errno == ESRCH ? -MFX_E_EXITED : -errno;
	for (int guard = 0; guard < 64; guard++) {
		int sig, ev, err = wait_stop(ij->tid, 2000000000ull, &sig, &ev);
		if (err)
			return err;
		if (ev == PTRACE_EVENT_STOP)
			return 0;	/* the interrupt (or a group stop) */
		if (!ev) {
			/* A signal on its way in, before we hold anything: let it
			 * be delivered now, with its own siginfo (glibc's SIGSETXID
			 * and SIGCANCEL handlers ignore a copy sent by another
			 * process).  Stop signals are kept for after the detach. */
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
				remember_signal(ij, sig);
				sig = 0;
			}
			if (ptrace(PTRACE_CONT, ij->tid, 0, (void *)(long)sig))
				return -errno;
			continue;
		}
		if (ptrace(PTRACE_CONT, ij->tid, 0, 0))	/* other events: none asked */
			return -errno;
	}
	return -MFX_E_NOSAFEPOINT;
}

int inject_peek(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
	return n == (ssize_t)len ? 0 : -EFAULT;
}

static int mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_writev(pid, &l, 1, &r, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	/* /proc/PID/mem also works where process_vm_writev is not allowed */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	FILE *f = fopen(path, "r+e");
	if (!f)
		return -EFAULT;
	int ok = fseeko(f, (off_t)addr, SEEK_SET) == 0 && fwrite(buf, 1, len, f) == len;
	ok = fclose(f) == 0 && ok;
	return ok ? 0 : -EFAULT;
}

/* All mappings, before the hold: the held thread's stack is looked up here. */
static void read_maps(struct inject *ij)
{
	struct maps_iter it;
	struct maps_entry e;
	if (procfs_maps_open(ij->pid, &it))
		return;
	size_t cap = 0;
	ij->nmaps = 0;
	while (procfs_maps_next(&it, &e) > 0) {
		if (grow_array(&ij->maps, &cap, ij->nmaps, sizeof(*ij->maps)))
			break;
		ij->maps[ij->nmaps++] = (struct inject_map){ e.lo, e.hi, !strcmp(e.path, "[stack]") };
	}
	procfs_maps_close(&it);
}

/* The mapping holding addr: [*lo, *hi); *grows = it is the main [stack]
 * (the kernel extends it down to RLIMIT_STACK on demand).  From the list
 * read before the hold; read again once if addr is in a newer mapping. */
static int mapping_of(struct inject *ij, uint64_t addr, uint64_t *lo, uint64_t *hi, int *grows)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ij->nmaps; i++)
			if (addr >= ij->maps[i].lo && addr < ij->maps[i].hi) {
				*lo = ij->maps[i].lo;
				*hi = ij->maps[i].hi;
				*grows = ij->maps[i].stack;
				return 0;
			}
		if (!pass)
			read_maps(ij);
	}
	return -ENOENT;
}

/* Our own code that runs during the hold (mfx, libc, libunwind), faulted
 * in before it: a first touch of a page costs a page fault each, which is
 * dear under virtualisation (half of a 5-frame unwind was just that). */
static void prefault_self(void)
{
	static int done;
	struct maps_iter it;
	struct maps_entry m;
	char exe[4096];
	ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (done++ || el <= 0 || procfs_maps_open(0, &it))
		return;
	exe[el] = 0;
	while (procfs_maps_next(&it, &m) > 0) {
		const char *path = m.path, *perms = m.perms;
		int ours = strstr(path, "libunwind") || strstr(path, "/libc.so") || !strcmp(path, exe);
		if (!ours)
			continue;
		if (perms[2] == 'x' || perms[0] == 'r')
			madvise((void *)m.lo, m.hi - m.lo, perms[1] == 'w' && strstr(path, "libunwind") ?
				MADV_POPULATE_WRITE : MADV_POPULATE_READ);
	}
	procfs_maps_close(&it);
}

/* A buffer for a copy of a stack: its first 128 KiB faulted in now (most
 * stacks are smaller), the rest on demand. */
static uint8_t *stack_buffer(void)
{
	void *m = mmap(NULL, STACK_READ_MAX, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	madvise(m, 128 * 1024, MADV_POPULATE_WRITE);
	return m;
}


static int in_loader_or_malloc(const struct inject *ij, uint64_t a)
{
	if (ij->lc.have_ld && a >= ij->lc.ld.text_lo && a < ij->lc.ld.text_hi)
		return 1;
	if (a >= ij->lc.malloc_lo && a < ij->lc.malloc_hi)
		return 1;
	for (int i = 0; i < ij->lc.nbusy; i++)
		if (a >= ij->lc.busy[i].lo && a < ij->lc.busy[i].hi)
			return 1;
	return 0;
}

/* w[0] is the signal trampoline's address: is it a signal frame the
 * kernel wrote (rt_sigframe: that return address, then the ucontext: small
 * uc_flags with UC_SIGCONTEXT_SS, uc_link 0, and the 64-bit user code
 * segment 0x33 saved in its sigcontext)?  Otherwise it is a stale copy of
 * the address (glibc puts it in every struct sigaction it builds: handler,
 * flags, restorer, mask), ignored. */
static int sigframe(const uint64_t *w, size_t n)
{
	enum { UC_FLAGS = 1, UC_LINK = 2, SC = 6, SC_CS = SC + 18 };
	if (n <= SC_CS)
		return 1;	/* cut off: cannot tell */
	return w[UC_FLAGS] < 0x100 && (w[UC_FLAGS] & 2) && w[UC_LINK] == 0 &&
	       (w[SC_CS] & 0xffff) == 0x33;
}

/* The fast test: every word of the live stack, [sp, hi), read at once.  A
 * caller in the loader or the allocator leaves its return address there, so
 * no such word proves the thread safe without unwinding.  1 = clean, 0 = a
 * suspect word (unwind to be sure), 2 = a signal frame: the thread runs a
 * signal handler (never safe: see safe_point), -1 = not readable / too big. */
static int scan_stack(const struct inject *ij, uint64_t sp, uint64_t hi, size_t *words,
		      uint64_t *suspect)
{
	sp &= ~7ull;
	if (!ij->stack || hi <= sp || hi - sp > STACK_READ_MAX ||
	    inject_peek(ij->pid, sp, ij->stack, (size_t)(hi - sp)))
		return -1;
	size_t n = (size_t)(hi - sp) / 8;
	const uint64_t *w = (const uint64_t *)ij->stack;
	for (size_t i = 0; i < n; i++)
		if (w[i] == ij->lc.restore_rt && w[i] && sigframe(w + i, n - i)) {
			*words = i;
			*suspect = w[i];
			return 2;
		} else if (in_loader_or_malloc(ij, w[i] - 1)) {
			*words = i;
			*suspect = w[i];
			return 0;
		}
	*words = n;
	return ij->lc.restore_rt ? 1 : 0;	/* without the trampoline: unwind */
}

static int bad_frame(uint64_t ip, int n, void *arg)
{
	struct inject *ij = arg;
	if (n == 0 || (!in_loader_or_malloc(ij, ip - 1) && ip != ij->lc.restore_rt))
		return 0;
	note(ij, "  frame %d: %#llx", n, (unsigned long long)ip);
	return 1;
}

/* 1 when the stopped thread is at a safe point (see the top of the file). */
static int safe_point(struct inject *ij, const struct user_regs_struct *r, const char **why)
{
	if (in_loader_or_malloc(ij, r->rip)) {
		*why = "pc in the loader or the allocator";
		return 0;
	}
	/* In a signal handler (or returning from one): the interrupted code may
	 * hold anything, and glibc's SIGSETXID handler is waited for by a
	 * set*id() caller that holds the thread-stack lock dlopen takes for a
	 * library with static TLS. */
	if (ij->lc.restore_rt && r->rip - ij->lc.restore_rt < 16) {
		*why = "returning from a signal handler";
		return 0;
	}
	if ((long)r->orig_rax >= 0 && syscall_unsafe((long)r->orig_rax)) {
		*why = "in a system call the allocator or loader makes";
		return 0;
	}
	uint64_t lo = 0, hi = 0;
	int grows = 0;
	if (mapping_of(ij, r->rsp, &lo, &hi, &grows)) {
		*why = "stack pointer outside any mapping";
		return 0;
	}
	if (!grows && r->rsp - lo < MIN_STACK_ROOM) {
		*why = "too little stack left";
		return 0;
	}
	size_t words = 0;
	uint64_t t0 = now_ns(), suspect = 0;
	int scan = scan_stack(ij, r->rsp, hi, &words, &suspect);
	note(ij, "  stack scan: %s after %zu words in %llu us (%#llx)", scan == 1 ? "clean" :
	     scan == 0 ? "a suspect word" : scan == 2 ? "a signal frame" : "not done", words,
	     (unsigned long long)(now_ns() - t0) / 1000, (unsigned long long)suspect);
	if (scan == 1) {
		ij->safe_by_scan = 1;
		return 1;
	}
	if (scan == 2) {
		*why = "in a signal handler";
		return 0;
	}
	/* Walk the thread's frames with its own unwind tables - or take the
	 * walk made before the hold, if the thread has not moved since: the
	 * same system call, pc, sp and every byte of its stack. */
	int n = 0, walk = -1;
	t0 = now_ns();
	size_t len = (size_t)(hi - (r->rsp & ~7ull));
	if (scan == 0 && ij->pre.tid == ij->tid && ij->pre.walk >= 0 && ij->pre.sp == r->rsp &&
	    ij->pre.pc == r->rip && ij->pre.nr == (long)r->orig_rax && ij->pre.len == len &&
	    !memcmp(ij->stack, ij->prestack, len)) {
		walk = ij->pre.walk;
		n = ij->pre.n;
		note(ij, "  its stack is as unwound before the hold: %d frames, %s", n,
		     walk ? "one in the loader or the allocator" : "none in the loader or the allocator");
	} else if (ij->unw)
		walk = inject_unwind_walk(ij->unw, ij->tid, r->rsp, hi, scan >= 0 ? ij->stack : NULL,
					  bad_frame, ij, &n);
	note(ij, "  unwound %d frames in %llu us (%s)", n,
	     (unsigned long long)(now_ns() - t0) / 1000, walk == 1 ? "stopped at a bad one" :
	     walk == 0 ? "to the outermost" : "a step failed");
	if (walk == 1) {
		*why = "a caller in the loader or the allocator, or a signal frame";
		return 0;
	}
	if (n < 2 && walk < 0) {
		*why = "stack could not be unwound";
		return 0;
	}
	return 1;
}

/* ---- scheduling while held ---------------------------------------------------------- */

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

/* SCHED_FIFO 1 for tid, if it is a normal thread and we may (CAP_SYS_NICE);
 * with reset-on-fork, so a thread it starts meanwhile is not real-time. */
static int boost(pid_t tid, struct inject_sched *saved)
{
	if (sched_get(tid, saved) ||
	    (saved->policy != SCHED_OTHER && saved->policy != SCHED_BATCH))
		return 0;
	struct inject_sched rt = { .policy = SCHED_FIFO, .priority = 1, .flags = 1 /* RESET_ON_FORK */ };
	return sched_set(tid, &rt) == 0;
}

void inject_sched_copy(const struct inject *ij, pid_t tid)
{
	if (ij->boosted)
		sched_set(tid, &ij->sched_saved);
}

void inject_sched_fix(const struct inject *ij, const char *comm)
{
	if (!ij->was_boosted)
		return;
	pid_t *tids;
	size_t n;
	if (procfs_tids(ij->pid, &tids, &n))
		return;
	for (size_t i = 0; i < n; i++)
		if (task_named(ij->pid, tids[i], comm))
			sched_set(tids[i], &ij->sched_saved);
	free(tids);
}

static int save_state(struct inject *ij)
{
	if (ptrace(PTRACE_GETREGS, ij->tid, 0, &ij->saved))
		return -errno;
	if (!ij->xsave && !(ij->xsave = malloc(XSAVE_MAX)))
		return -ENOMEM;
	struct iovec iov = { ij->xsave, XSAVE_MAX };
	if (ptrace(PTRACE_GETREGSET, ij->tid, (void *)NT_X86_XSTATE, &iov) == 0) {
		ij->xsave_len = iov.iov_len;
	} else {	/* no XSAVE: the legacy FP area */
		iov.iov_len = sizeof(struct user_fpregs_struct);
		if (ptrace(PTRACE_GETREGSET, ij->tid, (void *)NT_PRFPREG, &iov))
			return -errno;
		ij->xsave_len = 0;
	}
	if (ptrace(PTRACE_GETSIGMASK, ij->tid, (void *)sizeof(uint64_t), &ij->saved_mask))
		return -errno;
	/* Block everything but the synchronous faults: a fault while its signal
	 * is blocked makes the kernel reset the process's handler to SIG_DFL
	 * (force_sig_info), and our calls end with one (return to 0).  And
	 * glibc's SIGSETXID: a setuid() in another thread holds the thread-stack
	 * lock until every thread has run its handler; it is delivered at once
	 * (do_call), so a remote pthread_create cannot wait on that lock. */
	uint64_t all = ~0ull;
	const int faults[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSETXID };
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		all &= ~(1ull << (faults[i] - 1));
	if (ptrace(PTRACE_SETSIGMASK, ij->tid, (void *)sizeof(uint64_t), &all))
		return -errno;
	if (!ij->o.parked_tid && !ij->o.no_boost)	/* (ours: no hurry) */
		ij->was_boosted = ij->boosted = boost(ij->tid, &ij->sched_saved);
	ij->in_syscall = (long)ij->saved.orig_rax >= 0;
	ij->syscall_nr = (long)ij->saved.orig_rax;
	ij->scratch = (ij->saved.rsp - 512) & ~15ull;	/* red zone and more */
	ij->scratch_lo = ij->scratch - SCRATCH_MAX;
	return 0;
}

static void restore_state(struct inject *ij)
{
	if (ij->xsave_len) {
		struct iovec iov = { ij->xsave, ij->xsave_len };
		ptrace(PTRACE_SETREGSET, ij->tid, (void *)NT_X86_XSTATE, &iov);
	} else if (ij->xsave) {
		struct iovec iov = { ij->xsave, sizeof(struct user_fpregs_struct) };
		ptrace(PTRACE_SETREGSET, ij->tid, (void *)NT_PRFPREG, &iov);
	}
	ptrace(PTRACE_SETREGS, ij->tid, 0, &ij->saved);
	ptrace(PTRACE_SETSIGMASK, ij->tid, (void *)sizeof(uint64_t), &ij->saved_mask);
	if (ij->boosted)
		sched_set(ij->tid, &ij->sched_saved);
	ij->boosted = 0;
}

static void release(struct inject *ij)
{
	ptrace(PTRACE_DETACH, ij->tid, 0, 0);
	for (int i = 0; i < ij->npending; i++)
		syscall(SYS_tgkill, ij->pid, ij->tid, ij->pending_sig[i]);
	ij->npending = 0;
	ij->attached = 0;
}

/* Seize tid and stop it at a safe point within the deadline.  0, or
 * 1 = not here (try another thread), or -error. */
static int try_thread(struct inject *ij, pid_t tid, uint64_t deadline)
{
	ij->tid = tid;
	if (ptrace(PTRACE_SEIZE, tid, 0, 0)) {
		int e = errno;
		if (e == ESRCH)
			return 1;	/* the thread ended */
		return e == EPERM && ij->attempts == 0 ? -EPERM : -e;
	}
	ij->attached = 1;
	for (unsigned tries = 0; now_ns() < deadline && (tries < 200 || ij->o.parked_tid); tries++) {
		ij->attempts++;
		int err = interrupt_stop(ij);
		if (err == -MFX_E_EXITED) {
			ij->attached = 0;
			return 1;
		}
		if (err)
			return err;
		ij->t_stopped = now_ns();
		struct user_regs_struct r;
		if (ptrace(PTRACE_GETREGS, tid, 0, &r))
			return -errno;
		const char *why = "";
		if (ij->o.parked_tid) {
			/* our own thread: it only has to have reached pause() */
			if ((long)r.orig_rax == SYS_pause && r.fs_base == ij->o.parked_self) {
				note(ij, "our thread %d parked in pause() after %u stops", (int)tid,
				     ij->attempts);
				return 0;
			}
			if (ptrace(PTRACE_CONT, tid, 0, 0))
				return -errno;
			sleep_ns(100000);
			continue;
		}
		if (safe_point(ij, &r, &why)) {
			note(ij, "thread %d at a safe point after %u stops (pc %#llx, %s %ld)", (int)tid,
			     ij->attempts, (unsigned long long)r.rip,
			     (long)r.orig_rax >= 0 ? "syscall" : "running", (long)r.orig_rax);
			return 0;
		}
		if (tries == 0 || ij->o.verbose > 1)
			note(ij, "thread %d not safe: %s (pc %#llx)", (int)tid, why,
			     (unsigned long long)r.rip);
		if ((long)r.orig_rax >= 0 && syscall_quiet((long)r.orig_rax))
			break;	/* parked there; another thread may do better */
		if (ptrace(PTRACE_CONT, tid, 0, 0))
			return -errno;
		sleep_ns(1000000);
	}
	release(ij);
	return 1;
}

static uint64_t errno_tls_offset(pid_t pid, uint64_t fn);

/* Before holding a thread blocked in a system call: its pc and sp from
 * /proc, a copy of its stack, and a walk of its frames from those alone.
 * If it is still there, unchanged, at the stop, the hold need not unwind. */
static void pre_walk(struct inject *ij, pid_t tid)
{
	ij->pre.tid = 0;
	char p[96], buf[512];
	long nr;
	unsigned long a[6], sp, pc;
	uint64_t lo, hi;
	int grows;
	snprintf(p, sizeof(p), "/proc/%d/task/%d/syscall", (int)ij->pid, (int)tid);
	if (!ij->unw || !ij->prestack || read_text(p, buf, sizeof(buf)) ||
	    sscanf(buf, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4],
		   &a[5], &sp, &pc) != 9 || nr < 0 || mapping_of(ij, sp, &lo, &hi, &grows))
		return;
	uint64_t s0 = sp & ~7ull;
	if (hi <= s0 || hi - s0 > STACK_READ_MAX ||
	    inject_peek(ij->pid, s0, ij->prestack, (size_t)(hi - s0)))
		return;
	int n = 0;
	uint64_t t0 = now_ns();
	ij->tid = tid;	/* for bad_frame's notes */
	int w = inject_unwind_walk_blocked(ij->unw, tid, pc, sp, hi, ij->prestack, bad_frame, ij, &n);
	note(ij, "thread %d in system call %ld: unwound %d frames in %llu us (%s)", (int)tid, nr, n,
	     (unsigned long long)(now_ns() - t0) / 1000, w == 1 ? "one is bad" :
	     w == 0 ? "to the outermost" : "needs more registers: in the hold");
	if (w < 0) {	/* the hold will unwind: with the tables in our cache */
		t0 = now_ns();
		inject_unwind_warm(ij->unw, tid, ij->prestack, (size_t)(hi - s0));
		note(ij, "  unwind tables for its stack read in %llu us",
		     (unsigned long long)(now_ns() - t0) / 1000);
	}
	ij->pre.tid = tid;
	ij->pre.nr = nr;
	ij->pre.sp = sp;
	ij->pre.pc = pc;
	ij->pre.len = (size_t)(hi - s0);
	ij->pre.walk = w;
	ij->pre.n = n;
}

/* Stop one thread of ij->pid at a safe point (bounded by the timeout). */
static int hold_safe(struct inject *ij)
{
	pid_t pid = ij->pid, tracer;
	int err;
	uint64_t deadline = now_ns() + ij->o.timeout_ns;
	if (ij->o.parked_tid) {
		err = try_thread(ij, ij->o.parked_tid, deadline);
		if (err == 0 && (err = save_state(ij)))
			inject_close(ij);
		return err < 0 ? err : err ? -MFX_E_EXITED : 0;
	}
	while (now_ns() < deadline) {
		struct cand *c;
		size_t n;
		if ((err = candidates(pid, &c, &n)))
			return err;
		for (size_t i = 0; i < n && now_ns() < deadline; i++) {
			if (c[i].score == 0)
				pre_walk(ij, c[i].tid);
			err = try_thread(ij, c[i].tid, deadline);
			if (err <= 0) {
				free(c);
				if (err == 0 && (err = save_state(ij))) {
					inject_close(ij);
					return err;
				}
				return err;
			}
		}
		free(c);
		if (inject_check(pid, &tracer) == -ESRCH)
			return -MFX_E_EXITED;
		sleep_ns(5000000);
	}
	return -MFX_E_NOSAFEPOINT;
}

int inject_open(pid_t pid, const struct inject_opts *o, struct inject *ij)
{
	memset(ij, 0, sizeof(*ij));
	ij->pid = pid;
	if (o)
		ij->o = *o;
	if (!ij->o.timeout_ns)
		ij->o.timeout_ns = 3000000000ull;
	if (!ij->o.call_timeout_ns)
		ij->o.call_timeout_ns = 10000000000ull;
	pid_t tracer;
	int err = inject_check(pid, &tracer);
	if (err)
		return err;
	if (ij->o.lc)
		ij->lc = *ij->o.lc;
	else if ((err = inject_load_libc(pid, &ij->lc)))
		return err;
	if (!ij->o.parked_tid) {
		if (!ij->o.no_boost)	/* mfx itself, till inject_close */
			ij->self_boosted = boost(0, &ij->self_sched);
		/* all of it before the hold: the unwind tables, the mappings, a
		 * stack buffer whose pages are already ours */
		inject_unwind_prepare(pid, &ij->unw);	/* without it: no thread is ever safe */
		read_maps(ij);
		prefault_self();
		ij->stack = stack_buffer();
		ij->prestack = stack_buffer();
	}
	ij->errno_tls = errno_tls_offset(pid, ij->lc.fn[INJ_ERRNO_LOCATION]);
	err = hold_safe(ij);
	if (err && !ij->attached)
		inject_close(ij);
	return err;
}

int inject_push(struct inject *ij, const void *data, size_t len, uint64_t *addr)
{
	uint64_t a = (ij->scratch - len) & ~15ull;
	if (a < ij->scratch_lo)
		return -ENOSPC;
	int err = mem_write(ij->pid, a, data, len);
	if (err)
		return err;
	ij->scratch = a;
	*addr = a;
	return 0;
}


static int do_call(struct inject *ij, uint64_t fn, const uint64_t *args, int n, uint64_t *ret);

/* The calls we make set errno in the held thread; the program may be about
 * to read the value a call of its own left there.  Saved before the first
 * call, put back by inject_close. */
int inject_call(struct inject *ij, uint64_t fn, const uint64_t *args, int n, uint64_t *ret)
{
	uint64_t loc = ij->lc.fn[INJ_ERRNO_LOCATION], a = 0;
	if (ij->attached && !ij->errno_addr) {
		if (ij->errno_tls)	/* found before the hold: no call needed */
			a = ij->saved.fs_base + ij->errno_tls;
		else if (loc && do_call(ij, loc, NULL, 0, &a))
			a = 0;
		if (a && inject_peek(ij->pid, a, &ij->saved_errno, sizeof(int)) == 0)
			ij->errno_addr = a;
	}
	return do_call(ij, fn, args, n, ret);
}

/* errno's offset from the thread pointer, read from the target's own
 * __errno_location (`mov off(%rip),%rax; add %fs:0,%rax; ret`) and the GOT
 * word it loads; 0 if the code is not that. */
static uint64_t errno_tls_offset(pid_t pid, uint64_t fn)
{
	static const uint8_t tail[] = { 0x64, 0x48, 0x03, 0x04, 0x25, 0, 0, 0, 0, 0xc3 };
	uint8_t c[17];
	int32_t disp;
	uint64_t off = 0;
	if (!fn || inject_peek(pid, fn, c, sizeof(c)) || c[0] != 0x48 || c[1] != 0x8b || c[2] != 0x05 ||
	    memcmp(c + 7, tail, sizeof(tail)))
		return 0;
	memcpy(&disp, c + 3, 4);
	if (inject_peek(pid, fn + 7 + (uint64_t)(int64_t)disp, &off, sizeof(off)))
		return 0;
	return off;
}

static int do_call(struct inject *ij, uint64_t fn, const uint64_t *args, int n, uint64_t *ret)
{
	if (!ij->attached || n > 6 || !fn)
		return -EINVAL;
	uint64_t tin = now_ns();
	struct user_regs_struct r = ij->saved;
	uint64_t sp = ij->scratch_lo & ~15ull, zero = 0;
	sp -= 8;	/* the return address: a call leaves rsp = 8 mod 16 */
	int err = mem_write(ij->pid, sp, &zero, sizeof(zero));
	if (err)
		return err;
	unsigned long long *slot[6] = { &r.rdi, &r.rsi, &r.rdx, &r.rcx, &r.r8, &r.r9 };
	for (int i = 0; i < n; i++)
		*slot[i] = args[i];
	r.rsp = sp;
	r.rip = fn;
	r.rax = 0;
	r.orig_rax = (unsigned long long)-1;	/* no syscall restart */
	r.eflags &= ~0x400ull;			/* DF clear, as the ABI wants */
	if (ptrace(PTRACE_SETREGS, ij->tid, 0, &r) || ptrace(PTRACE_CONT, ij->tid, 0, 0))
		return errno == ESRCH ? -MFX_E_EXITED : -errno;
	uint64_t t0 = now_ns();
	for (;;) {
		int sig, ev;
		uint64_t spent = now_ns() - t0;
		if (spent >= ij->o.call_timeout_ns)
			return -ETIMEDOUT;
		err = wait_stop(ij->tid, ij->o.call_timeout_ns - spent, &sig, &ev);
		if (err == -ETIMEDOUT) {
			/* Take the thread back; what the call left half done stays. */
			if (interrupt_stop(ij) == 0)
				return -ETIMEDOUT;
			return -MFX_E_EXITED;
		}
		if (err) {
			ij->attached = 0;
			return err;
		}
		if (ev) {	/* group stop or an interrupt: carry on */
			if (ptrace(PTRACE_CONT, ij->tid, 0, 0))
				return -errno;
			continue;
		}
		struct user_regs_struct q;
		if (ptrace(PTRACE_GETREGS, ij->tid, 0, &q))
			return -errno;
		if (sig == SIGSEGV && q.rip == 0) {
			*ret = q.rax;
			note(ij, "  call %#llx: %llu us (setup %llu us)", (unsigned long long)fn,
			     (unsigned long long)(now_ns() - t0) / 1000,
			     (unsigned long long)(t0 - tin) / 1000);
			return 0;
		}
		if (sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
		    sig == SIGTRAP) {
			note(ij, "remote call faulted: signal %d at pc %#llx", sig,
			     (unsigned long long)q.rip);
			return -MFX_E_REMOTE;
		}
		if (sig == SIGSETXID) {	/* its handler is one system call: run it now */
			if (ptrace(PTRACE_CONT, ij->tid, 0, (void *)(long)sig))
				return -errno;
			continue;
		}
		remember_signal(ij, sig);	/* asynchronous: later */
		if (ptrace(PTRACE_CONT, ij->tid, 0, 0))
			return -errno;
	}
}

void inject_finish_parked(struct inject *ij)
{
	ij->finish_parked = ij->o.parked_tid != 0;
}

void inject_close(struct inject *ij)
{
	if (ij->attached) {
		if (ij->errno_addr)
			mem_write(ij->pid, ij->errno_addr, &ij->saved_errno, sizeof(int));
		if (ij->finish_parked) {	/* pause() returns 0: its thread ends */
			ij->saved.rax = 0;
			ij->saved.orig_rax = (unsigned long long)-1;
		}
		restore_state(ij);
		ij->held_ns = now_ns() - ij->t_stopped;
		release(ij);
	}
	free(ij->xsave);
	ij->xsave = NULL;
	inject_unwind_free(ij->unw);
	ij->unw = NULL;
	if (ij->self_boosted)
		sched_set(0, &ij->self_sched);
	ij->self_boosted = 0;
	free(ij->maps);
	ij->maps = NULL;
	ij->nmaps = 0;
	if (ij->stack)
		munmap(ij->stack, STACK_READ_MAX);
	if (ij->prestack)
		munmap(ij->prestack, STACK_READ_MAX);
	ij->stack = ij->prestack = NULL;
}
