/*
 * evdecode.c - the event model codec's decoder (see evcodec.h): columns
 * decompressed at open, then one event at a time, the model (evmodel.h)
 * updated exactly as the encoder (evcodec.c) did.  Every read is bounded by
 * its column; a payload that does not decode ends in -MFX_E_CORRUPT.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "trace/evcodec.h"
#include "common/error.h"
#include "trace/evmodel.h"

struct evc_dec {
	struct model m;
	uint8_t *buf;
	size_t cap;
	const uint8_t *c[EVC_NCOLS], *ce[EVC_NCOLS];
	uint64_t n, i, q;
	int stacks;
};

struct evc_dec *evc_dec_new(void)
{
	return calloc(1, sizeof(struct evc_dec));
}

void evc_dec_free(struct evc_dec *d)
{
	if (!d)
		return;
	model_free(&d->m);
	free(d->buf);
	free(d);
}

uint64_t evc_dec_quantum(const struct evc_dec *d)
{
	return d->q;
}

int evc_dec_open(struct evc_dec *d, void *zd, const uint8_t *p, size_t stored, uint32_t used,
		 uint64_t base_ts, int stacks)
{
	const uint8_t *end = p + stored;
	uint64_t n, nord, q, raw[EVC_NCOLS], st[EVC_NCOLS], total = 0;
	uint8_t method[EVC_NCOLS];
	d->n = d->i = 0;
	if (used > EVC_MAX_RAW || get_varint(&p, end, &n) || get_varint(&p, end, &nord) ||
	    get_varint(&p, end, &q) || n > MAX_EVENTS(used) || nord > n || !q || p >= end ||
	    *p++ != EVC_NCOLS)
		return -MFX_E_CORRUPT;
	for (int i = 0; i < EVC_NCOLS; i++) {
		if (get_varint(&p, end, &raw[i]) || get_varint(&p, end, &st[i]) || p >= end ||
		    raw[i] > n * 11 + 16 || st[i] > stored)
			return -MFX_E_CORRUPT;
		method[i] = *p++;
		total += raw[i];
	}
	if (total > d->cap || !d->buf) {	/* never NULL: dst + 0 is UB on NULL */
		uint8_t *b = realloc(d->buf, total ? total : 1);
		if (!b)
			return -ENOMEM;
		d->buf = b;
		d->cap = total;
	}
	uint8_t *dst = d->buf;
	for (int i = 0; i < EVC_NCOLS; i++) {
		if (st[i] > (uint64_t)(end - p))
			return -MFX_E_CORRUPT;
		if (method[i] == 0 && st[i] == raw[i]) {
			memcpy(dst, p, raw[i]);
		} else if (method[i] == 1) {
			size_t r = ZSTD_decompressDCtx(zd, dst, raw[i], p, st[i]);
			if (ZSTD_isError(r) || r != raw[i])
				return -MFX_E_CORRUPT;
		} else {
			return -MFX_E_CORRUPT;
		}
		d->c[i] = dst;
		d->ce[i] = dst + raw[i];
		dst += raw[i];
		p += st[i];
	}
	if (model_reset(&d->m, (uint32_t)nord))
		return -ENOMEM;
	d->m.qts = base_ts / q;
	d->n = n;
	d->q = q;
	d->stacks = stacks;
	return 0;
}

static int dec_varint(struct evc_dec *d, int col, uint64_t *v)
{
	return get_varint(&d->c[col], d->ce[col], v);
}

/* The other side of enc_ref(). */
static int dec_ref(struct evc_dec *d, uint64_t *p, int kill, int push)
{
	struct model *m = &d->m;
	uint64_t v;
	if (dec_varint(d, EVC_REF, &v))
		return -1;
	if (v == 0) {
		if (get_dist(&d->c[EVC_PTR], d->ce[EVC_PTR], m->last_ptr, p))
			return -1;
		if (push)
			ufl_push(m, *p);
		return 0;
	}
	uint64_t c = v - 1, r = c / 2, k;
	if (r >= m->nalive)
		return -1;
	k = c & 1 ? r + 1 : m->nalive - r;
	uint32_t o = live_kth(m, (uint32_t)k);
	if (o >= m->nord)
		return -1;
	*p = m->lptr[o];
	if (kill)
		live_kill(m, o);
	if (push)
		fl_push(m, m->lsize[o], *p);
	return 0;
}

/* The other side of enc_result(). */
static int dec_result(struct evc_dec *d, uint64_t size, uint64_t *p)
{
	struct model *m = &d->m;
	uint64_t v;
	if (dec_varint(d, EVC_HIT, &v))
		return -1;
	if (v == 0)
		return get_dist(&d->c[EVC_PTR], d->ce[EVC_PTR], m->bump, p);
	unsigned c = size_cls(size);
	if (v <= m->fln[c])
		*p = fl_take(m, c, (unsigned)v - 1);
	else if (v > DEPTH && v - DEPTH - 1 < m->nufl)
		*p = ufl_take(m, (unsigned)(v - DEPTH - 1));
	else if (v > DEPTH + UDEPTH && v <= (1 + NEAR) * DEPTH + UDEPTH) {
		unsigned k = (unsigned)(v - 1 - DEPTH - UDEPTH) / DEPTH;
		unsigned i = (unsigned)(v - 1 - DEPTH - UDEPTH) % DEPTH, n = near_cls(c, k);
		if (n >= NCLS || i >= m->fln[n])
			return -1;
		*p = fl_take(m, n, i);
	} else
		return -1;
	return 0;
}

/* The other side of enc_stack_size(). */
static int dec_stack_size(struct evc_dec *d, struct evc_event *ev)
{
	struct model *m = &d->m;
	if (d->stacks) {
		uint64_t v;
		if (dec_varint(d, EVC_STACK, &v))
			return -1;
		unsigned i;
		if (v < NMTF) {
			if (v >= m->nmtf)
				return -1;
			i = (unsigned)v;
			ev->stack = m->mtf[i];
		} else {
			if (v - NMTF > UINT32_MAX)
				return -1;
			ev->stack = (uint32_t)(v - NMTF);
			i = m->nmtf;
			if (m->nmtf < NMTF)
				m->nmtf++;
		}
		mtf_front(m, i, ev->stack);
	}
	struct sslot *s = ss_get(m, ev->stack);
	uint64_t v;
	if (dec_varint(d, EVC_SZHIT, &v) || v > s->n)
		return -1;
	if (v)
		ev->size = ss_at(s, (unsigned)v - 1);
	else if (get_size(&d->c[EVC_SIZE], d->ce[EVC_SIZE], &d->c[EVC_SZREM], d->ce[EVC_SZREM],
			  &ev->size))
		return -1;
	ss_front(s, v ? (unsigned)v - 1 : s->n, ev->size);
	return 0;
}

/* Every column used up exactly: 0 (end), else corrupt. */
static int dec_end(const struct evc_dec *d)
{
	for (int i = 0; i < EVC_NCOLS; i++)
		if (d->c[i] != d->ce[i])
			return -MFX_E_CORRUPT;
	return 0;
}

int evc_dec_next(struct evc_dec *d, struct evc_event *ev)
{
	struct model *m = &d->m;
	uint64_t dq;
	if (d->i >= d->n)
		return dec_end(d);
	if (d->c[EVC_OP] >= d->ce[EVC_OP] || dec_varint(d, EVC_TS, &dq))
		return -MFX_E_CORRUPT;
	unsigned op = *d->c[EVC_OP]++, kind = op & 15, fl = op & 0xf0;
	memset(ev, 0, sizeof(*ev));
	ev->kind = (uint8_t)kind;
	m->qts += dq;
	ev->ts = m->qts * d->q;
	d->i++;
	if (kind == MFX_K_FREE) {
		if (fl || dec_ref(d, &ev->ptr, 1, 1))
			return -MFX_E_CORRUPT;
		m->last_ptr = ev->ptr;
		return 1;
	}
	int re = is_realloc(kind);
	if (kind == MFX_K_PAD || kind > MFX_K_PVALLOC ||
	    (fl & EVC_F_RESERVED) || (!re && (fl & (EVC_F_SAME | EVC_F_OLD_NULL))) ||
	    ((fl & EVC_F_SAME) && (fl & (EVC_F_NULL | EVC_F_OLD_NULL))) ||
	    dec_stack_size(d, ev))
		return -MFX_E_CORRUPT;
	if (is_aligned(kind) && dec_varint(d, EVC_ALIGN, &ev->align))
		return -MFX_E_CORRUPT;
	int null = !!(fl & EVC_F_NULL), same = !!(fl & EVC_F_SAME);
	if (re && !(fl & EVC_F_OLD_NULL) && dec_ref(d, &ev->old, !null, !null && !same))
		return -MFX_E_CORRUPT;
	if (same)
		ev->ptr = ev->old;
	else if (!null && dec_result(d, ev->size, &ev->ptr))
		return -MFX_E_CORRUPT;
	if (ev->ptr) {
		if (live_add(m, ev->ptr, ev->size) == UINT32_MAX)
			return -MFX_E_CORRUPT;
		m->bump = block_end(ev->ptr, ev->size);
	}
	m->last_ptr = ev->ptr ? ev->ptr : re && ev->old ? ev->old : m->last_ptr;
	return 1;
}
