/*
 * ops.h - replay.ops, the calls of a captured window as `mfx replay` writes
 * them (opsgen.c) and reads them back: the native replayer (replayer.c,
 * built alone into mfx-replay, which checks them with opsread.h first) and
 * cgen.c, which turns them into the plain C program RUN/replay.c.
 * Little-endian, native layout:
 *
 *   struct ops_header; struct ops_thread[nthreads]; then each thread's
 *   struct op[nops], in recorded order, thread after thread.
 *
 * A thread's first and last op (by seq) bound its life in the window: the
 * replay starts a thread no earlier than its first call is due and only
 * once every thread whose last call came before that has ended, so no more
 * threads are alive at once than in the original.
 *
 * Blocks are named by dense ids from 1 (0 = none / NULL); an op with id 0
 * is a call that failed in the original, but for a realloc to 0 bytes that
 * returned NULL (id 0, size 0, old set): it freed the old block (glibc's
 * realloc(p, 0); the analysis takes it so too), and so does the replay.
 * seq is the call's place in the recorded order of the whole window (all
 * threads), dense from 0, so the ops with seq < N are a prefix that
 * respects every happens-before.
 * OPF_WAIT: the block freed or reallocated here was allocated by another
 * thread (wait until that allocation is replayed); OPF_PUBLISH: another
 * thread will free or realloc the block made here (say when it exists).
 * OPF_IMPLIED (on a free): the trace has no such call, but an allocation
 * returned the block's address while it was still live (its free was not
 * seen): the analysis ends the block there, and so does the replay; the
 * replayer makes the free without counting it as a call.
 */
#ifndef MFX_REPLAY_OPS_H
#define MFX_REPLAY_OPS_H

#include <stdint.h>

#define OPS_MAGIC "MFXRPL3"

/* The replay keeps the window's recorded order loosely: the recorded order
 * is cut into epochs of OPS_EPOCH calls, and no call of epoch e is replayed
 * before every call of the epochs before it was (threads run freely inside
 * an epoch).  Big enough that the synchronisation costs nothing measurable,
 * small enough that a program whose threads take turns is replayed taking
 * turns. */
#define OPS_EPOCH 4096

enum { OP_MALLOC = 1, OP_CALLOC, OP_REALLOC, OP_FREE, OP_MEMALIGN };
enum { OPF_WAIT = 1, OPF_PUBLISH = 2, OPF_IMPLIED = 4 };

struct ops_header {
	char magic[8];
	uint32_t nthreads;
	uint32_t pid;		/* the traced process: its thread of that tid is the main thread */
	uint64_t nblocks, nops;
};

struct ops_thread {
	uint32_t tid, pad;
	uint64_t nops;
};

struct op {
	uint8_t kind, flags;
	uint16_t align_log2;	/* OP_MEMALIGN: log2 of the alignment */
	uint32_t id, old;	/* the block made, the block given (realloc, free: id) */
	uint32_t seq;		/* place in the window's recorded order */
	uint64_t size;		/* requested bytes; calloc: nmemb * size; free: the block's */
};

#endif
