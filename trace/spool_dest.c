/*
 * spool_dest.c - the trace files the spool's drain writes into: found in
 * the run directory by their uid, their time quantum, chunks appended in
 * regions on the file's grid of slots, write errors counted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trace/spool_int.h"
#include "common/util.h"
#include "trace/pack.h"

/* The trace file a slot belongs to, opened on first sight by its uid. */
struct dest *spool_dest_for(struct spool *sp, uint64_t uid)
{
	for (int i = 0; i < sp->ndst; i++)
		if (sp->dst[i].uid == uid)
			return &sp->dst[i];
	DIR *d = dir_open(sp->dir);	/* the bound run directory: through its fd */
	if (!d)
		return NULL;
	struct dirent *e;
	struct dest *found = NULL;
	while (!found && (e = readdir(d)) && sp->ndst < MAX_TRACES) {
		if (!is_trace_name(e->d_name))
			continue;
		char path[4200];
		int fd = file_open(path_join(path, sizeof(path), sp->dir, e->d_name),
				   O_RDWR | O_NONBLOCK, 0);	/* never a symlink, never a FIFO */
		if (fd < 0)
			continue;
		/* Look before mapping: a trace file the agent has just created is
		 * still empty, and touching a mapping past its end is a SIGBUS. */
		struct mfx_file_header peek;
		struct stat st;
		if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < (off_t)MFX_HEADER_SIZE ||
		    pread(fd, &peek, sizeof(peek), 0) != (ssize_t)sizeof(peek) ||
		    peek.magic != MFX_TRACE_MAGIC || peek.trace_uid != uid) {
			close(fd);
			continue;
		}
		struct mfx_file_header *h = mmap(NULL, MFX_HEADER_SIZE, PROT_READ | PROT_WRITE,
						 MAP_SHARED, fd, 0);
		if (h == MAP_FAILED || h->magic != MFX_TRACE_MAGIC || h->trace_uid != uid) {
			if (h != MAP_FAILED)
				munmap(h, MFX_HEADER_SIZE);
			close(fd);
			continue;
		}
		found = &sp->dst[sp->ndst++];
		*found = (struct dest){ .uid = uid, .fd = fd, .hdr = h,
					.stacks = !!(h->flags & MFX_HF_STACKS) };
	}
	closedir(d);
	return found;
}

/*
 * The trace's time quantum, set in its header before the first MODEL chunk
 * (format 2).  TSC units need the TSC rate: measured between the spool's
 * creation and now, over CALIBRATE_NS at least (the drain thread waits for
 * that once; a trace's first chunk rarely comes sooner).
 */
uint64_t spool_dest_quantum(struct spool *sp, struct dest *d)
{
	if (d->quantum)
		return d->quantum;
	uint64_t q = d->hdr->time_quantum;
	if (!q) {
		uint64_t hz = 0;
		if (d->hdr->flags & MFX_HF_TSC) {
			uint64_t dn = now_ns() - sp->ns0;
			if (dn < CALIBRATE_NS) {
				struct timespec ts = { 0, (long)(CALIBRATE_NS - dn) };
				nanosleep(&ts, NULL);
			}
			dn = now_ns() - sp->ns0;
			hz = (uint64_t)((double)(tfile_tsc() - sp->tsc0) * 1e9 / (double)dn);
		}
		q = pack_quantum(d->hdr, hz);
		d->hdr->time_quantum = (uint32_t)q;
		if (d->hdr->version < MFX_TRACE_VERSION)	/* an older agent's header */
			d->hdr->version = MFX_TRACE_VERSION;
	}
	return d->quantum = q;
}

/* Zeros over [off, off+len) of fd: a hole punched, else zeros written
 * over the blocks just written (they need no new ones). */
static void unwrite(int fd, off_t off, size_t len)
{
	static const uint8_t zeros[4096];
	if (!fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len))
		return;
	for (size_t o = 0; o < len;) {
		ssize_t z = pwrite(fd, zeros, len - o < sizeof(zeros) ? len - o : sizeof(zeros),
				   off + (off_t)o);
		if (z <= 0)
			return;
		o += (size_t)z;
	}
}

/*
 * Append one stored chunk to the trace file.  Packed chunks go into a
 * region of MFX_PACK_REGION bytes taken from the file's bump counter, the
 * agent's and mfx's other chunks' too, so everything stays on the grid of
 * whole slots the agent maps; a reader that meets zeros where a chunk would
 * start (a region's unused tail) goes on at the next slot boundary.
 */
int spool_dest_append(struct dest *d, const uint8_t *c, size_t span)
{
	if (!d->region || d->rused + span > d->rlen) {
		uint64_t cs = d->hdr->chunk_size;
		uint64_t len = (span + cs - 1) / cs * cs;
		if (len < MFX_PACK_REGION / MFX_CHUNK_SIZE * cs)
			len = MFX_PACK_REGION / MFX_CHUNK_SIZE * cs;
		d->region = __atomic_fetch_add(&d->hdr->next_chunk, len, __ATOMIC_SEQ_CST);
		d->rlen = len;
		d->rused = 0;
	}
	/* The payload first, the header (its magic) last: a write cut short
	 * (a full disk) leaves zeros where the chunk would start, which a
	 * reader skips, never a chunk whose tail is missing.  The header's 48
	 * bytes land in a block the payload write already allocated. */
	size_t h = sizeof(struct mfx_chunk_header);
	off_t at = (off_t)(d->region + d->rused);
	/* A payload write cut short is punched out again (holes read as
	 * zeros): its bytes would stand where a later, smaller chunk at the
	 * same place ends and the reader looks for the next header (the trace
	 * read as corrupt after a full disk).  No extra system call while the
	 * disk has room. */
	ssize_t w = span > h ? pwrite(d->fd, c + h, span - h, at + (off_t)h) : (ssize_t)(span - h);
	if (w != (ssize_t)(span - h)) {
		int err = w < 0 ? -errno : -ENOSPC;
		if (w > 0)
			unwrite(d->fd, at + (off_t)h, (size_t)w);
		return err;
	}
	if (pwrite(d->fd, c, h, at) != (ssize_t)h)
		return -errno;
	d->rused += span;
	return 0;
}

/* A chunk that could not be written (ENOSPC, EIO): counted in the trace's
 * header and in the stats; the session ends the window (a full disk is not
 * a reason to go on filling it). */
void spool_write_failed(struct spool *sp, struct dest *d, int err, uint32_t chunks)
{
	sp->st.write_errors += chunks;
	if (!sp->st.write_errno)
		sp->st.write_errno = -err;
	__atomic_fetch_add(&d->hdr->dropped_chunks, chunks, __ATOMIC_RELAXED);
	__atomic_fetch_or(&d->hdr->flags, MFX_HF_DROPPED, __ATOMIC_RELAXED);
}
