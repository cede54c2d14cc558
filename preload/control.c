/*
 * control.c - attach mode: the agent's own thread inside a live process.
 *
 * mfx calls mfx_agent_start(sock) with a remote call on the thread it holds;
 * it only starts this thread and returns, so the held thread is released at
 * once.  The thread then serves the control channel (include/mfx/control.h):
 * START (trace and spool fds arrive with it) -> resolve the real functions,
 * begin recording, patch the GOT; TRIM -> malloc_trim(0) here, on our own
 * thread, so no thread of the program pauses; STOP or EOF (mfx went away) ->
 * restore the GOT, end recording, give the spool back.  The library stays
 * loaded and dormant; a later attach starts a new thread.
 *
 * The thread blocks every signal (the program's handlers never run on it)
 * and is marked busy for the hooks: its own allocations are never recorded.
 */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "include/mfx/control.h"
#include "preload/internal.h"
#include "preload/record.h"

static volatile int ctl_running;

#define START_TIMEOUT_MS 15000
#define TICK_MS 50

static int send_msg(int sock, uint16_t type, int32_t status, uint32_t slots, uint32_t modules,
		    uint64_t t_ns, uint64_t value)
{
	struct mfx_ctl m = { MFX_CTL_MAGIC, MFX_CTL_VERSION, type, status, slots, modules, 0,
			     t_ns, value };
	ssize_t r;
	do
		r = send(sock, &m, sizeof(m), MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r == (ssize_t)sizeof(m) ? 0 : -1;
}

/* Receive one message; fds (up to 2) from SCM_RIGHTS.  Returns the bytes
 * received, 0 at EOF, -1 on error. */
static ssize_t recv_msg(int sock, void *buf, size_t len, int *fds, int *nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			     .msg_controllen = sizeof(cm.b) };
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	*nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); r > 0 && c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < n; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (*nfds < 2)
					fds[(*nfds)++] = fd;
				else
					close(fd);
			}
		}
	return r;
}

static int wait_readable(int sock, int ms)
{
	struct pollfd p = { sock, POLLIN, 0 };
	int r;
	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r;
}

/* The allocator's totals into the trace (attach: the window does not know
 * the blocks allocated before it). */
static void mark_mallinfo(const char *when)
{
	struct mallinfo2 (*fn)(void) = (struct mallinfo2 (*)(void))got_find_defined("mallinfo2");
	if (!fn)
		return;
	struct mallinfo2 mi = fn();
	uint64_t v[7] = { mi.arena, mi.ordblks, mi.hblks, mi.hblkhd, mi.uordblks, mi.fordblks,
			  mi.keepcost };
	agent_mark(MFX_MARK_MALLINFO, v, 7, when);
}

static void do_trim(int sock)
{
	uint64_t t0 = agent_now_ns();
	int r = agent_real.malloc_trim ? agent_real.malloc_trim(0) : -1;
	send_msg(sock, MFX_CTL_TRIMMED, r < 0 ? -ENOSYS : 0, 0, 0, agent_now_ns() - t0,
		 (uint64_t)r);
}

static void *control_main(void *arg)
{
	int sock = (int)(intptr_t)arg;
	tls_busy = 1;
	prctl(PR_SET_NAME, "mfx-agent", 0, 0, 0);

	struct {
		struct mfx_ctl m;
		char text[4096];
	} in;
	int fds[2] = { -1, -1 }, nfds = 0;
	const char *why = "detached";
	if (wait_readable(sock, START_TIMEOUT_MS) <= 0)
		goto out;
	ssize_t r = recv_msg(sock, &in, sizeof(in) - 1, fds, &nfds);
	if (r < (ssize_t)sizeof(in.m) || in.m.magic != MFX_CTL_MAGIC || in.m.type != MFX_CTL_START ||
	    nfds < 1 || in.m.text_len > r - (ssize_t)sizeof(in.m)) {
		send_msg(sock, MFX_CTL_STARTED, -EPROTO, 0, 0, 0, 0);
		goto out;
	}
	in.text[in.m.text_len] = 0;
	struct agent_config c;
	int err = agent_parse_config(in.text, &c);
	c.trace_fd = fds[0];
	c.spool_fd = nfds > 1 ? fds[1] : -1;
	c.attach = 1;
	fds[0] = -1;	/* the recording owns it now */
	unsigned slots = 0, modules = 0;
	if (!err)
		err = agent_resolve(1);
	if (!err)
		err = agent_begin(&c);
	if (!err) {
		mark_mallinfo("start");
		got_patch_all(&slots, &modules);
	}
	if (c.spool_fd >= 0)
		close(c.spool_fd);	/* mapped; not needed any more */
	fds[1] = -1;
	send_msg(sock, MFX_CTL_STARTED, err, slots, modules, agent_now_ns(), 0);
	if (err)
		goto out;

	for (;;) {
		int w = wait_readable(sock, TICK_MS);
		if (w < 0) {
			why = "error";
			break;
		}
		if (w == 0) {
			got_patch_new();	/* libraries loaded behind dlopen's back */
			continue;
		}
		int dummy[2], nd;
		r = recv_msg(sock, &in, sizeof(in.m), dummy, &nd);
		for (int i = 0; i < nd; i++)
			close(dummy[i]);
		if (r <= 0) {
			why = "detached";	/* mfx is gone: stop on our own */
			break;
		}
		if (r < (ssize_t)sizeof(in.m) || in.m.magic != MFX_CTL_MAGIC)
			continue;
		if (in.m.type == MFX_CTL_TRIM) {
			do_trim(sock);
		} else if (in.m.type == MFX_CTL_STOP) {
			why = "stop";
			break;
		}
	}
	got_restore_all();
	if (agent_recording())
		mark_mallinfo("end");
	agent_end(why);
	rec_spool_detach();
	send_msg(sock, MFX_CTL_STOPPED, 0, 0, 0, agent_now_ns(), 0);
out:
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	close(sock);
	__atomic_store_n(&ctl_running, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* Called by mfx in the held thread: start the control thread on `sock`
 * and return.  0, -EBUSY (an attach is already in progress), -errno. */
MFX_EXPORT int mfx_agent_start(int sock)
{
	if (__atomic_exchange_n(&ctl_running, 1, __ATOMIC_ACQ_REL))
		return -EBUSY;
	int busy = tls_busy;
	tls_busy = 1;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 256 * 1024);
	pthread_t t;
	int err = pthread_create(&t, &a, control_main, (void *)(intptr_t)sock);
	pthread_attr_destroy(&a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	tls_busy = busy;
	if (err) {
		__atomic_store_n(&ctl_running, 0, __ATOMIC_RELEASE);
		return -err;
	}
	return 0;
}
