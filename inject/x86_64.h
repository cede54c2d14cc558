/*
 * x86_64.h - everything in inject/ that is x86-64 and Linux-ABI specific, in
 * one place (x86_64.c): the signal frame the kernel's rt_sigreturn reads,
 * the code of our return trampoline, the system-call instruction, and the
 * kernel's system-call restart rules.
 *
 * Why a signal frame: every remote call returns into a complete
 * struct rt_sigframe written below the held thread's stack, holding the
 * registers, signal mask and FPU/XSAVE state the thread must resume with.
 * The return lands on `mov $15,%eax; syscall` (rt_sigreturn), either
 * glibc's __restore_rt or our trampoline: if mfx is alive it stops the
 * thread there (ptrace) and carries on; if mfx died, rt_sigreturn runs
 * and puts the thread back by itself.  Checked against
 * arch/x86/kernel/signal_64.c (rt_sigreturn, restore_sigcontext) and
 * arch/x86/kernel/fpu/signal.c (check_xstate_in_sigframe: FP_XSTATE_MAGIC1
 * in the sw_reserved bytes, FP_XSTATE_MAGIC2 right after xstate_size bytes;
 * the XSAVE area is restored with XRSTOR from user memory, so it must be
 * 64-byte aligned).
 */
#ifndef MFX_INJECT_X86_64_H
#define MFX_INJECT_X86_64_H

#if !defined(__x86_64__)
#error "inject/ speaks the x86-64 Linux ABI only"
#endif

#include <stddef.h>
#include <stdint.h>
#include <sys/user.h>

#define X86_SYSCALL_LEN 2		/* `syscall` is 0f 05 */
#define X86_NR_RT_SIGRETURN 15
#define X86_XSAVE_ALIGN 64

/* The kernel's 64-bit struct sigcontext (uapi asm/sigcontext.h). */
struct x86_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2;
	uint64_t fpstate;		/* address of the FXSAVE/XSAVE area, 0: none */
	uint64_t reserved1[8];
};

/* struct rt_sigframe (arch/x86/include/asm/sigframe.h), 64-bit. */
struct x86_rt_sigframe {
	uint64_t pretcode;		/* the return address the handler pops */
	uint64_t uc_flags;
	uint64_t uc_link;
	uint64_t ss_sp;			/* uc_stack (stack_t) */
	int32_t ss_flags, ss_pad;
	uint64_t ss_size;
	struct x86_sigcontext mc;
	uint64_t uc_sigmask;		/* the kernel reads 8 bytes */
	uint8_t info[128];		/* siginfo_t: access_ok() covers it */
};

_Static_assert(sizeof(struct x86_sigcontext) == 256, "struct sigcontext is 256 bytes");
_Static_assert(offsetof(struct x86_rt_sigframe, mc) == 48, "uc_mcontext: 40 into the ucontext");
_Static_assert(offsetof(struct x86_rt_sigframe, uc_sigmask) == 304, "uc_sigmask: 296 into the ucontext");

/* How a system call the held thread was in ended, from its saved rax. */
enum x86_restart {
	X86_NOT_A_RESTART,	/* a result: nothing to redo */
	X86_RESTART,		/* -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND */
	X86_RESTARTBLOCK,	/* -ERESTART_RESTARTBLOCK (restart_syscall) */
	X86_EINTR,		/* -EINTR */
};
enum x86_restart x86_restart_kind(const struct user_regs_struct *r);

/* Would the kernel, given no signal to deliver, have the thread enter its
 * system call again?  These calls fail with EINTR after a ptrace or job
 * control stop even without a handler (signal(7), "Interruption of system
 * calls and library functions by stop signals"). */
int x86_eintr_after_stop(long nr);

/* Rewind r to execute its system call `nr` again, as the kernel's own
 * restart does (ip -= 2, rax = orig_rax); orig_rax = -1 so nothing else
 * restarts it.  `before` are the two code bytes before r->rip (read by the
 * caller); 0, or -EINVAL when they are not a `syscall` instruction. */
int x86_rewind_syscall(struct user_regs_struct *r, const uint8_t before[X86_SYSCALL_LEN]);

/* Build the frame at target address `at` (8 mod 16) whose rt_sigreturn
 * resumes `r` with signal mask `mask`, the XSAVE area `xsave` (len bytes,
 * NT_X86_XSTATE layout; or the 512-byte FXSAVE area when xstate is 0)
 * placed at target address `fp` (64-byte aligned).  The fpstate image
 * (len + 4 bytes: the magic word after it) goes to fpbuf.  uc_stack holds
 * an invalid ss_flags, so rt_sigreturn's restore_altstack() fails with
 * EINVAL (errors there are ignored) and leaves the thread's sigaltstack as
 * it is. */
void x86_frame_build(struct x86_rt_sigframe *f, uint64_t pretcode, const struct user_regs_struct *r,
		     uint64_t mask, uint64_t fp, const uint8_t *xsave, size_t len, int xstate,
		     uint8_t *fpbuf);

/* Our trampoline (x86_64.c has the bytes): `mov %rax,-8(%rsp)` (the call's
 * return value over the frame's pretcode word), then, when sig is non-zero,
 * tgkill(tgid, tid, sig) (the target's own pid namespace ids), then
 * rt_sigreturn.  *notify_end / *sigret_end: offsets just after the tgkill
 * and the rt_sigreturn `syscall` instructions; *sigret_at: where
 * `mov $15,%eax` starts. */
#define X86_TRAMP_MAX 64
size_t x86_tramp_code(uint8_t *code, int32_t tgid, int32_t tid, int sig, size_t *notify_end,
		      size_t *sigret_at, size_t *sigret_end);

/* glibc's __restore_rt is `mov $15,%rax; syscall` (48 c7 c0 0f 00 00 00 0f 05). */
#define X86_RESTORE_RT_LEN 9
extern const uint8_t x86_restore_rt_code[X86_RESTORE_RT_LEN];

/* Put a call to fn(args[0..n-1]) (n <= 6) in r: arguments in rdi..r9,
 * rsp = sp (the frame: its pretcode is the return address), no system
 * call to restart (orig_rax = -1), the direction flag clear. */
void x86_call_regs(struct user_regs_struct *r, uint64_t fn, const uint64_t *args, int n,
		   uint64_t sp);

#endif /* MFX_INJECT_X86_64_H */
