/*
 * seccomp_exec.c - run a program under a seccomp filter that acts on one
 * system call, for the fault matrix (t502):
 *
 *   seccomp_exec ACTION NR PROG [ARGS...]
 *
 * ACTION: kill (SECCOMP_RET_KILL_PROCESS), trap (SIGSYS), errno (EPERM),
 * enosys (ENOSYS, as container runtimes answer clone3), killexec (kill
 * when the call's third argument has PROT_EXEC and its fourth
 * MAP_ANONYMOUS: an mmap of anonymous executable memory, what a
 * W^X-minded filter forbids).  NR: the system call number.  Everything
 * else is allowed.  Sets no_new_privs, installs
 * the filter, execs PROG.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: seccomp_exec kill|trap|errno|enosys NR PROG [ARGS...]\n");
		return 2;
	}
	int exec_only = !strcmp(argv[1], "killexec");
	unsigned act = !strcmp(argv[1], "kill") || exec_only ? SECCOMP_RET_KILL_PROCESS :
		       !strcmp(argv[1], "trap") ? SECCOMP_RET_TRAP :
		       !strcmp(argv[1], "enosys") ? SECCOMP_RET_ERRNO | ENOSYS : SECCOMP_RET_ERRNO | EPERM;
	unsigned nr = (unsigned)atoi(argv[2]);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, act),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_filter g[] = {	/* killexec */
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[3])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAP_ANONYMOUS, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, act),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	if (exec_only)
		prog = (struct sock_fprog){ sizeof(g) / sizeof(g[0]), g };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("seccomp");
		return 1;
	}
	execv(argv[3], argv + 3);
	perror("execv");
	return 1;
}
