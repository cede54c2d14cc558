/*
 * reader.c - the trace reader (see reader.h): checks the header, walks the
 * chunks, loads the metadata, and streams events merged across threads by
 * time.  Every length and offset read from the file is checked before use:
 * a malformed trace ends in -MFX_E_CORRUPT, never in a crash.
 *
 * Memory and time are bounded by the file's size, whatever its bytes say
 * (a 659 KB corrupted trace once made report allocate 13.6 GB): a stack
 * id by how many STACK records the file can hold, a chunk's decoded size
 * by the raw slot size, the decoded bytes of all chunks together by
 * DECODE_RATIO times the file (plus a floor), and an event's stack id by
 * the stacks actually defined (others read as 0, "no stack").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "trace/reader.h"
#include "common/util.h"
#include "trace/columns.h"
#include "common/error.h"
#include "trace/evcodec.h"
#include "trace/varint.h"

struct chunk_ref {
	uint64_t off;		/* of the header in the file */
	uint32_t seq;
	uint32_t used;
	uint64_t base_ts;	/* with seq: the same chunk copied twice */
};

/* Decoded bytes allowed per byte of file (zstd and the column codec do not
 * reach this on event data), plus a floor for small files. */
#define DECODE_RATIO 256u
#define DECODE_FLOOR (64ull << 20)
#define MIN_STACK_RECORD 4u	/* ext byte, kind, len, id... : a STACK record is longer */

/* One thread's event stream. */
struct tstream {
	uint32_t tid;
	struct chunk_ref *chunks;
	size_t nchunks, cap;
	size_t next;		/* next chunk to open */
	const uint8_t *p, *end;	/* decode cursor in the current chunk */
	uint8_t *buf;		/* decompression buffer */
	size_t bufcap;
	struct evc_dec *dec;	/* the current chunk is MFX_CODEC_MODEL: its decoder */
	int model;
	uint64_t last_ns;	/* the previous event's time: times never go back */
	/* decoder state of the current chunk */
	uint64_t ts, ptr;
	uint32_t stack;
	uint64_t base_ts, base_ns;
	int timebase;
	/* the decoded next event */
	struct trace_event ev;
	int have;
	int done;
};

struct trace {
	const uint8_t *map;
	size_t size;
	int mapped;
	struct mfx_file_header hdr;
	struct trace_info info;
	uint64_t limit;		/* end of chunk area */
	double ns_per_unit;	/* event time unit -> ns */
	uint64_t mult;		/* ns_per_unit * 2^32 */
	uint64_t quantum;	/* times floored to multiples of this (units), >= 1 */
	uint64_t quantum_ns;	/* ... that many ns (rounded up) */

	struct tstream *th;
	size_t nth, capth;
	uint32_t *tids;
	uint32_t *heap;		/* stream indices, min-heap on next event */
	size_t nheap;
	int started;

	uint64_t **stacks;	/* [id] -> frames, stacks[id][-1] = depth */
	uint32_t nstacks;
	struct trace_module *mods;
	size_t nmods, capmods;
	struct trace_sample *samples;
	size_t nsamples, capsamples;
	struct trace_mark *marks;
	size_t nmarks, capmarks;
	struct kv { char *k, *v; } *infos;
	size_t ninfos, capinfos;
	struct kv *threads;	/* k = tid as text */
	size_t nthreadnames, capthreadnames;
	/* clock pairs (unit, ns) for fitting the TSC rate */
	uint64_t sync_lo_u, sync_lo_ns, sync_hi_u, sync_hi_ns;
	int have_sync;
	uint64_t decoded;	/* bytes all chunks decode to (checked at open) */
	ZSTD_DCtx *zd;
	uint8_t *colbuf;	/* decoded columns of the chunk being opened */
	size_t colcap;
	uint8_t *metabuf;
	size_t metacap;
};

/* ---- small decoding helpers ------------------------------------------------ */

#define GROW(arr, n, cap)                                                             \
	do {                                                                          \
		if (grow_array(&(arr), &(cap), (n), sizeof(*(arr))))                  \
			return -ENOMEM;                                               \
	} while (0)

static int get_string(const uint8_t **p, const uint8_t *end, char **out)
{
	uint64_t len;
	if (get_varint(p, end, &len) || len > (uint64_t)(end - *p))
		return -MFX_E_CORRUPT;
	char *s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, *p, len);
	s[len] = 0;
	for (size_t i = 0; i < len; i++)	/* text for people: no NULs inside */
		if (!s[i])
			s[i] = ' ';
	*p += len;
	*out = s;
	return 0;
}

/* ---- chunk payloads ------------------------------------------------------------ */

static const struct mfx_chunk_header *chunk_at(const struct trace *t, uint64_t off)
{
	return (const struct mfx_chunk_header *)(t->map + off);
}

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

/*
 * MFX_CODEC_COLS: decode each column into t->colbuf, then interleave them
 * back into the raw record stream in out[0..used).
 */
static int decode_cols(struct trace *t, const uint8_t *src, uint32_t stored, uint8_t *out,
		       uint32_t used)
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
	if (total > (uint64_t)used * 2 + 64 || grow_buf(&t->colbuf, &t->colcap, total))
		return -MFX_E_CORRUPT;
	struct col_buf col[COL_N];
	uint8_t *dst = t->colbuf;
	for (int i = 0; i < COL_N; i++) {
		if (st[i] > (uint64_t)(end - p))
			return -MFX_E_CORRUPT;
		if (method[i] == 0) {
			if (st[i] != raw[i])
				return -MFX_E_CORRUPT;
			memcpy(dst, p, raw[i]);
		} else if (method[i] == 1) {
			size_t r = ZSTD_decompressDCtx(t->zd, dst, raw[i], p, st[i]);
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

/* Payload of a chunk, decompressed into *buf if needed. */
static int chunk_payload(struct trace *t, const struct mfx_chunk_header *c, uint8_t **buf,
			 size_t *cap, const uint8_t **p, size_t *len)
{
	const uint8_t *src = (const uint8_t *)(c + 1);
	uint32_t used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
	if (c->codec == MFX_CODEC_RAW) {
		if (used > c->span - sizeof(*c))
			return -MFX_E_CORRUPT;
		*p = src;
		*len = used;
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
	if (!t->zd && !(t->zd = ZSTD_createDCtx()))
		return -ENOMEM;
	if (c->codec == MFX_CODEC_COLS) {
		int err = c->type == MFX_CT_EVENTS ? decode_cols(t, src, c->stored, *buf, used)
						   : -MFX_E_CORRUPT;
		if (err)
			return err;
		*p = *buf;
		*len = used;
		return 0;
	}
	size_t r = ZSTD_decompressDCtx(t->zd, *buf, used, src, c->stored);
	if (ZSTD_isError(r) || r != used)
		return -MFX_E_CORRUPT;
	*p = *buf;
	*len = used;
	return 0;
}

/* ---- metadata records -------------------------------------------------------------- */

static int add_stack(struct trace *t, const uint8_t *p, const uint8_t *end)
{
	uint64_t id, n, f;
	/* Ids are dense from 1: no more of them than STACK records fit. */
	if (get_varint(&p, end, &id) || get_varint(&p, end, &n) || n == 0 || n > MFX_MAX_DEPTH ||
	    id == 0 || id > t->size / MIN_STACK_RECORD + 1 || id > (1u << 26) ||
	    get_varint(&p, end, &f))
		return -MFX_E_CORRUPT;
	if (id >= t->nstacks) {
		uint32_t nn = t->nstacks ? t->nstacks : 256;
		while (nn <= id)
			nn *= 2;
		uint64_t **ns = realloc(t->stacks, nn * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		memset(ns + t->nstacks, 0, (nn - t->nstacks) * sizeof(*ns));
		t->stacks = ns;
		t->nstacks = nn;
	}
	if (t->stacks[id])
		return 0;	/* defined twice (a straggler): keep the first */
	uint64_t *fr = malloc((n + 1) * sizeof(uint64_t));
	if (!fr)
		return -ENOMEM;
	fr[0] = n;
	fr[1] = f;
	for (uint64_t i = 1; i < n; i++) {
		uint64_t d;
		if (get_varint(&p, end, &d)) {
			free(fr);
			return -MFX_E_CORRUPT;
		}
		f += (uint64_t)unzigzag(d);
		fr[i + 1] = f;
	}
	t->stacks[id] = fr + 1;
	return 0;
}

static int add_module(struct trace *t, const uint8_t *p, const uint8_t *end)
{
	uint64_t ts, op, base, lo, hi, bl;
	if (get_varint(&p, end, &ts) || get_varint(&p, end, &op) || get_varint(&p, end, &base) ||
	    get_varint(&p, end, &lo) || get_varint(&p, end, &hi) || get_varint(&p, end, &bl) ||
	    bl > 64 || bl > (uint64_t)(end - p))
		return -MFX_E_CORRUPT;
	const uint8_t *bid = p;
	p += bl;
	if (op == 2) {	/* unloaded */
		for (size_t i = 0; i < t->nmods; i++)
			if (t->mods[i].base == base && t->mods[i].lo == lo && !t->mods[i].unloaded)
				t->mods[i].unloaded = 1;
		return 0;
	}
	GROW(t->mods, t->nmods, t->capmods);
	struct trace_module *m = &t->mods[t->nmods];
	memset(m, 0, sizeof(*m));
	int err = get_string(&p, end, &m->path);
	if (err)
		return err;
	m->base = base;
	m->lo = lo;
	m->hi = hi;
	m->ts_ns = ts;
	m->build_id_len = (uint32_t)bl;
	memcpy(m->build_id, bid, bl);
	t->nmods++;
	return 0;
}

static int add_sample(struct trace *t, const uint8_t *p, const uint8_t *end)
{
	uint64_t ts, n, v;
	if (get_varint(&p, end, &ts) || get_varint(&p, end, &n) || n > 64)
		return -MFX_E_CORRUPT;
	GROW(t->samples, t->nsamples, t->capsamples);
	struct trace_sample *s = &t->samples[t->nsamples];
	memset(s, 0, sizeof(*s));
	s->ts_ns = ts;
	for (uint64_t i = 0; i < n; i++) {
		if (get_varint(&p, end, &v))
			return -MFX_E_CORRUPT;
		if (i < MFX_SF_NFIELDS)
			s->v[i] = v;
	}
	t->nsamples++;
	return 0;
}

static int add_mark(struct trace *t, const uint8_t *p, const uint8_t *end)
{
	uint64_t ts, kind, n, v;
	if (get_varint(&p, end, &ts) || get_varint(&p, end, &kind) || get_varint(&p, end, &n) ||
	    n > 64)
		return -MFX_E_CORRUPT;
	GROW(t->marks, t->nmarks, t->capmarks);
	struct trace_mark *m = &t->marks[t->nmarks];
	memset(m, 0, sizeof(*m));
	m->ts_ns = ts;
	m->kind = (uint32_t)kind;
	for (uint64_t i = 0; i < n; i++) {
		if (get_varint(&p, end, &v))
			return -MFX_E_CORRUPT;
		if (i < 16)
			m->vals[i] = v;
	}
	m->nvals = n < 16 ? (uint32_t)n : 16;
	int err = p < end ? get_string(&p, end, &m->text) : 0;
	if (err)
		return err;
	if (!m->text && !(m->text = strdup("")))
		return -ENOMEM;
	t->nmarks++;
	return 0;
}

static int add_kv(struct kv **arr, size_t *n, size_t *cap, const uint8_t *p, const uint8_t *end,
		  int key_is_tid)
{
	GROW(*arr, *n, *cap);
	struct kv *e = &(*arr)[*n];
	int err;
	if (key_is_tid) {
		uint64_t tid;
		if (get_varint(&p, end, &tid))
			return -MFX_E_CORRUPT;
		if (asprintf(&e->k, "%llu", (unsigned long long)tid) < 0)
			return -ENOMEM;
	} else if ((err = get_string(&p, end, &e->k))) {
		return err;
	}
	if ((err = get_string(&p, end, &e->v))) {
		free(e->k);
		return err;
	}
	(*n)++;
	return 0;
}

static void note_sync(struct trace *t, uint64_t u, uint64_t ns)
{
	if (!t->have_sync) {
		t->sync_lo_u = t->sync_hi_u = u;
		t->sync_lo_ns = t->sync_hi_ns = ns;
		t->have_sync = 1;
		return;
	}
	if (u < t->sync_lo_u) {
		t->sync_lo_u = u;
		t->sync_lo_ns = ns;
	}
	if (u > t->sync_hi_u) {
		t->sync_hi_u = u;
		t->sync_hi_ns = ns;
	}
}

/* Walk the records of a META or MFX chunk. */
static int parse_meta(struct trace *t, const uint8_t *p, const uint8_t *end, int timebase)
{
	while (p < end) {
		uint8_t b0 = *p++;
		if ((b0 & 15) != MFX_K_EXT || p >= end)
			return -MFX_E_CORRUPT;
		uint8_t kind = *p++;
		uint64_t len;
		if (get_varint(&p, end, &len) || len > (uint64_t)(end - p))
			return -MFX_E_CORRUPT;
		const uint8_t *body = p, *bend = p + len;
		p = bend;
		int err = 0;
		switch (kind) {
		case MFX_EXT_STACK: err = add_stack(t, body, bend); break;
		case MFX_EXT_MODULE: err = add_module(t, body, bend); break;
		case MFX_EXT_SAMPLE: err = add_sample(t, body, bend); break;
		case MFX_EXT_MARK: err = add_mark(t, body, bend); break;
		case MFX_EXT_THREAD:
			err = add_kv(&t->threads, &t->nthreadnames, &t->capthreadnames, body, bend, 1);
			break;
		case MFX_EXT_INFO:
			err = add_kv(&t->infos, &t->ninfos, &t->capinfos, body, bend, 0);
			break;
		case MFX_EXT_SYNC: {
			uint64_t u, ns;
			if (get_varint(&body, bend, &u) || get_varint(&body, bend, &ns))
				return -MFX_E_CORRUPT;
			note_sync(t, u, ns);
			break;
		}
		default: break;	/* a newer writer's record: skip */
		}
		if (err)
			return err;
	}
	return 0;
}

/* ---- opening ------------------------------------------------------------------------ */

static struct tstream *stream_for(struct trace *t, uint32_t tid)
{
	for (size_t i = t->nth; i-- > 0;)	/* recent threads first */
		if (t->th[i].tid == tid)
			return &t->th[i];
	if (grow_array(&t->th, &t->capth, t->nth, sizeof(*t->th)))
		return NULL;
	struct tstream *s = &t->th[t->nth++];
	memset(s, 0, sizeof(*s));
	s->tid = tid;
	return s;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct chunk_ref *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	if (x->base_ts != y->base_ts)
		return x->base_ts < y->base_ts ? -1 : 1;
	return x->used > y->used ? -1 : x->used < y->used;	/* longest copy first */
}

/*
 * The same chunk twice: a slot copied while its thread still filled it (a
 * process that never saw the stop) and copied again later, by the agent
 * once mfx was gone.  Same thread, seq and start time: keep the longest,
 * which holds the other as a prefix.
 */
static void drop_copies(struct tstream *s)
{
	size_t w = 0;
	for (size_t i = 0; i < s->nchunks; i++) {
		const struct chunk_ref *c = &s->chunks[i];
		if (w && s->chunks[w - 1].seq == c->seq && s->chunks[w - 1].base_ts == c->base_ts)
			continue;
		s->chunks[w++] = *c;
	}
	s->nchunks = w;
}

static int walk_chunks(struct trace *t)
{
	uint64_t off = t->hdr.first_chunk;
	int final = !!(t->hdr.flags & MFX_HF_FINAL);
	while (off + sizeof(struct mfx_chunk_header) <= t->limit) {
		const struct mfx_chunk_header *c = chunk_at(t, off);
		uint32_t magic = __atomic_load_n(&c->magic, __ATOMIC_ACQUIRE);
		if (magic == 0 && !final) {	/* nothing (more) written in this slot */
			uint64_t cs = t->hdr.chunk_size;
			off = t->hdr.first_chunk + ((off - t->hdr.first_chunk) / cs + 1) * cs;
			continue;
		}
		if (magic != MFX_CHUNK_MAGIC || c->span < sizeof(*c) || c->span > t->limit - off ||
		    (c->span & 7))
			return -MFX_E_CORRUPT;
		if (c->type == MFX_CT_EVENTS) {
			struct tstream *s = stream_for(t, c->tid);
			if (!s)
				return -ENOMEM;
			GROW(s->chunks, s->nchunks, s->cap);
			uint32_t used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
			s->chunks[s->nchunks++] = (struct chunk_ref){ off, c->seq, used, c->base_ts };
			t->decoded += used;
			if (c->timebase == 0)
				note_sync(t, c->base_ts, c->base_ns);
		} else if (c->type == MFX_CT_META || c->type == MFX_CT_MFX) {
			const uint8_t *p;
			size_t len;
			int err = chunk_payload(t, c, &t->metabuf, &t->metacap, &p, &len);
			if (!err)
				err = parse_meta(t, p, p + len, c->timebase);
			if (err)
				return err;
		}	/* unknown types: skipped */
		off += c->span;
	}
	if (final && off != t->limit && t->limit - off >= sizeof(struct mfx_chunk_header))
		return -MFX_E_TRUNCATED;
	if (t->decoded > DECODE_FLOOR + (uint64_t)DECODE_RATIO * t->size)
		return -MFX_E_CORRUPT;	/* more than any real trace this size decodes to */
	return 0;
}

static void fit_clock(struct trace *t)
{
	if (!(t->hdr.flags & MFX_HF_TSC)) {
		t->ns_per_unit = 1.0;
	} else if (t->hdr.tsc_hz) {
		t->ns_per_unit = 1e9 * (double)(1ull << (t->hdr.tsc_shift & 31)) / (double)t->hdr.tsc_hz;
	} else {
		/* The header's start and end pairs count too (raw TSC there). */
		uint64_t sh = t->hdr.tsc_shift & 31;
		if (t->hdr.start_tsc && t->hdr.start_ns)
			note_sync(t, t->hdr.start_tsc >> sh, t->hdr.start_ns);
		if (t->hdr.end_tsc && t->hdr.end_ns)
			note_sync(t, t->hdr.end_tsc >> sh, t->hdr.end_ns);
		uint64_t du = t->sync_hi_u - t->sync_lo_u, dn = t->sync_hi_ns - t->sync_lo_ns;
		if (t->have_sync && du > 0 && dn >= 1000000 && t->sync_hi_ns > t->sync_lo_ns)
			t->ns_per_unit = (double)dn / (double)du;
		else	/* too short to measure: assume a 2.5 GHz TSC */
			t->ns_per_unit = (double)(1ull << sh) / 2.5;
	}
	/* A damaged header can make the rate anything: keep the cast defined. */
	if (!(t->ns_per_unit > 0 && t->ns_per_unit < 4294967296.0))
		t->ns_per_unit = 1;
	t->mult = (uint64_t)(t->ns_per_unit * 4294967296.0);
	t->quantum = t->hdr.time_quantum ? t->hdr.time_quantum : 1;
	t->quantum_ns = (uint64_t)((double)t->quantum * t->ns_per_unit + 0.999);
}

static int check_header(struct trace *t)
{
	if (t->size < MFX_HEADER_SIZE)
		return -MFX_E_TRUNCATED;
	memcpy(&t->hdr, t->map, sizeof(t->hdr));
	struct mfx_file_header *h = &t->hdr;
	if (h->magic != MFX_TRACE_MAGIC)
		return -MFX_E_CORRUPT;
	if (h->version > MFX_TRACE_VERSION)
		return -MFX_E_VERSION;
	if (h->header_size != MFX_HEADER_SIZE || h->chunk_size < 4096 ||
	    h->chunk_size > (64u << 20) || (h->chunk_size & 7) || h->first_chunk < MFX_HEADER_SIZE ||
	    (h->first_chunk & 7))
		return -MFX_E_CORRUPT;
	if (h->first_chunk > t->size)
		return -MFX_E_TRUNCATED;
	h->exe[sizeof(h->exe) - 1] = 0;
	h->cmdline[sizeof(h->cmdline) - 1] = 0;
	/* A raw file may be longer (preallocated) or shorter (crash, copy) than
	 * the slots handed out. */
	t->limit = t->size;
	if (!(h->flags & MFX_HF_FINAL) && h->next_chunk >= h->first_chunk && h->next_chunk < t->size)
		t->limit = h->next_chunk;
	return 0;
}

static uint64_t count_events(const struct trace *t)
{
	uint64_t n = 0;
	/* A final file keeps only the slots handed out. */
	uint64_t room = (t->hdr.first_chunk - MFX_HEADER_SIZE) / MFX_SLOT_SIZE;
	const struct mfx_thread_slot *s =
		(const struct mfx_thread_slot *)(t->map + MFX_HEADER_SIZE);
	uint32_t k = t->hdr.nthreads < MFX_THREAD_SLOTS ? t->hdr.nthreads : MFX_THREAD_SLOTS;
	if (k > room)
		k = (uint32_t)room;
	for (uint32_t i = 0; i < k; i++)
		n += s[i].events;
	return n;
}

static int open_common(struct trace *t)
{
	int err = check_header(t);
	if (!err)
		err = walk_chunks(t);
	if (err)
		return err;
	fit_clock(t);
	t->tids = calloc(t->nth + 1, sizeof(uint32_t));
	t->heap = calloc(t->nth + 1, sizeof(uint32_t));
	if (!t->tids || !t->heap)
		return -ENOMEM;
	for (size_t i = 0; i < t->nth; i++) {
		struct tstream *s = &t->th[i];
		qsort(s->chunks, s->nchunks, sizeof(*s->chunks), cmp_ref);
		drop_copies(s);
		t->tids[i] = s->tid;
	}
	struct trace_info *in = &t->info;
	in->version = t->hdr.version;
	in->flags = t->hdr.flags;
	in->pid = t->hdr.pid;
	in->ppid = t->hdr.ppid;
	in->stack_depth = t->hdr.stack_depth;
	in->sample_bytes = (t->hdr.flags & MFX_HF_SAMPLED) ? t->hdr.sample_bytes : 0;
	in->exe = t->hdr.exe;
	in->command = t->hdr.cmdline;
	in->start_ns = t->hdr.window_start_ns ? t->hdr.window_start_ns : t->hdr.start_ns;
	in->end_ns = t->hdr.window_end_ns ? t->hdr.window_end_ns : t->hdr.end_ns;
	for (size_t i = 0; i < t->nsamples; i++)
		if (t->samples[i].ts_ns > in->end_ns)
			in->end_ns = t->samples[i].ts_ns;
	in->window_start_ns = t->hdr.window_start_ns;
	in->window_end_ns = t->hdr.window_end_ns;
	/* mfx marks the end of the window too: the agent only notes it at the
	 * process's next allocation call, which may never come. */
	for (size_t i = 0; i < t->nmarks; i++)
		if (t->marks[i].kind == MFX_MARK_WINDOW_END && t->marks[i].ts_ns &&
		    (!in->window_end_ns || t->marks[i].ts_ns < in->window_end_ns) &&
		    strcmp(t->marks[i].text, "exit"))
			in->window_end_ns = t->marks[i].ts_ns;
	in->start_realtime_ns = t->hdr.start_realtime_ns;
	in->dropped_events = t->hdr.dropped_events;
	in->dropped_chunks = t->hdr.dropped_chunks;
	in->degraded = t->hdr.degraded;
	in->fail_errno = t->hdr.fail_errno;
	t->hdr.fail_what[sizeof(t->hdr.fail_what) - 1] = 0;
	in->fail_what = t->hdr.fail_what;
	in->nthreads = (uint32_t)t->nth;
	in->tids = t->tids;
	in->nevents = count_events(t);
	in->file_bytes = t->size;
	return 0;
}

int trace_open_mem(const void *buf, size_t len, struct trace **out)
{
	struct trace *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->map = buf;
	t->size = len;
	int err = open_common(t);
	if (err) {
		trace_close(t);
		return err;
	}
	*out = t;
	return 0;
}

int trace_open(const char *path, struct trace **out)
{
	int fd = open_read(path);	/* in the run directory: through its fd */
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st)) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -MFX_E_CORRUPT;
	}
	if (st.st_size < (off_t)MFX_HEADER_SIZE) {
		close(fd);
		return st.st_size == 0 ? -MFX_E_NOTRACE : -MFX_E_TRUNCATED;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (m == MAP_FAILED)
		return -e;
	madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
	struct trace *t = calloc(1, sizeof(*t));
	if (!t) {
		munmap(m, (size_t)st.st_size);
		return -ENOMEM;
	}
	t->map = m;
	t->size = (size_t)st.st_size;
	t->mapped = 1;
	int err = open_common(t);
	if (err) {
		trace_close(t);
		return err;
	}
	*out = t;
	return 0;
}

void trace_close(struct trace *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nth; i++) {
		free(t->th[i].chunks);
		free(t->th[i].buf);
		evc_dec_free(t->th[i].dec);
	}
	free(t->th);
	free(t->tids);
	free(t->heap);
	for (uint32_t i = 0; i < t->nstacks; i++)
		if (t->stacks[i])
			free(t->stacks[i] - 1);
	free(t->stacks);
	for (size_t i = 0; i < t->nmods; i++)
		free(t->mods[i].path);
	free(t->mods);
	free(t->samples);
	for (size_t i = 0; i < t->nmarks; i++)
		free(t->marks[i].text);
	free(t->marks);
	for (size_t i = 0; i < t->ninfos; i++) {
		free(t->infos[i].k);
		free(t->infos[i].v);
	}
	free(t->infos);
	for (size_t i = 0; i < t->nthreadnames; i++) {
		free(t->threads[i].k);
		free(t->threads[i].v);
	}
	free(t->threads);
	if (t->zd)
		ZSTD_freeDCtx(t->zd);
	free(t->metabuf);
	free(t->colbuf);
	if (t->mapped)
		munmap((void *)t->map, t->size);
	free(t);
}

/* ---- events ------------------------------------------------------------------------------ */

/* A MODEL chunk: its columns decompressed into the stream's decoder. */
static int model_open(struct trace *t, struct tstream *s, const struct mfx_chunk_header *c)
{
	uint32_t used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
	if (c->type != MFX_CT_EVENTS || c->stored > c->span - sizeof(*c) || used > EVC_MAX_RAW)
		return -MFX_E_CORRUPT;
	if (!t->zd && !(t->zd = ZSTD_createDCtx()))
		return -ENOMEM;
	if (!s->dec && !(s->dec = evc_dec_new()))
		return -ENOMEM;
	return evc_dec_open(s->dec, t->zd, (const uint8_t *)(c + 1), c->stored, used, c->base_ts,
			    !!(t->hdr.flags & MFX_HF_STACKS));
}

/* Open the stream's next chunk; 0 ok, 1 no more chunks, < 0 error. */
static int stream_next_chunk(struct trace *t, struct tstream *s)
{
	while (s->next < s->nchunks) {
		const struct mfx_chunk_header *c = chunk_at(t, s->chunks[s->next++].off);
		const uint8_t *p = NULL;
		size_t len = 0;
		int err;
		s->model = c->codec == MFX_CODEC_MODEL;
		if (s->model)
			err = model_open(t, s, c);
		else
			err = chunk_payload(t, c, &s->buf, &s->bufcap, &p, &len);
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

/* The next event of a MODEL chunk into s->ev: 1, 0 at its end, < 0 error. */
static int model_next(struct trace *t, struct tstream *s)
{
	struct evc_event e;
	int r = evc_dec_next(s->dec, &e);
	if (r <= 0)
		return r;
	struct trace_event *ev = &s->ev;
	ev->kind = e.kind;
	ev->ptr = e.ptr;
	ev->old_ptr = e.old;
	ev->size = e.size;
	ev->align = e.align;
	ev->stack = e.stack;
	ev->failed = e.kind != MFX_K_FREE && !e.ptr;
	ev->ts_ns = stream_ns(t, s, e.ts);
	ev->tid = s->tid;
	return 1;
}

/* Decode the stream's next event into s->ev.  1 ok, 0 end, < 0 error. */
static int stream_decode(struct trace *t, struct tstream *s)
{
	int stacks = !!(t->hdr.flags & MFX_HF_STACKS);
	for (;;) {
		if (s->model) {
			int r = model_next(t, s);
			if (r)
				return r;
			s->model = 0;	/* that chunk is done */
			s->p = s->end = NULL;
		}
		if (s->p >= s->end) {
			int r = stream_next_chunk(t, s);
			if (r)
				return r > 0 ? 0 : r;
			if (s->model)
				continue;
		}
		const uint8_t *p = s->p, *end = s->end;
		uint8_t b0 = *p++;
		unsigned kind = b0 & 15, flags = b0 & 0xf0;
		struct trace_event *ev = &s->ev;
		uint64_t d, v;
		if (kind == MFX_K_EXT) {
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
			continue;
		}
		if (kind == MFX_K_PAD || kind > MFX_K_PVALLOC)
			return -MFX_E_CORRUPT;
		if (get_varint(&p, end, &d))
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
			uint64_t from = s->ptr;
			if (get_varint(&p, end, &ev->size))
				return -MFX_E_CORRUPT;
			if (!(flags & MFX_F_OLD_NULL)) {
				if (get_ptr(&p, end, flags, s->ptr, &ev->old_ptr))
					return -MFX_E_CORRUPT;
				from = ev->old_ptr;
			}
			if (flags & MFX_F_NULL) {
				ev->ptr = 0;
				ev->failed = 1;
			} else if (get_ptr(&p, end, flags, from, &ev->ptr)) {
				return -MFX_E_CORRUPT;
			}
			s->ptr = ev->ptr ? ev->ptr : from;
		} else {
			if (get_varint(&p, end, &ev->size))
				return -MFX_E_CORRUPT;
			if (kind >= MFX_K_POSIX_MEMALIGN && kind <= MFX_K_MEMALIGN &&
			    get_varint(&p, end, &ev->align))
				return -MFX_E_CORRUPT;
			if (flags & MFX_F_NULL) {
				ev->ptr = 0;
				ev->failed = 1;
			} else {
				if (get_ptr(&p, end, flags, s->ptr, &ev->ptr))
					return -MFX_E_CORRUPT;
				s->ptr = ev->ptr;
			}
		}
		if (kind != MFX_K_FREE && stacks) {
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
		s->p = p;
		return 1;
	}
}

/* Heap order: earlier time first, then lower thread index (stable). */
static inline int before(const struct trace *t, uint32_t a, uint32_t b)
{
	const struct trace_event *x = &t->th[a].ev, *y = &t->th[b].ev;
	return x->ts_ns < y->ts_ns || (x->ts_ns == y->ts_ns && a < b);
}

static void sift_down(struct trace *t, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < t->nheap && before(t, t->heap[l], t->heap[m]))
			m = l;
		if (l + 1 < t->nheap && before(t, t->heap[l + 1], t->heap[m]))
			m = l + 1;
		if (m == i)
			return;
		uint32_t tmp = t->heap[i];
		t->heap[i] = t->heap[m];
		t->heap[m] = tmp;
		i = m;
	}
}

static void sift_up(struct trace *t, size_t i)
{
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!before(t, t->heap[i], t->heap[up]))
			return;
		uint32_t tmp = t->heap[i];
		t->heap[i] = t->heap[up];
		t->heap[up] = tmp;
		i = up;
	}
}

/* The block an event gives back (free, realloc's old pointer), or 0. */
static inline uint64_t gives_back(const struct trace_event *e)
{
	if (e->kind == MFX_K_FREE)
		return e->ptr;
	if (e->kind == MFX_K_REALLOC || e->kind == MFX_K_REALLOCARRAY)
		return e->old_ptr;
	return 0;
}

/*
 * Which head to take next: the earliest (heap[0]), unless it gives back a
 * block that another thread's head, within one quantum of it, allocates.
 * Times are floored to the trace's quantum (0.1 us), and each chunk converts
 * TSC to ns from its own clock pair (a few ns apart from another chunk's),
 * so a block handed from one thread to another within one quantum would
 * otherwise read as freed before it was allocated about half the time.
 * (The opposite order within 0.1 us, a block freed by one thread and at
 * once reused by another, does not happen with per-thread caches: glibc's
 * tcache, jemalloc's and tcmalloc's thread caches.)  The heads within a
 * quantum of heap[0] are the top of the heap: a bounded walk finds them.
 */
static size_t tie_pick(const struct trace *t)
{
	const struct trace_event *top = &t->th[t->heap[0]].ev;
	uint64_t p = gives_back(top), until = top->ts_ns + t->quantum_ns;
	size_t todo[64], n = 0;
	if (!p)
		return 0;
	todo[n++] = 1;
	todo[n++] = 2;
	while (n) {
		size_t i = todo[--n];
		if (i >= t->nheap)
			continue;
		const struct trace_event *e = &t->th[t->heap[i]].ev;
		if (e->ts_ns >= until)
			continue;
		if (e->kind != MFX_K_FREE && !e->failed && e->ptr == p)
			return i;
		if (n + 2 <= sizeof(todo) / sizeof(todo[0])) {
			todo[n++] = 2 * i + 1;
			todo[n++] = 2 * i + 2;
		}
	}
	return 0;
}

static int start_streams(struct trace *t)
{
	t->nheap = 0;
	for (size_t i = 0; i < t->nth; i++) {
		struct tstream *s = &t->th[i];
		s->next = 0;
		s->p = s->end = NULL;
		s->model = 0;
		s->last_ns = 0;
		s->ev.thread = (uint32_t)i;
		int r = stream_decode(t, s);
		if (r < 0)
			return r;
		if (r > 0)
			t->heap[t->nheap++] = (uint32_t)i;
	}
	for (size_t i = t->nheap / 2; i-- > 0;)
		sift_down(t, i);
	t->started = 1;
	return 0;
}

int trace_next(struct trace *t, struct trace_event *ev)
{
	if (!t->started) {
		int err = start_streams(t);
		if (err)
			return err;
	}
	if (!t->nheap)
		return 0;
	size_t h = tie_pick(t);
	uint32_t i = t->heap[h];
	struct tstream *s = &t->th[i];
	*ev = s->ev;
	ev->thread = i;
	if (h)	/* taken before an earlier one: at its time (the same quantum) */
		ev->ts_ns = t->th[t->heap[0]].ev.ts_ns;
	int r = stream_decode(t, s);
	if (r < 0)
		return r;
	if (r == 0)
		t->heap[h] = t->heap[--t->nheap];
	if (h < t->nheap) {
		sift_down(t, h);
		sift_up(t, h);
	}
	return 1;
}

int trace_rewind(struct trace *t)
{
	t->started = 0;
	return 0;
}

/* ---- accessors ------------------------------------------------------------------------------- */

const struct trace_info *trace_info(const struct trace *t)
{
	return &t->info;
}

const uint64_t *trace_stack(const struct trace *t, uint32_t id, uint32_t *depth)
{
	if (id == 0 || id >= t->nstacks || !t->stacks[id])
		return NULL;
	*depth = (uint32_t)t->stacks[id][-1];
	return t->stacks[id];
}

uint32_t trace_nstacks(const struct trace *t)
{
	uint32_t n = t->nstacks;
	while (n > 0 && !t->stacks[n - 1])
		n--;
	return n;
}

size_t trace_modules(const struct trace *t, const struct trace_module **mods)
{
	*mods = t->mods;
	return t->nmods;
}

const struct trace_module *trace_module_at(const struct trace *t, uint64_t addr)
{
	const struct trace_module *best = NULL;
	for (size_t i = 0; i < t->nmods; i++) {
		const struct trace_module *m = &t->mods[i];
		if (addr >= m->lo && addr < m->hi && (!best || m->ts_ns >= best->ts_ns))
			best = m;	/* latest load wins when ranges were reused */
	}
	return best;
}

size_t trace_samples(const struct trace *t, const struct trace_sample **s)
{
	*s = t->samples;
	return t->nsamples;
}

size_t trace_marks(const struct trace *t, const struct trace_mark **m)
{
	*m = t->marks;
	return t->nmarks;
}

const char *trace_thread_name(const struct trace *t, uint32_t tid)
{
	char k[24];
	snprintf(k, sizeof(k), "%u", tid);
	for (size_t i = t->nthreadnames; i-- > 0;)
		if (!strcmp(t->threads[i].k, k))
			return t->threads[i].v;
	return NULL;
}

const char *trace_info_value(const struct trace *t, const char *key)
{
	for (size_t i = t->ninfos; i-- > 0;)
		if (!strcmp(t->infos[i].k, key))
			return t->infos[i].v;
	return NULL;
}

enum trace_class trace_kind_class(unsigned kind)
{
	switch (kind) {
	case MFX_K_MALLOC: return TC_MALLOC;
	case MFX_K_CALLOC: return TC_CALLOC;
	case MFX_K_REALLOC:
	case MFX_K_REALLOCARRAY: return TC_REALLOC;
	case MFX_K_FREE: return TC_FREE;
	default: return TC_MEMALIGN;
	}
}

const char *trace_class_name(enum trace_class c)
{
	static const char *const n[] = { "malloc", "calloc", "realloc", "free", "memalign" };
	return c < TC_NCLASSES ? n[c] : "?";
}

const char *trace_kind_name(unsigned kind)
{
	static const char *const n[] = {
		"pad", "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
		"aligned_alloc", "memalign", "valloc", "pvalloc",
	};
	return kind < sizeof(n) / sizeof(n[0]) ? n[kind] : "?";
}
