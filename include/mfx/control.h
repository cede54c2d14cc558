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
 *   mfx -> agent   START  config text, SCM_RIGHTS [trace fd, spool fd]
 *   agent -> mfx   STARTED status, GOT slots patched, modules, timings
 *   mfx -> agent   TRIM   (any number, any time)
 *   agent -> mfx   TRIMMED malloc_trim's return, how long it took
 *   mfx -> agent   INFO   SCM_RIGHTS [a file to write to]
 *   agent -> mfx   INFOED status; the file holds a "mallinfo2 ..." line
 *                  (arena ordblks hblks hblkhd uordblks fordblks keepcost)
 *                  and then malloc_info(0)'s XML
 *   mfx -> agent   STOP
 *   agent -> mfx   STOPPED status
 * Every message is one struct mfx_ctl (config text after it for START).
 */
#ifndef MFX_CONTROL_H
#define MFX_CONTROL_H

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
				   TRIMMED: how long malloc_trim ran */
	uint64_t value;		/* TRIMMED: malloc_trim's return */
};

/* Send a message of `type` carrying one fd (SCM_RIGHTS): 0 or -1 (errno).
 * Async-signal-safe (the agent calls it on a thread mfx holds). */
static inline int mfx_ctl_send_fd(int sock, uint16_t type, int fd, int flags)
{
	struct mfx_ctl m;
	memset(&m, 0, sizeof(m));
	m.magic = MFX_CTL_MAGIC;
	m.version = MFX_CTL_VERSION;
	m.type = type;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
			     .msg_controllen = sizeof(cm.b) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL | flags) == (ssize_t)sizeof(m) ? 0 : -1;
}

#endif /* MFX_CONTROL_H */
