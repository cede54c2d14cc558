/*
 * agentctl.c - mfx's side of the control channel (include/mfx/control.h):
 * messages to and from the agent's thread, and the requests made of an
 * agent already loaded by an earlier attach, reached through its doorbell
 * (inject_agent_ring) without stopping any thread of the process (the
 * allocator's release for `mfx trim`: trim.c; its statistics for `mfx
 * snapshot`: snapshot.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach/agentctl.h"
#include "common/util.h"
#include "inject/load.h"

int agent_send(int fd, uint16_t type, const char *text, const int *fds, int nfds)
{
	return agent_send_value(fd, type, text, fds, nfds, 0);
}

int agent_send_value(int fd, uint16_t type, const char *text, const int *fds, int nfds,
		     uint64_t value)
{
	struct {
		struct mfx_ctl m;
		char text[4096];
	} out;
	mfx_ctl_init(&out.m, type);
	size_t tl = text ? strlen(text) : 0;
	if (tl >= sizeof(out.text))
		return -EINVAL;
	out.m.text_len = (uint32_t)tl;
	out.m.value = value;
	if (tl)
		memcpy(out.text, text, tl);
	/* Never blocks: a message is tiny, and an agent whose socket buffer
	 * is full is not answering anyway. */
	return mfx_ctl_send(fd, &out, sizeof(out.m) + tl, fds, nfds, MSG_DONTWAIT);
}

int agent_recv(int fd, uint16_t want, struct mfx_ctl *m, int timeout_ms)
{
	uint64_t t0 = now_ns();
	for (;;) {
		int left = timeout_ms - (int)((now_ns() - t0) / 1000000);
		struct pollfd p = { fd, POLLIN, 0 };
		if (left <= 0)
			return -ETIMEDOUT;
		int r = poll(&p, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r ? -errno : -ETIMEDOUT;
		ssize_t n = recv(fd, m, sizeof(*m), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return -EPIPE;	/* the agent's end closed */
		if (n != sizeof(*m) || m->magic != MFX_CTL_MAGIC)
			return -EPROTO;
		if (m->type == want)
			return 0;
	}
}

int agent_ring(pid_t pid, int *chan)
{
	char agent[4096];
	*chan = -1;
	if (env_flag("MFX_NO_DOORBELL"))
		return -ENOENT;	/* tests, or by choice: the ptrace path */
	int err = agent_path(agent, sizeof(agent));
	if (!err)
		err = inject_agent_ring(pid, agent, AGENT_RING_MS, chan);
	if (err && env_flag("MFX_DEBUG"))
		fprintf(stderr, "mfx: debug: agent doorbell of %d: %s\n", (int)pid, mfx_strerror(-err));
	return err;
}
