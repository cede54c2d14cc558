/*
 * prefork_target.c - a pre-forking server to attach to: the master obeys one
 * command per line on stdin, its workers allocate on their own.
 *
 *   fork       fork a worker: it prints "worker PID SLOT LIBC" (its pid,
 *              the address of its own GOT slot for malloc, and where libc's
 *              malloc is), then calls malloc/free every millisecond until
 *              the master dies (PR_SET_PDEATHSIG)
 *   spawn      fork an idle worker: it prints the same "worker" line, then
 *              blocks in read() on a pipe of its own until told something
 *   tell PID run N
 *              that idle worker makes N malloc/free pairs and prints
 *              "wdone PID MALLOCS FREES": every malloc and free it made
 *              since the fork, counted by itself
 *   tell PID exec
 *              that idle worker prints "wexec PID" and execs sleep 600
 *   tell PID gfork N
 *              that idle worker forks a grandchild, which makes N
 *              malloc/free pairs, prints "gchild GPID SLOT LIBC MALLOCS
 *              FREES" (its own count since the fork) and pauses
 *   run N      N malloc/free pairs in the master, then "done"
 *   vmsize     prints "vmsize KB" (VmSize of /proc/self/status)
 *   quit       exit 0
 *
 * At start it prints "master PID SLOT LIBC" and "ready".  A test reads SLOT
 * of a process through /proc/PID/mem: after mfx is done it must hold LIBC
 * again, in the master and in every worker, whenever it was forked.
 */
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_IDLE 16
static struct {
	int pid, fd;
} idle[MAX_IDLE];
static int nidle;

static void *volatile sink;
static uintptr_t got_slot;

/* The main program's relocation for "malloc" (JUMP_SLOT, or GLOB_DAT when
 * built -fno-plt): the slot the program calls malloc through. */
static int find_slot(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	const ElfW(Dyn) *dyn = NULL;
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
	const ElfW(Sym) *sym = NULL;
	const char *str = NULL;
	const ElfW(Rela) *rel[2] = { NULL, NULL };
	size_t nrel[2] = { 0, 0 };
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		uintptr_t v = dyn->d_un.d_ptr;
		switch (dyn->d_tag) {
		case DT_SYMTAB: sym = (const ElfW(Sym) *)v; break;
		case DT_STRTAB: str = (const char *)v; break;
		case DT_JMPREL: rel[0] = (const ElfW(Rela) *)v; break;
		case DT_PLTRELSZ: nrel[0] = dyn->d_un.d_val / sizeof(ElfW(Rela)); break;
		case DT_RELA: rel[1] = (const ElfW(Rela) *)v; break;
		case DT_RELASZ: nrel[1] = dyn->d_un.d_val / sizeof(ElfW(Rela)); break;
		}
	}
	for (int k = 0; k < 2 && sym && str; k++)
		for (size_t i = 0; rel[k] && i < nrel[k]; i++)
			if (!strcmp(str + sym[ELF64_R_SYM(rel[k][i].r_info)].st_name, "malloc"))
				got_slot = info->dlpi_addr + rel[k][i].r_offset;
	return 1;	/* the first module is the program */
}

static void *libc_malloc(void)
{
	void *h = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	return h ? dlsym(h, "malloc") : NULL;
}

static void worker(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(0);
	sink = malloc(64);	/* bind the slot (lazy binding) */
	free(sink);
	printf("worker %d %#lx %p\n", (int)getpid(), (unsigned long)got_slot, libc_malloc());
	fflush(stdout);
	struct timespec ms = { 0, 1000000 };
	for (;;) {
		for (int i = 0; i < 16; i++) {
			sink = malloc(32 + (size_t)i * 16);
			free(sink);
		}
		nanosleep(&ms, NULL);
	}
}

static void grandchild(long k);

/* An idle worker: its output through snprintf+write (stdio could
 * allocate); every malloc and free it makes, counted. */
static void idle_worker(int rfd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(0);
	long nm = 0, nf = 0;
	char line[160], cmd[64];
	sink = malloc(64);	/* bind the slot (lazy binding) */
	nm++;
	free(sink);
	nf++;
	int n = snprintf(line, sizeof(line), "worker %d %#lx %p\n", (int)getpid(),
			 (unsigned long)got_slot, libc_malloc());
	if (write(1, line, (size_t)n) != n)
		_exit(1);
	for (;;) {
		ssize_t r = read(rfd, cmd, sizeof(cmd) - 1);
		if (r <= 0)
			_exit(0);
		cmd[r] = 0;
		long k = 0;
		if (sscanf(cmd, "run %ld", &k) == 1) {
			for (long i = 0; i < k; i++) {
				sink = malloc(40 + (size_t)(i % 200));
				nm++;
				free(sink);
				nf++;
			}
			n = snprintf(line, sizeof(line), "wdone %d %ld %ld\n", (int)getpid(), nm, nf);
		} else if (sscanf(cmd, "gfork %ld", &k) == 1) {
			if (fork() == 0)
				grandchild(k);
			continue;
		} else if (!strncmp(cmd, "exec", 4)) {
			n = snprintf(line, sizeof(line), "wexec %d\n", (int)getpid());
			if (write(1, line, (size_t)n) != n)
				_exit(1);
			execl("/bin/sleep", "sleep", "600", (char *)NULL);
			_exit(127);
		}
		if (write(1, line, (size_t)n) != n)
			_exit(1);
	}
}

static void grandchild(long k)
{
	char line[160];
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (long i = 0; i < k; i++) {
		sink = malloc(56 + (size_t)(i % 100));
		free(sink);
	}
	int n = snprintf(line, sizeof(line), "gchild %d %#lx %p %ld %ld\n", (int)getpid(),
			 (unsigned long)got_slot, libc_malloc(), k, k);
	if (write(1, line, (size_t)n) != n)
		_exit(1);
	for (;;)
		pause();
}

static void spawn(void)
{
	int p[2];
	if (nidle == MAX_IDLE || pipe(p))
		return;
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		close(p[1]);
		idle_worker(p[0]);
	}
	close(p[0]);
	idle[nidle].pid = (int)c;
	idle[nidle++].fd = p[1];
}

static void tell(const char *cmd)
{
	int pid = 0, off = 0;
	if (sscanf(cmd, "tell %d %n", &pid, &off) < 1)
		return;
	for (int i = 0; i < nidle; i++)
		if (idle[i].pid == pid && write(idle[i].fd, cmd + off, strlen(cmd + off)) < 0)
			perror("tell");
}

static void vmsize(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmSize:", 7))
			printf("vmsize %ld\n", strtol(line + 7, NULL, 10));
	if (f)
		fclose(f);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	sink = malloc(16);
	free(sink);
	dl_iterate_phdr(find_slot, NULL);
	printf("master %d %#lx %p\nready\n", (int)getpid(), (unsigned long)got_slot, libc_malloc());
	char cmd[256];
	while (fgets(cmd, sizeof(cmd), stdin)) {
		long n = 0;
		if (!strncmp(cmd, "fork", 4)) {
			fflush(stdout);
			if (fork() == 0)
				worker();
			printf("done fork\n");
		} else if (!strncmp(cmd, "spawn", 5)) {
			spawn();
			printf("done spawn\n");
		} else if (!strncmp(cmd, "tell ", 5)) {
			tell(cmd);
			printf("done tell\n");
		} else if (sscanf(cmd, "run %ld", &n) == 1) {
			for (long i = 0; i < n; i++) {
				sink = malloc(24 + (size_t)(i % 100));
				free(sink);
			}
			printf("done run\n");
		} else if (!strncmp(cmd, "vmsize", 6)) {
			vmsize();
			printf("done vmsize\n");
		} else if (!strncmp(cmd, "quit", 4)) {
			return 0;
		}
	}
	return 0;
}
