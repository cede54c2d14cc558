/*
 * load.h - the agent into a live process (load.c), and its doorbell
 * (agent.c).
 */
#ifndef MFX_INJECT_LOAD_H
#define MFX_INJECT_LOAD_H

#include <stdint.h>
#include <sys/types.h>

#include "inject/inject.h"

/* The agent needs this much room in the process (RLIMIT_AS, RLIMIT_NOFILE)
 * for itself, its threads and a window's buffers. */
#define AGENT_AS_NEED (64ull << 20)
#define AGENT_FDS_NEED 16

struct inject_agent_result {
	int chan;		/* our end of the control channel, or -1 */
	int ring;		/* loaded and started: ring its doorbell */
	int reused;		/* it was mapped already (an earlier attach) */
	struct inject_stats hold;	/* the program's thread */
	uint64_t boot_ns;	/* our loader thread was held this long (0: none) */
	char msg[512];		/* what went wrong, for the error line */
};

/* Load `agent` (a path of ours) into pid and start its thread: refusals,
 * one thread of the program held at a safe point to start a thread of ours
 * (or, no_boot, to load it itself), which loads the agent.  Then either
 * res->ring (ring its doorbell: inject_agent_ring) or res->chan.  On error
 * e and res->msg say why. */
int inject_agent_load(pid_t pid, const char *agent, const struct inject_opts *o, int no_boot,
		      struct inject_agent_result *res, struct inject_err *e);
/* Reach an agent already running in pid (an earlier attach) through its
 * doorbell, without stopping any thread: *chan gets a fresh control channel.
 * -ENOENT when the same build of the agent is not loaded and started there,
 * -ETIMEDOUT when its thread did not answer, other -errno. */
int inject_agent_ring(pid_t pid, const char *agent, int timeout_ms, int *chan);

#endif
