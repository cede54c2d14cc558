/*
 * control.c - attach mode: the agent's own thread inside a live process.
 *
 * On the first attach the agent's constructor (run by the remote dlopen on
 * the thread mfx holds) opens the doorbell and starts this thread
 * (control_autostart); or, the old way, mfx calls mfx_agent_start(sock).
 * Either returns at once, so the held thread is released.  The thread then
 * serves sessions
 * (include/mfx/control.h): START (trace and spool fds arrive with it) ->
 * resolve the real functions, begin recording, patch the GOT; TRIM ->
 * malloc_trim(0) here, on our own thread, so no thread of the program
 * pauses; INFO -> malloc_info(3) into a file mfx passes; STOP or EOF (mfx
 * went away) -> restore the GOT, end recording, give the spool back.
 *
 * After its first session the thread stays, dormant, blocked in recvmsg() on
 * the doorbell: a socketpair whose sending end's fd number is published in
 * mfx_agent_doorbell.  A later mfx (attach, trim, snapshot) takes that end
 * with pidfd_getfd(2) -- the same permission as ptrace, but no thread is
 * stopped -- and rings with a fresh socket of its own, which becomes the
 * session.  A ring during a recording window is served on the side (TRIM,
 * INFO; START is refused busy).
 *
 * The thread blocks every signal (the program's handlers never run on it)
 * and is marked busy for the hooks: its own allocations are never recorded.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfx/allocators.h"
#include "mfx/control.h"
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
	return mfx_ctl_send(sock, &m, sizeof(m), NULL, 0, 0);
}

/* Receive one message; fds (up to MFX_CTL_MAXFDS) from SCM_RIGHTS.  Returns the bytes
 * received, 0 at EOF, -1 on error. */
static ssize_t recv_msg(int sock, void *buf, size_t len, int *fds, int *nfds)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(MFX_CTL_MAXFDS * sizeof(int))];
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
				if (*nfds < MFX_CTL_MAXFDS)
					fds[(*nfds)++] = fd;
				else
					close(fd);
			}
		}
	return r;
}

/* The other end of our session socket is closed (AF_UNIX sets POLLHUP
 * once the peer has shut down or exited). */
static int peer_gone(int sock)
{
	struct pollfd p = { sock, POLLRDHUP, 0 };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
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

/* Read by mfx with process_vm_readv (attach/agentctl.c). */
MFX_EXPORT struct mfx_doorbell mfx_agent_doorbell = { MFX_DOORBELL_MAGIC, 0, -1, 0 };
static int bell_rx = -1;	/* our end: rings arrive here */
static uint64_t bell_rx_ino;

/* Our sockets, known by inode (agent_fd_is in internal.h). */
static uint64_t sock_ino(int fd)
{
	return agent_fd_ino(fd, S_IFSOCK);
}

static int still_ours(int fd, uint64_t ino)
{
	return agent_fd_is(fd, ino, S_IFSOCK);
}

/* glibc's mallinfo2() totals (only when glibc serves malloc: under
 * jemalloc or tcmalloc glibc's arenas are all but empty). */
static int get_mallinfo(uint64_t v[7])
{
	struct mallinfo2 (*fn)(void) = (struct mallinfo2 (*)(void))got_find_defined("mallinfo2");
	if (!fn || alloc_kind() != MFX_ALLOC_GLIBC)
		return -1;
	struct mallinfo2 mi = fn();
	uint64_t w[7] = { mi.arena, mi.ordblks, mi.hblks, mi.hblkhd, mi.uordblks, mi.fordblks,
			  mi.keepcost };
	memcpy(v, w, sizeof(w));
	return 0;
}

/* The allocator's figures at the window's start or end (attach: the window
 * does not know the blocks allocated before it): an ALLOC mark.  (Older
 * agents wrote glibc's as a MALLINFO mark; the analyzer reads both.  One
 * mallinfo2() call per end is enough: it walks every free chunk of every
 * arena, each under its lock.) */
static void mark_window(unsigned phase)
{
	alloc_mark(phase);
}

/* "VALID V0 V1 ..." of alloc_stats() */
static void put_figures(FILE *f, const char *key)
{
	uint64_t v[MFX_AF_NFIELDS];
	uint32_t valid;
	alloc_stats(v, &valid);
	fprintf(f, "%s %u", key, valid);
	for (int i = 0; i < MFX_AF_NFIELDS; i++)
		fprintf(f, " %llu", (unsigned long long)v[i]);
	fputc('\n', f);
}

/*
 * TRIM: the allocator's own release (malloc_trim(0), jemalloc's purge,
 * tcmalloc's ReleaseFreeMemory, mi_collect(true)) on this thread.  With a
 * file from mfx (fd), its figures before and after go into it:
 *   allocator NAME / call CALL / returned R / before VALID V... / after VALID V...
 * During a window the same figures are ALLOC marks (TRIM_BEFORE/AFTER).
 */
static void do_trim(int sock, int fd)
{
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f && fd >= 0)
		close(fd);
	int rec_on = agent_recording();
	if (f)
		put_figures(f, "before");
	if (rec_on)
		alloc_mark(MFX_AP_TRIM_BEFORE);
	int64_t ret = 0;
	const char *call = "";
	uint64_t t0 = agent_now_ns();
	int err = alloc_release(&ret, &call);
	uint64_t dt = agent_now_ns() - t0;
	if (rec_on)
		alloc_mark(MFX_AP_TRIM_AFTER);
	if (f) {
		put_figures(f, "after");
		fprintf(f, "allocator %s\ncall %s\nreturned %lld\n", alloc_name(), call, (long long)ret);
		if (fclose(f) && !err)
			err = -EIO;
	}
	send_msg(sock, MFX_CTL_TRIMMED, err, 0, 0, dt, (uint64_t)ret);
}

/* INFO: into the file mfx sent (fd):
 *   allocator NAME MODULE / figures VALID V... / call CALL / direct 0|1
 *   [arena I THREADS ACTIVE DIRTY MUZZY RESIDENT]...  (jemalloc, per arena)
 *   [mallinfo2 arena ordblks hblks hblkhd uordblks fordblks keepcost]  (glibc)
 *   an empty line, then the allocator's own statistics text (alloc_print). */
static void do_info(int sock, int fd)
{
	int err = -EBADF;
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f) {
		uint64_t v[7];
		fprintf(f, "allocator %s %s\n", alloc_name(), alloc_module());
		put_figures(f, "figures");
		fprintf(f, "call %s\ndirect %d\n", mfx_release_call[alloc_kind()], alloc_direct());
		alloc_arenas(f);
		if (get_mallinfo(v) == 0)
			fprintf(f, "mallinfo2 %llu %llu %llu %llu %llu %llu %llu\n",
				(unsigned long long)v[0], (unsigned long long)v[1],
				(unsigned long long)v[2], (unsigned long long)v[3],
				(unsigned long long)v[4], (unsigned long long)v[5],
				(unsigned long long)v[6]);
		fputc('\n', f);
		err = alloc_print(f);
		if (fclose(f) && !err)
			err = -EIO;
	} else if (fd >= 0) {
		close(fd);
	}
	send_msg(sock, MFX_CTL_INFOED, err, 0, 0, 0, 0);
}

/* A session: the channel of one mfx command. */
struct session {
	int sock;		/* -1: none */
	uint64_t ino;		/* its inode: still ours? */
	int recording;		/* START accepted, not stopped yet */
	uint64_t deadline_ns;	/* drop a session that never says anything */
};

static void session_close(struct session *se)
{
	if (still_ours(se->sock, se->ino))
		close(se->sock);
	se->sock = -1;
	se->recording = 0;
}

/*
 * mfx (root) lowers this thread's nice for a START or STOP exchange on a
 * busy machine (attach/stopping.c).  Once the exchange is over the thread
 * takes the program's nice again -- its main thread's, field 19 of
 * /proc/self/stat, as mfx gives it after the first attach -- by itself, so
 * a killed mfx leaves nothing changed.  (Raising nice needs no right.)
 */
static void nice_restore(void)
{
	char buf[512];
	if (agent_read_small("/proc/self/stat", buf, sizeof(buf)) <= 0)
		return;
	char *p = strrchr(buf, ')');	/* comm may hold spaces: fields follow ')' */
	for (int field = 2; p && field < 19; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return;
	int want = atoi(p + 1);
	errno = 0;
	int now = getpriority(PRIO_PROCESS, 0);
	if (!errno && now < want)
		setpriority(PRIO_PROCESS, 0, want);
}

static void stop_recording(struct session *se, const char *why)
{
	got_restore_all();
	int was = agent_recording();
	agent_disarm();		/* the window ends here; the allocator's figures may wait for its locks */
	if (was)
		mark_window(MFX_AP_END);
	agent_end(why);
	rec_spool_detach();
	fork_watch_clear();	/* children forked from now on record nothing */
	agent_memfd_release();
	se->recording = 0;
	nice_restore();
}

static void start_recording(struct session *se, struct mfx_ctl *m, char *text, ssize_t r,
			    int *fds, int nfds)
{
	int busy = se->recording || agent_recording();	/* another mfx records */
	if (busy || nfds < 1 || m->text_len > r - (ssize_t)sizeof(*m)) {
		send_msg(se->sock, MFX_CTL_STARTED, busy ? -EBUSY : -EPROTO, 0, 0, 0, 0);
		return;	/* the fds sent are closed by the caller */
	}
	text[m->text_len] = 0;
	struct agent_config c;
	int err = agent_parse_config(text, &c);
	c.trace_fd = fds[0];
	c.attach = 1;
	fds[0] = -1;	/* the recording owns it now */
	c.spool_fd = fork_watch_start(m, fds, nfds);	/* and the fds for children */
	unsigned slots = 0, modules = 0;
	if (!err)
		err = agent_resolve(1);
	if (err)
		close(c.trace_fd);	/* agent_begin owns it once called */
	else
		err = agent_begin(&c);
	if (c.spool_fd >= 0)
		close(c.spool_fd);	/* mapped now, or not at all */
	if (err)
		fork_watch_clear();
	if (!err) {
		if (rec.stacks)
			stack_fds_ok();	/* libunwind's fds closed by the program: no stacks */
		/* The allocator's figures (glibc: mallinfo2, every arena's lock
		 * in turn: seconds under a storm of allocating threads) are
		 * read before the hooks go live, so the window does not hold
		 * that wait. */
		alloc_detect();
		agent_loader_lock_find();	/* for children of the window (agentmem.c) */
		mark_window(MFX_AP_START);
		got_patch_all(&slots, &modules);
		agent_window_started();	/* the hooks are live from here */
		se->recording = 1;
	}
	nice_restore();
	send_msg(se->sock, MFX_CTL_STARTED, err, slots, modules, agent_now_ns(), 0);
}

/* One message on the session's channel.  Returns 0 to go on, 1 when the
 * session is over. */
static int session_serve(struct session *se)
{
	struct {
		struct mfx_ctl m;
		char text[4096];
	} in;
	int fds[MFX_CTL_MAXFDS] = { -1, -1, -1, -1 }, nfds = 0, done = 0;
	ssize_t r = still_ours(se->sock, se->ino) ?
		recv_msg(se->sock, &in, sizeof(in) - 1, fds, &nfds) : 0;
	if (r <= 0) {
		if (se->recording) {
			/* mfx is gone (killed, or gave up on us): stop on our own,
			 * and write what the spool holds ourselves (drain.c). */
			rec_mfx_gone("mfx went away during the window: the agent wrote its "
				     "last chunks itself");
			stop_recording(se, "detached");
		}
		return 1;
	}
	se->deadline_ns = 0;
	if (r >= (ssize_t)sizeof(in.m) && in.m.magic == MFX_CTL_MAGIC) {
		switch (in.m.type) {
		case MFX_CTL_START:
			start_recording(se, &in.m, in.text, r, fds, nfds);
			break;
		case MFX_CTL_TRIM:
			do_trim(se->sock, nfds ? fds[0] : -1);
			fds[0] = -1;
			break;
		case MFX_CTL_INFO:
			do_info(se->sock, nfds ? fds[0] : -1);
			fds[0] = -1;
			break;
		case MFX_CTL_STOP:
			/* mfx may have gone right after asking (a second Ctrl-C,
			 * its watchdog): then nobody drains what we give back. */
			if (se->recording && peer_gone(se->sock))
				rec_mfx_gone("mfx went away at the end of the window: the agent "
					     "wrote its last chunks itself");
			if (se->recording)
				stop_recording(se, "stop");
			send_msg(se->sock, MFX_CTL_STOPPED, 0, 0, 0, agent_now_ns(), 0);
			done = 1;
			break;
		}
	}
	for (int i = 0; i < MFX_CTL_MAXFDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return done;
}

/* A ring: the socket it carries, or -1. */
static int bell_take(void)
{
	struct mfx_ctl m;
	int fds[MFX_CTL_MAXFDS], nfds = 0;
	if (!still_ours(bell_rx, bell_rx_ino))
		return -1;
	ssize_t r = recv_msg(bell_rx, &m, sizeof(m), fds, &nfds);
	int sock = -1;
	for (int i = 0; i < nfds; i++) {
		if (sock < 0 && r == (ssize_t)sizeof(m) && m.magic == MFX_CTL_MAGIC &&
		    m.type == MFX_CTL_HELLO)
			sock = fds[i];
		else
			close(fds[i]);
	}
	if (sock >= 0)
		send_msg(sock, MFX_CTL_WELCOME, 0, 0, 0, agent_now_ns(), 0);
	return sock;
}

/* A ring while another session records: serve its one request on the side. */
static void serve_aside(int sock)
{
	struct session side = { sock, sock_ino(sock), 0, 0 };
	for (int n = 0; n < 8 && wait_readable(sock, 1000) > 0; n++)
		if (session_serve(&side))
			break;
	session_close(&side);
}

static int bell_open(void)
{
	int sv[2];
	if (bell_rx >= 0)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	bell_rx = sv[0];
	bell_rx_ino = sock_ino(sv[0]);
	mfx_agent_doorbell.fd = sv[1];
	mfx_agent_doorbell.ino = sock_ino(sv[1]);
	__atomic_store_n(&mfx_agent_doorbell.pid, (int32_t)getpid(), __ATOMIC_RELEASE);
	return 0;
}

/* The session control_main serves (a fork child closes its copy). */
static struct session *ctl_cur;

static void *control_main(void *arg)
{
	int first = (int)(intptr_t)arg;
	struct session se = { first, sock_ino(first), 0,
			      agent_now_ns() + START_TIMEOUT_MS * 1000000ull };
	ctl_cur = &se;
	tls_busy = 1;
	prctl(PR_SET_NAME, "mfx-agent", 0, 0, 0);
	agent_resolve(1);	/* TRIM and INFO may come before any START */
	int have_bell = bell_open() == 0;

	for (;;) {
		if (have_bell && !still_ours(bell_rx, bell_rx_ino)) {
			have_bell = 0;	/* the program closed it (and maybe reused the number) */
			__atomic_store_n(&mfx_agent_doorbell.pid, 0, __ATOMIC_RELEASE);
		}
		if (se.sock < 0 && !have_bell)
			break;	/* nothing left to serve: a later attach starts a new thread */
		struct pollfd p[2] = { { se.sock, POLLIN, 0 }, { have_bell ? bell_rx : -1, POLLIN, 0 } };
		int ms = se.recording ? TICK_MS : 1000;	/* dormant: look at our fds each second */
		int w = poll(p, 2, ms);
		if (w < 0 && errno != EINTR)
			break;
		if (w <= 0) {
			if (se.recording) {
				got_patch_new();	/* libraries loaded behind dlopen's back */
				alloc_tick();	/* the allocator's figures, every 100 ms */
				if (rec.stacks)
					stack_fds_ok();
			}
			else if (se.sock >= 0 && se.deadline_ns && agent_now_ns() > se.deadline_ns)
				session_close(&se);	/* rang, then never spoke */
			continue;
		}
		if (p[0].revents) {
			if (session_serve(&se))
				session_close(&se);
		}
		if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			have_bell = 0;	/* the program closed our fds: sessions only */
			__atomic_store_n(&mfx_agent_doorbell.pid, 0, __ATOMIC_RELEASE);
		} else if (p[1].revents) {
			int s = bell_take();
			if (s < 0)
				continue;
			if (se.sock >= 0) {
				serve_aside(s);
			} else {
				se.sock = s;
				se.ino = sock_ino(s);
				se.deadline_ns = agent_now_ns() + START_TIMEOUT_MS * 1000000ull;
			}
		}
	}
	if (se.recording)
		stop_recording(&se, "error");
	session_close(&se);
	if (still_ours(bell_rx, bell_rx_ino))
		close(bell_rx);
	if (still_ours(mfx_agent_doorbell.fd, mfx_agent_doorbell.ino))
		close(mfx_agent_doorbell.fd);
	bell_rx = -1;
	__atomic_store_n(&mfx_agent_doorbell.pid, 0, __ATOMIC_RELEASE);
	mfx_agent_doorbell.fd = -1;
	ctl_cur = NULL;
	__atomic_store_n(&ctl_running, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* In the child of fork(): the thread did not come along.  Its fds did;
 * close them, so a later attach to the child starts afresh. */
void control_after_fork(void)
{
	/* The thread's stack was copied with the rest of memory: its session
	 * is readable, and its socket is ours to close (mfx must not wait on
	 * a copy held by a child). */
	struct session *se = ctl_cur;
	if (se && still_ours(se->sock, se->ino))
		close(se->sock);
	ctl_cur = NULL;
	if (still_ours(bell_rx, bell_rx_ino))
		close(bell_rx);
	if (still_ours(mfx_agent_doorbell.fd, mfx_agent_doorbell.ino))
		close(mfx_agent_doorbell.fd);
	bell_rx = -1;
	mfx_agent_doorbell.fd = -1;
	mfx_agent_doorbell.pid = 0;
	ctl_running = 0;
}

/* Send HELLO with sock through our own doorbell (async-signal-safe: it
 * runs on the thread mfx holds). */
static int ring_self(int sock)
{
	if (!still_ours(mfx_agent_doorbell.fd, mfx_agent_doorbell.ino))
		return -1;
	struct mfx_ctl m;
	mfx_ctl_init(&m, MFX_CTL_HELLO);
	return mfx_ctl_send(mfx_agent_doorbell.fd, &m, sizeof(m), &sock, 1, MSG_DONTWAIT);
}

static int start_thread(int sock);

void control_autostart(void)
{
	if (claim_agent())
		return;	/* another copy is the agent: this one stays inert */
	if (__atomic_exchange_n(&ctl_running, 1, __ATOMIC_ACQ_REL))
		return;
	if (bell_open() || start_thread(-1))
		__atomic_store_n(&ctl_running, 0, __ATOMIC_RELEASE);
}

/* Called by mfx in the held thread: start the control thread on `sock`
 * and return.  0, -EBUSY (an attach is already in progress), -errno. */
MFX_EXPORT int mfx_agent_start(int sock)
{
	if (mfx_agent_inert)
		return -EBUSY;
	if (__atomic_exchange_n(&ctl_running, 1, __ATOMIC_ACQ_REL)) {
		/* The thread is there (mfx could not ring, or chose not to):
		 * hand it the socket as a ring of our own. */
		if (mfx_agent_doorbell.fd < 0 || ring_self(sock))
			return -EBUSY;
		close(sock);	/* the message in flight holds it */
		return 0;
	}
	int err = start_thread(sock);
	if (err)
		__atomic_store_n(&ctl_running, 0, __ATOMIC_RELEASE);
	return err;
}

/* The control thread. 0 or -errno. */
static int start_thread(int sock)
{
	return agent_thread(control_main, (void *)(intptr_t)sock, 256 * 1024);
}
