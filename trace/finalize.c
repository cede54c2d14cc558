/*
 * finalize.c - the end of a capture: the trace file copied compacted, with
 * MFX_HF_FINAL set (see tfile_finalize in tracefile.h).
 *
 * By then mfx's drain thread has encoded nearly every event chunk while the
 * window ran (trace/spool.c), so this is mostly a copy: chunks already stored
 * are copied by the kernel (copy_file_range) in runs, the unwritten tails of
 * slots and regions are dropped, and only what is still raw is packed here
 * (chunks the agent mapped from the file when the spool was full: encoded
 * too; META and MFX chunks: zstd).  The end of a window then costs a pass
 * over the compressed bytes, not an encoding of the trace.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace/tracefile.h"
#include "common/util.h"
#include "trace/pack.h"

#define OUT_BUF (1u << 20)

/* The compacted file, written in order: small pieces through a buffer, runs
 * of stored chunks copied from the source by the kernel. */
struct out {
	int fd, src;
	uint64_t off;			/* where the next byte goes */
	uint8_t *buf;
	size_t len;
	uint64_t run_off, run_len;	/* a pending copy from src */
};

static int put_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* Copy [from, from + n) of src to dst at off: copy_file_range (no copy
 * through user space; Linux >= 5.3 across file systems), else read+write. */
static int copy_range(int src, int dst, uint64_t from, uint64_t n, uint64_t off)
{
	while (n) {
		loff_t in = (loff_t)from, o = (loff_t)off;
		ssize_t r = copy_file_range(src, &in, dst, &o, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		from += (uint64_t)r;
		off += (uint64_t)r;
		n -= (uint64_t)r;
	}
	static uint8_t tmp[1 << 16];
	while (n) {
		size_t k = n < sizeof(tmp) ? (size_t)n : sizeof(tmp);
		ssize_t r = pread(src, tmp, k, (off_t)from);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -MFX_E_TRUNCATED;
		int err = put_all(dst, tmp, (size_t)r, off);
		if (err)
			return err;
		from += (uint64_t)r;
		off += (uint64_t)r;
		n -= (uint64_t)r;
	}
	return 0;
}

static int out_flush(struct out *o)
{
	int err = 0;
	if (o->len) {
		err = put_all(o->fd, o->buf, o->len, o->off);
		o->off += o->len;
		o->len = 0;
	}
	if (!err && o->run_len) {
		err = copy_range(o->src, o->fd, o->run_off, o->run_len, o->off);
		o->off += o->run_len;
		o->run_len = 0;
	}
	return err;
}

static int out_put(struct out *o, const void *p, size_t n)
{
	int err = o->run_len || o->len + n > OUT_BUF ? out_flush(o) : 0;
	if (err)
		return err;
	if (n > OUT_BUF)
		return put_all(o->fd, p, n, (o->off += n) - n);
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

/* Copy [off, off + n) of the source as it is (after what is pending). */
static int out_copy(struct out *o, uint64_t off, uint64_t n)
{
	if (o->run_len && o->run_off + o->run_len == off) {
		o->run_len += n;
		return 0;
	}
	int err = out_flush(o);
	o->run_off = off;
	o->run_len = n;
	return err;
}

/*
 * What is still raw, packed on every core: a thread's raw EVENTS chunks in
 * runs of consecutive seq (up to PACK_RUN, encoded together), and META/MFX
 * chunks alone (zstd).  Results are kept in memory until written (about a
 * byte an event).
 */
#define PACK_RUN 4

struct job {
	const struct mfx_chunk_header *c[PACK_RUN];
	uint32_t n;
	uint8_t *out;		/* the packed chunk(s), malloc'ed */
	size_t len;
};

struct work {
	const struct mfx_file_header *h;
	uint64_t q;
	struct job *jobs;
	size_t njobs, cap;
};

static int cmp_raw(const void *a, const void *b)
{
	const struct mfx_chunk_header *x = ((const struct job *)a)->c[0];
	const struct mfx_chunk_header *y = ((const struct job *)b)->c[0];
	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Runs of one thread's consecutive EVENTS chunks into single jobs (the jobs
 * are sorted: EVENTS first, by thread and seq). */
static void join_runs(struct work *w)
{
	size_t k = 0;
	for (size_t i = 0; i < w->njobs; i++) {
		const struct mfx_chunk_header *c = w->jobs[i].c[0];
		struct job *last = k ? &w->jobs[k - 1] : NULL;
		if (last && c->type == MFX_CT_EVENTS && last->c[0]->type == MFX_CT_EVENTS &&
		    last->c[0]->tid == c->tid && last->n < PACK_RUN &&
		    last->c[last->n - 1]->seq + 1 == c->seq)
			last->c[last->n++] = c;
		else
			w->jobs[k++] = w->jobs[i];
	}
	w->njobs = k;
}

static int pack_job(void *ctx, size_t i, struct packer *pk)
{
	struct work *w = ctx;
	struct job *j = &w->jobs[i];
	const uint8_t *p;
	size_t span = 0, len = 0;
	if (j->c[0]->type == MFX_CT_EVENTS)
		span = pack_events(pk, j->c, j->n, !!(w->h->flags & MFX_HF_STACKS), w->q, &p);
	if (span) {	/* one chunk for the run */
		if (!(j->out = malloc(span)))
			return -ENOMEM;
		memcpy(j->out, p, span);
		j->len = span;
		return 0;
	}
	for (uint32_t k = 0; k < j->n; k++) {	/* each on its own */
		if (!(span = pack_plain(pk, j->c[k], &p)))
			return -ENOMEM;
		uint8_t *o = realloc(j->out, len + span);
		if (!o)
			return -ENOMEM;
		memcpy(o + len, p, span);
		j->out = o;
		len += span;
	}
	j->len = len;
	return 0;
}

/* Walk the source's chunks (skipping unwritten slots): the stored ones are
 * copied as they come, the raw ones become jobs. */
static int walk(struct out *o, struct work *w, const uint8_t *m, uint64_t limit,
		struct finalize_stats *st)
{
	const struct mfx_file_header *h = w->h;
	uint64_t cs = h->chunk_size;
	for (uint64_t off = h->first_chunk; off + sizeof(struct mfx_chunk_header) <= limit;) {
		const struct mfx_chunk_header *c = (const void *)(m + off);
		uint32_t magic = __atomic_load_n(&c->magic, __ATOMIC_ACQUIRE);
		if (magic == 0) {	/* nothing more was written in this slot */
			off = h->first_chunk + ((off - h->first_chunk) / cs + 1) * cs;
			continue;
		}
		if (magic != MFX_CHUNK_MAGIC || c->span < sizeof(*c) || c->span > limit - off ||
		    (c->codec == MFX_CODEC_RAW ? c->used : c->stored) > c->span - sizeof(*c))
			return -MFX_E_CORRUPT;
		int err = 0;
		if (c->codec != MFX_CODEC_RAW) {
			err = out_copy(o, off, c->span);
		} else if (c->type != MFX_CT_EVENTS || c->used) {	/* else: an empty slot */
			if (grow_array(&w->jobs, &w->cap, w->njobs, sizeof(*w->jobs)))
				return -ENOMEM;
			w->jobs[w->njobs++] = (struct job){ .c = { c }, .n = 1 };
		}
		if (err)
			return err;
		st->chunks++;
		mfx_tick();	/* progress, for the watchdog of an interrupted mfx */
		off += c->span;
	}
	return 0;
}

/* The chunks: stored ones copied, raw ones packed on every core, then
 * written after them (a reader orders chunks by thread and seq, not place). */
static int put_chunks(struct out *o, const uint8_t *m, const struct mfx_file_header *h,
		      uint64_t limit, uint64_t q, struct finalize_stats *st)
{
	struct work w = { .h = h, .q = q };
	int err = walk(o, &w, m, limit, st);
	if (!err && w.njobs) {
		qsort(w.jobs, w.njobs, sizeof(*w.jobs), cmp_raw);
		join_runs(&w);
		err = pack_each(w.njobs, pack_threads(), pack_job, &w, NULL);
	}
	for (size_t i = 0; !err && i < w.njobs; i++)
		err = out_put(o, w.jobs[i].out, w.jobs[i].len);
	if (!err)
		err = out_flush(o);
	for (size_t i = 0; i < w.njobs; i++)
		free(w.jobs[i].out);
	free(w.jobs);
	return err;
}

/* The final file into o: the header, the slots handed out, the chunks,
 * then the header again, patched. */
static int write_final(struct out *o, const uint8_t *m, struct mfx_file_header *h,
		       uint64_t tsc_hz, struct finalize_stats *st)
{
	uint32_t nslots = h->nthreads < MFX_THREAD_SLOTS ? h->nthreads : MFX_THREAD_SLOTS;
	uint64_t first = MFX_HEADER_SIZE + (uint64_t)nslots * MFX_SLOT_SIZE;
	uint64_t q = h->time_quantum ? h->time_quantum :
				       pack_quantum(h, tsc_hz ? tsc_hz : h->tsc_hz);
	int err = out_put(o, m, first);
	if (err || (err = put_chunks(o, m, h, st->raw_bytes, q, st)))
		return err;
	const struct mfx_thread_slot *slots = (const void *)(m + MFX_HEADER_SIZE);
	for (uint32_t i = 0; i < nslots; i++)
		st->events += slots[i].events;
	h->flags |= MFX_HF_FINAL;
	h->first_chunk = first;
	h->next_chunk = o->off;
	h->time_quantum = (uint32_t)q;
	h->version = MFX_TRACE_VERSION;
	if (tsc_hz)
		h->tsc_hz = tsc_hz;
	st->final_bytes = o->off;
	return put_all(o->fd, (const uint8_t *)h, sizeof(*h), 0);
}

int tfile_finalize(const char *path, uint64_t tsc_hz, struct finalize_stats *st)
{
	struct finalize_stats dummy;
	struct out o = { .fd = -1, .src = -1 };
	char tmp[PATH_MAX + 16];
	const uint8_t *m = MAP_FAILED;
	struct stat sb;
	size_t size = 0;
	int err = 0;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	tmp[0] = 0;
	if ((o.src = open_read(path)) < 0)	/* the run directory's fd, never a symlink */
		return o.src;
	if (fstat(o.src, &sb) || !S_ISREG(sb.st_mode) || sb.st_size < (off_t)MFX_FIRST_CHUNK) {
		err = -MFX_E_TRUNCATED;
		goto out;
	}
	size = (size_t)sb.st_size;
	if ((m = map_file_read(o.src, size, MAP_SHARED)) == MAP_FAILED) {	/* holes: util.h */
		err = -errno;
		goto out;
	}
	struct mfx_file_header h;
	memcpy(&h, m, sizeof(h));
	if (h.magic != MFX_TRACE_MAGIC || h.first_chunk < MFX_FIRST_CHUNK ||
	    h.chunk_size < 4096 || h.chunk_size > (64u << 20) || h.first_chunk > size) {
		err = -MFX_E_CORRUPT;
		goto out;
	}
	st->raw_bytes = h.next_chunk < size ? h.next_chunk : size;
	if (h.flags & MFX_HF_FINAL) {
		st->final_bytes = size;
		goto out;
	}
	/* a fresh 0600 file (O_EXCL, O_NOFOLLOW) renamed over the raw trace
	 * only when all went well (util.h) */
	o.fd = file_replace_open(path, tmp, sizeof(tmp));
	o.buf = malloc(OUT_BUF);
	if (o.fd < 0 || !o.buf) {
		err = o.fd < 0 ? o.fd : -ENOMEM;
		if (o.fd < 0)
			tmp[0] = 0;
		goto out;
	}
	err = write_final(&o, m, &h, tsc_hz, st);
out:
	if (o.fd >= 0 && close(o.fd) && !err)
		err = -errno;
	if (tmp[0])
		err = file_replace_commit(tmp, path, err);
	if (m != MAP_FAILED)
		munmap((void *)m, size);
	close(o.src);
	free(o.buf);
	return err;
}
