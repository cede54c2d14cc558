/*
 * x86_64.c - the x86-64 and Linux-ABI specifics of inject/ (x86_64.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>

#include "inject/x86_64.h"

/* The kernel's internal restart codes (include/linux/errno.h). */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#define FXSAVE_SIZE 512
#define SW_RESERVED_OFF 464		/* struct _fpx_sw_bytes in the FXSAVE area */
#define XSTATE_BV_OFF 512		/* the XSAVE header's xfeatures */
#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
#define XFEATURE_MASK_FPSSE 0x3ull
#define EFLAGS_TF 0x100ull
#define EFLAGS_DF 0x400ull

const uint8_t x86_restore_rt_code[X86_RESTORE_RT_LEN] = { 0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05 };

enum x86_restart x86_restart_kind(const struct user_regs_struct *r)
{
	if ((long long)r->orig_rax < 0)
		return X86_NOT_A_RESTART;
	switch (-(long long)r->rax) {
	case ERESTARTSYS:
	case ERESTARTNOINTR:
	case ERESTARTNOHAND:
		return X86_RESTART;
	case ERESTART_RESTARTBLOCK:
		return X86_RESTARTBLOCK;
	case EINTR:
		return X86_EINTR;
	}
	return X86_NOT_A_RESTART;
}

int x86_eintr_after_stop(long nr)
{
	switch (nr) {
	/* epoll, System V semaphores, sigtimedwait/sigwaitinfo, AIO, io_uring */
	case SYS_epoll_wait: case SYS_epoll_pwait: case 441 /* epoll_pwait2 */:
	case SYS_semop: case SYS_semtimedop: case SYS_rt_sigtimedwait:
	case SYS_io_getevents: case SYS_io_pgetevents: case SYS_io_uring_enter:
	case SYS_mq_timedreceive: case SYS_mq_timedsend:
	/* sockets with SO_RCVTIMEO/SO_SNDTIMEO, and read/write on them */
	case SYS_read: case SYS_readv: case SYS_write: case SYS_writev:
	case SYS_recvfrom: case SYS_recvmsg: case SYS_recvmmsg: case SYS_sendto:
	case SYS_sendmsg: case SYS_sendmmsg: case SYS_accept: case SYS_accept4:
	case SYS_connect:
		return 1;
	}
	return 0;
}

int x86_rewind_syscall(struct user_regs_struct *r, const uint8_t before[X86_SYSCALL_LEN])
{
	if (before[0] != 0x0f || before[1] != 0x05 || (long long)r->orig_rax < 0)
		return -EINVAL;
	r->rax = r->orig_rax;
	r->rip -= X86_SYSCALL_LEN;
	r->orig_rax = (unsigned long long)-1;
	return 0;
}

static void sigcontext_from(struct x86_sigcontext *c, const struct user_regs_struct *r)
{
	c->r8 = r->r8, c->r9 = r->r9, c->r10 = r->r10, c->r11 = r->r11;
	c->r12 = r->r12, c->r13 = r->r13, c->r14 = r->r14, c->r15 = r->r15;
	c->rdi = r->rdi, c->rsi = r->rsi, c->rbp = r->rbp, c->rbx = r->rbx;
	c->rdx = r->rdx, c->rax = r->rax, c->rcx = r->rcx, c->rsp = r->rsp;
	c->rip = r->rip, c->eflags = r->eflags;
	c->cs = (uint16_t)r->cs;
	c->ss = (uint16_t)r->ss;
}

/* The fpstate image: the regset's bytes, the software-reserved words the
 * kernel checks (magic1, sizes, the features to restore) and magic2 after
 * the area.  An FXSAVE-only area carries no magic: restored as FP/SSE. */
static void fpstate_image(uint8_t *out, const uint8_t *xsave, size_t len, int xstate)
{
	memcpy(out, xsave, len);
	if (!xstate) {
		memset(out + SW_RESERVED_OFF, 0, FXSAVE_SIZE - SW_RESERVED_OFF);
		return;
	}
	uint32_t magic1, ext = (uint32_t)len + 4, size = (uint32_t)len, magic2 = FP_XSTATE_MAGIC2;
	uint64_t features;
	memcpy(&magic1, out + SW_RESERVED_OFF, 4);
	if (magic1 == FP_XSTATE_MAGIC1)
		memcpy(&features, out + SW_RESERVED_OFF + 8, 8);	/* what ptrace reported */
	else
		memcpy(&features, out + XSTATE_BV_OFF, 8);
	features |= XFEATURE_MASK_FPSSE;
	magic1 = FP_XSTATE_MAGIC1;
	memcpy(out + SW_RESERVED_OFF, &magic1, 4);
	memcpy(out + SW_RESERVED_OFF + 4, &ext, 4);
	memcpy(out + SW_RESERVED_OFF + 8, &features, 8);
	memcpy(out + SW_RESERVED_OFF + 16, &size, 4);
	memcpy(out + len, &magic2, 4);
}

void x86_frame_build(struct x86_rt_sigframe *f, uint64_t pretcode, const struct user_regs_struct *r,
		     uint64_t mask, uint64_t fp, const uint8_t *xsave, size_t len, int xstate,
		     uint8_t *fpbuf)
{
	memset(f, 0, sizeof(*f));
	f->pretcode = pretcode;
	f->uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | (xstate ? UC_FP_XSTATE : 0);
	f->ss_flags = 0x7;	/* no valid SS_* mode: sigaltstack stays as it is */
	sigcontext_from(&f->mc, r);
	f->mc.fpstate = fp;
	f->uc_sigmask = mask;
	fpstate_image(fpbuf, xsave, len, xstate);
}

static uint8_t *put_mov32(uint8_t *p, uint8_t opcode, uint32_t v)
{
	*p++ = opcode;
	memcpy(p, &v, 4);
	return p + 4;
}

size_t x86_tramp_code(uint8_t *code, int32_t tgid, int32_t tid, int sig, size_t *notify_end,
		      size_t *sigret_at, size_t *sigret_end)
{
	static const uint8_t save_rax[] = { 0x48, 0x89, 0x44, 0x24, 0xf8 };	/* mov %rax,-8(%rsp) */
	uint8_t *p = code;
	memcpy(p, save_rax, sizeof(save_rax));
	p += sizeof(save_rax);
	*notify_end = 0;
	if (sig) {
		p = put_mov32(p, 0xb8, SYS_tgkill);	/* mov $234,%eax */
		p = put_mov32(p, 0xbf, (uint32_t)tgid);	/* mov $tgid,%edi */
		p = put_mov32(p, 0xbe, (uint32_t)tid);	/* mov $tid,%esi */
		p = put_mov32(p, 0xba, (uint32_t)sig);	/* mov $sig,%edx */
		*p++ = 0x0f, *p++ = 0x05;
		*notify_end = (size_t)(p - code);
	}
	*sigret_at = (size_t)(p - code);
	p = put_mov32(p, 0xb8, X86_NR_RT_SIGRETURN);	/* mov $15,%eax */
	*p++ = 0x0f, *p++ = 0x05;
	*sigret_end = (size_t)(p - code);
	return (size_t)(p - code);
}

void x86_call_regs(struct user_regs_struct *r, uint64_t fn, const uint64_t *args, int n,
		   uint64_t sp)
{
	unsigned long long *slot[6] = { &r->rdi, &r->rsi, &r->rdx, &r->rcx, &r->r8, &r->r9 };
	for (int i = 0; i < n && i < 6; i++)
		*slot[i] = args[i];
	r->rsp = sp;
	r->rip = fn;
	r->rax = 0;
	r->orig_rax = (unsigned long long)-1;	/* no system call restart on the way */
	r->eflags &= ~(EFLAGS_DF | EFLAGS_TF);
}
