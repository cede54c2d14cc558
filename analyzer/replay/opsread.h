/*
 * opsread.h - reading replay.ops (ops.h) before a replay trusts it: every
 * bound the native replayer (replayer.c) relies on, checked once.  Header
 * only and on ops.h alone, so that the replayer still builds by itself;
 * tests/fuzz/replay_ops_fuzz.c fuzzes it against a dry run of the replay.
 *
 *	struct ops_file of;
 *	const char *why = ops_read(map, len, &of);	// the layout
 *	... scratch = ops_check_words(of.h) zeroed uint64_t ...
 *	if (!why) why = ops_check(&of, scratch);	// the calls and blocks
 *
 * Layout: the header, nthreads thread records and exactly the ops they
 * count, in a file of len bytes; at most one thread with calls is the
 * traced process's main thread (tid == pid: it runs on the replayer's main
 * thread, a second one would never run).  Calls: each of a known kind with
 * known flags (OPF_IMPLIED on frees only), its block ids within nblocks, a
 * free naming a block, its alignment a shift below 64; seq rising within
 * its thread and, over all threads, each of 0 .. nops-1 exactly once (the
 * replay's epochs wait for every call of the epochs before: a missing seq
 * would be waited for forever).  Blocks: made once, freed or reallocated
 * (ended) at most once, after they were made (by seq), not used after they
 * ended (a failed realloc uses without ending, but for one to 0 bytes,
 * which freed; an implied free ends like a free); an op that uses a block
 * another thread made waits for it (OPF_WAIT) and that block is published
 * (OPF_PUBLISH), else the thread would wait forever; an op that does not
 * wait uses a block of its own thread.  A file that passes replays without
 * reading outside the file or the block table, without a double free and
 * without a wait that never ends: the lowest seq not yet replayed can
 * always run.
 */
#ifndef MFX_REPLAY_OPSREAD_H
#define MFX_REPLAY_OPSREAD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ops.h"

struct ops_file {
	const struct ops_header *h;
	const struct ops_thread *th;	/* [h->nthreads] */
	const struct op *ops;		/* [h->nops]: each thread's, thread after thread */
};

/* Threads with calls whose tid is the traced process's (pid 0: none). */
static inline uint32_t ops_mains(const struct ops_header *h, const struct ops_thread *th)
{
	uint32_t n = 0;
	for (uint32_t i = 0; h->pid && i < h->nthreads; i++)
		n += th[i].tid == h->pid && th[i].nops;
	return n;
}

/* NULL when m[0..len) is laid out as a replay.ops file, else why not. */
static inline const char *ops_read(const void *m, size_t len, struct ops_file *of)
{
	const struct ops_header *h = m;
	memset(of, 0, sizeof(*of));
	if (len < sizeof(*h) || memcmp(h->magic, OPS_MAGIC, sizeof(h->magic)))
		return "not a replay ops file of this version";
	size_t rest = len - sizeof(*h);
	if (h->nthreads > rest / sizeof(struct ops_thread))
		return "truncated (thread table)";
	if (h->nthreads >= 1u << 30)
		return "too many threads";
	rest -= h->nthreads * sizeof(struct ops_thread);
	const struct ops_thread *th = (const void *)(h + 1);
	uint64_t total = 0;
	for (uint32_t i = 0; i < h->nthreads; i++) {
		if (th[i].nops > rest / sizeof(struct op) - total)
			return "truncated (ops)";
		total += th[i].nops;
	}
	if (total != h->nops || total * sizeof(struct op) != rest)
		return "the thread records do not add up to the ops in the file";
	if (h->nops > UINT32_MAX || h->nblocks > h->nops + 1)
		return "more blocks or calls than ids";
	if (ops_mains(h, th) > 1)
		return "two threads are the traced process's main thread";
	of->h = h;
	of->th = th;
	of->ops = (const void *)(th + h->nthreads);
	return NULL;
}

/* The scratch ops_check() needs, in zeroed 64-bit words: two per block
 * (below) and one bit per call (its seq seen). */
static inline size_t ops_check_words(const struct ops_header *h)
{
	return 2 * ((size_t)h->nblocks + 1) + ((size_t)h->nops + 63) / 64;
}

/* One op's own fields (the rules above); prev: the thread's last seq + 1,
 * seen: a bit per seq. */
static inline const char *ops_check_op(const struct ops_file *of, const struct op *o,
				       uint64_t prev, uint64_t *seen)
{
	if (o->kind < OP_MALLOC || o->kind > OP_MEMALIGN)
		return "an op of unknown kind";
	if (o->flags & ~(OPF_WAIT | OPF_PUBLISH | OPF_IMPLIED) ||
	    ((o->flags & OPF_IMPLIED) && o->kind != OP_FREE))
		return "an op with unknown flags";
	if (o->id > of->h->nblocks || o->old > of->h->nblocks ||
	    (o->kind == OP_FREE && !o->id) || (o->old && o->kind != OP_REALLOC))
		return "a block id beyond the block count, or where none belongs";
	if (o->align_log2 >= 64)
		return "an alignment beyond 2^63";
	if (o->seq >= of->h->nops || o->seq < prev)
		return "calls out of order (seq)";
	if (seen[o->seq / 64] & 1ull << (o->seq % 64))
		return "two calls at one place in the recorded order (seq)";
	seen[o->seq / 64] |= 1ull << (o->seq % 64);
	return NULL;
}

/* Per block two words in tab: [2 id] the seq + 1 of the op that made it
 * (0: not made), whether it is published and the maker's thread; [2 id + 1]
 * the seq + 1 of the op that ended it (0: none). */
#define OPSB_SEQ(v)	((v) & 0xffffffffu)
#define OPSB_PUB	(1ull << 32)
#define OPSB_TH(v)	((v) >> 33)

/* The block op o uses (frees or reallocates), 0 if none; *ends: o ends it
 * (a realloc that failed, id 0, leaves the block as it was, but for one to
 * 0 bytes: realloc(p, 0) gave NULL because it freed p). */
static inline uint32_t ops_used(const struct op *o, int *ends)
{
	uint32_t b = o->kind == OP_FREE ? o->id : o->kind == OP_REALLOC ? o->old : 0;
	*ends = b && (o->kind == OP_FREE || o->id || !o->size);
	return b;
}

static inline const char *ops_use(const uint64_t *tab, const struct op *o, uint32_t t)
{
	int ends;
	uint32_t b = ops_used(o, &ends);
	if (!b)
		return NULL;
	uint64_t made = tab[2 * b], end = tab[2 * b + 1], seq = (uint64_t)o->seq + 1;
	if (!OPSB_SEQ(made) || OPSB_SEQ(made) >= seq)
		return "a block used before it was made";
	if (!ends && end && end < seq)
		return "a block used after it was freed";
	if ((o->flags & OPF_WAIT) ? !(made & OPSB_PUB) : OPSB_TH(made) != t)
		return "a block of another thread used without waiting for it";
	return NULL;
}

/* The makers: every op's own fields, then who made each block. */
static inline const char *ops_check_makers(const struct ops_file *of, uint64_t *tab,
					   uint64_t *seen)
{
	const char *why;
	const struct op *o = of->ops;
	for (uint32_t t = 0; t < of->h->nthreads; t++)
		for (uint64_t i = 0, prev = 0; i < of->th[t].nops; i++, o++) {
			if ((why = ops_check_op(of, o, prev, seen)))
				return why;
			prev = (uint64_t)o->seq + 1;
			if (o->kind == OP_FREE || !o->id)
				continue;
			if (tab[2 * o->id])
				return "a block made twice";
			tab[2 * o->id] = ((uint64_t)o->seq + 1) | (uint64_t)t << 33 |
					 (o->flags & OPF_PUBLISH ? OPSB_PUB : 0);
		}
	return NULL;
}

/* NULL when every call and block life is sound (see the top), else why
 * not.  scratch: ops_check_words() zeroed words, left written.  Three
 * passes: the makers, the ends, then every use against both (a thread's
 * use may come before the maker's thread in the file, not in seq). */
static inline const char *ops_check(const struct ops_file *of, uint64_t *scratch)
{
	uint64_t *tab = scratch, *seen = scratch + 2 * ((size_t)of->h->nblocks + 1);
	const char *why = ops_check_makers(of, tab, seen);
	if (why)
		return why;
	int ends;
	for (uint64_t i = 0; i < of->h->nops; i++) {
		uint32_t b = ops_used(&of->ops[i], &ends);
		if (!ends)
			continue;
		if (tab[2 * b + 1])
			return "a block freed twice";
		tab[2 * b + 1] = (uint64_t)of->ops[i].seq + 1;
	}
	const struct op *o = of->ops;
	for (uint32_t t = 0; t < of->h->nthreads; t++)
		for (uint64_t i = 0; i < of->th[t].nops; i++, o++)
			if ((why = ops_use(tab, o, t)))
				return why;
	return NULL;
}

#endif /* MFX_REPLAY_OPSREAD_H */
