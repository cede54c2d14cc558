/*
 * pprof.c - the model as a gzip'd profile.proto (see pprof.h), written by
 * hand: protobuf's wire format is small.  A message is a run of fields,
 * each a key (field number << 3 | wire type) then a varint (type 0) or a
 * length-delimited payload (type 2: strings, nested messages and packed
 * repeated integers).  Nested messages are built in a scratch buffer and
 * appended with their length.  zlib writes the gzip wrapper
 * (deflateInit2 with windowBits 15 + 16).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "analyzer/model.h"
#include "analyzer/pprof.h"
#include "common/hmap.h"
#include "common/util.h"

/* ---- protobuf wire format ---------------------------------------------------------- */

struct pb {
	uint8_t *p;
	size_t n, cap;
	int err;
};

static void pb_raw(struct pb *b, const void *d, size_t n)
{
	if (b->err)
		return;
	while (b->n + n > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 256;
		uint8_t *q = realloc(b->p, nc);
		if (!q) {
			b->err = -ENOMEM;
			return;
		}
		b->p = q;
		b->cap = nc;
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void pb_varint(struct pb *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;
	do {
		t[n++] = (uint8_t)(v & 0x7f) | (v > 0x7f ? 0x80 : 0);
		v >>= 7;
	} while (v);
	pb_raw(b, t, n);
}

/* A varint field (type 0); proto3 leaves zeros out. */
static void pb_int(struct pb *b, unsigned field, uint64_t v)
{
	if (!v)
		return;
	pb_varint(b, (uint64_t)field << 3);
	pb_varint(b, v);
}

/* A length-delimited field (type 2). */
static void pb_bytes(struct pb *b, unsigned field, const void *d, size_t n)
{
	pb_varint(b, (uint64_t)field << 3 | 2);
	pb_varint(b, n);
	pb_raw(b, d, n);
}

/* A nested message from scratch buffer m, which is emptied for reuse. */
static void pb_msg(struct pb *b, unsigned field, struct pb *m)
{
	if (m->err)
		b->err = m->err;
	pb_bytes(b, field, m->p, m->n);
	m->n = 0;
}

/* A packed repeated integer field. */
static void pb_packed(struct pb *b, unsigned field, const uint64_t *v, size_t n)
{
	struct pb t = { 0 };
	for (size_t i = 0; i < n; i++)
		pb_varint(&t, v[i]);
	pb_msg(b, field, &t);
	free(t.p);
}

/* ---- the tables: strings, functions, locations ---------------------------------------- */

/* The three tables are common/hmap.h maps from a 64-bit key to an entry
 * holding the full key (two words) and its id (1-based, in order of
 * addition).  The map's key is a mix of the two words; two pairs whose
 * mixes collide take the next key (they are told apart by the entry). */
struct ent {
	uint64_t a, b;		/* the key (a string: its pointer and 0) */
	uint64_t id;
};

static uint64_t mix(uint64_t a, uint64_t b)
{
	uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull)) * 0xff51afd7ed558ccdull;
	return h ^ (h >> 29);
}

/* The id of key (a, b); *is_new when it was added.  0: out of memory. */
static uint64_t tab_id(struct hmap *t, uint64_t a, uint64_t b, int *is_new)
{
	*is_new = 0;
	for (uint64_t k = mix(a, b);; k++) {
		int added;
		struct ent *e = hmap_put(t, k, &added);
		if (!e)
			return 0;
		if (added) {
			*e = (struct ent){ a, b, hmap_count(t) };
			*is_new = 1;
			return e->id;
		}
		if (e->a == a && e->b == b)
			return e->id;
	}
}

struct prof {
	const struct model *m;
	struct pb out;		/* the Profile message */
	struct pb scratch, line;
	struct hmap strs, funcs, locs;
	char **strv;		/* strings by index (interned: the symbolizer's, or ours) */
	size_t nstrv, capstrv;
	uint64_t *ids;		/* a sample's location ids */
	size_t capids;
	char **own;		/* strings made here (build IDs, comments), freed at the end */
	size_t nown, capown;
};

/* Index of string s in the string table (s is interned by the symbolizer
 * or a literal: its pointer is its identity, but equal text from two
 * sources only costs a duplicate entry). */
static int64_t str(struct prof *p, const char *s)
{
	if (!s || !*s)
		return 0;
	int is_new;
	uint64_t id = tab_id(&p->strs, (uint64_t)(uintptr_t)s, 0, &is_new);
	if (!id || (is_new && grow_array(&p->strv, &p->capstrv, p->nstrv, sizeof(*p->strv)))) {
		p->out.err = -ENOMEM;
		return 0;
	}
	if (is_new)
		p->strv[p->nstrv++] = (char *)s;
	return (int64_t)id;	/* 1-based: "" is entry 0 */
}

/* A string of our own (freed with the profile) in the table. */
static int64_t own_str(struct prof *p, const char *text)
{
	char *c = strdup(text);
	if (!c || grow_array(&p->own, &p->capown, p->nown, sizeof(*p->own))) {
		free(c);
		p->out.err = -ENOMEM;
		return 0;
	}
	p->own[p->nown++] = c;
	return str(p, c);
}

static uint64_t function_id(struct prof *p, const struct sym_frame *f)
{
	int is_new;
	uint64_t id = tab_id(&p->funcs, (uint64_t)(uintptr_t)f->function, (uint64_t)(uintptr_t)f->file,
			     &is_new);
	if (is_new) {
		struct pb *s = &p->scratch;
		int64_t name = str(p, f->function);
		pb_int(s, 1, id);
		pb_int(s, 2, (uint64_t)name);
		pb_int(s, 3, (uint64_t)name);
		pb_int(s, 4, (uint64_t)str(p, f->file));
		pb_msg(&p->out, 5, s);
	}
	return id;
}

static uint64_t mapping_of(const struct prof *p, uint64_t pc)
{
	const struct trace_module *mods, *mod = trace_module_at(p->m->t, pc);
	size_t n = trace_modules(p->m->t, &mods);
	return mod && n ? (uint64_t)(mod - mods) + 1 : 0;
}

/* The location of return address ra, its inline chain from frame `skip`
 * on (the frames inner to a site's frame are left out). */
static uint64_t location_id(struct prof *p, uint64_t ra, int skip)
{
	int is_new;
	uint64_t id = tab_id(&p->locs, ra, (uint64_t)skip + 1, &is_new);
	if (!is_new)
		return id;
	const struct sym_frame *f;
	int n = p->m->sym ? sym_lookup(p->m->sym, ra, &f) : 0;
	struct pb loc = { 0 };
	pb_int(&loc, 1, id);
	pb_int(&loc, 2, ra ? mapping_of(p, ra - 1) : 0);
	pb_int(&loc, 3, ra ? ra - 1 : 0);	/* the call instruction */
	for (int k = skip; k < n; k++) {	/* innermost inlined first, as pprof's */
		pb_int(&p->line, 1, function_id(p, &f[k]));
		pb_int(&p->line, 2, f[k].line);
		pb_msg(&loc, 4, &p->line);
	}
	pb_msg(&p->out, 4, &loc);
	free(loc.p);
	return id;
}

/* ---- the profile --------------------------------------------------------------------- */

/* Where the site's frame is: frames[*k]'s inline chain, entry *j. */
static void site_position(const struct model *m, const struct rsite *r, uint32_t *k, int *j)
{
	*k = 0;
	*j = 0;
	for (uint32_t i = 0; m->sym && r->frames && i < r->depth; i++) {
		const struct sym_frame *f;
		int n = sym_lookup(m->sym, r->frames[i], &f);
		if (r->site >= f && r->site < f + n) {
			*k = i;
			*j = (int)(r->site - f);
			return;
		}
	}
}

static void sample(struct prof *p, const struct site_stat *s, enum pprof_at at)
{
	struct rsite r;
	model_name_site(p->m, s, &r);
	uint32_t k;
	int j;
	site_position(p->m, &r, &k, &j);
	size_t n = 0;
	if (grow_array(&p->ids, &p->capids, r.depth + 1, sizeof(*p->ids))) {
		p->out.err = -ENOMEM;
		return;
	}
	for (uint32_t i = k; r.frames && i < r.depth; i++)
		p->ids[n++] = location_id(p, r.frames[i], i == k ? j : 0);
	if (!n) {	/* no stack: one location named so */
		int is_new;
		uint64_t id = tab_id(&p->locs, 0, 0, &is_new);
		if (is_new) {
			static const struct sym_frame none = { .function = "[no stack]", .module_index = -1 };
			pb_int(&p->scratch, 1, function_id(p, &none));
			pb_msg(&p->line, 4, &p->scratch);
			struct pb loc = { 0 };
			pb_int(&loc, 1, id);
			pb_raw(&loc, p->line.p, p->line.n);
			p->line.n = 0;
			pb_msg(&p->out, 4, &loc);
			free(loc.p);
		}
		p->ids[n++] = id;
	}
	int64_t live = at == PPROF_AT_PEAK ? s->live_at_peak : s->live_bytes;
	uint64_t blocks = at == PPROF_AT_PEAK ? s->live_blocks_at_peak : s->live_blocks;
	uint64_t v[4] = { s->allocs, s->alloc_bytes, blocks, (uint64_t)(live > 0 ? live : 0) };
	struct pb smp = { 0 };
	pb_packed(&smp, 1, p->ids, n);
	pb_packed(&smp, 2, v, 4);
	pb_msg(&p->out, 2, &smp);
	free(smp.p);
}

static void build_id_hex(const struct trace_module *mod, char *hex)
{
	for (uint32_t i = 0; i < mod->build_id_len && i < 64; i++)
		sprintf(hex + 2 * i, "%02x", mod->build_id[i]);
}

static void mappings(struct prof *p)
{
	const struct trace_module *mods;
	size_t n = trace_modules(p->m->t, &mods);
	for (size_t i = 0; i < n; i++) {
		char hex[130] = "";
		build_id_hex(&mods[i], hex);
		struct pb *s = &p->scratch;
		pb_int(s, 1, i + 1);
		pb_int(s, 2, mods[i].lo);
		pb_int(s, 3, mods[i].hi);
		/* file_offset: the first segment of a shared object maps offset 0 */
		pb_int(s, 5, (uint64_t)str(p, mods[i].path));
		if (hex[0])
			pb_int(s, 6, (uint64_t)own_str(p, hex));
		int sym = p->m->sym != NULL;
		pb_int(s, 7, sym);
		pb_int(s, 8, sym);
		pb_int(s, 9, sym);
		pb_int(s, 10, sym);
		pb_msg(&p->out, 3, s);
	}
}

static void value_type(struct prof *p, unsigned field, const char *type, const char *unit)
{
	pb_int(&p->scratch, 1, (uint64_t)str(p, type));
	pb_int(&p->scratch, 2, (uint64_t)str(p, unit));
	pb_msg(&p->out, field, &p->scratch);
}

/* The Profile message, string table last. */
static void profile(struct prof *p, enum pprof_at at)
{
	const struct model *m = p->m;
	const struct analysis *a = &m->a;
	value_type(p, 1, "alloc_objects", "count");
	value_type(p, 1, "alloc_space", "bytes");
	value_type(p, 1, "inuse_objects", "count");
	value_type(p, 1, "inuse_space", "bytes");
	mappings(p);
	for (uint32_t i = 0; i < a->nsites && !p->out.err; i++) {
		const struct site_stat *s = &a->sites[i];
		if (s->allocs || s->live_blocks)
			sample(p, s, at);
	}
	pb_int(&p->out, 9, m->info->start_realtime_ns);
	pb_int(&p->out, 10, m->duration_ns);
	value_type(p, 11, "space", "bytes");
	char c[400], b[32], d[32];
	if (at == PPROF_AT_PEAK)
		snprintf(c, sizeof(c), "mfx: pid %u, in use at the peak of live bytes (%s, %s into the window)",
			 m->info->pid, fmt_bytes((uint64_t)(a->peak_live_bytes > 0 ? a->peak_live_bytes : 0), b,
						 sizeof(b)),
			 fmt_duration(a->peak_live_ts > a->first_ts ? a->peak_live_ts - a->first_ts : 0, d,
				      sizeof(d)));
	else
		snprintf(c, sizeof(c), "mfx: pid %u, in use at the end of the window (%s)", m->info->pid,
			 fmt_bytes((uint64_t)(a->live_bytes_end > 0 ? a->live_bytes_end : 0), b, sizeof(b)));
	pb_int(&p->out, 13, (uint64_t)own_str(p, c));
	snprintf(c, sizeof(c), "mfx: %s", m->info->command[0] ? m->info->command : m->info->exe);
	pb_int(&p->out, 13, (uint64_t)own_str(p, c));
	pb_int(&p->out, 14, (uint64_t)str(p, "inuse_space"));
	pb_bytes(&p->out, 6, "", 0);	/* string_table[0] is "" */
	for (size_t i = 0; i < p->nstrv; i++)
		pb_bytes(&p->out, 6, p->strv[i], strlen(p->strv[i]));
}

/* gzip (RFC 1952) of buf into f. */
static int gzip_to(const uint8_t *buf, size_t n, FILE *f)
{
	z_stream z = { 0 };
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	uint8_t out[1 << 16];
	int err = 0, r;
	z.next_in = (Bytef *)(uintptr_t)buf;
	z.avail_in = (uInt)n;	/* (a profile is far below 4 GiB) */
	do {
		z.next_out = out;
		z.avail_out = sizeof(out);
		r = deflate(&z, Z_FINISH);
		size_t got = sizeof(out) - z.avail_out;
		if (got && fwrite(out, 1, got, f) != got) {
			err = -errno;
			break;
		}
	} while (r == Z_OK);
	if (!err && r != Z_STREAM_END)
		err = -EIO;
	deflateEnd(&z);
	return err;
}

int pprof_write(const struct model *m, enum pprof_at at, FILE *f)
{
	struct prof p = { .m = m };
	hmap_init(&p.strs, sizeof(struct ent), 1024);
	hmap_init(&p.funcs, sizeof(struct ent), 1024);
	hmap_init(&p.locs, sizeof(struct ent), 1024);
	profile(&p, at);
	int err = p.out.err ? p.out.err : p.scratch.err ? p.scratch.err : p.line.err;
	if (!err)
		err = gzip_to(p.out.p, p.out.n, f);
	free(p.out.p);
	free(p.scratch.p);
	free(p.line.p);
	hmap_free(&p.strs);
	hmap_free(&p.funcs);
	hmap_free(&p.locs);
	free(p.strv);
	free(p.ids);
	for (size_t i = 0; i < p.nown; i++)
		free(p.own[i]);
	free(p.own);
	return err;
}
