/*
 * drain.c - when mfx is gone, the agent writes what it holds into the trace
 * file itself: the spool slots of its trace that are FULL (or DRAINING: mfx
 * was killed in the middle of copying one), and every thread's current chunk.
 *
 * Normally mfx's drain thread copies FULL slots into the trace file
 * (trace/spool.c).  If mfx is SIGKILLed, nobody would: the last chunks of the
 * window sat in the spool and were lost with it (16,926 of 45,002 events in
 * one measurement).  The agent learns that mfx is gone
 *   - attach: its session socket reads EOF (control.c calls rec_mfx_gone());
 *   - launch: the read end of a pipe whose write end only mfx holds
 *     (MFX_ALIVE_FD) polls POLLHUP; looked at when the spool is full and at
 *     the process's exit, never on the hot path.
 * From then on spool slots of this trace are written by the agent (at a
 * chunk offset taken from the file's own bump counter, like mfx does) and
 * new chunks come from the file.
 *
 * A slot is claimed with a CAS FULL -> DRAINING, so the agent and a live
 * mfx never both copy one; the offset is stored in the slot before the
 * write, so a slot left DRAINING by a killed drainer is written again at
 * the same place (spool_format.h).
 */
#include <errno.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace/spool_format.h"
#include "preload/internal.h"
#include "preload/record.h"

static volatile int orphan;	/* set once: mfx is gone */
static int alive_fd = -1;	/* launch: read end of mfx's liveness pipe */
static uint64_t alive_ino;

void rec_watch_mfx(int fd)
{
	alive_fd = fd;
	alive_ino = agent_fd_ino(fd, S_IFIFO);
}

int rec_mfx_orphan(void)
{
	return orphan;
}

/* Launch: mfx's end of the pipe closed (it died, it never closes it
 * otherwise).  A pipe the program closed or reused says nothing: mfx is
 * then taken to be alive, as before. */
int rec_mfx_gone_check(void)
{
	if (orphan)
		return 1;
	if (!agent_fd_is(alive_fd, alive_ino, S_IFIFO))
		return 0;
	struct pollfd p = { alive_fd, POLLIN, 0 };
	int r;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r == 1 && (p.revents & (POLLHUP | POLLERR)))
		rec_mfx_gone("mfx went away during the window: the agent wrote its last chunks "
			     "itself");
	return orphan;
}

/*
 * Copy slot i (of this trace) into the trace file and free it.  `from` is
 * the state we expect: FULL (claimed here by CAS), DRAINING (a dead
 * drainer's, taken over), or OWNED (a live thread's chunk at exit: copied,
 * left to its owner).  0, or -errno (the chunk is counted as dropped).
 */
int rec_drain_slot(struct mfx_spool_header *sp, uint32_t i, uint32_t from)
{
	struct mfx_spool_slot *s = &sp->slot[i];
	struct mfx_file_header *h = rec.hdr;
	if (!h || s->trace_uid != h->trace_uid)
		return 0;
	uint32_t st = from;
	if (from == MFX_SLOT_FULL &&
	    !__atomic_compare_exchange_n(&s->state, &st, MFX_SLOT_DRAINING, 0, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return 0;
	struct mfx_chunk_header *c = mfx_spool_chunk(sp, i);
	/* The header as it is now: a live owner may append a record while we
	 * copy, and the `used` we write must not count bytes we did not. */
	struct mfx_chunk_header hd = *c;
	hd.used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
	int err = 0;
	if (hd.magic == MFX_CHUNK_MAGIC && hd.used) {
		uint64_t off = s->off;
		if (!off || from == MFX_SLOT_OWNED) {
			off = __atomic_fetch_add(&h->next_chunk, MFX_CHUNK_SIZE, __ATOMIC_SEQ_CST);
			if (from != MFX_SLOT_OWNED)
				s->off = off;
		}
		/* Blocks first (fallocate), then the payload, the header last:
		 * a chunk is whole in the file or reads as never written. */
		size_t hl = sizeof(*c), pl = MFX_CHUNK_SIZE - hl;
		err = rec_file_reserve(off, MFX_CHUNK_SIZE);
		if (!err && (pwrite(rec.fd, (uint8_t *)c + hl, pl, (off_t)(off + hl)) != (ssize_t)pl ||
			     pwrite(rec.fd, &hd, hl, (off_t)off) != (ssize_t)hl))
			err = errno ? -errno : -EIO;
		if (err)
			__atomic_fetch_add(&h->dropped_chunks, 1, __ATOMIC_RELAXED);
	}
	if (from != MFX_SLOT_OWNED) {
		c->magic = 0;
		s->off = 0;
		__atomic_store_n(&s->state, MFX_SLOT_FREE, __ATOMIC_RELEASE);
	}
	return err;
}

/* Every FULL or half-drained slot of this trace; with `owned`, also the
 * slots live threads still fill (the process is exiting). */
void rec_drain_own(struct mfx_spool_header *sp, int owned)
{
	if (!sp || !rec.hdr)
		return;
	for (uint32_t i = 0; i < MFX_SPOOL_SLOTS; i++) {
		uint32_t st = __atomic_load_n(&sp->slot[i].state, __ATOMIC_ACQUIRE);
		if (st == MFX_SLOT_FULL || st == MFX_SLOT_DRAINING ||
		    (owned && st == MFX_SLOT_OWNED && sp->slot[i].pid == rec.hdr->pid))
			rec_drain_slot(sp, i, st);
	}
}

/* mfx is gone: note it once, drain what the spool holds of ours. */
void rec_mfx_gone(const char *why)
{
	if (__atomic_exchange_n(&orphan, 1, __ATOMIC_ACQ_REL))
		return;
	if (rec.hdr)
		__atomic_fetch_or(&rec.hdr->degraded, MFX_DG_DRAINED, __ATOMIC_RELAXED);
	agent_note(MFX_DG_DRAINED, 0, why);
	rec_spool_drain();
}
