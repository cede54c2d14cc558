/*
 * load.c - put the agent into a live process (load.h).
 *
 * The hold of a thread of the program makes one call:
 *
 *   pthread_create(&t, &detached_small_stack, sleep, 3)
 *
 * and ends.  The new thread is ours: it sleeps with the held thread's call
 * mask (all signals blocked but the faults, SIGSETXID and our completion
 * signal), and mfx holds *it* - no thread of the program waits - for:
 *
 *   memfd_create("libmfx.so")     mfx fills it (pidfd_getfd, sendfile)
 *   dlopen("//proc/self/fd/N")    the agent's constructor opens its
 *                                 doorbell and starts its own thread
 *   close(N)
 *
 * and then lets its sleep() return 0: the thread ends.  Its signal frame
 * (call.c) resumes it to that same end, so if mfx dies at any point the
 * thread finishes what it was doing and ends; and if mfx dies before it
 * took the thread, sleep(3) ends it.  Its tid is read from struct pthread
 * (the target's pid namespace's number) and translated to the host's
 * (tasks.c).  The held thread loads the agent itself instead when it was
 * stopped running libc's own code (it might be inside start_thread's exit
 * path, which holds the thread-stack lock pthread_create takes and is not
 * exported, so the safe point cannot see it), when glibc's layout is not
 * known (glibc.h), with MFX_NO_BOOT=1, or when our thread was gone before
 * mfx took it.
 *
 * Two attaches at once: the first copy's constructor starts the agent;
 * a second copy (another mfx's memfd) finds the first mapped when its own
 * constructor runs - dlopen runs constructors under the loader lock, so
 * the two never run at once - and stays inert (preload/control.c); its
 * mfx unloads it again and says another mfx is attaching.  When the first
 * copy's memfd is closed already and ours got its number, dlopen finds
 * that copy by its name and gives it back instead: the same answer.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mfx/control.h"
#include "common/error.h"
#include "common/procfs.h"
#include "common/util.h"
#include "inject/agent.h"
#include "inject/glibc.h"
#include "inject/internal.h"
#include "inject/load.h"

#define LOADER_STACK (512u << 10)
#define LOADER_SLEEP_S 3	/* our thread ends by itself after this, mfx or not */

static int32_t as_int(uint64_t rax)
{
	return (int32_t)(uint32_t)rax;
}

/* src into dst, by the kernel (sendfile). */
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

static void remote_close(struct inject *h, int fd)
{
	uint64_t args[1] = { (uint64_t)(uint32_t)fd }, r;
	if (fd >= 0)
		inject_call(h, h->lc.fn[INJ_CLOSE], args, 1, &r);
}

/* The old way, or an agent mapped already whose thread is gone:
 * socketpair() in the process (we take one end), mfx_agent_start(other). */
static int start_in(struct inject *h, uint64_t base, struct inject_agent_result *res)
{
	int32_t sv[2] = { -1, -1 };
	uint64_t a_sv, ret = 0;
	int err = inject_push(h, sv, sizeof(sv), &a_sv);
	if (!err) {
		uint64_t args[4] = { AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a_sv };
		err = inject_call(h, h->lc.fn[INJ_SOCKETPAIR], args, 4, &ret);
	}
	if (!err && (inject_peek(h->pid, a_sv, sv, sizeof(sv)) || sv[0] < 0 || sv[1] < 0))
		err = -MFX_E_REMOTE;
	if (!err && (res->chan = agent_take_fd(h->pid, sv[1], S_IFSOCK, "socket:")) < 0)
		err = res->chan;
	if (!err) {
		uint64_t args[1] = { (uint64_t)(uint32_t)sv[0] };
		err = inject_call(h, base + agent_file.start_off, args, 1, &ret);
		if (!err && inject_exact_ret(h) && as_int(ret) < 0)
			err = as_int(ret) == -EBUSY ? -MFX_E_BUSY : -MFX_E_AGENT;
		else if (!err)
			sv[0] = -1;	/* the agent's thread owns it */
	}
	remote_close(h, sv[1]);
	remote_close(h, sv[0]);
	if (err && res->chan >= 0) {
		close(res->chan);
		res->chan = -1;
	}
	if (err && !res->msg[0])
		snprintf(res->msg, sizeof(res->msg), "the agent did not start: %s", mfx_strerror(-err));
	return err;
}

/* A memfd in the process, filled with the agent by us: its fd there, and
 * the inode that names its mapping. */
static int memfd_in(struct inject *h, const char *agent, int *mfd, uint64_t *ino)
{
	uint64_t a_name, ret = (uint64_t)-1;
	*mfd = -1;
	int err = inject_push(h, "libmfx.so", 10, &a_name);
	if (!err) {
		uint64_t args[2] = { a_name, MFD_CLOEXEC };
		err = inject_call(h, h->lc.fn[INJ_MEMFD_CREATE], args, 2, &ret);
	}
	if (!err && as_int(ret) < 0)
		err = -MFX_E_REMOTE;
	if (err)
		return err;
	*mfd = as_int(ret);
	int local = agent_take_fd(h->pid, *mfd, S_IFREG, "/memfd:libmfx.so");
	struct stat st;
	if (local < 0)
		return local;
	err = fstat(local, &st) ? -errno : st.st_size ? -EBADF : copy_file(agent, local);
	*ino = st.st_ino;
	close(local);
	return err;
}

static uint64_t copy_with_inode(pid_t pid, uint64_t ino, int *inert)
{
	struct agent_copy c[AGENT_MAX_COPIES];
	int others, n = agent_copies(pid, c, AGENT_MAX_COPIES, &others);
	for (int i = 0; i < n; i++)
		if (c[i].inode == ino) {
			*inert = c[i].inert;
			return c[i].base;
		}
	return 0;
}

static void dlopen_failed(struct inject *h, struct inject_agent_result *res)
{
	uint64_t p = 0;
	char m[400] = "";
	if (inject_exact_ret(h) && h->lc.fn[INJ_DLERROR] &&
	    inject_call(h, h->lc.fn[INJ_DLERROR], NULL, 0, &p) == 0 && p &&
	    inject_peek(h->pid, p, m, sizeof(m) - 1) == 0)
		m[sizeof(m) - 1] = 0;
	snprintf(res->msg, sizeof(res->msg), "dlopen of the agent failed in the process: %s",
		 m[0] ? m : "no reason given");
}

static int another_mfx(struct inject_agent_result *res)
{
	snprintf(res->msg, sizeof(res->msg), "another mfx is attaching to it at the same time");
	return -MFX_E_BUSY;
}

/* dlopen() gave back a library loaded already by our memfd's name: one
 * loaded from an fd that had the number our memfd has now (it was closed,
 * and the number came to us) - another mfx's agent, loaded a moment ago
 * (MFX_AGENT_DLNAME).  ld.so matches by name before it opens the file, so
 * our copy was never loaded.  Give the reference back. */
static int name_taken(struct inject *h, uint64_t handle, const char *path,
		      struct inject_agent_result *res)
{
	uint64_t l_addr = 0, args[1] = { handle }, r;
	struct agent_copy c[AGENT_MAX_COPIES];
	int others, agent = 0;
	int n = inject_peek(h->pid, handle, &l_addr, sizeof(l_addr)) ? 0 :
		agent_copies(h->pid, c, AGENT_MAX_COPIES, &others);
	for (int i = 0; i < n; i++)
		agent |= c[i].base == l_addr;
	inject_call(h, h->lc.fn[INJ_DLCLOSE], args, 1, &r);
	inject_note(h, "dlopen(%s) gave %s loaded already at %#llx", path,
		    agent ? "an agent" : "a library", (unsigned long long)l_addr);
	if (agent)
		return another_mfx(res);
	snprintf(res->msg, sizeof(res->msg), "the process has another library loaded as %s", path);
	return -MFX_E_AGENT;
}

/* memfd_create, fill, dlopen, close in the held thread h (ours or not). */
static int load_in(struct inject *h, const char *agent, struct inject_agent_result *res)
{
	int mfd, inert = 0;
	uint64_t ino = 0, a_path, handle = 0;
	char path[64];
	int err = memfd_in(h, agent, &mfd, &ino);
	if (!err) {
		snprintf(path, sizeof(path), MFX_AGENT_DLNAME "%d", mfd);
		err = inject_push(h, path, strlen(path) + 1, &a_path);
	}
	if (!err) {
		uint64_t args[2] = { a_path, RTLD_NOW | RTLD_LOCAL };
		err = inject_call(h, h->lc.fn[INJ_DLOPEN], args, 2, &handle);
	}
	uint64_t base = err ? 0 : copy_with_inode(h->pid, ino, &inert);
	if (!base)	/* loaded, the agent closed it itself (preload/control.c) */
		remote_close(h, mfd);
	inject_note(h, "agent %s at %#llx", base ? inert ? "loaded, inert" : "loaded" : "not loaded",
		    (unsigned long long)base);
	if (!err && !base && handle && inject_exact_ret(h))
		return name_taken(h, handle, path, res);
	if (!err && !base) {
		dlopen_failed(h, res);
		return -MFX_E_AGENT;
	}
	if (!err && inert) {	/* another mfx's copy came first: unload ours */
		uint64_t args[1] = { handle }, r;
		if (inject_exact_ret(h) && handle)
			inject_call(h, h->lc.fn[INJ_DLCLOSE], args, 1, &r);
		return another_mfx(res);
	}
	struct mfx_doorbell b;
	if (!err && inject_peek(h->pid, base + agent_file.bell_off, &b, sizeof(b)) == 0 &&
	    b.magic == MFX_DOORBELL_MAGIC && b.pid && b.fd >= 0) {
		res->ring = 1;	/* its thread is up: mfx rings after the hold */
		return 0;
	}
	return err ? err : start_in(h, base, res);
}

/* Can the hold hand the loading to a new thread?  Not from a thread in
 * libc's own code (outside a system call): it might hold the thread-stack
 * lock pthread_create takes. */
static int boot_ok(const struct inject *h, int no_boot)
{
	const struct inject_libc *lc = &h->lc;
	struct glibc_attr a;
	if (no_boot || !lc->fn[INJ_PTHREAD_CREATE] || !lc->fn[INJ_SLEEP] || !lc->tid_off ||
	    glibc_attr_detached(lc, LOADER_STACK, &a))
		return 0;
	return (long)h->saved.orig_rax >= 0 || !inject_in_text(&lc->libc, h->saved.rip);
}

/* pthread_create(&t, detached, sleep, 3) in the held thread: our thread's
 * host tid and pthread_t, or 0. */
static pid_t boot_thread(struct inject *h, uint64_t *self)
{
	struct glibc_attr attr;
	uint64_t a_slot, a_attr, zero = 0;
	int32_t ns_tid = 0;
	pid_t tid = 0;
	*self = 0;
	if (glibc_attr_detached(&h->lc, LOADER_STACK, &attr) || inject_push(h, &zero, 8, &a_slot) ||
	    inject_push(h, &attr, sizeof(attr), &a_attr))
		return 0;
	uint64_t args[4] = { a_slot, a_attr, h->lc.fn[INJ_SLEEP], LOADER_SLEEP_S };
	if (inject_call_noret(h, h->lc.fn[INJ_PTHREAD_CREATE], args, 4) ||
	    inject_peek(h->pid, a_slot, self, 8) || !*self ||
	    inject_peek(h->pid, *self + h->lc.tid_off, &ns_tid, 4) || ns_tid <= 0 ||
	    inject_host_tid(h->pid, ns_tid, &tid)) {
		inject_note(h, "no thread of ours (its tid %d not among the process's threads)", ns_tid);
		return 0;	/* none, or one we cannot name: it ends by itself */
	}
	inject_note(h, "thread %d (%d in its namespace) started to load the agent", (int)tid, ns_tid);
	return tid;
}

/* A stop (SIGSTOP) during the attach: wait, a while, for the SIGCONT. */
static int still_stopped(pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		int st = procfs_state(pid);
		if (st != 'T' && st != 't')
			return 0;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	return 1;
}

/* Hold our thread and load the agent in it. */
static int load_booted(pid_t pid, const char *agent, const struct inject_opts *o,
		       const struct inject_libc *lc, pid_t tid, uint64_t self,
		       struct inject_agent_result *res)
{
	struct inject_opts bo = *o;
	struct inject *b;
	struct inject_stats st;
	bo.parked_tid = tid;
	bo.parked_self = self;
	bo.timeout_ns = (LOADER_SLEEP_S - 1) * 1000000000ull;
	bo.lc = lc;
	int err = inject_open(pid, &bo, &b, NULL);
	if (err == -MFX_E_STOPPED && !still_stopped(pid))
		err = inject_open(pid, &bo, &b, NULL);
	if (err)
		return err;
	err = load_in(b, agent, res);
	inject_close(b, &st);	/* its sleep() returns: it ends (detached) */
	res->boot_ns = st.held_ns;
	return err;
}

static int room_check(const struct inject_preflight *pf, struct inject_err *e)
{
	uint64_t left = pf->as_limit > pf->as_used ? pf->as_limit - pf->as_used : 0;
	if (pf->as_limit && left < AGENT_AS_NEED) {
		snprintf(e->detail, sizeof(e->detail), "its address-space limit (RLIMIT_AS, ulimit -v) "
			 "leaves %llu MiB free and the agent needs about %llu MiB; the program itself "
			 "would run short", (unsigned long long)(left >> 20),
			 (unsigned long long)(AGENT_AS_NEED >> 20));
		return -MFX_E_RLIMIT;
	}
	if (pf->nofile_limit && pf->nofile_limit < pf->nofile_used + AGENT_FDS_NEED) {
		snprintf(e->detail, sizeof(e->detail), "it has %llu of its %llu file descriptors open "
			 "(RLIMIT_NOFILE) and the agent needs up to %d",
			 (unsigned long long)pf->nofile_used, (unsigned long long)pf->nofile_limit,
			 AGENT_FDS_NEED);
		return -MFX_E_RLIMIT;
	}
	return 0;
}

static int load_held(pid_t pid, const char *agent, const struct inject_opts *o, int no_boot,
		     uint64_t base, struct inject_agent_result *res, struct inject_err *e)
{
	struct inject *h;
	int err = inject_open(pid, o, &h, e);
	if (err == -MFX_E_STOPPED && !still_stopped(pid))
		err = inject_open(pid, o, &h, e);
	if (err)
		return err;
	pid_t tid = 0;
	uint64_t self = 0;
	struct inject_libc lc = h->lc;
	if (base)
		err = start_in(h, base, res);
	else if (boot_ok(h, no_boot))
		tid = boot_thread(h, &self);
	if (!base && !tid)
		err = load_in(h, agent, res);
	inject_close(h, &res->hold);
	if (tid)
		err = load_booted(pid, agent, o, &lc, tid, self, res);
	return err;
}

int inject_agent_load(pid_t pid, const char *agent, const struct inject_opts *o, int no_boot,
		      struct inject_agent_result *res, struct inject_err *e)
{
	struct inject_preflight pf;
	struct agent_copy c[AGENT_MAX_COPIES];
	int others;
	memset(res, 0, sizeof(*res));
	res->chan = -1;
	int err = inject_check(pid, &pf, e);
	if (!err)
		err = room_check(&pf, e);
	if (!err && (err = agent_file_read(agent)))
		snprintf(res->msg, sizeof(res->msg), "cannot read the agent %.300s: %s", agent,
			 mfx_strerror(-err));
	if (err)
		return err;
	int n = agent_copies(pid, c, AGENT_MAX_COPIES, &others);
	if (others) {
		snprintf(res->msg, sizeof(res->msg), "another version of the mfx agent is loaded in "
			 "it; use the mfx that loaded it, or restart the process");
		return -MFX_E_AGENT;
	}
	uint64_t base = 0;
	for (int i = 0; i < n && !base; i++)
		base = c[i].inert ? 0 : c[i].base;
	res->reused = base != 0;
	err = load_held(pid, agent, o, no_boot, base, res, e);
	if (err == -MFX_E_EXITED && !base && !no_boot && inject_gone(pid, &pf) == 0) {
		res->msg[0] = 0;	/* our thread was gone: the held thread loads it */
		err = load_held(pid, agent, o, 1, 0, res, e);
	}
	int gone = err ? inject_gone(pid, &pf) : 0;
	return gone ? gone : err;
}
