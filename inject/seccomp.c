/*
 * seccomp.c - would a seccomp filter of the held thread kill or fail a
 * system call mfx makes in it?  A filter that kills on memfd_create killed
 * the target on every attach.
 *
 * The filters are read with PTRACE_SECCOMP_GET_FILTER (root only: without
 * CAP_SYS_ADMIN preflight refuses a filtered process outright) and run
 * here, a classic-BPF interpreter over struct seccomp_data, for every
 * system call the remote calls, the loader thread and the agent's thread
 * make, with the arguments mfx passes (an executable anonymous page:
 * PROT_READ|PROT_EXEC, never writable and executable).  Threads mfx starts
 * inherit the held thread's filters, so one thread's verdict covers them.
 * The strictest action of all filters wins, as in the kernel
 * (kernel/seccomp.c: seccomp_run_filters).  Refused: a kill or a trap
 * (SIGSYS) anywhere; an errno, a tracer or a user-space supervisor on a
 * call the attach needs.  clone3 failing with ENOSYS is fine: glibc then
 * uses clone.  A filter against an anonymous executable page or tgkill
 * costs only our trampoline (calls then end at glibc's __restore_rt, in
 * syscall mode, call.c): done without it.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "common/error.h"
#include "inject/internal.h"

#define MAX_FILTERS 64
#define CLONE_THREAD_FLAGS 0x3d0f00ull	/* what pthread_create passes */

struct probe {
	long nr;
	const char *name;
	uint64_t a0, a1, a2, a3;
	int essential;		/* an errno here fails the attach */
	int fallback;		/* refused: do without (1: our trampoline, 2: its notice) */
};

static const struct probe probes[] = {
	{ SYS_rt_sigreturn, "rt_sigreturn", 0, 0, 0, 0, 1, 0 },
	{ SYS_mmap, "mmap", 0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, 1, 1 },
	{ SYS_mmap, "mmap", 0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, 1, 0 },
	{ SYS_mmap, "mmap", 0, 1 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, 1, 0 },
	{ SYS_mprotect, "mprotect", 0, 4096, PROT_READ | PROT_WRITE, 0, 1, 0 },
	{ SYS_mprotect, "mprotect", 0, 4096, PROT_READ, 0, 1, 0 },
	{ SYS_munmap, "munmap", 0, 4096, 0, 0, 1, 0 },
	{ SYS_tgkill, "tgkill", 1, 1, SIGURG, 0, 1, 2 },
	{ SYS_rt_sigprocmask, "rt_sigprocmask", SIG_SETMASK, 0, 0, 8, 1, 0 },
	{ SYS_clone3, "clone3", 0, 88, 0, 0, 0, 0 },
	{ SYS_clone, "clone", CLONE_THREAD_FLAGS, 0, 0, 0, 1, 0 },
	{ SYS_set_robust_list, "set_robust_list", 0, 24, 0, 0, 0, 0 },
	{ SYS_rseq, "rseq", 0, 32, 0, 0x53053053, 0, 0 },
	{ SYS_clock_nanosleep, "clock_nanosleep", 0, 0, 0, 0, 1, 0 },
	{ SYS_exit, "exit", 0, 0, 0, 0, 1, 0 },
	{ SYS_madvise, "madvise", 0, 4096, MADV_DONTNEED, 0, 1, 0 },
	{ SYS_memfd_create, "memfd_create", 0, 1 /* MFD_CLOEXEC */, 0, 0, 1, 0 },
	{ SYS_openat, "openat", (uint64_t)-100, 0, 0x80000 /* O_RDONLY|O_CLOEXEC */, 0, 1, 0 },
	{ SYS_read, "read", 3, 0, 832, 0, 1, 0 },
	{ SYS_pread64, "pread64", 3, 0, 784, 64, 1, 0 },
	{ SYS_newfstatat, "newfstatat", 3, 0, 0, 0x1000 /* AT_EMPTY_PATH */, 1, 0 },
	{ SYS_fstat, "fstat", 3, 0, 0, 0, 0, 0 },
	{ SYS_close, "close", 3, 0, 0, 0, 1, 0 },
	{ SYS_socketpair, "socketpair", 1 /* AF_UNIX */, 0x80005 /* SEQPACKET|CLOEXEC */, 0, 0, 1, 0 },
	{ SYS_poll, "poll", 0, 2, 50, 0, 1, 0 },
	{ SYS_recvmsg, "recvmsg", 3, 0, 0x40000000 /* MSG_CMSG_CLOEXEC */, 0, 1, 0 },
	{ SYS_sendmsg, "sendmsg", 3, 0, 0x4000 /* MSG_NOSIGNAL */, 0, 1, 0 },
	{ SYS_prctl, "prctl", 15 /* PR_SET_NAME */, 0, 0, 0, 0, 0 },
	{ SYS_futex, "futex", 0, 128 /* FUTEX_WAIT_PRIVATE */, 0, 0, 1, 0 },
	{ SYS_getpid, "getpid", 0, 0, 0, 0, 0, 0 },
	{ SYS_gettid, "gettid", 0, 0, 0, 0, 0, 0 },
	{ SYS_brk, "brk", 0, 0, 0, 0, 0, 0 },
	{ SYS_write, "write", 3, 0, 4096, 0, 0, 0 },
	{ SYS_pwrite64, "pwrite64", 3, 0, 4096, 0, 0, 0 },
	{ SYS_lseek, "lseek", 3, 0, 0, 0, 0, 0 },
	{ SYS_fcntl, "fcntl", 3, 1 /* F_GETFD */, 0, 0, 0, 0 },
	{ SYS_ftruncate, "ftruncate", 3, 4096, 0, 0, 0, 0 },
	{ SYS_getdents64, "getdents64", 3, 0, 4096, 0, 0, 0 },
	{ SYS_readlinkat, "readlinkat", (uint64_t)-100, 0, 0, 256, 0, 0 },
	{ SYS_sched_yield, "sched_yield", 0, 0, 0, 0, 0, 0 },
	{ SYS_getrandom, "getrandom", 0, 8, 1, 0, 0, 0 },
	{ SYS_exit_group, "exit_group", 0, 0, 0, 0, 0, 0 },
};

struct seccomp_data_ {
	int32_t nr;
	uint32_t arch;
	uint64_t ip;
	uint64_t args[6];
};

static uint32_t load_abs(const struct seccomp_data_ *d, uint32_t k, int *bad)
{
	uint32_t v = 0;
	if (k + 4 > sizeof(*d) || (k & 3)) {
		*bad = 1;
		return 0;
	}
	memcpy(&v, (const uint8_t *)d + k, 4);
	return v;
}

static uint32_t alu(uint16_t op, uint32_t a, uint32_t x, int *bad)
{
	switch (op) {
	case BPF_ADD: return a + x;
	case BPF_SUB: return a - x;
	case BPF_MUL: return a * x;
	case BPF_DIV: return x ? a / x : (*bad = 1, 0);
	case BPF_MOD: return x ? a % x : (*bad = 1, 0);
	case BPF_OR: return a | x;
	case BPF_AND: return a & x;
	case BPF_XOR: return a ^ x;
	case BPF_LSH: return x < 32 ? a << x : 0;
	case BPF_RSH: return x < 32 ? a >> x : 0;
	case BPF_NEG: return -a;
	}
	*bad = 1;
	return 0;
}

static int jump(uint16_t op, uint32_t a, uint32_t v)
{
	switch (op) {
	case BPF_JEQ: return a == v;
	case BPF_JGT: return a > v;
	case BPF_JGE: return a >= v;
	case BPF_JSET: return (a & v) != 0;
	}
	return 0;
}

/* One filter over d: its return value, or KILL when it misbehaves. */
static uint32_t run(const struct sock_filter *f, size_t n, const struct seccomp_data_ *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };
	int bad = 0;
	for (size_t pc = 0; pc < n && !bad; pc++) {
		const struct sock_filter *i = &f[pc];
		uint16_t cls = BPF_CLASS(i->code);
		uint32_t src = BPF_SRC(i->code) == BPF_X ? x : i->k;
		if (cls == BPF_LD || cls == BPF_LDX) {
			uint32_t v = BPF_MODE(i->code) == BPF_ABS ? load_abs(d, i->k, &bad) :
				     BPF_MODE(i->code) == BPF_LEN ? (uint32_t)sizeof(*d) :
				     BPF_MODE(i->code) == BPF_IMM ? i->k :
				     BPF_MODE(i->code) == BPF_MEM && i->k < BPF_MEMWORDS ? mem[i->k] : (bad = 1, 0);
			*(cls == BPF_LD ? &a : &x) = v;
		} else if (cls == BPF_ST || cls == BPF_STX) {
			if (i->k >= BPF_MEMWORDS)
				break;
			mem[i->k] = cls == BPF_ST ? a : x;
		} else if (cls == BPF_ALU) {
			a = alu(BPF_OP(i->code), a, src, &bad);
		} else if (cls == BPF_JMP) {
			if (BPF_OP(i->code) == BPF_JA)
				pc += i->k;
			else
				pc += jump(BPF_OP(i->code), a, src) ? i->jt : i->jf;
		} else if (cls == BPF_RET) {
			return BPF_RVAL(i->code) == BPF_A ? a : i->k;
		} else if (cls == BPF_MISC) {
			if (BPF_MISCOP(i->code) == BPF_TAX)
				x = a;
			else
				a = x;
		}
	}
	return SECCOMP_RET_KILL_THREAD;
}

static const char *action_name(uint32_t ret)
{
	switch (ret & SECCOMP_RET_ACTION_FULL) {
	case SECCOMP_RET_KILL_PROCESS: return "kills the process";
	case SECCOMP_RET_KILL_THREAD: return "kills the thread";
	case SECCOMP_RET_TRAP: return "raises SIGSYS";
	case SECCOMP_RET_ERRNO: return "fails with an errno";
	case SECCOMP_RET_USER_NOTIF: return "waits for a supervisor";
	case SECCOMP_RET_TRACE: return "waits for a tracer";
	}
	return "is allowed";
}

static int harmful(const struct probe *p, uint32_t ret)
{
	uint32_t act = ret & SECCOMP_RET_ACTION_FULL;
	if (act == SECCOMP_RET_ALLOW || act == SECCOMP_RET_LOG)
		return 0;
	if (act == SECCOMP_RET_KILL_PROCESS || act == SECCOMP_RET_KILL_THREAD || act == SECCOMP_RET_TRAP)
		return 1;
	if (p->nr == SYS_clone3 && act == SECCOMP_RET_ERRNO)
		return 0;	/* glibc falls back to clone */
	return p->essential;
}

/* The filters, most recent first: their code, malloc'ed. */
static int read_filters(pid_t tid, struct sock_filter **f, size_t *len, int *n)
{
	for (*n = 0; *n < MAX_FILTERS; (*n)++) {
		long c = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)(long)*n, NULL);
		if (c < 0)
			return errno == ENOENT ? 0 : -errno;
		if (c == 0 || c > BPF_MAXINSNS || !(f[*n] = calloc((size_t)c, sizeof(**f))))
			return -ENOMEM;
		len[*n] = (size_t)c;
		if (ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)(long)*n, f[*n]) != c)
			return -EIO;
	}
	return 0;
}

int inject_seccomp_check(struct inject *ij, struct inject_err *e)
{
	struct sock_filter *f[MAX_FILTERS] = { 0 };
	size_t len[MAX_FILTERS];
	int n = 0, err = read_filters(ij->tid, f, len, &n);
	if (err) {
		snprintf(e->detail, sizeof(e->detail), "its seccomp filters could not be read (%s)",
			 strerror(-err));
		err = -MFX_E_SECCOMP;
	}
	uint64_t ip = ij->lc.libc.ntext ? ij->lc.libc.text[0].lo : 0;
	for (size_t p = 0; !err && p < sizeof(probes) / sizeof(probes[0]); p++) {
		struct seccomp_data_ d = { (int32_t)probes[p].nr, AUDIT_ARCH_X86_64, ip,
					   { probes[p].a0, probes[p].a1, probes[p].a2, probes[p].a3, 0, 0 } };
		uint32_t ret = SECCOMP_RET_ALLOW;
		for (int i = 0; i < n; i++) {
			uint32_t r = run(f[i], len[i], &d);
			if ((int32_t)(r & SECCOMP_RET_ACTION_FULL) < (int32_t)(ret & SECCOMP_RET_ACTION_FULL))
				ret = r;
		}
		if (harmful(&probes[p], ret) && probes[p].fallback) {
			note(ij, "seccomp: %s %s: done without it", probes[p].name, action_name(ret));
			if (probes[p].fallback == 1)
				ij->no_tramp = 1;
			ij->notify_ok = 0;	/* (no notice without the trampoline either) */
		} else if (harmful(&probes[p], ret)) {
			snprintf(e->detail, sizeof(e->detail), "its seccomp filter %s on %s, a system call "
				 "mfx must make in it", action_name(ret), probes[p].name);
			err = -MFX_E_SECCOMP;
		}
	}
	note(ij, "%d seccomp filter%s: %s", n, n == 1 ? "" : "s", err ? e->detail : "nothing mfx does is refused");
	for (int i = 0; i < MAX_FILTERS; i++)
		free(f[i]);
	return err;
}
