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
#define NEAR 4		/* classes beside a block's own searched for it */
#define SSZ_BITS 10	/* stack -> the sizes it allocated last, direct-mapped */
#define SSZ (1u << SSZ_BITS)
#define SZD 8		/* sizes remembered per stack */
#define GROUP 512	/* ordinals per live count (8 words of the bitmap) */
#define NWORDS(n) (((n) / GROUP + 1) * (GROUP / 64))	/* bitmap words, whole groups */
#define MAX_EVENTS(used) ((size_t)(used) / 3 + 1)	/* a raw record is >= 3 bytes */

/* ---- the model -------------------------------------------------------------- */

struct model {
	/* Blocks allocated in this chunk, by ordinal (0, 1, ... in allocation
	 * order).  Ranks among the live ones come from a bitmap of live
	 * ordinals and a count per group of 512 ordinals, summed from the
	 * nearer end: a block freed soon after it was allocated, or the oldest
	 * one (a FIFO), costs a few words' popcounts. */
	uint64_t *lptr, *lsize;
	uint64_t *bits;		/* live ordinals */
	uint32_t *gcnt;		/* live ordinals per group of GROUP */
	uint32_t wlo;		/* no live ordinal in the words below it */
	uint32_t cap, n;	/* arrays' room; ordinals this chunk may use */
	uint32_t nord, nalive;
	/* Recently freed blocks per size class, newest first. */
	uint64_t fl[NCLS][DEPTH];
	uint8_t flh[NCLS], fln[NCLS];	/* rings (see ring_at) */
	uint64_t ufl[UDEPTH];	/* freed blocks of unknown size */
	uint8_t ufh, nufl;
	uint32_t mtf[NMTF], nmtf;
	struct sslot {
		uint32_t gen, stack;
		uint8_t head, n;
		uint64_t size[SZD];	/* a ring (see ring_at), most recent first */
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
	free(m->gcnt);
}

/* Room for nord ordinals (realloc keeps what is there). */
static inline int model_room(struct model *m, uint32_t nord)
{
	if (nord <= m->cap && m->lptr)
		return 0;
	uint32_t c = nord < 1024 ? 1024 : nord, w = NWORDS(c), g = c / GROUP + 1;
	uint64_t *a = realloc(m->lptr, c * sizeof(*a));
	if (a)
		m->lptr = a;
	uint64_t *b = realloc(m->lsize, c * sizeof(*b));
	if (b)
		m->lsize = b;
	uint64_t *bi = realloc(m->bits, w * sizeof(*bi));
	if (bi)
		m->bits = bi;
	uint32_t *f = realloc(m->gcnt, g * sizeof(*f));
	if (f)
		m->gcnt = f;
	if (!a || !b || !bi || !f)
		return -ENOMEM;
	m->cap = c;
	return 0;
}

/* An empty model for a chunk of at most nord allocating events. */
static inline int model_reset(struct model *m, uint32_t nord)
{
	if (model_room(m, nord))
		return -ENOMEM;
	m->n = nord;
	memset(m->bits, 0, NWORDS(nord) * sizeof(*m->bits));
	memset(m->gcnt, 0, (nord / GROUP + 1) * sizeof(*m->gcnt));
	m->nord = m->nalive = m->wlo = 0;
	memset(m->fln, 0, sizeof(m->fln));
	m->gen++;
	m->nmtf = 0;
	m->nufl = 0;
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

/* Room for nord ordinals while encoding: the live blocks kept. */
static inline int model_grow(struct model *m, uint32_t nord)
{
	uint32_t ow = NWORDS(m->n), og = m->n / GROUP + 1;
	if (nord <= m->n)
		return 0;
	if (model_room(m, nord))
		return -ENOMEM;
	m->n = nord;
	memset(m->bits + ow, 0, (NWORDS(nord) - ow) * sizeof(*m->bits));
	memset(m->gcnt + og, 0, (nord / GROUP + 1 - og) * sizeof(*m->gcnt));
	return 0;
}

/* Live ordinals in words [a, b) of the bitmap. */
static inline uint32_t live_words(const struct model *m, uint32_t a, uint32_t b)
{
	uint32_t s = 0;
	for (uint32_t w = a; w < b; w++)
		s += popcount64(m->bits[w]);
	return s;
}

/* Live ordinals below o (o itself live), counted from the nearer end:
 * words and groups with nothing live at the ends are not looked at. */
static inline uint32_t live_below(const struct model *m, uint32_t o)
{
	uint32_t w = o / 64, g = o / GROUP, gw = g * (GROUP / 64), top = (m->nord - 1) / GROUP;
	uint32_t glo = m->wlo / (GROUP / 64), whi = (m->nord - 1) / 64;
	uint64_t bit = 1ull << (o % 64);
	if (g - glo <= top - g) {
		uint32_t s = popcount64(m->bits[w] & (bit - 1));
		s += live_words(m, gw > m->wlo ? gw : m->wlo, w);
		for (uint32_t i = glo; i < g; i++)
			s += m->gcnt[i];
		return s;
	}
	uint32_t wend = gw + GROUP / 64 < whi + 1 ? gw + GROUP / 64 : whi + 1;
	uint32_t above = popcount64(m->bits[w] & ~(bit | (bit - 1))) + live_words(m, w + 1, wend);
	for (uint32_t i = g + 1; i <= top; i++)
		above += m->gcnt[i];
	return m->nalive - 1 - above;
}

/* The k-th set bit of x (1-based), or 64. */
static inline uint32_t select64(uint64_t x, uint32_t k)
{
	while (--k && x)
		x &= x - 1;
	return x ? (uint32_t)__builtin_ctzll(x) : 64;
}

/* The ordinal of the k-th live block (1 <= k <= nalive, oldest first),
 * counted from the nearer end; UINT32_MAX if there is none. */
static inline uint32_t live_kth(const struct model *m, uint32_t k)
{
	if (!m->nord || k < 1 || k > m->nalive)
		return UINT32_MAX;
	uint32_t top = (m->nord - 1) / GROUP, g, w, c;
	if (k <= m->nalive - k + 1) {	/* from the oldest */
		for (g = m->wlo / (GROUP / 64); g <= top && (c = m->gcnt[g]) < k; g++)
			k -= c;
		w = g * (GROUP / 64) > m->wlo ? g * (GROUP / 64) : m->wlo;
		for (; (c = popcount64(m->bits[w])) < k; w++)
			k -= c;
		return w * 64 + select64(m->bits[w], k);
	}
	k = m->nalive - k + 1;		/* k-th from the newest */
	for (g = top; (c = m->gcnt[g]) < k; g--)
		k -= c;
	for (w = g * (GROUP / 64) + GROUP / 64 - 1; (c = popcount64(m->bits[w])) < k; w--)
		k -= c;
	return w * 64 + select64(m->bits[w], c - k + 1);
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
	m->gcnt[o / GROUP]++;
	m->nalive++;
	return o;
}

static inline void live_kill(struct model *m, uint32_t o)
{
	m->bits[o / 64] &= ~(1ull << (o % 64));
	m->gcnt[o / GROUP]--;
	m->nalive--;
	while (!m->bits[m->wlo] && m->wlo < (m->nord - 1) / 64)
		m->wlo++;
}

/*
 * The short lists of the model (free lists, sizes, stacks) move a few
 * entries per event: plain loops, kept from becoming memmove calls (whose
 * call costs more than moving a handful of words).
 */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_MEMMOVE __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_MEMMOVE
#endif

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

/*
 * The free lists are rings of the last cap (a power of two) pointers: entry
 * i (0 = the newest) is at (head - 1 - i) & (cap - 1).  A push overwrites
 * the oldest when full; taking entry i moves only the i newer ones (none
 * for the newest, the usual case).
 */
static inline uint64_t ring_at(const uint64_t *a, unsigned head, unsigned cap, unsigned i)
{
	return a[(head - 1 - i) & (cap - 1)];
}

static inline void ring_push(uint64_t *a, uint8_t *head, uint8_t *n, unsigned cap, uint64_t p)
{
	a[*head] = p;
	*head = (uint8_t)((*head + 1) & (cap - 1));
	if (*n < cap)
		(*n)++;
}

static inline uint64_t ring_take(uint64_t *a, uint8_t *head, uint8_t *n, unsigned cap, unsigned i)
{
	unsigned h = *head, m = cap - 1;
	uint64_t p = a[(h - 1 - i) & m];
	for (unsigned j = i; j-- > 0;)
		a[(h - 2 - j) & m] = a[(h - 1 - j) & m];
	*head = (uint8_t)((h - 1) & m);
	(*n)--;
	return p;
}

/* The k-th class beside c (c - 1, c + 1, c - 2, c + 2), NCLS or more when
 * there is none. */
static inline unsigned near_cls(unsigned c, unsigned k)
{
	unsigned d = k / 2 + 1;
	return k & 1 ? c + d : c >= d ? c - d : NCLS;
}

static inline void fl_push(struct model *m, uint64_t size, uint64_t ptr)
{
	unsigned c = size_cls(size);
	ring_push(m->fl[c], &m->flh[c], &m->fln[c], DEPTH, ptr);
}

static inline uint64_t fl_take(struct model *m, unsigned c, unsigned i)
{
	return ring_take(m->fl[c], &m->flh[c], &m->fln[c], DEPTH, i);
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

static inline uint64_t ss_at(const struct sslot *s, unsigned i)
{
	return ring_at(s->size, s->head, SZD, i);
}

/* Entry i (or a new one, i == n: the oldest falls off when full) becomes
 * the first. */
static inline void ss_front(struct sslot *s, unsigned i, uint64_t size)
{
	if (i < s->n)
		ring_take(s->size, &s->head, &s->n, SZD, i);
	ring_push(s->size, &s->head, &s->n, SZD, size);
}

static inline void ufl_push(struct model *m, uint64_t ptr)
{
	ring_push(m->ufl, &m->ufh, &m->nufl, UDEPTH, ptr);
}

static inline uint64_t ufl_take(struct model *m, unsigned i)
{
	return ring_take(m->ufl, &m->ufh, &m->nufl, UDEPTH, i);
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
