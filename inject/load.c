/*
 * load.c - put the agent into a live process and open the control channel
 * (inject.h, include/mfx/control.h).  Before the hold: the agent file's
 * build-id and symbols, and whether the target maps it already
 * (inject_agent_prepare).  In one ptrace hold of one thread:
 *
 *   memfd_create("libmfx.so")     mfx fills it with libmfx.so (pidfd_getfd)
 *   dlopen("/proc/self/fd/N")     no path, mount namespace or noexec trouble;
 *                                 the agent's constructor opens its doorbell
 *                                 and starts its thread
 *   close() of the memfd
 *
 * and after it mfx rings the doorbell (inject_agent_ring).
 *
 * Those calls cost the held thread 1-5 ms (dlopen maps, relocates, faults
 * pages in; more on a loaded machine or a big process).  So when it can,
 * the hold makes one call instead:
 *
 *   pthread_create(&t, NULL, pause, NULL)
 *
 * (detached) and ends.  The new thread is ours: parked in pause() with the
 * held thread's mask (all signals blocked but the faults and glibc's
 * SIGSETXID), it harms nobody, and mfx holds *it* for the memfd, dlopen and
 * close above (inject_agent_booted), then makes its pause() return 0: it
 * ends.  If a SIGSETXID ends its pause() first, it ends by itself and mfx
 * falls back to a hold that loads the agent.  Not when the held thread runs
 * in libc's own code (it might hold the thread-stack lock pthread_create
 * takes), without pthread_create in libc (glibc < 2.34) or with
 * MFX_NO_BOOT=1.  If the
 * constructor did not start the thread: dlsym(h, "mfx_agent_start"),
 * socketpair() (mfx takes one end), mfx_agent_start(other end), close().
 * If the same build of the agent is mapped already (an earlier attach) and
 * its doorbell does not answer, only those last calls are made.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mfx/control.h"
#include "common/elffile.h"
#include "common/error.h"
#include "common/util.h"
#include "inject/inject.h"
#include "inject/load.h"

static int pidfd_get(pid_t pid, int pidfd, int remote_fd)
{
	int fd = (int)syscall(SYS_pidfd_getfd, pidfd, remote_fd, 0);
	if (fd >= 0) {
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		return fd;
	}
	int e = errno;
	char path[64];	/* older kernels: reopen through /proc (not for sockets) */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, remote_fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	return fd >= 0 ? fd : -e;
}

/* src into dst, by the kernel (sendfile): this runs while a thread is held. */
static int copy_file(const char *src, int dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	struct stat st;
	int err = fstat(in, &st) ? -errno : 0;
	off_t off = 0;
	while (!err && off < st.st_size) {
		ssize_t n = sendfile(dst, in, &off, (size_t)(st.st_size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			err = n < 0 ? -errno : -EIO;
	}
	close(in);
	return err;
}

/* The agent file's build-id note: its file offset (= vaddr in the first
 * segment) and bytes. */
static int agent_build_id(const char *path, uint64_t *off, uint8_t *id, size_t *len)
{
	struct elf_file ef;
	int err = elf_file_open(path, &ef);
	if (err)
		return err == -MFX_E_NOEXEC ? -ENOENT : err;
	err = -ENOENT;
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	while ((scn = elf_file_section(&ef, scn, SHT_NULL, ".note.gnu.build-id", &sh))) {
		if (sh.sh_size > 64)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		if (!d || d->d_size != sh.sh_size)
			break;
		memcpy(id, d->d_buf, sh.sh_size);
		*len = sh.sh_size;
		*off = sh.sh_addr;
		err = 0;
		break;
	}
	elf_file_close(&ef);
	return err;
}

static void read_agent_file(const char *agent);

/* Facts of the agent file, read once (inject_agent_prepare, before a hold). */
static struct {
	char path[4096];
	int ok;
	uint64_t id_off;
	uint8_t id[64];
	size_t id_len;
	uint64_t start_off, bell_off;	/* mfx_agent_start, mfx_agent_doorbell */
} af;

static uint64_t agent_loaded(pid_t pid, const char *agent);
static pid_t prep_pid;
static uint64_t prep_base;

void inject_agent_prepare(pid_t pid, const char *agent)
{
	if (!af.ok || strcmp(af.path, agent))
		read_agent_file(agent);
	/* is it mapped there already?  /proc/PID/maps is read here, not in the hold */
	prep_pid = pid;
	prep_base = af.ok ? agent_loaded(pid, agent) : 0;
}

static void read_agent_file(const char *agent)
{
	memset(&af, 0, sizeof(af));
	snprintf(af.path, sizeof(af.path), "%s", agent);
	if (agent_build_id(agent, &af.id_off, af.id, &af.id_len))
		return;
	const char *names[] = { "mfx_agent_start", "mfx_agent_doorbell", NULL };
	uint64_t vals[2];
	inject_elf_syms(agent, names, vals, NULL);
	af.start_off = vals[0];
	af.bell_off = vals[1];
	af.ok = 1;
}

/* The same agent build mapped in the target already? Its load address. */
static uint64_t agent_loaded(pid_t pid, const char *agent)
{
	struct inject_module m;
	if (!af.ok || strcmp(af.path, agent))
		read_agent_file(agent);
	if (!af.ok)
		return 0;
	uint8_t theirs[64];
	const char *names[] = { "/memfd:libmfx.so (deleted)", "/libmfx.so", NULL };
	for (int i = 0; names[i]; i++) {
		if (inject_find_module(pid, names[i], &m) || !m.base)
			continue;
		if (inject_peek(pid, m.base + af.id_off, theirs, af.id_len) == 0 &&
		    !memcmp(af.id, theirs, af.id_len))
			return m.base;
	}
	return 0;
}

/* pid as the process itself sees it (the last NSpid: its own namespace). */
static pid_t pid_inside(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	pid_t in = pid;
	if (!f)
		return pid;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "NSpid:", 6)) {
			char *p = line + 6, *end;
			for (long v; (v = strtol(p, &end, 10)), end != p; p = end)
				in = (pid_t)v;
			break;
		}
	fclose(f);
	return in;
}

int inject_agent_ring(pid_t pid, const char *agent, int timeout_ms, int *chan)
{
	*chan = -1;
	uint64_t base = agent_loaded(pid, agent);	/* also reads the agent file's facts */
	struct mfx_doorbell b;
	if (!base || !af.bell_off)
		return -ENOENT;
	if (inject_peek(pid, base + af.bell_off, &b, sizeof(b)) || b.magic != MFX_DOORBELL_MAGIC ||
	    b.fd < 0 || !b.pid || (b.pid != pid && b.pid != pid_inside(pid)))
		return -ENOENT;	/* loaded, but never started here (a fork child) */
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	int bell = pidfd_get(pid, pidfd, b.fd), err = bell < 0 ? bell : 0;
	close(pidfd);
	struct stat st;
	if (!err && (fstat(bell, &st) || !S_ISSOCK(st.st_mode) || st.st_ino != b.ino))
		err = -ENOTSOCK;	/* the program closed it and reused the number */
	int sv[2] = { -1, -1 };
	if (!err && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		err = -errno;
	if (!err) {
		struct mfx_ctl m;
		mfx_ctl_init(&m, MFX_CTL_HELLO);
		err = mfx_ctl_send(bell, &m, sizeof(m), &sv[1], 1, MSG_DONTWAIT);
		close(sv[1]);
	}
	if (bell >= 0)
		close(bell);
	if (!err) {
		/* WELCOME proves a live agent thread holds the other end */
		struct pollfd p = { sv[0], POLLIN, 0 };
		struct mfx_ctl m;
		int r;
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			err = r ? -errno : -ETIMEDOUT;
		else if (recv(sv[0], &m, sizeof(m), 0) != (ssize_t)sizeof(m) ||
			 m.magic != MFX_CTL_MAGIC || m.type != MFX_CTL_WELCOME)
			err = -EPROTO;
	}
	if (err) {
		if (sv[0] >= 0)
			close(sv[0]);
		return err;
	}
	*chan = sv[0];
	return 0;
}

static int32_t as_int(uint64_t rax)
{
	return (int32_t)(uint32_t)rax;
}

static int remote_dlerror(struct inject *ij, uint64_t fn_dlerror, char *msg, size_t n)
{
	uint64_t p = 0;
	msg[0] = 0;
	if (!fn_dlerror || inject_call(ij, fn_dlerror, NULL, 0, &p) || !p)
		return -1;
	if (inject_peek(ij->pid, p, msg, n - 1))
		return -1;
	msg[n - 1] = 0;
	return 0;
}

/* Can the hold hand the loading to a new thread?  Not from a thread in
 * libc's own code (outside a system call): it might hold the thread-stack
 * lock that pthread_create takes (start_thread's exit path is not
 * exported, so the safe point cannot see it). */
static int boot_ok(const struct inject *ij)
{
	const struct inject_libc *lc = &ij->lc;
	if (ij->o.parked_tid || ij->o.no_boot || !lc->fn[INJ_PTHREAD_CREATE] || !lc->fn[INJ_PAUSE] || !lc->tid_off)
		return 0;
	uint64_t pc = ij->saved.rip;
	return ij->in_syscall || pc < lc->libc.text_lo || pc >= lc->libc.text_hi;
}

int inject_agent_booted(pid_t pid, const char *agent, const struct inject_libc *lc, int verbose,
			struct inject_agent_result *res)
{
	struct inject bj;
	struct inject_opts o = { .verbose = verbose, .timeout_ns = 3000000000ull,
				 .parked_tid = res->boot_tid, .parked_self = res->boot_self, .lc = lc };
	int err = inject_open(pid, &o, &bj);
	if (err) {
		snprintf(res->msg, sizeof(res->msg), "the thread started to load the agent did not "
			 "reach pause(): %s", mfx_strerror(err < 0 ? -err : err));
		return err;
	}
	err = inject_agent(&bj, agent, res);	/* (clears res) */
	inject_finish_parked(&bj);	/* its pause() returns: it ends (detached) */
	inject_close(&bj);
	res->boot_ns = bj.held_ns;
	return err;
}

int inject_agent(struct inject *ij, const char *agent, struct inject_agent_result *res)
{
	memset(res, 0, sizeof(*res));
	res->chan = -1;
	const uint64_t *fn = ij->lc.fn;
	uint64_t f_memfd = fn[INJ_MEMFD_CREATE], f_dlopen = fn[INJ_DLOPEN], f_dlsym = fn[INJ_DLSYM];
	uint64_t f_dlerror = fn[INJ_DLERROR], f_socketpair = fn[INJ_SOCKETPAIR], f_close = fn[INJ_CLOSE];
	if (!f_dlopen || !f_dlsym || !f_socketpair || !f_close) {
		snprintf(res->msg, sizeof(res->msg), "no dlopen/dlsym in %.300s (glibc older than 2.34?)",
			 ij->lc.libc.path);
		return -MFX_E_NOSYM;
	}
	int pidfd = (int)syscall(SYS_pidfd_open, ij->pid, 0);
	if (pidfd < 0) {
		snprintf(res->msg, sizeof(res->msg), "pidfd_open: %s", strerror(errno));
		return -MFX_E_KERNEL;
	}
	int err = 0;
	uint64_t ret, start = 0;
	inject_note(ij, "loading the agent");
	uint64_t base = prep_pid == ij->pid && af.ok && !strcmp(af.path, agent) ? prep_base :
			agent_loaded(ij->pid, agent);
	inject_note(ij, "agent %s", base ? "mapped already" : "not mapped yet");
	if (base) {
		start = af.start_off ? base + af.start_off : 0;
		res->reused = 1;
	}
	if (!start && boot_ok(ij)) {
		/* a thread of ours does the loading; the hold ends now */
		uint64_t a_slot, a_attr, self = 0, zero = 0;
		int32_t tid = 0;
		/* a detached thread: if a signal ends its pause() before we take
		 * it (glibc's SIGSETXID reaches every thread), it just ends */
		struct {	/* glibc's struct pthread_attr, as pthread_attr_init leaves it */
			int32_t schedparam, schedpolicy, flags, pad;
			uint64_t guardsize, stackaddr, stacksize, extension, unused;
		} attr = { .flags = 1 /* ATTR_FLAG_DETACHSTATE */, .guardsize = 4096 };
		if ((err = inject_push(ij, &zero, sizeof(zero), &a_slot)) ||
		    (err = inject_push(ij, &attr, sizeof(attr), &a_attr))) {
			close(pidfd);
			return err;
		}
		uint64_t args[4] = { a_slot, a_attr, fn[INJ_PAUSE], 0 };
		err = inject_call(ij, fn[INJ_PTHREAD_CREATE], args, 4, &ret);
		if (err) {
			close(pidfd);
			return err;
		}
		if (as_int(ret) == 0 && inject_peek(ij->pid, a_slot, &self, sizeof(self)) == 0 && self &&
		    inject_peek(ij->pid, self + ij->lc.tid_off, &tid, sizeof(tid)) == 0 && tid > 0) {
			inject_sched_copy(ij, tid);	/* not the boost: the program's own */
			inject_note(ij, "thread %d started to load the agent", (int)tid);
			res->boot_tid = tid;
			res->boot_self = self;
			close(pidfd);
			return 0;
		}
		/* no thread (EAGAIN: a limit), or one we cannot name (it stays in pause()) */
		inject_note(ij, "pthread_create: %d; loading in this thread", as_int(ret));
	}
	if (!start) {
		/* a memfd in the target, filled by us */
		char path[64];
		int mfd = -1;
		uint64_t a_name, a_path;
		if (f_memfd && inject_push(ij, "libmfx.so", 10, &a_name) == 0) {
			uint64_t args[2] = { a_name, MFD_CLOEXEC };
			if (inject_call(ij, f_memfd, args, 2, &ret) == 0 && as_int(ret) >= 0)
				mfd = as_int(ret);
		}
		int local = mfd >= 0 ? pidfd_get(ij->pid, pidfd, mfd) : -1;
		int copied = local >= 0 ? copy_file(agent, local) : -1;
		inject_note(ij, "memfd %d filled: %d", mfd, copied);
		if (copied == 0) {
			snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
		} else {
			/* no memfd: the agent's own path, if the target sees it */
			char root[4200];
			struct stat a, b;
			snprintf(root, sizeof(root), "/proc/%d/root%s", (int)ij->pid, agent);
			if (stat(agent, &a) || stat(root, &b) || a.st_ino != b.st_ino ||
			    a.st_dev != b.st_dev || strlen(agent) >= sizeof(path)) {
				snprintf(res->msg, sizeof(res->msg),
					 "cannot give the agent to the process (no memfd, and %.300s is "
					 "not visible in its mount namespace)", agent);
				err = -MFX_E_AGENT;
			} else {
				snprintf(path, sizeof(path), "%s", agent);
			}
		}
		if (local >= 0)
			close(local);
		uint64_t h = 0;
		if (!err && (err = inject_push(ij, path, strlen(path) + 1, &a_path)) == 0) {
			uint64_t args[2] = { a_path, RTLD_NOW | RTLD_LOCAL };
			err = inject_call(ij, f_dlopen, args, 2, &h);
			if (!err && !h) {
				char m[400];
				remote_dlerror(ij, f_dlerror, m, sizeof(m));
				snprintf(res->msg, sizeof(res->msg), "dlopen of the agent failed: %s",
					 m[0] ? m : "unknown error");
				err = -MFX_E_AGENT;
			}
		}
		if (mfd >= 0) {
			uint64_t args[1] = { (uint64_t)mfd };
			inject_call(ij, f_close, args, 1, &ret);
		}
		/* The agent's constructor opened its doorbell and started its
		 * thread (it saw itself loaded from /proc/self/fd): the hold can
		 * end here, mfx rings. */
		uint64_t l_addr = 0;
		struct mfx_doorbell b;
		if (!err && h && af.bell_off && inject_peek(ij->pid, h, &l_addr, sizeof(l_addr)) == 0 &&
		    inject_peek(ij->pid, l_addr + af.bell_off, &b, sizeof(b)) == 0 &&
		    b.magic == MFX_DOORBELL_MAGIC && b.pid && b.fd >= 0) {
			inject_note(ij, "agent loaded; its thread is up: mfx rings after the hold");
			res->ring = 1;
			close(pidfd);
			return 0;
		}
		uint64_t a_sym;
		if (!err && (err = inject_push(ij, "mfx_agent_start", 16, &a_sym)) == 0) {
			uint64_t args[2] = { h, a_sym };
			err = inject_call(ij, f_dlsym, args, 2, &start);
			if (!err && !start) {
				snprintf(res->msg, sizeof(res->msg), "the agent has no mfx_agent_start");
				err = -MFX_E_AGENT;
			}
		}
	}
	inject_note(ij, "agent loaded, mfx_agent_start at %#llx", (unsigned long long)start);
	/* the control channel */
	int32_t sv[2] = { -1, -1 };
	uint64_t a_sv;
	if (!err && (err = inject_push(ij, sv, sizeof(sv), &a_sv)) == 0) {
		uint64_t args[4] = { AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a_sv };
		err = inject_call(ij, f_socketpair, args, 4, &ret);
		if (!err && as_int(ret) != 0) {
			snprintf(res->msg, sizeof(res->msg), "socketpair failed in the process");
			err = -MFX_E_REMOTE;
		}
		if (!err)
			err = inject_peek(ij->pid, a_sv, sv, sizeof(sv));
	}
	if (!err) {
		res->chan = pidfd_get(ij->pid, pidfd, sv[1]);
		if (res->chan < 0) {
			snprintf(res->msg, sizeof(res->msg), "pidfd_getfd: %s", strerror(-res->chan));
			err = -MFX_E_KERNEL;
		}
	}
	if (!err) {
		uint64_t args[1] = { (uint64_t)(uint32_t)sv[0] };
		err = inject_call(ij, start, args, 1, &ret);
		if (!err && as_int(ret) < 0) {
			err = as_int(ret) == -EBUSY ? -MFX_E_BUSY : -MFX_E_AGENT;
			snprintf(res->msg, sizeof(res->msg), "the agent did not start: %s",
				 strerror(-as_int(ret)));
		} else if (!err) {
			sv[0] = -1;	/* the agent's thread owns it */
		}
	}
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0) {
			uint64_t args[1] = { (uint64_t)(uint32_t)sv[i] };
			inject_call(ij, f_close, args, 1, &ret);
		}
	if (err && res->chan >= 0) {
		close(res->chan);
		res->chan = -1;
	}
	close(pidfd);
	return err;
}

int inject_trim(struct inject *ij, uint64_t *ret, uint64_t *trim_ns)
{
	uint64_t fn = ij->lc.fn[INJ_MALLOC_TRIM];
	if (!fn)
		return -MFX_E_NOSYM;
	uint64_t t0 = now_ns();
	uint64_t args[1] = { 0 };
	int err = inject_call(ij, fn, args, 1, ret);
	*trim_ns = now_ns() - t0;
	return err;
}
