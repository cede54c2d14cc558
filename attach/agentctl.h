/*
 * agentctl.h - mfx's side of the control channel to a running agent
 * (include/mfx/control.h): messages, and reaching an agent that is already
 * loaded (agentctl.c); `trim` and `snapshot` make their requests with them
 * (trim.c, alloc_info.c).
 */
#ifndef MFX_ATTACH_AGENTCTL_H
#define MFX_ATTACH_AGENTCTL_H

#include <stdint.h>
#include <sys/types.h>

#include "mfx/control.h"

#define AGENT_REPLY_MS 10000	/* START/STOP answers */
#define AGENT_RING_MS 1000	/* a dormant agent's WELCOME */
#define AGENT_STOP_MS 4000	/* STOP at the end of a window: then mfx goes on without it
				   (before the 5 s no-progress watchdog, attach/stopping.c) */

/* One message: `text` (may be NULL) after the header, fds by SCM_RIGHTS. */
int agent_send(int chan, uint16_t type, const char *text, const int *fds, int nfds);
/* The same with the header's `value` (START: its fd map, MFX_START_*). */
int agent_send_value(int chan, uint16_t type, const char *text, const int *fds, int nfds,
		     uint64_t value);
/* Wait up to timeout_ms for a message of type `want` (others are skipped).
 * -ETIMEDOUT, -EPIPE (the agent's end closed), -EPROTO. */
int agent_recv(int chan, uint16_t want, struct mfx_ctl *m, int timeout_ms);

/* The agent in pid, reached through its doorbell: a channel, or -errno
 * (-ENOENT: no started agent of this build there). */
int agent_ring(pid_t pid, int *chan);

#endif
