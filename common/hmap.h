/*
 * hmap.h - one open-addressing hash map from 64-bit keys to fixed-size
 * values, for the analyzer's tables (live blocks by pointer, block ids,
 * symbol cache by address, interned strings by hash).
 *
 * Linear probing on a power-of-two table, the key mixed by the murmur3
 * finaliser; deletion by backward shift (no tombstones: long traces with
 * heavy churn do not slow it down); grown to twice the size at 70% load.
 * Any key is allowed (key 0 is kept beside the table).  A value pointer
 * is valid until the next hmap_put or hmap_del on the map.
 *
 *	struct hmap m;
 *	hmap_init(&m, sizeof(struct v), 0);
 *	struct v *v = hmap_put(&m, key, &added);	// NULL: out of memory
 *	v = hmap_get(&m, key);				// NULL: absent
 *	hmap_del(&m, key, NULL);
 *	for (size_t i = 0; (i = hmap_next(&m, i, &key, (void **)&v));)
 *		...
 *	hmap_free(&m);
 */
#ifndef MFX_COMMON_HMAP_H
#define MFX_COMMON_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap {
	uint64_t *keys;		/* cap slots, 0 = empty */
	unsigned char *vals;	/* cap + 1 values of vsize bytes: the last is key 0's */
	size_t cap, n, vsize;
	size_t min_cap;		/* first table size (a power of two) */
	int has_zero;		/* key 0 is in the map */
};

/* An empty map of vsize-byte values; min_cap: the first table's slots
 * (rounded up to a power of two; 0: 64).  Allocates nothing yet. */
void hmap_init(struct hmap *m, size_t vsize, size_t min_cap);
void hmap_free(struct hmap *m);

/* key's value, added (zero-filled, *added = 1) when absent; NULL when out
 * of memory (the map is unchanged). */
void *hmap_put(struct hmap *m, uint64_t key, int *added);
/* Remove key; its value copied to out (when not NULL).  1 if it was there,
 * else 0. */
int hmap_del(struct hmap *m, uint64_t key, void *out);
/* Iteration, in no particular order: start with pos 0; returns the next
 * pos (0 at the end) with *key and *val set. */
size_t hmap_next(const struct hmap *m, size_t pos, uint64_t *key, void **val);

static inline size_t hmap_count(const struct hmap *m)
{
	return m->n;
}

/* Inline below: the lookup is the analyzer's hot path (one per event). */
static inline uint64_t hmap_mix_(uint64_t k)	/* murmur3's 64-bit finaliser */
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

static inline void *hmap_val_(const struct hmap *m, size_t i)
{
	return m->vals + i * m->vsize;
}

/* The slot holding key (non-zero), or the empty slot where it would go. */
static inline size_t hmap_slot_(const struct hmap *m, uint64_t key)
{
	size_t mask = m->cap - 1, i = (size_t)hmap_mix_(key) & mask;
	while (m->keys[i] && m->keys[i] != key)
		i = (i + 1) & mask;
	return i;
}

/* key's value, or NULL. */
static inline void *hmap_get(const struct hmap *m, uint64_t key)
{
	if (!key)
		return m->has_zero ? hmap_val_(m, m->cap) : NULL;
	if (!m->n)
		return NULL;
	size_t i = hmap_slot_(m, key);
	return m->keys[i] ? hmap_val_(m, i) : NULL;
}

#endif /* MFX_COMMON_HMAP_H */
