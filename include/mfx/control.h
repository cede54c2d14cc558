/*
 * control.h - the attach control channel between mfx and the agent's thread
 * inside a live process (preload/control.c, attach/attach.c).
 *
 * The channel is one end of an AF_UNIX SOCK_SEQPACKET socketpair created
 * inside the target by a remote call; mfx takes the other end with
 * pidfd_getfd(2), so no path, port or namespace is involved, and the agent
 * sees EOF the moment mfx goes away (then it stops and unpatches on its own).
 *
 *   mfx -> agent   START  config text, SCM_RIGHTS [trace fd, spool fd]
 *   agent -> mfx   STARTED status, GOT slots patched, modules, timings
 *   mfx -> agent   TRIM   (optional, any number)
 *   agent -> mfx   TRIMMED malloc_trim's return, how long it took
 *   mfx -> agent   STOP
 *   agent -> mfx   STOPPED status
 * Every message is one struct mfx_ctl (config text after it for START).
 */
#ifndef MFX_CONTROL_H
#define MFX_CONTROL_H

#include <stdint.h>

#define MFX_CTL_MAGIC 0x6c74636dU	/* "mctl" */
#define MFX_CTL_VERSION 1

enum mfx_ctl_type {
	MFX_CTL_START = 1,
	MFX_CTL_STARTED,
	MFX_CTL_STOP,
	MFX_CTL_STOPPED,
	MFX_CTL_TRIM,
	MFX_CTL_TRIMMED,
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

#endif /* MFX_CONTROL_H */
