/*
 * evmodel.h - the model the event codec (trace/evcodec.h) keeps while it
 * encodes or decodes one chunk: the blocks this chunk allocated and which of
 * them are live, recently freed blocks by size class, stacks by recency, the
 * sizes each stack allocated last; and the column coders for sizes and
 * pointer distances.  The encoder (evcodec.c) and the decoder (evdecode.c)
 * update it identically after every event: that is the whole contract.
 * Internal to those two files.
 */
#ifndef MFX_TRACE_EVMODEL_H
#define MFX_TRACE_EVMODEL_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace/format.h"
#include "trace/varint.h"

#define NCLS 472	/* size classes of the free lists (size_cls) */
#define DEPTH 8		/* blocks remembered per size class (glibc's tcache keeps 7) */
#define NMTF 64		/* stacks in the move-to-front list */
#define UDEPTH 32	/* blocks freed by pointer (their size unknown to the chunk) */
#define SSZ_BITS 10	/* stack -> the sizes it allocated last, direct-mapped */
#define SSZ (1u << SSZ_BITS)
#define SZD 8		/* sizes remembered per stack */
#define MAX_EVENTS(used) ((size_t)(used) / 3 + 1)	/* a raw record is >= 3 bytes */

/* ---- the model -------------------------------------------------------------- */

struct model {
	/* Blocks allocated in this chunk, by ordinal (0, 1, ... in allocation
	 * order).  Ranks among the live ones come from a bitmap of live
	 * ordinals and a Fenwick tree of its words' counts: small enough to
	 * stay in the first-level cache. */
	uint64_t *lptr, *lsize;
	uint64_t *bits;		/* live ordinals */
	uint32_t *wfen;		/* Fenwick tree over the words of bits, 1-based */
	uint32_t cap, n;	/* arrays' room; ordinals this chunk may use */
	uint32_t nw, wtop;	/* words of bits in use; top power of two <= nw */
	uint32_t nord, nalive;
	/* Recently freed blocks per size class, newest first. */
	uint64_t fl[NCLS][DEPTH];
	uint8_t fln[NCLS];
	uint64_t ufl[UDEPTH];	/* freed blocks of unknown size, newest first */
	uint32_t nufl;
	uint32_t mtf[NMTF], nmtf;
	struct sslot {
		uint32_t gen, stack, n;
		uint64_t size[SZD];	/* most recent first */
	} ssz[SSZ];
	uint32_t gen;		/* ssz entries of other generations are empty */
	uint64_t last_ptr;	/* the previous event's pointer */
	uint64_t bump;		/* where the previous allocation's block ended */
	uint64_t qts;		/* the previous event's time, in quanta */
};

static inline void model_free(struct model *m)
{
	free(m->lptr);
	free(m->lsize);
	free(m->bits);
	free(m->wfen);
}

/* Room for nord ordinals (realloc keeps what is there). */
static inline int model_room(struct model *m, uint32_t nord)
{
	if (nord <= m->cap && m->lptr)
		return 0;
	uint32_t c = nord < 1024 ? 1024 : nord, w = c / 64 + 1;
	uint64_t *a = realloc(m->lptr, c * sizeof(*a));
	if (a)
		m->lptr = a;
	uint64_t *b = realloc(m->lsize, c * sizeof(*b));
	if (b)
		m->lsize = b;
	uint64_t *bi = realloc(m->bits, w * sizeof(*bi));
	if (bi)
		m->bits = bi;
	uint32_t *f = realloc(m->wfen, (w + 1) * sizeof(*f));
	if (f)
		m->wfen = f;
	if (!a || !b || !bi || !f)
		return -ENOMEM;
	m->cap = c;
	return 0;
}

static inline void model_set_n(struct model *m, uint32_t nord)
{
	m->n = nord;
	m->nw = nord / 64 + 1;
	for (m->wtop = 1; m->wtop * 2 <= m->nw; m->wtop *= 2)
		;
}

/* An empty model for a chunk of at most nord allocating events. */
static inline int model_reset(struct model *m, uint32_t nord)
{
	if (model_room(m, nord))
		return -ENOMEM;
	model_set_n(m, nord);
	memset(m->bits, 0, m->nw * sizeof(*m->bits));
	memset(m->wfen, 0, (m->nw + 1) * sizeof(*m->wfen));
	m->nord = m->nalive = 0;
	memset(m->fln, 0, sizeof(m->fln));
	m->gen++;
	m->nmtf = m->nufl = 0;
	m->last_ptr = m->bump = 0;
	return 0;
}

/* Without -mpopcnt, __builtin_popcountll is a libgcc call. */
static inline uint32_t popcount64(uint64_t x)
{
	x -= (x >> 1) & 0x5555555555555555ull;
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

/* Room for nord ordinals while encoding: the live blocks kept, the Fenwick
 * tree built again over the longer bitmap (linear time). */
static inline int model_grow(struct model *m, uint32_t nord)
{
	uint32_t old_nw = m->nw;
	if (nord <= m->n)
		return 0;
	if (model_room(m, nord))
		return -ENOMEM;
	model_set_n(m, nord);
	memset(m->bits + old_nw, 0, (m->nw - old_nw) * sizeof(*m->bits));
	for (uint32_t i = 1; i <= m->nw; i++)
		m->wfen[i] = popcount64(m->bits[i - 1]);
	for (uint32_t i = 1; i <= m->nw; i++) {
		uint32_t j = i + (i & -i);
		if (j <= m->nw)
			m->wfen[j] += m->wfen[i];
	}
	return 0;
}

static inline void wfen_add(struct model *m, uint32_t w, int d)
{
	for (uint32_t i = w + 1; i <= m->nw; i += i & -i)
		m->wfen[i] += (uint32_t)d;
}

/* Live ordinals in [0, o]. */
static inline uint32_t live_prefix(const struct model *m, uint32_t o)
{
	uint32_t s = 0, w = o / 64;
	for (uint32_t i = w; i; i -= i & -i)	/* words before w */
		s += m->wfen[i];
	uint64_t mask = (o % 64 == 63) ? ~0ull : (2ull << (o % 64)) - 1;
	return s + popcount64(m->bits[w] & mask);
}

/* The ordinal of the k-th live block (1 <= k <= nalive, oldest first). */
static inline uint32_t live_kth(const struct model *m, uint32_t k)
{
	uint32_t pos = 0;
	for (uint32_t b = m->wtop; b; b >>= 1)
		if (pos + b <= m->nw && m->wfen[pos + b] < k) {
			pos += b;
			k -= m->wfen[pos];
		}
	/* word `pos` holds it, as its k-th set bit */
	uint64_t x = pos < m->nw ? m->bits[pos] : 0;
	while (--k && x)
		x &= x - 1;
	return x ? pos * 64 + (uint32_t)__builtin_ctzll(x) : UINT32_MAX;
}

/* A new live block; its ordinal, or UINT32_MAX when the chunk said fewer. */
static inline uint32_t live_add(struct model *m, uint64_t ptr, uint64_t size)
{
	if (m->nord >= m->n)
		return UINT32_MAX;
	uint32_t o = m->nord++;
	m->lptr[o] = ptr;
	m->lsize[o] = size;
	m->bits[o / 64] |= 1ull << (o % 64);
	wfen_add(m, o / 64, 1);
	m->nalive++;
	return o;
}

static inline void live_kill(struct model *m, uint32_t o)
{
	m->bits[o / 64] &= ~(1ull << (o % 64));
	wfen_add(m, o / 64, -1);
	m->nalive--;
}

/*
 * The short lists of the model (free lists, sizes, stacks) move a few
 * entries per event: plain loops, kept from becoming memmove calls (whose
 * call costs more than moving a handful of words).
 */
#define NO_MEMMOVE __attribute__((optimize("no-tree-loop-distribute-patterns")))

/* a[1..n] = a[0..n-1] */
static inline NO_MEMMOVE void shift_up64(uint64_t *a, unsigned n)
{
	for (unsigned j = n; j > 0; j--)
		a[j] = a[j - 1];
}

/* a[i..n-2] = a[i+1..n-1] */
static inline NO_MEMMOVE void shift_down64(uint64_t *a, unsigned i, unsigned n)
{
	for (unsigned j = i; j + 1 < n; j++)
		a[j] = a[j + 1];
}

/* glibc's chunk size for a request (its tcache bins), then coarser classes
 * for big blocks, which the free lists rarely give back anyway. */
static inline unsigned size_cls(uint64_t s)
{
	if (s < 4000)
		return (unsigned)((s + 8 + 15) >> 4);	/* 0..250 */
	unsigned lg = 63u - (unsigned)__builtin_clzll(s);	/* 11..63 */
	return 256 + (lg - 11) * 4 + (unsigned)((s >> (lg - 2)) & 3);	/* < NCLS */
}

/* Where the next block would start if the allocator carved it right after
 * this one (glibc: request + 8 rounded up to 16, at least 32).  A size no
 * allocator gives predicts nothing: the block itself. */
static inline uint64_t block_end(uint64_t ptr, uint64_t size)
{
	if (size >= 1ull << 48)
		return ptr;
	uint64_t cs = (size + 8 + 15) & ~(uint64_t)15;
	return ptr + (cs < 32 ? 32 : cs);
}

static inline void fl_push(struct model *m, uint64_t size, uint64_t ptr)
{
	unsigned c = size_cls(size), n = m->fln[c];
	if (n == DEPTH)
		n--;
	shift_up64(m->fl[c], n);
	m->fl[c][0] = ptr;
	m->fln[c] = (uint8_t)(n + 1);
}

static inline uint64_t fl_take(struct model *m, unsigned c, unsigned i)
{
	uint64_t p = m->fl[c][i];
	shift_down64(m->fl[c], i, m->fln[c]);
	m->fln[c]--;
	return p;
}

static inline NO_MEMMOVE void mtf_front(struct model *m, unsigned i, uint32_t stack)
{
	if (i >= NMTF)
		i = NMTF - 1;
	for (unsigned j = i; j > 0; j--)
		m->mtf[j] = m->mtf[j - 1];
	m->mtf[0] = stack;
}

/* The sizes `stack` allocated last in this chunk (an empty list at first). */
static inline struct sslot *ss_get(struct model *m, uint32_t stack)
{
	struct sslot *s = &m->ssz[(stack * 2654435761u) >> (32 - SSZ_BITS)];
	if (s->gen != m->gen || s->stack != stack) {
		s->gen = m->gen;
		s->stack = stack;
		s->n = 0;
	}
	return s;
}

/* Entry i (or a new one, i == n) becomes the first. */
static inline void ss_front(struct sslot *s, unsigned i, uint64_t size)
{
	if (i == s->n && s->n < SZD)
		s->n++;
	if (i >= SZD)
		i = SZD - 1;
	shift_up64(s->size, i);
	s->size[0] = size;
}

static inline void ufl_push(struct model *m, uint64_t ptr)
{
	unsigned n = m->nufl < UDEPTH ? m->nufl : UDEPTH - 1;
	shift_up64(m->ufl, n);
	m->ufl[0] = ptr;
	m->nufl = n + 1;
}

static inline uint64_t ufl_take(struct model *m, unsigned i)
{
	uint64_t p = m->ufl[i];
	shift_down64(m->ufl, i, m->nufl);
	m->nufl--;
	return p;
}

/* ---- column writers ----------------------------------------------------------- */

/* Size: one class byte (exact below 64, then 4 classes per power of two),
 * then the remainder below the class's base in as many bytes as its width
 * needs; class 255: the size as a varint. */
static inline void put_size(uint8_t **cls, uint8_t **rem, uint64_t s)
{
	if (s < 64) {
		*(*cls)++ = (uint8_t)s;
		return;
	}
	unsigned lg = 63u - (unsigned)__builtin_clzll(s);
	if (lg > 52) {
		*(*cls)++ = 255;
		*rem = put_varint(*rem, s);
		return;
	}
	unsigned mant = (unsigned)(s >> (lg - 2)) & 3;
	*(*cls)++ = (uint8_t)(64 + (lg - 6) * 4 + mant);
	uint64_t r = s - ((uint64_t)(4 + mant) << (lg - 2));
	for (unsigned b = 0; b < lg - 2; b += 8) {
		*(*rem)++ = (uint8_t)r;
		r >>= 8;
	}
}

static inline int get_size(const uint8_t **cls, const uint8_t *cend, const uint8_t **rem,
		    const uint8_t *rend, uint64_t *s)
{
	if (*cls >= cend)
		return -1;
	unsigned c = *(*cls)++;
	if (c < 64) {
		*s = c;
		return 0;
	}
	if (c == 255)
		return get_varint(rem, rend, s);
	if (c > 64 + 46 * 4 + 3)
		return -1;
	unsigned lg = 6 + (c - 64) / 4, mant = (c - 64) % 4;
	uint64_t r = 0;
	for (unsigned b = 0; b < lg - 2; b += 8) {
		if (*rem >= rend)
			return -1;
		r |= (uint64_t)*(*rem)++ << b;
	}
	if (r >> (lg - 2))
		return -1;
	*s = ((uint64_t)(4 + mant) << (lg - 2)) + r;
	return 0;
}

/* A pointer as its distance from a prediction: zigzag, shifted by 4 when
 * the distance is a multiple of 16 (bit 0 says which).  Pointers of this
 * machine are below 2^57; a distance that does not fit is refused. */
static inline int put_dist(uint8_t **p, uint64_t ptr, uint64_t from)
{
	int64_t d = (int64_t)(ptr - from);
	if (d >= (1ll << 61) || d < -(1ll << 61))
		return -1;
	uint64_t v = (d & 15) ? (zigzag(d) << 1) | 1 : zigzag(d >> 4) << 1;
	*p = put_varint(*p, v);
	return 0;
}

static inline int get_dist(const uint8_t **p, const uint8_t *end, uint64_t from, uint64_t *ptr)
{
	uint64_t v;
	if (get_varint(p, end, &v))
		return -1;
	int64_t d = unzigzag(v >> 1);
	if (!(v & 1))
		d = (int64_t)((uint64_t)d << 4);
	*ptr = from + (uint64_t)d;
	return 0;
}

static inline int is_realloc(unsigned kind)
{
	return kind == MFX_K_REALLOC || kind == MFX_K_REALLOCARRAY;
}

static inline int is_aligned(unsigned kind)
{
	return kind >= MFX_K_POSIX_MEMALIGN && kind <= MFX_K_MEMALIGN;
}

#endif /* MFX_TRACE_EVMODEL_H */
