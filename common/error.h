/*
 * error.h - mfx's error codes.  Functions return 0 or a negative code:
 * -errno for system errors, -MFX_E_* (above 255) for mfx's own.  Library
 * code never prints; the command layer turns a code into one line with
 * mfx_strerror() (common/util.c).
 *
 * Append new codes at the end of their block; never renumber.
 */
#ifndef MFX_ERROR_H
#define MFX_ERROR_H

enum mfx_error {
	MFX_E_BASE = 256,
	/* traces and run directories */
	MFX_E_CORRUPT = 257,	/* trace is malformed */
	MFX_E_VERSION,		/* trace version newer than this mfx */
	MFX_E_NOTRACE,		/* no trace.mfx in the run directory */
	MFX_E_TRUNCATED,	/* trace ends in the middle of a record */
	MFX_E_NOTEMPTY,		/* output directory not empty (use --force) */
	MFX_E_UNSAFE,		/* a symlink where mfx writes its files */
	MFX_E_FOREIGN,		/* the output directory belongs to another user */
	/* targets */
	MFX_E_STATIC = 300,	/* statically linked: no dynamic loader */
	MFX_E_NOGLIBC,		/* no glibc in the target */
	MFX_E_ZOMBIE,		/* target is a zombie */
	MFX_E_SELF,		/* target is mfx itself */
	MFX_E_TRACED,		/* target already traced by another tracer */
	MFX_E_EXITED,		/* target exited while we worked */
	MFX_E_NOSAFEPOINT,	/* no thread reached a safe point in time */
	MFX_E_REMOTE,		/* a remote call faulted or returned an error */
	MFX_E_NOSYM,		/* a needed symbol is missing in the target */
	MFX_E_AGENT,		/* the agent failed to start or answer */
	MFX_E_NOAGENT,		/* the agent library (libmfx.so) was not found */
	MFX_E_KERNEL,		/* the kernel lacks a needed feature */
	MFX_E_NOEXEC,		/* program is not an executable file */
	MFX_E_SETUID,		/* set-user-ID program: LD_PRELOAD ignored */
	MFX_E_STOPPED,		/* target is stopped (SIGSTOP, job control) */
	MFX_E_BUSY,		/* another mfx is tracing the target */
	MFX_E_KTHREAD,		/* target is a kernel thread */
	MFX_E_SECCOMP,		/* a seccomp filter would kill or fail a call mfx makes */
	MFX_E_SHSTK,		/* target uses shadow stacks (CET) */
	MFX_E_EXECED,		/* target ran a new program (exec) while we worked */
	MFX_E_RLIMIT,		/* target's resource limits leave too little room */
	/* replay */
	MFX_E_BOUND = 400,	/* a --max-* bound cut the replay */
	MFX_E_COMPILE,		/* cc failed on replay.c */
	MFX_E_NOTALLOC,		/* --allocator: not a shared object exporting malloc */
};

/* Text for a positive code (errno or MFX_E_*). Never NULL. */
const char *mfx_strerror(int err);

#endif /* MFX_ERROR_H */
