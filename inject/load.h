/*
 * load.h - the agent into a live process, malloc_trim(0) in one (load.c).
 */
#ifndef MFX_INJECT_LOAD_H
#define MFX_INJECT_LOAD_H

#include <stdint.h>
#include <sys/types.h>

struct inject;
struct inject_libc;

struct inject_agent_result {
	int chan;		/* our end of the control channel, or -1 */
	int reused;		/* the agent was mapped already (earlier attach) */
	int ring;		/* loaded and started: ring its doorbell after the hold */
	pid_t boot_tid;		/* a thread of ours parked in pause(): it loads the agent */
	uint64_t boot_self;	/* (inject_agent_booted), its pthread_t */
	uint64_t boot_ns;	/* how long that thread was held to load it */
	char msg[512];		/* what went wrong, for the error line */
};

/* Before the hold: read the agent file's build-id and symbols, and see
 * whether pid has it mapped already (inject_agent then trusts that). */
void inject_agent_prepare(pid_t pid, const char *agent);
/* With ij open (inject_open): load `agent` (a path of ours) into the
 * process, start its control thread, return the channel in res->chan. */
int inject_agent(struct inject *ij, const char *agent, struct inject_agent_result *res);
/* After the hold of inject_agent, if it set res->boot_tid: the agent is
 * loaded by that thread of ours (held as long as it takes, no thread of the
 * program waits), which then ends.  Sets res->ring on success. */
int inject_agent_booted(pid_t pid, const char *agent, const struct inject_libc *lc, int verbose,
			struct inject_agent_result *res);
/* Reach an agent already running in pid (an earlier attach) through its
 * doorbell, without stopping any thread: *chan gets a fresh control channel.
 * -ENOENT when the same build of the agent is not loaded and started there,
 * -ETIMEDOUT when its thread did not answer, other -errno. */
int inject_agent_ring(pid_t pid, const char *agent, int timeout_ms, int *chan);
/* malloc_trim(0) in the held thread: its return value, how long it ran. */
int inject_trim(struct inject *ij, uint64_t *ret, uint64_t *trim_ns);

#endif
