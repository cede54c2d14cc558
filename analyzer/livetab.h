/*
 * livetab.h - the analyzer's live blocks: one compact open-addressing table
 * keyed by pointer, the key inside its 32-byte entry (a probe touches one
 * cache line, where common/hmap.h's separate key and value arrays touch
 * two).  Linear probing on a power-of-two table, Fibonacci hashing of the
 * pointer (its low bits are zero: malloc aligns to 16), deletion by backward
 * shift (no tombstones: heavy churn does not degrade it), grown to twice the
 * size at 3/4 load.  Pointer 0 is never stored.  Memory: 32 bytes per slot,
 * 43-85 bytes per live block.
 */
#ifndef MFX_ANALYZER_LIVETAB_H
#define MFX_ANALYZER_LIVETAB_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct lent {
	uint64_t ptr;		/* 0 = empty slot */
	uint64_t size;
	uint64_t ts;
	uint32_t stack;
	uint32_t thread;
};

struct ltab {
	struct lent *v;
	size_t cap, n;		/* cap: a power of two */
	unsigned bits;		/* cap = 1 << bits */
};

static inline size_t lt_home(const struct ltab *t, uint64_t ptr)
{
	return (size_t)((ptr * 0x9e3779b97f4a7c15ull) >> (64 - t->bits));
}

/* The slot holding ptr, or the empty one where it would go. */
static inline size_t lt_slot(const struct ltab *t, uint64_t ptr)
{
	size_t mask = t->cap - 1, i = lt_home(t, ptr);
	while (t->v[i].ptr && t->v[i].ptr != ptr)
		i = (i + 1) & mask;
	return i;
}

static inline int lt_init(struct ltab *t, unsigned bits)
{
	t->bits = bits;
	t->cap = (size_t)1 << bits;
	t->n = 0;
	t->v = calloc(t->cap, sizeof(*t->v));
	return t->v ? 0 : -1;
}

static inline void lt_free(struct ltab *t)
{
	free(t->v);
	memset(t, 0, sizeof(*t));
}

static inline int lt_grow(struct ltab *t)
{
	struct ltab nt;
	if (lt_init(&nt, t->bits + 1))
		return -1;
	for (size_t i = 0; i < t->cap; i++)
		if (t->v[i].ptr)
			nt.v[lt_slot(&nt, t->v[i].ptr)] = t->v[i];
	nt.n = t->n;
	free(t->v);
	*t = nt;
	return 0;
}

/* ptr's entry (ptr != 0), added (ptr set, the rest zero; *added = 1) when
 * absent; NULL when out of memory. */
static inline struct lent *lt_put(struct ltab *t, uint64_t ptr, int *added)
{
	if ((t->n + 1) * 4 > t->cap * 3 && lt_grow(t))
		return NULL;
	size_t i = lt_slot(t, ptr);
	*added = !t->v[i].ptr;
	if (*added) {
		t->v[i] = (struct lent){ .ptr = ptr };
		t->n++;
	}
	return &t->v[i];
}

/* Remove ptr, its entry copied to *out: 1, or 0 when absent. */
static inline int lt_del(struct ltab *t, uint64_t ptr, struct lent *out)
{
	size_t mask = t->cap - 1, i = lt_slot(t, ptr), j = i;
	if (!t->v[i].ptr)
		return 0;
	*out = t->v[i];
	/* backward shift: a later member of the cluster moves into the hole
	 * unless its home lies cyclically in (i, j] */
	for (;;) {
		j = (j + 1) & mask;
		if (!t->v[j].ptr)
			break;
		size_t home = lt_home(t, t->v[j].ptr);
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			t->v[i] = t->v[j];
			i = j;
		}
	}
	t->v[i].ptr = 0;
	t->n--;
	return 1;
}

/*
 * Debts: a give-back that comes after its address was allocated again.  A
 * call is one event, timed when it returns: a realloc that moves a block
 * (or a free) gives the old block back inside the call, and another thread
 * may get that address from the allocator before the call returns -- the
 * program's own clock shows the two calls overlapping (t105, realloc of a
 * large block preempted for a millisecond).  In the merged order the
 * allocation comes first and finds the address live: the analyzer ends the
 * old block there and owes it one give-back (lt_owe, in a second table:
 * size = give-backs owed, ts = when).  The give-back that then comes from a
 * thread other than the one holding the new block is that one, not the new
 * block's free (a thread has one call in flight, so the late call is never
 * the new block's owner's): lt_pay.  A debt not claimed within LT_LATE_NS
 * of trace time (a free lost with dropped events) lapses.
 */
#define LT_LATE_NS 1000000000ull

/* One more give-back owed at ptr: 0, or -1 out of memory. */
static inline int lt_owe(struct ltab *late, uint64_t ptr, uint64_t ts)
{
	int added;
	struct lent *l = lt_put(late, ptr, &added);
	if (!l)
		return -1;
	l->size++;
	l->ts = ts;
	return 0;
}

/* 1: a give-back of ptr by `thread` at ts pays a debt (it ends no block). */
static inline int lt_pay(struct ltab *late, const struct ltab *live, uint64_t ptr,
			 uint32_t thread, uint64_t ts)
{
	struct lent *l = &late->v[lt_slot(late, ptr)], gone;
	if (!l->ptr)
		return 0;
	if (ts > l->ts + LT_LATE_NS) {
		lt_del(late, ptr, &gone);
		return 0;
	}
	const struct lent *cur = &live->v[lt_slot(live, ptr)];
	if (cur->ptr && cur->thread == thread)
		return 0;	/* the new block's owner frees it */
	if (!--l->size)
		lt_del(late, ptr, &gone);
	return 1;
}

#endif /* MFX_ANALYZER_LIVETAB_H */
