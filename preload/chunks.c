/*
 * chunks.c - where a thread's chunk comes from and goes back to: mfx's spool
 * (slots of a shared memfd mfx drains) or the trace file itself (mapped
 * chunks); the process-wide META chunk (stack definitions, modules, marks);
 * the trace file's header mapping.  Per-thread state is record.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "trace/spool_format.h"
#include "preload/internal.h"
#include "preload/record.h"

static struct mfx_spool_header *volatile spool;	/* NULL: chunks come from the file */

/* The META chunk: stack definitions, modules, marks. Guarded by rec_lock. */
static struct {
	struct mfx_chunk_header *chunk;
	uint8_t *cur, *limit;
	uint32_t seq;
} meta;

/* ---- the spool ------------------------------------------------------------- */

int rec_spool_attach(int fd)
{
	if (!agent_as_room(MFX_SPOOL_BYTES))
		return -ENOMEM;
	void *m = mmap(NULL, MFX_SPOOL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	struct mfx_spool_header *h = m;
	if (h->magic != MFX_SPOOL_MAGIC || h->nslots != MFX_SPOOL_SLOTS ||
	    h->slot_size != MFX_SPOOL_SLOT) {
		munmap(m, MFX_SPOOL_BYTES);
		return -EINVAL;
	}
	spool = h;
	return 0;
}

/* Attach mode, after agent_end() (and in a fork child): forget mfx's spool
 * and unmap it, so no window leaves its 32 MiB in the address space.  Only
 * if a straggler still holds a slot (a thread agent_end gave up waiting
 * for) is the mapping replaced by untouched agent memory instead, where its
 * last stores land harmlessly; its slot is forgotten, so the chunk is
 * unmapped (not handed to a later spool) when the thread next needs one.
 * Either way the memfd behind it is freed once mfx closes it. */
void rec_spool_detach(void)
{
	if (!spool)
		return;
	void *m = spool;
	spool = NULL;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	int stragglers = rec_forget_spool_slots();
	if (stragglers)
		agent_mmap_zero(m, MFX_SPOOL_BYTES);
	else
		munmap(m, MFX_SPOOL_BYTES);
}

/* A free slot, lowest index first: the few slots in use stay cache-warm.
 * *full is set when the spool exists but has no free slot. */
struct mfx_chunk_header *rec_spool_take(int32_t *slot, int *full)
{
	*full = 0;
	/* Read once: agent_end may detach the spool while a thread that was
	 * in a record past its wait gets here.  The old mapping then stays
	 * valid (rec_spool_detach replaces it by zeros instead of unmapping it
	 * when a thread is still in a record); NULL would not be. */
	struct mfx_spool_header *sp = __atomic_load_n(&spool, __ATOMIC_ACQUIRE);
	if (!sp)
		return NULL;
	for (uint32_t i = 0; i < MFX_SPOOL_SLOTS; i++) {
		struct mfx_spool_slot *s = &sp->slot[i];
		uint32_t free_st = MFX_SLOT_FREE;
		if (s->state != MFX_SLOT_FREE ||
		    !__atomic_compare_exchange_n(&s->state, &free_st, MFX_SLOT_OWNED, 0,
						 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			continue;
		s->pid = rec.hdr->pid;
		s->trace_uid = rec.hdr->trace_uid;
		s->off = 0;
		*slot = (int32_t)i;
		return mfx_spool_chunk(sp, i);
	}
	__atomic_fetch_add(&sp->fallbacks, 1, __ATOMIC_RELAXED);
	*full = 1;
	return NULL;
}

/* Hand a slot to mfx.  mfx polls every few ms; waking it costs a syscall
 * and an IPI (~10 us on a VM), so only a spool that is filling up (a slot
 * taken far from the start) wakes it early.  Once mfx is gone the agent
 * writes the slot into the trace file itself (drain.c). */
void rec_spool_give(int32_t i)
{
	struct mfx_spool_header *sp = spool;
	if (!sp)
		return;	/* detached meanwhile: mfx copied the slot at its last pass */
	__atomic_store_n(&sp->slot[i].state, MFX_SLOT_FULL, __ATOMIC_RELEASE);
	if (rec_mfx_orphan()) {
		rec_drain_slot(sp, (uint32_t)i, MFX_SLOT_FULL);
		return;
	}
	__atomic_fetch_add(&sp->full_seq, 1, __ATOMIC_SEQ_CST);
	if (i >= (int32_t)(MFX_SPOOL_SLOTS / 8) && __atomic_load_n(&sp->waiting, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, &sp->full_seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* mfx is gone (drain.c): the slots of this trace it did not copy. */
void rec_spool_drain(void)
{
	rec_drain_own(spool, 0);
}

/* At the process's exit with mfx gone: every slot of this process, the
 * chunks live threads are still filling included (copied up to `used`). */
void rec_spool_drain_exit(void)
{
	rec_drain_own(spool, 1);
}

/* ---- file chunks ----------------------------------------------------------- */

/* Make sure the file has blocks for [off, off+len): fallocate reports a full
 * disk as ENOSPC here, instead of a SIGBUS in the target later. */
/* The trace file's inode: it is grown, mapped and closed only while rec.fd
 * is still that file (agent_fd_is). */
static uint64_t trace_ino;

static int trace_fd_ours(void)
{
	return agent_fd_is(rec.fd, trace_ino, S_IFREG);
}

int rec_file_reserve(uint64_t off, uint64_t len)
{
	if (!trace_fd_ours())
		return -EBADF;
	if (fallocate(rec.fd, 0, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	/* No fallocate (some network file systems): extend by writing the last
	 * byte; never shrinks a file mfx extended concurrently. */
	char z = 0;
	return pwrite(rec.fd, &z, 1, (off_t)(off + len - 1)) == 1 ? 0 : -errno;
}

/* Take the next raw slot of the trace file and map it. */
struct mfx_chunk_header *rec_file_take(void)
{
	if (!rec.hdr || !rec.file_ok)
		return NULL;
	uint64_t off = __atomic_fetch_add(&rec.hdr->next_chunk, MFX_CHUNK_SIZE, __ATOMIC_SEQ_CST);
	int err = rec_file_reserve(off, MFX_CHUNK_SIZE);
	if (err) {
		agent_fail(-err, err == -EBADF ? "the program closed the trace file" :
			   "cannot grow the trace file");
		return NULL;
	}
	struct mfx_chunk_header *c = agent_as_room(MFX_CHUNK_SIZE) ?
		mmap(NULL, MFX_CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rec.fd, (off_t)off) :
		MAP_FAILED;
	if (c == MAP_FAILED) {
		agent_fail(errno, "cannot map a chunk of the trace file (address space limit)");
		return NULL;
	}
	return c;
}

void rec_chunk_init(struct mfx_chunk_header *c, uint16_t type, uint32_t tid, uint32_t seq,
		    int timebase)
{
	c->magic = 0;
	c->type = type;
	c->codec = MFX_CODEC_RAW;
	c->tid = tid;
	c->seq = seq;
	c->used = 0;
	c->stored = 0;
	c->span = MFX_CHUNK_SIZE;
	c->timebase = (uint32_t)timebase;
	if (timebase == 0) {
		/* A clock pair taken together: the reader converts TSC to ns.  A
		 * thread preempted between the two reads (a storm of threads on
		 * few cores: hundreds of ms; a vCPU's steal time: microseconds)
		 * shifts every event of the chunk by up to half the gap -- and a
		 * thread of few calls writes one chunk for its whole life, so
		 * its calls were all 3 us late against the other threads' (t105:
		 * blocks handed over read as freed before allocated).  The
		 * closest of up to 8 pairs is kept; one within 2^11 ticks (under
		 * a microsecond) ends the search. */
		uint64_t t1 = 0, t2 = 0, ns = 0, gap = UINT64_MAX;
		for (int i = 0; i < 8 && gap >= (1u << 11); i++) {
			uint64_t a = agent_tsc(), n = agent_now_ns(), b = agent_tsc();
			if (b - a < gap) {
				gap = b - a;
				t1 = a;
				t2 = b;
				ns = n;
			}
		}
		c->base_ts = (t1 + (t2 - t1) / 2) >> rec.tsc_shift;
		c->base_ns = ns;
	} else {
		c->base_ns = c->base_ts = agent_now_ns();
	}
	__atomic_store_n(&c->magic, MFX_CHUNK_MAGIC, __ATOMIC_RELEASE);
}

/* ---- META chunk ---------------------------------------------------------- */

/* Append one encoded record to the META chunk (rec_lock held).  META chunks
 * are mapped from the file directly: they are few. */
void meta_append_locked(const uint8_t *r, size_t len)
{
	if (!rec.hdr || len > MFX_CHUNK_SIZE - sizeof(struct mfx_chunk_header))
		return;
	if (!meta.chunk || meta.cur + len > meta.limit) {
		if (meta.chunk)
			munmap(meta.chunk, MFX_CHUNK_SIZE);
		meta.chunk = rec_file_take();
		if (!meta.chunk)
			return;
		rec_chunk_init(meta.chunk, MFX_CT_META, 0, meta.seq++, 1);
		meta.cur = (uint8_t *)(meta.chunk + 1);
		meta.limit = (uint8_t *)meta.chunk + MFX_CHUNK_SIZE;
	}
	memcpy(meta.cur, r, len);
	meta.cur += len;
	__atomic_store_n(&meta.chunk->used, (uint32_t)(meta.cur - (uint8_t *)(meta.chunk + 1)),
			 __ATOMIC_RELEASE);
}

void rec_meta_release_locked(void)
{
	if (meta.chunk)
		munmap(meta.chunk, MFX_CHUNK_SIZE);
	meta.chunk = NULL;
	meta.cur = meta.limit = NULL;
	meta.seq = 0;
}

/* Encode an EXT record around body[0..blen) into out; returns its length. */
size_t ext_wrap(uint8_t *out, unsigned kind, const uint8_t *body, size_t blen)
{
	uint8_t *p = out;
	*p++ = MFX_K_EXT;
	*p++ = (uint8_t)kind;
	p = put_varint(p, blen);
	memmove(p, body, blen);
	return (size_t)(p - out) + blen;
}

/* The same, taking rec_lock. */
void meta_append(const uint8_t *r, size_t len)
{
	spin_lock(&rec_lock);
	meta_append_locked(r, len);
	spin_unlock(&rec_lock);
}

void agent_mark(uint32_t kind, const uint64_t *vals, uint32_t nvals, const char *text)
{
	uint8_t body[1024], out[1040];
	size_t tl = text ? strlen(text) : 0;
	if (tl > 512)
		tl = 512;
	if (nvals > 16)
		nvals = 16;
	uint8_t *p = body;
	p = put_varint(p, agent_now_ns());
	p = put_varint(p, kind);
	p = put_varint(p, nvals);
	for (uint32_t i = 0; i < nvals; i++)
		p = put_varint(p, vals[i]);
	p = put_varint(p, tl);
	if (tl)	/* text may be NULL: never memcpy(p, NULL, 0) */
		memcpy(p, text, tl);
	p += tl;
	meta_append(out, ext_wrap(out, MFX_EXT_MARK, body, (size_t)(p - body)));
}

/* ---- the trace file's header --------------------------------------------- */

int rec_map_file(int fd)
{
	/* The header and slot table stay at the same addresses across
	 * recordings (attach re-arms): a thread that read rec.hdr just before
	 * an end still dereferences mapped memory. */
	void *want = rec.hdr;
	int fixed = want ? MAP_FIXED : 0;
	void *h = mmap(want, MFX_FIRST_CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED | fixed, fd, 0);
	if (h == MAP_FAILED) {
		int err = -errno;
		/* A failed MAP_FIXED may have unmapped the old copy: never leave
		 * rec.hdr pointing at a hole. */
		if (want && agent_mmap_zero(want, MFX_FIRST_CHUNK) < -1)
			rec.hdr = NULL;
		return err;
	}
	rec.hdr = h;
	rec.slots = (struct mfx_thread_slot *)((uint8_t *)h + MFX_HEADER_SIZE);
	rec.fd = fd;
	trace_ino = agent_fd_ino(fd, S_IFREG);
	return 0;
}

/* A fork child of a window: a copy of the parent's trace fd (its header
 * says when the parent's window ended), or -1. */
int rec_trace_dup(void)
{
	return trace_fd_ours() ? fcntl(rec.fd, F_DUPFD_CLOEXEC, 3) : -1;
}

/* The header page and slot table: copy, then replace the file mapping with
 * anonymous memory holding the copy, and close the file. */
void rec_detach_header(void)
{
	static uint8_t copy[MFX_FIRST_CHUNK];
	if (!rec.hdr)
		return;
	memcpy(copy, rec.hdr, sizeof(copy));
	int r = agent_mmap_zero(rec.hdr, MFX_FIRST_CHUNK);
	if (r < -1)
		rec.hdr = NULL;	/* a hole (see agent_mmap_zero): forget it */
	else	/* replaced, or still the file's: either way the same bytes */
		memcpy(rec.hdr, copy, sizeof(copy));
	if (trace_fd_ours())
		close(rec.fd);
	rec.fd = -1;
}
