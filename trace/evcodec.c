/*
 * evcodec.c - the event model codec's raw-record parser and encoder (see
 * evcodec.h; the model is evmodel.h, the decoder evdecode.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "trace/evcodec.h"
#include "trace/evmodel.h"

const char *evc_col_name(unsigned c)
{
	static const char *const n[EVC_NCOLS] = {
		"op", "time", "stack", "size_hit", "size", "size_rem", "align", "free_ref", "ptr_hit", "ptr",
	};
	return c < EVC_NCOLS ? n[c] : "?";
}

/* ---- raw records ------------------------------------------------------------ */

/* get_varint with the one- to three-byte cases inline (a raw record's
 * fields but far pointers). */
static inline int gv(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	if (end - p >= 3) {
		uint64_t r = p[0] & 0x7f;
		if (!(p[0] & 0x80)) {
			*v = r;
			*pp = p + 1;
			return 0;
		}
		r |= (uint64_t)(p[1] & 0x7f) << 7;
		if (!(p[1] & 0x80)) {
			*v = r;
			*pp = p + 2;
			return 0;
		}
		if (!(p[2] & 0x80)) {
			*v = r | (uint64_t)p[2] << 14;
			*pp = p + 3;
			return 0;
		}
	}
	return get_varint(pp, end, v);
}

static inline int get_ptr(const uint8_t **p, const uint8_t *end, unsigned flags, uint64_t from,
			  uint64_t *out)
{
	uint64_t z;
	if (gv(p, end, &z))
		return -1;
	int64_t d = unzigzag(z);
	if (flags & MFX_F_SHR4)
		d = (int64_t)((uint64_t)d << 4);
	*out = from + (uint64_t)d;
	return 0;
}

int evc_raw_next(struct evc_raw *st, const uint8_t **pp, const uint8_t *end, int stacks,
		 struct evc_event *ev)
{
	const uint8_t *p = *pp;
	uint8_t b0 = *p++;
	unsigned kind = b0 & 15, flags = b0 & 0xf0;
	uint64_t d, v;
	if (kind == MFX_K_EXT) {
		if (p >= end)
			return -1;
		p++;	/* ext kind */
		if (get_varint(&p, end, &v) || v > (uint64_t)(end - p))
			return -1;
		*pp = p + v;
		return 2;
	}
	if (kind == MFX_K_PAD || kind > MFX_K_PVALLOC || gv(&p, end, &d))
		return -1;
	st->ts += d;
	memset(ev, 0, sizeof(*ev));
	ev->ts = st->ts;
	ev->kind = (uint8_t)kind;
	if (kind == MFX_K_FREE) {
		if (get_ptr(&p, end, flags, st->ptr, &ev->ptr))
			return -1;
		st->ptr = ev->ptr;
		*pp = p;
		return 1;
	}
	if (gv(&p, end, &ev->size))
		return -1;
	uint64_t from = st->ptr;
	if (kind == MFX_K_REALLOC || kind == MFX_K_REALLOCARRAY) {
		if (!(flags & MFX_F_OLD_NULL)) {
			if (get_ptr(&p, end, flags, st->ptr, &ev->old))
				return -1;
			from = ev->old;
		}
	} else if (kind >= MFX_K_POSIX_MEMALIGN && kind <= MFX_K_MEMALIGN &&
		   gv(&p, end, &ev->align)) {
		return -1;
	}
	if (!(flags & MFX_F_NULL) && get_ptr(&p, end, flags, from, &ev->ptr))
		return -1;
	st->ptr = ev->ptr ? ev->ptr : from;
	if (stacks) {
		if (!(flags & MFX_F_SAME_STACK)) {
			if (gv(&p, end, &v) || v > UINT32_MAX)
				return -1;
			st->stack = (uint32_t)v;
		}
		ev->stack = st->stack;
	}
	*pp = p;
	return 1;
}


/* ---- the encoder -------------------------------------------------------------- */

struct evc_enc {
	struct model m;
	/* live pointer -> ordinal, open addressing (linear probing), kept at
	 * most half full: sized by the blocks live at once, not by the chunk
	 * (a few KiB for most programs: it stays in the cache) */
	struct hent {
		uint64_t ptr;	/* 0: empty */
		uint32_t ord, pad;
	} *h;
	uint32_t hbits, hn;	/* 2^hbits slots, hn in use */
	uint8_t *col[EVC_NCOLS];
	uint8_t *cp[EVC_NCOLS];	/* write cursors */
	size_t colcap;
	uint8_t *out;
	size_t outcap;
	ZSTD_CCtx *z;
	/* the chunk being encoded (evc_enc_begin) */
	size_t nev;
	uint64_t raw_bytes;
	uint64_t q;
	double inv_q;		/* 1 / q */
	int stacks, bad;	/* bad: something added could not be encoded */
	uint8_t in_mtf[256];	/* stacks in the model's move-to-front list, by hash */
	struct evc_stats st;
};

struct evc_enc *evc_enc_new(void)
{
	struct evc_enc *e = calloc(1, sizeof(*e));
	if (e && !(e->z = ZSTD_createCCtx())) {
		free(e);
		e = NULL;
	}
	return e;
}

void evc_enc_free(struct evc_enc *e)
{
	if (!e)
		return;
	model_free(&e->m);
	free(e->h);
	for (int i = 0; i < EVC_NCOLS; i++)
		free(e->col[i]);
	free(e->out);
	ZSTD_freeCCtx(e->z);
	free(e);
}

static inline uint32_t hslot(const struct evc_enc *e, uint64_t p)
{
	return (uint32_t)(((p >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - e->hbits));
}

/* The live ordinal of p, or UINT32_MAX; *slot: where it is or would go. */
static uint32_t h_find(const struct evc_enc *e, uint64_t p, uint32_t *slot)
{
	uint32_t mask = (1u << e->hbits) - 1, i = hslot(e, p);
	while (e->h[i].ptr && e->h[i].ptr != p)
		i = (i + 1) & mask;
	*slot = i;
	return e->h[i].ptr ? e->h[i].ord : UINT32_MAX;
}

/* A table of 2^bits slots, the live entries moved over. */
static int h_resize(struct evc_enc *e, uint32_t bits)
{
	struct hent *old = e->h;
	uint32_t ob = e->hbits;
	struct hent *h = calloc(1ull << bits, sizeof(*h));
	if (!h)
		return -ENOMEM;
	e->h = h;
	e->hbits = bits;
	for (uint64_t i = 0; old && i < 1ull << ob; i++)
		if (old[i].ptr) {
			uint32_t j;
			h_find(e, old[i].ptr, &j);
			e->h[j] = old[i];
		}
	free(old);
	return 0;
}

static int h_put(struct evc_enc *e, uint64_t p, uint32_t o)
{
	uint32_t i;
	if (h_find(e, p, &i) == UINT32_MAX) {
		if (2 * (e->hn + 1) > 1u << e->hbits) {
			if (h_resize(e, e->hbits + 1))
				return -1;
			h_find(e, p, &i);
		}
		e->hn++;
	}
	e->h[i].ptr = p;
	e->h[i].ord = o;
	return 0;
}

/* Remove slot i, moving later entries of its probe run back (no tombstones). */
static void h_del(struct evc_enc *e, uint32_t i)
{
	uint32_t mask = (1u << e->hbits) - 1, j = i;
	e->h[i].ptr = 0;
	e->hn--;
	for (;;) {
		j = (j + 1) & mask;
		if (!e->h[j].ptr)
			return;
		uint32_t k = hslot(e, e->h[j].ptr);
		/* j's entry may move to i if its home k is not in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		e->h[i] = e->h[j];
		e->h[j].ptr = 0;
		i = j;
	}
}

/* Column room for n more events (an entry is at most 11 bytes). */
static int col_room(struct evc_enc *e, size_t n)
{
	size_t most = 0;
	for (int i = 0; i < EVC_NCOLS; i++) {
		size_t u = e->col[i] ? (size_t)(e->cp[i] - e->col[i]) : 0;
		most = u > most ? u : most;
	}
	size_t need = most + n * 12 + 64;
	if (need <= e->colcap)
		return 0;
	need = need < 2 * e->colcap ? 2 * e->colcap : need;
	for (int i = 0; i < EVC_NCOLS; i++) {
		size_t u = e->col[i] ? (size_t)(e->cp[i] - e->col[i]) : 0;
		uint8_t *c = realloc(e->col[i], need);
		if (!c)
			return -ENOMEM;
		e->col[i] = c;
		e->cp[i] = c + u;
	}
	e->colcap = need;
	return 0;
}

/* A freed pointer (free, or realloc's old one): its rank among the live
 * blocks of this chunk, or explicit.  `kill`: the block leaves the live set
 * (the call succeeded); `push`: it joins its size class's free list (it
 * really went back to the allocator: not a realloc in place). */
static int enc_ref(struct evc_enc *e, uint64_t p, int kill, int push)
{
	struct model *m = &e->m;
	uint32_t slot, o = h_find(e, p, &slot);
	if (o == UINT32_MAX) {
		e->cp[EVC_REF] = put_varint(e->cp[EVC_REF], 0);
		if (push)
			ufl_push(m, p);
		return put_dist(&e->cp[EVC_PTR], p, m->last_ptr);
	}
	uint32_t ro = live_below(m, o), rn = m->nalive - 1 - ro;
	uint64_t code = rn <= ro ? 2ull * rn : 2ull * ro + 1;
	e->cp[EVC_REF] = put_varint(e->cp[EVC_REF], code + 1);
	if (kill) {
		live_kill(m, o);
		h_del(e, slot);
	}
	if (push)
		fl_push(m, m->lsize[o], p);
	return 0;
}

/* An allocation's result: from its class's free list, or explicit. */
static int enc_result(struct evc_enc *e, uint64_t p, uint64_t size)
{
	struct model *m = &e->m;
	unsigned c = size_cls(size);
	for (unsigned i = 0; i < m->fln[c]; i++)
		if (ring_at(m->fl[c], m->flh[c], DEPTH, i) == p) {
			fl_take(m, c, i);
			e->cp[EVC_HIT] = put_varint(e->cp[EVC_HIT], i + 1);
			return 0;
		}
	for (unsigned i = 0; i < m->nufl; i++)
		if (ring_at(m->ufl, m->ufh, UDEPTH, i) == p) {
			ufl_take(m, i);
			e->cp[EVC_HIT] = put_varint(e->cp[EVC_HIT], 1 + DEPTH + i);
			return 0;
		}
	/* Another allocator's class may hold a few of glibc's (jemalloc:
	 * 4 classes per power of two): the classes beside it. */
	for (unsigned k = 0; k < NEAR; k++) {
		unsigned n = near_cls(c, k);
		for (unsigned i = 0; n < NCLS && i < m->fln[n]; i++)
			if (ring_at(m->fl[n], m->flh[n], DEPTH, i) == p) {
				fl_take(m, n, i);
				e->cp[EVC_HIT] = put_varint(e->cp[EVC_HIT],
							    1 + DEPTH + UDEPTH + k * DEPTH + i);
				return 0;
			}
	}
	e->cp[EVC_HIT] = put_varint(e->cp[EVC_HIT], 0);
	return put_dist(&e->cp[EVC_PTR], p, m->bump);
}

static inline unsigned mtf_hash(uint32_t stack)
{
	return (stack * 2654435761u) >> 24;
}

static void enc_stack_size(struct evc_enc *e, const struct evc_event *ev, int stacks)
{
	struct model *m = &e->m;
	if (stacks) {
		/* Search the list only when the stack may be in it: a program
		 * with thousands of stacks would mostly search all 64 in vain. */
		unsigned i = m->nmtf;
		if (e->in_mtf[mtf_hash(ev->stack)])
			for (i = 0; i < m->nmtf && m->mtf[i] != ev->stack;)
				i++;
		if (i < m->nmtf) {
			e->cp[EVC_STACK] = put_varint(e->cp[EVC_STACK], i);
		} else {
			e->cp[EVC_STACK] = put_varint(e->cp[EVC_STACK], NMTF + (uint64_t)ev->stack);
			if (m->nmtf < NMTF)
				m->nmtf++;
			else	/* the last one falls off */
				e->in_mtf[mtf_hash(m->mtf[NMTF - 1])]--;
			e->in_mtf[mtf_hash(ev->stack)]++;
		}
		mtf_front(m, i, ev->stack);
	}
	struct sslot *s = ss_get(m, ev->stack);
	unsigned i = 0;
	while (i < s->n && ss_at(s, i) != ev->size)
		i++;
	e->cp[EVC_SZHIT] = put_varint(e->cp[EVC_SZHIT], i < s->n ? i + 1 : 0);
	if (i == s->n)
		put_size(&e->cp[EVC_SIZE], &e->cp[EVC_SZREM], ev->size);
	ss_front(s, i, ev->size);
}

/* ts / q without a 64-bit division per event (40 cycles): a reciprocal in
 * double precision, then corrected by one step either way. */
static inline uint64_t quanta(const struct evc_enc *e, uint64_t ts, uint64_t q)
{
	/* most events are a few quanta after the previous one */
	uint64_t r = e->m.qts, base = r * q;
	if (ts >= base && ts - base < 4 * q) {
		while (ts - base >= q) {
			base += q;
			r++;
		}
		return r;
	}
	r = (uint64_t)((double)ts * e->inv_q);
	while (r && r * q > ts)
		r--;
	while ((r + 1) * q <= ts)
		r++;
	return r;
}

/*
 * One event into the columns; the model then moves on exactly as the
 * decoder's will (evc_dec_next mirrors this function).  -1: not
 * representable.
 */
static int enc_event(struct evc_enc *e, const struct evc_event *ev, int stacks, uint64_t q)
{
	struct model *m = &e->m;
	unsigned op = ev->kind;
	uint64_t qt = quanta(e, ev->ts, q);
	if (qt < m->qts)	/* chunks added together: the next chunk's clock pair was
				   read on another CPU, a hair behind */
		qt = m->qts;
	e->cp[EVC_TS] = put_varint(e->cp[EVC_TS], qt - m->qts);
	m->qts = qt;
	uint8_t *opp = e->cp[EVC_OP]++;
	if (ev->kind == MFX_K_FREE) {
		if (!ev->ptr || enc_ref(e, ev->ptr, 1, 1))
			return -1;
		m->last_ptr = ev->ptr;
		*opp = (uint8_t)op;
		return 0;
	}
	enc_stack_size(e, ev, stacks);
	if (is_aligned(ev->kind))
		e->cp[EVC_ALIGN] = put_varint(e->cp[EVC_ALIGN], ev->align);
	int re = is_realloc(ev->kind);
	if (re && !ev->old)
		op |= EVC_F_OLD_NULL;
	else if (re && enc_ref(e, ev->old, ev->ptr != 0, ev->ptr && ev->ptr != ev->old))
		return -1;
	if (!ev->ptr)
		op |= EVC_F_NULL;
	else if (re && ev->ptr == ev->old)
		op |= EVC_F_SAME;
	else if (enc_result(e, ev->ptr, ev->size))
		return -1;
	if (ev->ptr) {
		uint32_t o = live_add(m, ev->ptr, ev->size);
		if (o == UINT32_MAX)
			return -1;
		if (h_put(e, ev->ptr, o))
			return -1;
		m->bump = block_end(ev->ptr, ev->size);
	}
	m->last_ptr = ev->ptr ? ev->ptr : re && ev->old ? ev->old : m->last_ptr;
	*opp = (uint8_t)op;
	return 0;
}

void evc_enc_begin(struct evc_enc *e, uint64_t base_ts, int stacks, uint64_t q)
{
	e->q = q ? q : 1;
	e->inv_q = 1.0 / (double)e->q;
	e->stacks = stacks;
	e->nev = 0;
	e->raw_bytes = 0;
	e->bad = model_reset(&e->m, 0) != 0;
	e->m.qts = base_ts / e->q;
	if (!e->h || e->hbits > 16) {	/* a big one from a big chunk: start small */
		free(e->h);
		e->h = NULL;
		e->hbits = 0;
		e->bad |= h_resize(e, 10) != 0;
	} else {
		memset(e->h, 0, sizeof(*e->h) << e->hbits);
	}
	e->hn = 0;
	memset(e->in_mtf, 0, sizeof(e->in_mtf));
	for (int i = 0; i < EVC_NCOLS; i++)
		e->cp[i] = e->col[i];
}

/*
 * Parse and encode at once: the events never sit in an array (at ~1 byte
 * each encoded, a 48-byte event array would be most of the memory traffic).
 * The tables grow as the chunk does.
 */
int evc_enc_add(struct evc_enc *e, const uint8_t *raw, size_t used, uint64_t base_ts)
{
	struct evc_raw rs = { base_ts, 0, 0 };
	const uint8_t *p = raw, *end = raw + used;
	size_t room = MAX_EVENTS(used);
	if (e->bad || col_room(e, room) || model_grow(&e->m, e->m.nord + (uint32_t)room))
		goto bad;
	while (p < end) {
		struct evc_event ev;
		if (evc_raw_next(&rs, &p, end, e->stacks, &ev) != 1 ||
		    (ev.kind == MFX_K_FREE && !ev.ptr) || enc_event(e, &ev, e->stacks, e->q))
			goto bad;
		e->nev++;
	}
	e->raw_bytes += used;
	return 0;
bad:
	e->bad = 1;
	return -1;
}

size_t evc_enc_pending(const struct evc_enc *e, uint64_t *raw_bytes)
{
	if (raw_bytes)
		*raw_bytes = e->raw_bytes;
	return e->nev;
}

/* Header and columns (each zstd-compressed when that is smaller) into e->out. */
static size_t enc_pack(struct evc_enc *e, uint64_t n, uint32_t nord, uint64_t q, int level,
		       struct evc_stats *st)
{
	size_t bound = 64 + EVC_NCOLS * 24;
	for (int i = 0; i < EVC_NCOLS; i++)
		bound += ZSTD_compressBound((size_t)(e->cp[i] - e->col[i]));
	if (bound > e->outcap) {
		uint8_t *o = realloc(e->out, bound);
		if (!o)
			return 0;
		e->out = o;
		e->outcap = bound;
	}
	uint8_t hdr[64 + EVC_NCOLS * 24], *h = hdr;
	h = put_varint(h, n);
	h = put_varint(h, nord);
	h = put_varint(h, q);
	*h++ = EVC_NCOLS;
	uint8_t *data = e->out + sizeof(hdr), *d = data;
	for (int i = 0; i < EVC_NCOLS; i++) {
		size_t raw = (size_t)(e->cp[i] - e->col[i]), r = 0;
		int method = 0;
		if (raw > 32) {
			r = ZSTD_compressCCtx(e->z, d, bound - (size_t)(d - e->out), e->col[i], raw,
					      level);
			method = !ZSTD_isError(r) && r < raw;
		}
		if (!method) {
			memcpy(d, e->col[i], raw);
			r = raw;
		}
		h = put_varint(h, raw);
		h = put_varint(h, r);
		*h++ = (uint8_t)method;
		d += r;
		if (st) {
			st->raw[i] += raw;
			st->stored[i] += r;
		}
	}
	size_t hl = (size_t)(h - hdr);
	memcpy(e->out, hdr, hl);
	memmove(e->out + hl, data, (size_t)(d - data));
	if (st) {
		st->header += hl;
		st->events += n;
		st->chunks++;
	}
	return hl + (size_t)(d - data);
}

void evc_stats_add(struct evc_stats *sum, const struct evc_stats *st)
{
	sum->events += st->events;
	sum->chunks += st->chunks;
	sum->refused += st->refused;
	sum->header += st->header;
	for (int i = 0; i < EVC_NCOLS; i++) {
		sum->raw[i] += st->raw[i];
		sum->stored[i] += st->stored[i];
	}
}

const struct evc_stats *evc_enc_stats(const struct evc_enc *e)
{
	return &e->st;
}

size_t evc_enc_finish(struct evc_enc *e, int level, const uint8_t **out)
{
	size_t len = 0;
	if (e->nev && !e->bad)
		len = enc_pack(e, e->nev, e->m.nord, e->q, level, &e->st);
	if (!len)
		e->st.refused++;
	e->nev = 0;
	e->bad = 1;	/* until the next evc_enc_begin */
	*out = e->out;
	return len;
}

