/*
 * reader_meta.c - the trace reader's metadata records (see reader_int.h):
 * stacks, modules, samples, marks, thread names, INFO pairs and clock pairs,
 * from the records of META and MFX chunks.  Every length read from the file
 * is checked before use; a stack id is bounded by how many STACK records
 * the file can hold.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace/reader_int.h"
#include "common/error.h"
#include "common/util.h"
#include "trace/varint.h"

#define MIN_STACK_RECORD 4u	/* ext byte, kind, len, id... : a STACK record is longer */

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

void rd_note_sync(struct trace *t, uint64_t u, uint64_t ns)
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
int rd_parse_meta(struct trace *t, const uint8_t *p, const uint8_t *end)
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
			rd_note_sync(t, u, ns);
			break;
		}
		default: break;	/* a newer writer's record: skip */
		}
		if (err)
			return err;
	}
	return 0;
}

