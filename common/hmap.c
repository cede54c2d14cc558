/*
 * hmap.c - the open-addressing hash map (see hmap.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/hmap.h"

void hmap_init(struct hmap *m, size_t vsize, size_t min_cap)
{
	memset(m, 0, sizeof(*m));
	m->vsize = vsize;
	m->min_cap = 64;
	while (m->min_cap < min_cap)
		m->min_cap *= 2;
}

void hmap_free(struct hmap *m)
{
	free(m->keys);
	free(m->vals);
	size_t vsize = m->vsize, min_cap = m->min_cap;
	memset(m, 0, sizeof(*m));
	m->vsize = vsize;
	m->min_cap = min_cap;
}

/* Twice the slots (or the first table), every entry placed again. */
static int grow(struct hmap *m)
{
	struct hmap g = *m;
	g.cap = m->cap ? m->cap * 2 : m->min_cap;
	g.keys = calloc(g.cap, sizeof(*g.keys));
	g.vals = calloc(g.cap + 1, m->vsize ? m->vsize : 1);
	if (!g.keys || !g.vals) {
		free(g.keys);
		free(g.vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->keys[i]) {
			size_t j = hmap_slot_(&g, m->keys[i]);
			g.keys[j] = m->keys[i];
			memcpy(hmap_val_(&g, j), hmap_val_(m, i), m->vsize);
		}
	if (m->cap)
		memcpy(hmap_val_(&g, g.cap), hmap_val_(m, m->cap), m->vsize);
	free(m->keys);
	free(m->vals);
	*m = g;
	return 0;
}

void *hmap_put(struct hmap *m, uint64_t key, int *added)
{
	if (added)
		*added = 0;
	if (!m->cap && grow(m))
		return NULL;
	if (!key) {
		if (!m->has_zero) {
			memset(hmap_val_(m, m->cap), 0, m->vsize);
			m->has_zero = 1;
			if (added)
				*added = 1;
		}
		return hmap_val_(m, m->cap);
	}
	size_t i = hmap_slot_(m, key);
	if (m->keys[i])
		return hmap_val_(m, i);
	if ((m->n + 1) * 10 >= m->cap * 7) {
		if (grow(m))
			return NULL;
		i = hmap_slot_(m, key);
	}
	m->keys[i] = key;
	memset(hmap_val_(m, i), 0, m->vsize);
	m->n++;
	if (added)
		*added = 1;
	return hmap_val_(m, i);
}

int hmap_del(struct hmap *m, uint64_t key, void *out)
{
	if (!key) {
		if (!m->has_zero)
			return 0;
		if (out)
			memcpy(out, hmap_val_(m, m->cap), m->vsize);
		m->has_zero = 0;
		return 1;
	}
	if (!m->n)
		return 0;
	size_t mask = m->cap - 1, i = hmap_slot_(m, key), j = i;
	if (!m->keys[i])
		return 0;
	if (out)
		memcpy(out, hmap_val_(m, i), m->vsize);
	/* Backward shift: move later members of the cluster into the hole,
	 * each only if its home slot is not in (i, j] (cyclically): then
	 * every key stays reachable from its home without tombstones. */
	for (;;) {
		j = (j + 1) & mask;
		if (!m->keys[j])
			break;
		size_t home = (size_t)hmap_mix_(m->keys[j]) & mask;
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			m->keys[i] = m->keys[j];
			memcpy(hmap_val_(m, i), hmap_val_(m, j), m->vsize);
			i = j;
		}
	}
	m->keys[i] = 0;
	m->n--;
	return 1;
}

size_t hmap_next(const struct hmap *m, size_t pos, uint64_t *key, void **val)
{
	/* pos 0 is key 0's turn, then slot pos - 1 */
	if (pos == 0) {
		pos = 1;
		if (m->has_zero) {
			*key = 0;
			*val = hmap_val_(m, m->cap);
			return pos;
		}
	}
	for (size_t i = pos - 1; i < m->cap; i++)
		if (m->keys[i]) {
			*key = m->keys[i];
			*val = hmap_val_(m, i);
			return i + 2;
		}
	return 0;
}
