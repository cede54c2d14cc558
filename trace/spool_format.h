/*
 * spool_format.h - the shared-memory spool between traced processes and mfx.
 *
 * mfx creates the spool (a memfd) and hands it to the agents (launch: the
 * inherited fd named by MFX_SPOOL_FD; attach: passed over the control
 * socket).  Each traced thread fills one slot at a time with raw event
 * records (a struct mfx_chunk_header then the payload, exactly as in the
 * trace file); a full slot is marked FULL and mfx copies it into the right
 * trace file and frees it.  Slots are reused, so the target writes into
 * pages that are already resident and cache-warm: no page faults and no
 * munmap TLB shootdowns on the hot path.  The memfd belongs to mfx, so
 * whatever a process wrote survives its crash: mfx drains the slots of a
 * dead owner.  When no slot is free the agent falls back to mapping chunks
 * of the trace file itself.
 *
 * Slot life:  FREE --agent CAS--> OWNED --agent--> FULL --drainer CAS--> DRAINING
 *             --drainer--> FREE
 *
 * The drainer is mfx's drain thread, or the agent itself once mfx is gone
 * (docs/design.md "When mfx dies").  A drainer claims a FULL slot with a
 * CAS, takes a chunk offset in the trace file, stores it in `off` and only
 * then writes: a slot left DRAINING by a drainer that was killed is written
 * again at the same offset, so no chunk is lost or written twice.
 */
#ifndef MFX_SPOOL_H
#define MFX_SPOOL_H

#include <stdint.h>

#include "trace/format.h"

#define MFX_SPOOL_MAGIC     0x324c4f5053584d46ull	/* "FMXSPOL2" (v1 had no DRAINING) */
#define MFX_SPOOL_HEADER    16384u
#define MFX_SPOOL_SLOT      MFX_CHUNK_SIZE
#define MFX_SPOOL_SLOTS     512u			/* 32 MiB, touched lazily */

enum mfx_slot_state {
	MFX_SLOT_FREE = 0, MFX_SLOT_OWNED = 1, MFX_SLOT_FULL = 2, MFX_SLOT_DRAINING = 3,
};

struct mfx_spool_slot {
	volatile uint32_t state;	/* enum mfx_slot_state */
	uint32_t pid;			/* owner process */
	uint64_t trace_uid;		/* mfx_file_header.trace_uid of its trace */
	volatile uint64_t off;		/* DRAINING: where it goes in the trace (0: not yet) */
};

struct mfx_spool_header {
	uint64_t magic;
	uint32_t nslots, slot_size;
	volatile uint32_t full_seq;	/* bumped per FULL slot; mfx futex-waits on it */
	volatile uint32_t waiting;	/* mfx sleeps on full_seq: wake it */
	uint64_t fallbacks;		/* chunks that found no free slot */
	uint8_t pad[64 - 32];
	struct mfx_spool_slot slot[MFX_SPOOL_SLOTS];	/* states, one per slot */
};
_Static_assert(sizeof(struct mfx_spool_header) <= MFX_SPOOL_HEADER, "spool header");

/* Slot i's chunk: at MFX_SPOOL_HEADER + i * MFX_SPOOL_SLOT. */
static inline struct mfx_chunk_header *mfx_spool_chunk(void *base, uint32_t i)
{
	return (struct mfx_chunk_header *)((uint8_t *)base + MFX_SPOOL_HEADER +
					   (uint64_t)i * MFX_SPOOL_SLOT);
}

#define MFX_SPOOL_BYTES (MFX_SPOOL_HEADER + (uint64_t)MFX_SPOOL_SLOTS * MFX_SPOOL_SLOT)

#endif
