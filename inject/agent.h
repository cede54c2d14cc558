/*
 * agent.h - inside inject/: the agent file's facts and its copies in a
 * process (agent.c), shared by load.c.
 */
#ifndef MFX_INJECT_AGENT_H
#define MFX_INJECT_AGENT_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define AGENT_MAX_COPIES 4

struct agent_file {
	char path[4096];
	int ok;
	uint64_t id_off;
	uint8_t id[64];
	size_t id_len;
	uint64_t start_off, bell_off, inert_off;	/* mfx_agent_start, _doorbell, _inert */
};
extern struct agent_file agent_file;
int agent_file_read(const char *path);

/* A copy of our agent build mapped in a process. */
struct agent_copy {
	uint64_t base;
	uint64_t inode;		/* of its file: a memfd's is unique */
	int inert;		/* it found another copy active when loaded */
};
/* Copies of this build mapped in pid (n <= max); *others counts agents of
 * other builds. */
int agent_copies(pid_t pid, struct agent_copy *c, int max, int *others);

/* Take fd remote_fd of pid (pidfd_getfd) and check it is what mfx asked
 * the process to create: of file type `type` (S_IFSOCK, S_IFREG), its
 * /proc/self/fd link starting with link_prefix (NULL: any).  fd, or
 * -errno (-EBADF: something else is there). */
int agent_take_fd(pid_t pid, int remote_fd, mode_t type, const char *link_prefix);

#endif
