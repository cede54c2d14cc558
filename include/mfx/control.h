/*
 * control.h - the attach control channel between mfx and the agent's thread
 * inside a live process (preload/control.c, attach/attach.c).
 *
 * The first channel is one end of an AF_UNIX SOCK_SEQPACKET socketpair
 * created inside the target by a remote call; mfx takes the other end with
 * pidfd_getfd(2), so no path, port or namespace is involved, and the agent
 * sees EOF the moment mfx goes away (then it stops and unpatches on its own).
 *
 * Once started, the agent's thread stays, and later commands reach it
 * without ptrace through the doorbell: the exported mfx_agent_doorbell
 * (read with process_vm_readv) names the fd of a socketpair end in the
 * target; mfx takes it with pidfd_getfd and sends HELLO carrying one end
 * of a socketpair of its own, which becomes the channel (agent: WELCOME).
 *
 *   mfx -> agent   START  config text, SCM_RIGHTS [trace fd, spool fd, run
 *                  directory fd, mfx's pidfd]; `value` says which of the
 *                  last three came (MFX_START_*; 0: an older mfx, whose
 *                  second fd, if any, is the spool).  With the directory
 *                  fd, a child the process forks during the window
 *                  records itself into RUN/trace-<pid>.mfx (created
 *                  relative to it) and unhooks itself when its header's
 *                  stop word is set, the pidfd says mfx is gone, or the
 *                  parent's window ended (preload/forkchild.c).  An older
 *                  agent takes the first two fds and drops the rest (its
 *                  control buffer holds two: MSG_CTRUNC, the kernel does
 *                  not install the others), and its children record
 *                  nothing, as before.
 *   agent -> mfx   STARTED status, GOT slots patched, modules, timings
 *   mfx -> agent   TRIM   (any number, any time) [SCM_RIGHTS: a file]
 *   agent -> mfx   TRIMMED the allocator's release (malloc_trim(0), jemalloc
 *                  purge, ...): its return, how long it took; the file gets
 *                  "before"/"after" figures, "allocator", "call", "returned"
 *                  lines (preload/control.c do_trim)
 *   mfx -> agent   INFO   SCM_RIGHTS [a file to write to]
 *   agent -> mfx   INFOED status; the file holds "key value" lines (the
 *                  allocator, its figures, jemalloc's arenas, glibc's
 *                  mallinfo2), an empty line, then the allocator's own
 *                  statistics text (malloc_info XML, malloc_stats_print, ...)
 *   mfx -> agent   STOP
 *   agent -> mfx   STOPPED status
 * Every message is one struct mfx_ctl (config text after it for START).
 */
#ifndef MFX_CONTROL_H
#define MFX_CONTROL_H

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define MFX_CTL_MAGIC 0x6c74636dU	/* "mctl" */
#define MFX_CTL_VERSION 1

enum mfx_ctl_type {
	MFX_CTL_START = 1,
	MFX_CTL_STARTED,
	MFX_CTL_STOP,
	MFX_CTL_STOPPED,
	MFX_CTL_TRIM,
	MFX_CTL_TRIMMED,
	MFX_CTL_INFO,
	MFX_CTL_INFOED,
	MFX_CTL_HELLO,
	MFX_CTL_WELCOME,
};

/* mfx dlopen()s the agent from a memfd it made in the process, by this
 * name and the memfd's number.  ld.so knows a library by the name it was
 * opened by and gives it back to a later dlopen of that name, even once the
 * fd is closed and the number is another file's.  The leading "//" (the
 * same path) keeps the agent's name out of the program's way: a program
 * that dlopen()s its own "/proc/self/fd/N" gets its own library. */
#define MFX_AGENT_DLNAME "//proc/self/fd/"

#define MFX_DOORBELL_MAGIC 0x6c6c6562U	/* "bell" */

/* The agent's exported mfx_agent_doorbell. */
struct mfx_doorbell {
	uint32_t magic;
	int32_t pid;		/* the process that owns the fd (0: none; fork children differ) */
	int32_t fd;		/* the doorbell's sending end, in that process */
	uint64_t ino;		/* its inode: mfx sends nothing to an fd that is not it */
};

struct mfx_ctl {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	int32_t status;		/* 0 or -errno */
	uint32_t slots;		/* STARTED: GOT slots patched */
	uint32_t modules;	/* STARTED: modules patched */
	uint32_t text_len;	/* START: bytes of config text that follow */
	uint64_t t_ns;		/* STARTED: agent clock when recording began;
				   TRIMMED: how long the release call ran */
	uint64_t value;		/* TRIMMED: its return */
};

/* START's `value`: which fds follow the trace fd, in this order. */
#define MFX_START_SPOOL 0x1u	/* the spool memfd */
#define MFX_START_DIR 0x2u	/* the run directory (O_DIRECTORY) */
#define MFX_START_PIDFD 0x4u	/* pidfd_open() of mfx itself: readable once mfx is gone */
#define MFX_START_FDMAP 0x100u	/* value is this map (set by every mfx that sends one) */
#define MFX_CTL_MAXFDS 4

/* A message header of `type`, every other field 0. */
static inline void mfx_ctl_init(struct mfx_ctl *m, uint16_t type)
{
	memset(m, 0, sizeof(*m));
	m->magic = MFX_CTL_MAGIC;
	m->version = MFX_CTL_VERSION;
	m->type = type;
}

/* Send one message: `len` bytes at m (the header and any text after it) and
 * nfds (<= MFX_CTL_MAXFDS) fds by SCM_RIGHTS.  0 or -errno.  Used by mfx and by the
 * agent; async-signal-safe (the agent calls it on a thread mfx holds). */
static inline int mfx_ctl_send(int sock, const void *m, size_t len, const int *fds, int nfds,
			       int flags)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(MFX_CTL_MAXFDS * sizeof(int))];
	} cm;
	struct iovec iov = { (void *)m, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (nfds > MFX_CTL_MAXFDS)
		return -EINVAL;
	if (nfds > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	ssize_t r;
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r == (ssize_t)len ? 0 : -EIO;
}

#endif /* MFX_CONTROL_H */
