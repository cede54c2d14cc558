/*
 * safepoint.c - which thread to borrow, and whether it is safe to.
 *
 * A remote dlopen() or pthread_create() takes the loader's, the allocator's
 * or the thread-stack lock; if the held thread already owns one, the
 * process deadlocks.  So the thread is chosen and checked:
 *   1. Candidates: threads blocked in a system call the allocator and the
 *      loader never make while holding a lock (epoll_wait, futex, poll,
 *      nanosleep, read, accept, ...: /proc/PID/task/TID/syscall) come
 *      first - those whose restart is exact before those a stop makes fail
 *      with EINTR or whose relative timeout a restart starts again - then
 *      running threads, then the rest.
 *   2. At the stop: the pc must not be in ld.so, malloc.c's code or the
 *      functions that take the thread-stack lock, nor on the signal
 *      trampoline; the system call (if any) must not be one the allocator
 *      or the loader makes; no caller on its stack may be in those ranges
 *      (a scan of every stack word, then an unwind with the target's own
 *      unwind tables when a word is suspect: unwind.c); it needs 256 KiB of
 *      stack.  Otherwise a running thread is let go for a millisecond and
 *      interrupted again; a blocked one is let go and the next one tried.
 * A thread let go goes back to its system call as the kernel would restart
 * it (an EINTR the interrupt caused included: call.c's rule).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/procfs.h"
#include "common/util.h"
#include "inject/internal.h"
#include "inject/unwind.h"
#include "inject/x86_64.h"

#define MIN_STACK_ROOM (256u * 1024u)	/* dlopen and the agent's start need room */

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
	nanosleep(&ts, NULL);
}

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

/* Does a stop cost this blocked call something: an EINTR we must undo, or
 * a relative timeout that starts again (nanosleep, poll, futex wait)? */
static int restart_costs(long nr, const unsigned long *a)
{
	switch (nr) {
	case SYS_nanosleep: return 1;
	case SYS_clock_nanosleep: return !(a[1] & 1 /* TIMER_ABSTIME */);
	case SYS_poll: return (long)(int)a[2] >= 0;
	case SYS_futex: return (a[1] & 0x7f) == 0 /* FUTEX_WAIT */ && a[3];
	case SYS_read: case SYS_write: return 0;
	}
	return x86_eintr_after_stop(nr);
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

static int task_named(pid_t pid, pid_t tid, const char *name)
{
	char buf[64];
	return procfs_task_comm(pid, tid, buf, sizeof(buf)) == 0 && !strcmp(buf, name);
}

static int score_of(pid_t pid, pid_t tid)
{
	char buf[512], p[96];
	long nr;
	unsigned long a[6] = { 0 };
	snprintf(p, sizeof(p), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	if (read_small(p, buf, sizeof(buf)) < 0)
		return 3;
	if (!strncmp(buf, "running", 7))
		return 2;
	if (sscanf(buf, "%ld %lx %lx %lx %lx %lx %lx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4], &a[5]) < 1 ||
	    nr < 0)
		return 3;
	if (syscall_quiet(nr))
		return restart_costs(nr, a) ? 1 : 0;
	return syscall_unsafe(nr) ? 4 : 3;
}

/* Threads in the order to try them. */
static int candidates(pid_t pid, pid_t only, struct cand **out, size_t *n)
{
	pid_t *tids;
	size_t nt;
	int err = procfs_tids(pid, &tids, &nt);
	if (err)
		return err;
	struct cand *c = NULL;
	size_t k = 0, cap = 0;
	for (size_t i = 0; i < nt; i++) {
		if (only && tids[i] != only)
			continue;
		if (task_named(pid, tids[i], "mfx-agent"))
			continue;	/* our own agent's thread: it serves the doorbell */
		if (grow_array(&c, &cap, k, sizeof(*c))) {
			free(c);
			free(tids);
			return -ENOMEM;
		}
		c[k].tid = tids[i];
		c[k++].score = score_of(pid, tids[i]);
	}
	free(tids);
	qsort(c, k, sizeof(*c), cand_cmp);
	*out = c;
	*n = k;
	return k ? 0 : -ESRCH;
}

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
		if (ours && (perms[2] == 'x' || perms[0] == 'r'))
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

void inject_safepoint_prepare(struct inject *ij)
{
	/* all of it before the hold: the unwind tables, the mappings, a stack
	 * buffer whose pages are already ours */
	inject_unwind_prepare(ij->pid, &ij->unw);	/* without it: no thread is ever safe */
	read_maps(ij);
	prefault_self();
	ij->stack = stack_buffer();
	ij->prestack = stack_buffer();
}

void inject_safepoint_free(struct inject *ij)
{
	inject_unwind_free(ij->unw);
	ij->unw = NULL;
	free(ij->maps);
	ij->maps = NULL;
	ij->nmaps = 0;
	if (ij->stack)
		munmap(ij->stack, STACK_READ_MAX);
	if (ij->prestack)
		munmap(ij->prestack, STACK_READ_MAX);
	ij->stack = ij->prestack = NULL;
}

static int in_loader_or_malloc(const struct inject *ij, uint64_t a)
{
	if (ij->lc.have_ld && inject_in_text(&ij->lc.ld, a))
		return 1;
	if (a >= ij->lc.malloc_lo && a < ij->lc.malloc_hi)
		return 1;
	if (a >= ij->o.avoid_lo && a < ij->o.avoid_hi)
		return 1;	/* another allocator's library */
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
 * signal handler (never safe), -1 = not readable / too big. */
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

/* The walk made before the hold, if the thread has not moved since: the
 * same system call, pc, sp and every byte of its stack.  Else walk now. */
static int unwind_check(struct inject *ij, const struct user_regs_struct *r, uint64_t hi, int scan,
			int *n)
{
	size_t len = (size_t)(hi - (r->rsp & ~7ull));
	if (scan == 0 && ij->pre.tid == ij->tid && ij->pre.walk >= 0 && ij->pre.sp == r->rsp &&
	    ij->pre.pc == r->rip && ij->pre.nr == (long)r->orig_rax && ij->pre.len == len &&
	    !memcmp(ij->stack, ij->prestack, len)) {
		*n = ij->pre.n;
		note(ij, "  its stack is as unwound before the hold: %d frames", *n);
		return ij->pre.walk;
	}
	if (!ij->unw)
		return -1;
	return inject_unwind_walk(ij->unw, ij->tid, r->rsp, hi, scan >= 0 ? ij->stack : NULL, bad_frame,
				  ij, n);
}

static int stack_checks(struct inject *ij, const struct user_regs_struct *r, const char **why)
{
	uint64_t lo = 0, hi = 0, suspect = 0, t0 = now_ns();
	int grows = 0, n = 0;
	size_t words = 0;
	if (mapping_of(ij, r->rsp, &lo, &hi, &grows)) {
		*why = "stack pointer outside any mapping";
		return 0;
	}
	if (!grows && r->rsp - lo < MIN_STACK_ROOM) {
		*why = "too little stack left";
		return 0;
	}
	int scan = scan_stack(ij, r->rsp, hi, &words, &suspect);
	note(ij, "  stack scan: %s after %zu words in %llu us (%#llx)", scan == 1 ? "clean" :
	     scan == 0 ? "a suspect word" : scan == 2 ? "a signal frame" : "not done", words,
	     (unsigned long long)(now_ns() - t0) / 1000, (unsigned long long)suspect);
	if (scan == 1)
		return ij->safe_by_scan = 1;
	if (scan == 2) {
		*why = "in a signal handler";
		return 0;
	}
	t0 = now_ns();
	int walk = unwind_check(ij, r, hi, scan, &n);
	note(ij, "  unwound %d frames in %llu us (%s)", n, (unsigned long long)(now_ns() - t0) / 1000,
	     walk == 1 ? "stopped at a bad one" : walk == 0 ? "to the outermost" : "a step failed");
	if (walk == 1)
		*why = "a caller in the loader or the allocator, or a signal frame";
	else if (n < 2 && walk < 0)
		*why = "stack could not be unwound";
	return walk != 1 && !(n < 2 && walk < 0);
}

/* 1 when the stopped thread is at a safe point (the top of the file). */
static int safe_point(struct inject *ij, const struct user_regs_struct *r, const char **why)
{
	if (in_loader_or_malloc(ij, r->rip)) {
		*why = "pc in the loader or the allocator";
		return 0;
	}
	/* In a signal handler (or returning from one): the interrupted code may
	 * hold anything, and glibc's SIGSETXID handler is waited for by a
	 * set*id() caller that holds the thread-stack lock. */
	if (ij->lc.restore_rt && r->rip - ij->lc.restore_rt < 16) {
		*why = "returning from a signal handler";
		return 0;
	}
	if ((long)r->orig_rax >= 0 && syscall_unsafe((long)r->orig_rax)) {
		*why = "in a system call the allocator or loader makes";
		return 0;
	}
	return stack_checks(ij, r, why);
}

/* A thread not taken goes on: its system call restarted as the kernel
 * would, the interrupt's EINTR undone; detached, or just resumed. */
static int let_go(struct inject *ij, int detach)
{
	struct user_regs_struct r;
	if (!ptrace(PTRACE_GETREGS, ij->tid, 0, &ij->saved) &&
	    !ptrace(PTRACE_GETSIGMASK, ij->tid, (void *)sizeof(uint64_t), &ij->saved_mask) &&
	    !inject_peek(ij->pid, ij->saved.rip - X86_SYSCALL_LEN, ij->insn_before, 2)) {
		inject_resume_regs(ij, 1, &r);
		if (memcmp(&r, &ij->saved, sizeof(r)))
			ptrace(PTRACE_SETREGS, ij->tid, 0, &r);
	}
	ij->eintr_restarted = 0;
	if (detach) {
		inject_release(ij);
		return 0;
	}
	ij->at = AT_NONE;
	return ptrace(PTRACE_CONT, ij->tid, 0, 0) ? -errno : 0;
}

static pid_t tracer_of(pid_t pid, pid_t tid)
{
	char p[96], buf[4096];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	const char *t = read_small(p, buf, sizeof(buf)) < 0 ? NULL : strstr(buf, "\nTracerPid:");
	return t ? (pid_t)atoi(t + 11) : 0;
}

/* Seize tid and stop it at a safe point within the deadline.  0, or 1 = not
 * here (try another thread), 2 = the process is being stopped, or -error. */
static int try_thread(struct inject *ij, pid_t tid, uint64_t deadline)
{
	int err = inject_seize(ij, tid);
	if (err == -EPERM && tracer_of(ij->pid, tid) > 0)
		return 1;	/* another tracer's (another mfx attaching now): the next one */
	if (err)
		return err == -ESRCH ? 1 : err;	/* gone: the next one */
	for (unsigned tries = 0; now_ns() < deadline && tries < 200; tries++) {
		ij->attempts++;
		err = inject_interrupt(ij);
		if (err == 1) {
			inject_release(ij);	/* a group stop: the kernel keeps it stopped */
			return 2;
		}
		if (err)
			return err == -MFX_E_EXITED ? (ij->attached = 0, 1) : err;
		ij->t_stopped = now_ns();
		struct user_regs_struct r;
		const char *why = "";
		if (ptrace(PTRACE_GETREGS, tid, 0, &r))
			return -errno;
		if (safe_point(ij, &r, &why)) {
			note(ij, "thread %d at a safe point after %u stops (pc %#llx, %s %ld)", (int)tid,
			     ij->attempts, (unsigned long long)r.rip,
			     (long)r.orig_rax >= 0 ? "syscall" : "running", (long)r.orig_rax);
			return 0;
		}
		if (tries == 0 || ij->o.verbose > 1)
			note(ij, "thread %d not safe: %s (pc %#llx)", (int)tid, why, (unsigned long long)r.rip);
		if ((long)r.orig_rax >= 0 && syscall_quiet((long)r.orig_rax))
			break;	/* parked there; another thread may do better */
		if ((err = let_go(ij, 0)))
			return err;
		sleep_ns(1000000);
	}
	let_go(ij, 1);
	return 1;
}

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
	if (!ij->unw || !ij->prestack || read_small(p, buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "%ld %lx %lx %lx %lx %lx %lx %lx %lx", &nr, &a[0], &a[1], &a[2], &a[3], &a[4],
		   &a[5], &sp, &pc) != 9 || nr < 0 || mapping_of(ij, sp, &lo, &hi, &grows))
		return;
	uint64_t s0 = sp & ~7ull;
	if (hi <= s0 || hi - s0 > STACK_READ_MAX || inject_peek(ij->pid, s0, ij->prestack, (size_t)(hi - s0)))
		return;
	int n = 0;
	uint64_t t0 = now_ns();
	ij->tid = tid;	/* for bad_frame's notes */
	int w = inject_unwind_walk_blocked(ij->unw, tid, pc, sp, hi, ij->prestack, bad_frame, ij, &n);
	note(ij, "thread %d in system call %ld: unwound %d frames in %llu us (%s)", (int)tid, nr, n,
	     (unsigned long long)(now_ns() - t0) / 1000, w == 1 ? "one is bad" :
	     w == 0 ? "to the outermost" : "needs more registers: in the hold");
	if (w < 0)	/* the hold will unwind: with the tables in our cache */
		inject_unwind_warm(ij->unw, tid, ij->prestack, (size_t)(hi - s0));
	ij->pre.tid = tid;
	ij->pre.nr = nr;
	ij->pre.sp = sp;
	ij->pre.pc = pc;
	ij->pre.len = (size_t)(hi - s0);
	ij->pre.walk = w;
	ij->pre.n = n;
}

/* Stop one thread of ij->pid at a safe point (bounded by the timeout). */
int inject_hold_safe(struct inject *ij)
{
	uint64_t deadline = now_ns() + ij->o.timeout_ns;
	int err, stopped = 0;
	while (now_ns() < deadline) {
		struct cand *c;
		size_t n;
		int st = procfs_state(ij->pid);
		if (st < 0 || st == 'Z' || st == 'X')
			return -MFX_E_EXITED;
		if (st == 'T' || st == 't') {	/* stopped meanwhile: wait for a SIGCONT */
			stopped = 1;
			sleep_ns(5000000);
			continue;
		}
		if ((err = candidates(ij->pid, ij->o.only_tid, &c, &n)))
			return err == -ESRCH ? -MFX_E_EXITED : err;
		err = 1;
		for (size_t i = 0; i < n && now_ns() < deadline; i++) {
			if (c[i].score == 0)
				pre_walk(ij, c[i].tid);
			err = try_thread(ij, c[i].tid, deadline);
			if (err == 2)
				stopped = 1;
			if (err <= 0 || err == 2)
				break;
		}
		free(c);
		if (err <= 0)
			return err;
		sleep_ns(5000000);
	}
	return stopped ? -MFX_E_STOPPED : -MFX_E_NOSAFEPOINT;
}
