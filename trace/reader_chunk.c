/*
 * reader_chunk.c - reading a chunk and decoding one thread's events from its
 * chunks (see reader_int.h).
 *
 * A trace opened from a file is read with pread(), one chunk at a time into
 * the decoding thread's buffer, never mapped whole: the reader's memory is
 * its buffers (one chunk per thread and per decoder), not the trace.  Every
 * length and offset read from the file is checked before use: a malformed
 * trace ends in -MFX_E_CORRUPT, never in a crash; a chunk decodes to at most
 * the raw slot it was written into.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "trace/reader_int.h"
#include "common/error.h"
#include "trace/columns.h"
#include "trace/evcodec.h"
#include "trace/varint.h"

/* ---- reading ------------------------------------------------------------------- */

static int grow_buf(uint8_t **buf, size_t *cap, size_t need)
{
	if (*cap >= need)
		return 0;
	uint8_t *nb = realloc(*buf, need ? need : 1);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = need;
	return 0;
}

int rd_read(const struct trace *t, struct rctx *x, uint64_t off, size_t len,
	    const uint8_t **out)
{
	if (off > t->size || len > t->size - off)
		return -MFX_E_TRUNCATED;
	if (t->map) {
		*out = t->map + off;
		return 0;
	}
	if (grow_buf(&x->fbuf, &x->fcap, len))
		return -ENOMEM;
	size_t got = 0;
	while (got < len) {	/* a regular file: short only at its end */
		ssize_t r = pread(t->fd, x->fbuf + got, len - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -MFX_E_TRUNCATED;	/* shrunk since it was opened */
		got += (size_t)r;
	}
	*out = x->fbuf;
	return 0;
}

int rd_chunk(const struct trace *t, struct rctx *x, uint64_t off,
	     const struct mfx_chunk_header **c)
{
	const uint8_t *p;
	int err = rd_read(t, x, off, sizeof(**c), &p);
	if (err)
		return err;
	uint32_t span = ((const struct mfx_chunk_header *)p)->span;
	if (span < sizeof(**c) || span > t->limit - off)
		return -MFX_E_CORRUPT;
	if ((err = rd_read(t, x, off, span, &p)))
		return err;
	*c = (const struct mfx_chunk_header *)p;
	return 0;
}

void rd_ctx_free(struct rctx *x)
{
	if (x->zd)
		ZSTD_freeDCtx(x->zd);
	free(x->fbuf);
	free(x->colbuf);
	memset(x, 0, sizeof(*x));
}

static int need_zd(struct rctx *x)
{
	return x->zd || (x->zd = ZSTD_createDCtx()) ? 0 : -ENOMEM;
}

/* ---- chunk payloads ------------------------------------------------------------ */

/*
 * MFX_CODEC_COLS: decode each column into x->colbuf, then interleave them
 * back into the raw record stream in out[0..used).
 */
static int decode_cols(const struct trace *t, struct rctx *x, const uint8_t *src,
		       uint32_t stored, uint8_t *out, uint32_t used)
{
	const uint8_t *p = src, *end = src + stored;
	uint64_t n, raw[COL_N], st[COL_N], total = 0;
	uint8_t method[COL_N];
	if (get_varint(&p, end, &n) || n != COL_N)
		return -MFX_E_CORRUPT;
	for (int i = 0; i < COL_N; i++) {
		if (get_varint(&p, end, &raw[i]) || get_varint(&p, end, &st[i]) || p >= end ||
		    raw[i] > used || st[i] > stored)
			return -MFX_E_CORRUPT;
		method[i] = *p++;
		total += raw[i];
	}
	if (total > (uint64_t)used * 2 + 64 || grow_buf(&x->colbuf, &x->colcap, total))
		return -MFX_E_CORRUPT;
	struct col_buf col[COL_N];
	uint8_t *dst = x->colbuf;
	for (int i = 0; i < COL_N; i++) {
		if (st[i] > (uint64_t)(end - p))
			return -MFX_E_CORRUPT;
		if (method[i] == 0) {
			if (st[i] != raw[i])
				return -MFX_E_CORRUPT;
			memcpy(dst, p, raw[i]);
		} else if (method[i] == 1) {
			size_t r = ZSTD_decompressDCtx(x->zd, dst, raw[i], p, st[i]);
			if (ZSTD_isError(r) || r != raw[i])
				return -MFX_E_CORRUPT;
		} else {
			return -MFX_E_CORRUPT;
		}
		col[i] = (struct col_buf){ dst, dst + raw[i] };
		dst += raw[i];
		p += st[i];
	}
	int stacks = !!(t->hdr.flags & MFX_HF_STACKS);
	uint8_t *w = out, *wend = out + used;
	while (col[COL_OP].p < col[COL_OP].end)
		if (col_record(NULL, &w, NULL, wend, col, 0, stacks))
			return -MFX_E_CORRUPT;
	return w == wend ? 0 : -MFX_E_CORRUPT;
}

int rd_payload(const struct trace *t, struct rctx *x, const struct mfx_chunk_header *c,
	       uint8_t **buf, size_t *cap, const uint8_t **p, size_t *len)
{
	const uint8_t *src = (const uint8_t *)(c + 1);
	uint32_t used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
	if (c->codec == MFX_CODEC_RAW) {
		if (used > c->span - sizeof(*c))
			return -MFX_E_CORRUPT;
		*p = src;
		*len = used;
		if (t->map || !used)
			return 0;
		/* read into x's buffer, which the next read reuses: keep a copy */
		if (grow_buf(buf, cap, used))
			return -ENOMEM;
		memcpy(*buf, src, used);
		*p = *buf;
		return 0;
	}
	/* A chunk decodes to at most the raw slot it was written into. */
	if ((c->codec != MFX_CODEC_ZSTD && c->codec != MFX_CODEC_COLS) ||
	    c->stored > c->span - sizeof(*c) || used > t->hdr.chunk_size - sizeof(*c))
		return -MFX_E_CORRUPT;
	if (!used) {	/* empty: no buffer needed (and none to point into yet) */
		*p = src;
		*len = 0;
		return 0;
	}
	if (grow_buf(buf, cap, used))
		return -ENOMEM;
	if (need_zd(x))
		return -ENOMEM;
	if (c->codec == MFX_CODEC_COLS) {
		int err = c->type == MFX_CT_EVENTS ? decode_cols(t, x, src, c->stored, *buf, used)
						   : -MFX_E_CORRUPT;
		if (err)
			return err;
		*p = *buf;
		*len = used;
		return 0;
	}
	size_t r = ZSTD_decompressDCtx(x->zd, *buf, used, src, c->stored);
	if (ZSTD_isError(r) || r != used)
		return -MFX_E_CORRUPT;
	*p = *buf;
	*len = used;
	return 0;
}


/* ---- one thread's events ----------------------------------------------------------- */

/* A MODEL chunk: its columns decompressed into the stream's decoder. */
static int model_open(const struct trace *t, struct rctx *x, struct tstream *s,
		      const struct mfx_chunk_header *c)
{
	uint32_t used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
	if (c->type != MFX_CT_EVENTS || c->stored > c->span - sizeof(*c) || used > EVC_MAX_RAW)
		return -MFX_E_CORRUPT;
	if (need_zd(x))
		return -ENOMEM;
	if (!s->dec && !(s->dec = evc_dec_new()))
		return -ENOMEM;
	int err = evc_dec_open(s->dec, x->zd, (const uint8_t *)(c + 1), c->stored, used,
			       c->base_ts, !!(t->hdr.flags & MFX_HF_STACKS));
	s->floored = !err && evc_dec_quantum(s->dec) % t->quantum == 0;
	return err;
}

/* Open the stream's next chunk; 0 ok, 1 no more chunks, < 0 error. */
static int stream_next_chunk(const struct trace *t, struct rctx *x, struct tstream *s)
{
	while (s->next < s->nchunks) {
		const struct mfx_chunk_header *c;
		const uint8_t *p = NULL;
		size_t len = 0;
		int err = rd_chunk(t, x, s->chunks[s->next++].off, &c);
		if (err)
			return err;
		s->model = c->codec == MFX_CODEC_MODEL;
		if (s->model)
			err = model_open(t, x, s, c);
		else
			err = rd_payload(t, x, c, &s->buf, &s->bufcap, &p, &len);
		if (err)
			return err;
		s->p = p;
		s->end = p ? p + len : p;	/* a MODEL chunk: no byte payload */
		s->ts = s->base_ts = c->base_ts;
		s->base_ns = c->base_ns;
		s->timebase = (int)c->timebase;
		s->ptr = 0;
		s->stack = 0;
		if (len || s->model)
			return 0;
	}
	return 1;
}

/* An event time (units) in ns, floored to the trace's quantum first (MODEL
 * chunks come floored; raw ones are floored here, so every time has the
 * same precision).  A floored time may lie a little before the chunk's base. */
static inline uint64_t to_ns(const struct trace *t, const struct tstream *s, uint64_t ts)
{
	if (!(s->model && s->floored))	/* a division: only where needed */
		ts -= ts % t->quantum;
	if (s->timebase)
		return ts;
	if (ts >= s->base_ts)
		return s->base_ns + (uint64_t)(((unsigned __int128)(ts - s->base_ts) * t->mult) >> 32);
	uint64_t back = (uint64_t)(((unsigned __int128)(s->base_ts - ts) * t->mult) >> 32);
	return s->base_ns > back ? s->base_ns - back : 0;
}

static inline int get_ptr(const uint8_t **p, const uint8_t *end, unsigned flags, uint64_t from,
			  uint64_t *out)
{
	uint64_t z;
	if (get_varint(p, end, &z))
		return -1;
	int64_t d = unzigzag(z);
	if (flags & MFX_F_SHR4)
		d = (int64_t)((uint64_t)d << 4);
	*out = from + (uint64_t)d;
	return 0;
}

/* Times of one thread never go back (a raw chunk after a floored one may
 * start a hair earlier). */
static inline uint64_t stream_ns(const struct trace *t, struct tstream *s, uint64_t ts)
{
	uint64_t ns = to_ns(t, s, ts);
	if (ns < s->last_ns)
		ns = s->last_ns;
	return s->last_ns = ns;
}

/* The next event of a MODEL chunk into *ev: 1, 0 at its end, < 0 error. */
static inline int model_next(const struct trace *t, struct tstream *s, struct trace_event *ev)
{
	struct evc_event e;
	int r = evc_dec_next(s->dec, &e);
	if (r <= 0)
		return r;
	/* One load per field: evc_dec_next() has just stored them one by one,
	 * and a wider load across two stores waits for both to retire (no
	 * store forwarding), ~15 cycles an event. */
#define ONE_BY_ONE() __asm__ volatile("" ::: "memory")
	ev->kind = e.kind;
	ev->ptr = e.ptr;
	ONE_BY_ONE();
	ev->old_ptr = e.old;
	ONE_BY_ONE();
	ev->size = e.size;
	ONE_BY_ONE();
	ev->align = e.align;
	ev->stack = e.stack;
	ev->failed = e.kind != MFX_K_FREE && !e.ptr;
	ev->ts_ns = stream_ns(t, s, e.ts);
	ev->tid = s->tid;
	ev->thread = s->index;
	return 1;
}

/* An extended record in a raw chunk at p (past its first byte): a SYNC
 * record moves the chunk's clock pair; others are skipped. */
static int raw_ext(struct tstream *s, const uint8_t *p, const uint8_t *end)
{
	uint64_t v;
	if (p >= end)
		return -MFX_E_CORRUPT;
	uint8_t ek = *p++;
	if (get_varint(&p, end, &v) || v > (uint64_t)(end - p))
		return -MFX_E_CORRUPT;
	if (ek == MFX_EXT_SYNC) {
		const uint8_t *q = p;
		uint64_t u, ns;
		if (!get_varint(&q, p + v, &u) && !get_varint(&q, p + v, &ns)) {
			s->base_ts = u;
			s->base_ns = ns;
		}
	}
	s->p = p + v;
	return 0;
}

/* realloc's size and pointers (trace/format.h's grammar). */
static int raw_realloc(struct tstream *s, const uint8_t **p, const uint8_t *end, unsigned flags,
		       struct trace_event *ev)
{
	uint64_t from = s->ptr;
	if (get_varint(p, end, &ev->size))
		return -MFX_E_CORRUPT;
	if (!(flags & MFX_F_OLD_NULL)) {
		if (get_ptr(p, end, flags, s->ptr, &ev->old_ptr))
			return -MFX_E_CORRUPT;
		from = ev->old_ptr;
	}
	if (flags & MFX_F_NULL) {
		ev->ptr = 0;
		ev->failed = 1;
	} else if (get_ptr(p, end, flags, from, &ev->ptr)) {
		return -MFX_E_CORRUPT;
	}
	s->ptr = ev->ptr ? ev->ptr : from;
	return 0;
}

/* An allocating call's size, alignment and result. */
static int raw_alloc(struct tstream *s, const uint8_t **p, const uint8_t *end, unsigned kind,
		     unsigned flags, struct trace_event *ev)
{
	if (get_varint(p, end, &ev->size))
		return -MFX_E_CORRUPT;
	if (kind >= MFX_K_POSIX_MEMALIGN && kind <= MFX_K_MEMALIGN && get_varint(p, end, &ev->align))
		return -MFX_E_CORRUPT;
	if (flags & MFX_F_NULL) {
		ev->ptr = 0;
		ev->failed = 1;
	} else {
		if (get_ptr(p, end, flags, s->ptr, &ev->ptr))
			return -MFX_E_CORRUPT;
		s->ptr = ev->ptr;
	}
	return 0;
}

/* One event record of a raw chunk at s->p (not EXT): 1 or < 0. */
static int raw_event(const struct trace *t, struct tstream *s, uint8_t b0, struct trace_event *ev)
{
	const uint8_t *p = s->p + 1, *end = s->end;
	unsigned kind = b0 & 15, flags = b0 & 0xf0;
	uint64_t d, v;
	if (kind == MFX_K_PAD || kind > MFX_K_PVALLOC || get_varint(&p, end, &d))
		return -MFX_E_CORRUPT;
	s->ts += d;
	ev->kind = (uint8_t)kind;
	ev->failed = 0;
	ev->align = 0;
	ev->old_ptr = 0;
	ev->stack = 0;
	if (kind == MFX_K_FREE) {
		if (get_ptr(&p, end, flags, s->ptr, &ev->ptr))
			return -MFX_E_CORRUPT;
		s->ptr = ev->ptr;
		ev->size = 0;
	} else if (kind == MFX_K_REALLOC || kind == MFX_K_REALLOCARRAY) {
		if (raw_realloc(s, &p, end, flags, ev))
			return -MFX_E_CORRUPT;
	} else if (raw_alloc(s, &p, end, kind, flags, ev)) {
		return -MFX_E_CORRUPT;
	}
	if (kind != MFX_K_FREE && (t->hdr.flags & MFX_HF_STACKS)) {
		if (!(flags & MFX_F_SAME_STACK)) {
			if (get_varint(&p, end, &v) || v > UINT32_MAX)
				return -MFX_E_CORRUPT;
			/* an id no STACK record defined (its META write
			 * failed, or the file lies): "no stack" */
			s->stack = v < t->nstacks && t->stacks[v] ? (uint32_t)v : 0;
		}
		ev->stack = s->stack;
	}
	ev->ts_ns = stream_ns(t, s, s->ts);
	ev->tid = s->tid;
	ev->thread = s->index;
	s->p = p;
	return 1;
}

int rd_stream_decode(const struct trace *t, struct rctx *x, struct tstream *s,
		     struct trace_event *ev)
{
	for (;;) {
		if (s->model) {
			int r = model_next(t, s, ev);
			if (r)
				return r;
			s->model = 0;	/* that chunk is done */
			s->p = s->end = NULL;
		}
		if (s->p >= s->end) {
			int r = stream_next_chunk(t, x, s);
			if (r)
				return r > 0 ? 0 : r;
			if (s->model)
				continue;
		}
		uint8_t b0 = *s->p;
		if ((b0 & 15) != MFX_K_EXT)
			return raw_event(t, s, b0, ev);
		int err = raw_ext(s, s->p + 1, s->end);
		if (err)
			return err;
	}
}
