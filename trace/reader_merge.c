/*
 * reader_merge.c - every thread's events, decoded ahead and merged by time
 * (trace_next; see reader_int.h).
 *
 * Decoding (zstd, the model codec, clock conversion) is most of a reader's
 * work, and each thread's chunks decode on their own: worker threads (one
 * per core beside the caller's, at most RD_MAX_WORKERS) fill each stream's
 * batches ahead of the merge, a few thousand events at a time, the stream
 * that has the fewest ready first; the caller merges them, and decodes a
 * batch itself when the one it needs is not ready and no worker holds that
 * stream.  One stream is decoded by one thread at a time (its `busy` flag):
 * its events come out exactly as one thread would decode them, so the
 * merged order does not depend on the workers.  MFX_READER_THREADS=N sets
 * the workers (0: decode in the caller only); a small trace (under 1 MiB of
 * events decoded) gets none unless it is set.
 *
 * Memory: RD_NBATCH batches of RD_BATCH events per stream, whatever the
 * trace's length.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace/reader_int.h"
#include "common/error.h"

#define RD_MAX_WORKERS 8

/* ---- batches ------------------------------------------------------------------- */

/* Decode s's next batch; the caller holds s->busy (not t->mu) and batch
 * s->prod is free. */
static void fill_batch(const struct trace *t, struct rctx *x, struct tstream *s)
{
	struct rbatch *b = &s->b[s->prod % RD_NBATCH];
	b->n = 0;
	b->end = 0;
	/* allocated when first needed: a thread of a few events holds one */
	if (!b->ev && !(b->ev = malloc(RD_BATCH * sizeof(*b->ev)))) {
		b->end = -ENOMEM;
		return;
	}
	while (b->n < RD_BATCH) {
		int r = rd_stream_decode(t, x, s, &b->ev[b->n]);
		if (r <= 0) {
			b->end = r ? r : 1;
			return;
		}
		b->n++;
	}
}

/* With t->mu held: s's batch just filled is published. */
static void publish(struct trace *t, struct tstream *s)
{
	if (s->b[s->prod % RD_NBATCH].end)
		s->fin = 1;
	s->prod++;
	s->busy = 0;
	pthread_cond_broadcast(&t->ready);
}

/* With t->mu held: the stream a worker should fill next (fewest batches
 * ready), or NULL. */
static struct tstream *pick(struct trace *t)
{
	struct tstream *best = NULL;
	uint64_t least = RD_NBATCH;
	for (size_t i = 0; i < t->nth; i++) {
		struct tstream *s = &t->th[i];
		if (!s->busy && !s->fin && s->prod - s->cons < least) {
			best = s;
			least = s->prod - s->cons;
		}
	}
	return best;
}

struct rworker {
	struct rctx x;
	struct trace *t;
	pthread_t th;
};

static void *worker(void *arg)
{
	struct rworker *w = arg;
	struct trace *t = w->t;
	pthread_mutex_lock(&t->mu);
	while (!t->stop) {
		struct tstream *s = pick(t);
		if (!s) {
			pthread_cond_wait(&t->work, &t->mu);
			continue;
		}
		s->busy = 1;
		pthread_mutex_unlock(&t->mu);
		fill_batch(t, &w->x, s);
		pthread_mutex_lock(&t->mu);
		publish(t, s);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* The batch s->cons is ready (decoded here if no worker has it). */
static void wait_batch(struct trace *t, struct tstream *s)
{
	pthread_mutex_lock(&t->mu);
	while (s->prod == s->cons) {
		if (s->busy) {
			pthread_cond_wait(&t->ready, &t->mu);
			continue;
		}
		s->busy = 1;
		pthread_mutex_unlock(&t->mu);
		fill_batch(t, &t->mx, s);
		pthread_mutex_lock(&t->mu);
		publish(t, s);
	}
	pthread_mutex_unlock(&t->mu);
	const struct rbatch *b = &s->b[s->cons % RD_NBATCH];
	s->pos = 0;
	s->head = b->n ? &b->ev[0] : NULL;
}

/* s's next event: 1 (s->head), 0 at its end, < 0 the error after the
 * events before. */
static int advance(struct trace *t, struct tstream *s)
{
	const struct rbatch *b = &s->b[s->cons % RD_NBATCH];
	if (++s->pos < b->n) {
		/* written by another core: ask for the lines before they are read */
		__builtin_prefetch(s->head + 8);
		s->head++;
		return 1;
	}
	if (b->end)
		return b->end > 0 ? 0 : b->end;
	pthread_mutex_lock(&t->mu);
	s->cons++;
	pthread_cond_signal(&t->work);
	pthread_mutex_unlock(&t->mu);
	wait_batch(t, s);
	b = &s->b[s->cons % RD_NBATCH];
	if (b->n)
		return 1;
	return b->end > 0 ? 0 : b->end;
}

/* Below this many decoded bytes a thread costs more than it saves. */
#define RD_SMALL (1u << 20)

static int workers_wanted(const struct trace *t)
{
	const char *e = getenv("MFX_READER_THREADS");
	if (!(e && *e) && t->decoded < RD_SMALL)
		return 0;
	long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN) - 1;
	return n < 0 ? 0 : n > RD_MAX_WORKERS ? RD_MAX_WORKERS : (int)n;
}

/* Workers started (as many as wanted and could be). */
static int start_workers(struct trace *t)
{
	t->stop = 0;
	if (!t->wk) {
		int want = t->nth ? workers_wanted(t) : 0;
		if (want && !(t->wk = calloc((size_t)want, sizeof(*t->wk))))
			return -ENOMEM;
		t->nwk = want;
	}
	for (int i = 0; i < t->nwk; i++) {
		t->wk[i].t = t;
		if (pthread_create(&t->wk[i].th, NULL, worker, &t->wk[i]))
			break;	/* fewer workers: the caller decodes the rest */
		t->nworkers = i + 1;
	}
	return 0;
}

void rd_stop(struct trace *t)
{
	if (!t->nworkers)
		return;
	pthread_mutex_lock(&t->mu);
	t->stop = 1;
	pthread_cond_broadcast(&t->work);
	pthread_mutex_unlock(&t->mu);
	for (int i = 0; i < t->nworkers; i++)
		pthread_join(t->wk[i].th, NULL);
	t->nworkers = 0;
}

void rd_streams_free(struct trace *t)
{
	rd_stop(t);
	for (int i = 0; i < t->nwk; i++)
		rd_ctx_free(&t->wk[i].x);
	free(t->wk);
	t->wk = NULL;
	t->nwk = 0;
	for (size_t i = 0; i < t->nth; i++)
		for (unsigned k = 0; k < RD_NBATCH; k++)
			free(t->th[i].b[k].ev);
}

/* ---- the merge ---------------------------------------------------------------------- */

/* Heap order: earlier time first, then lower thread index (stable). */
static inline int before(const struct trace *t, uint32_t a, uint32_t b)
{
	const struct trace_event *x = t->th[a].head, *y = t->th[b].head;
	return x->ts_ns < y->ts_ns || (x->ts_ns == y->ts_ns && a < b);
}

static void sift_down(struct trace *t, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < t->nheap && before(t, t->heap[l], t->heap[m]))
			m = l;
		if (l + 1 < t->nheap && before(t, t->heap[l + 1], t->heap[m]))
			m = l + 1;
		if (m == i)
			return;
		uint32_t tmp = t->heap[i];
		t->heap[i] = t->heap[m];
		t->heap[m] = tmp;
		i = m;
	}
}

static void sift_up(struct trace *t, size_t i)
{
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!before(t, t->heap[i], t->heap[up]))
			return;
		uint32_t tmp = t->heap[i];
		t->heap[i] = t->heap[up];
		t->heap[up] = tmp;
		i = up;
	}
}

/* The block an event gives back (free, realloc's old pointer), or 0. */
static inline uint64_t gives_back(const struct trace_event *e)
{
	if (e->kind == MFX_K_FREE)
		return e->ptr;
	if (e->kind == MFX_K_REALLOC || e->kind == MFX_K_REALLOCARRAY)
		return e->old_ptr;
	return 0;
}

/* Whether stream s allocates block p before `until`: at its head, or
 * behind events of its own in that quantum (as far as its batch holds). */
static int allocates_soon(const struct tstream *s, uint64_t p, uint64_t until)
{
	const struct rbatch *b = &s->b[s->cons % RD_NBATCH];
	const struct trace_event *e = s->head, *end = b->ev + b->n;
	for (int k = 0; k < 16 && e < end && e->ts_ns < until; k++, e++) {
		if (e->kind != MFX_K_FREE && !e->failed && e->ptr == p)
			return 1;
		if (gives_back(e) == p)
			return 0;	/* it frees p itself first */
	}
	return 0;
}

/*
 * Which head to take next: the earliest (heap[0]), unless it gives back a
 * block that another thread's head, within one quantum of it, allocates.
 * Times are floored to the trace's quantum (0.1 us), and each chunk converts
 * TSC to ns from its own clock pair (a few ns apart from another chunk's),
 * so a block handed from one thread to another within one quantum would
 * otherwise read as freed before it was allocated about half the time.
 * (The opposite order within 0.1 us, a block freed by one thread and at
 * once reused by another, does not happen with per-thread caches: glibc's
 * tcache, jemalloc's and tcmalloc's thread caches.)  The heads within a
 * quantum of heap[0] are the top of the heap: a bounded walk finds them.
 * The allocation may also come behind other events of its thread in that
 * quantum (free(x), then malloc() -> p, within 0.1 us): then that thread's
 * head is taken first, and its next, until the allocation is.  Every
 * event so taken is in the same quantum: the order within a quantum is
 * the only thing changed.
 */
static size_t tie_pick(const struct trace *t)
{
	const struct trace_event *top = t->th[t->heap[0]].head;
	uint64_t p = gives_back(top), until = top->ts_ns + t->quantum_ns;
	size_t todo[64], n = 0;
	if (!p || t->nheap < 2)
		return 0;
	todo[n++] = 1;
	todo[n++] = 2;
	while (n) {
		size_t i = todo[--n];
		if (i >= t->nheap)
			continue;
		const struct trace_event *e = t->th[t->heap[i]].head;
		if (e->ts_ns >= until)
			continue;
		if (allocates_soon(&t->th[t->heap[i]], p, until))
			return i;
		if (n + 2 <= sizeof(todo) / sizeof(todo[0])) {
			todo[n++] = 2 * i + 1;
			todo[n++] = 2 * i + 2;
		}
	}
	return 0;
}

static int start_streams(struct trace *t)
{
	rd_stop(t);
	t->nheap = 0;
	for (size_t i = 0; i < t->nth; i++) {
		struct tstream *s = &t->th[i];
		s->next = 0;
		s->p = s->end = NULL;
		s->model = 0;
		s->last_ns = 0;
		s->index = (uint32_t)i;
		s->prod = s->cons = 0;
		s->busy = s->fin = 0;
	}
	int err = start_workers(t);
	if (err)
		return err;
	for (size_t i = 0; i < t->nth; i++) {
		struct tstream *s = &t->th[i];
		wait_batch(t, s);
		const struct rbatch *b = &s->b[0];
		if (!b->n && b->end < 0)
			return b->end;
		if (b->n)
			t->heap[t->nheap++] = (uint32_t)i;
	}
	for (size_t i = t->nheap / 2; i-- > 0;)
		sift_down(t, i);
	t->started = 1;
	return 0;
}

int trace_next(struct trace *t, struct trace_event *ev)
{
	if (!t->started) {
		int err = start_streams(t);
		if (err)
			return err;
	}
	if (!t->nheap)
		return 0;
	size_t h = tie_pick(t);
	uint32_t i = t->heap[h];
	struct tstream *s = &t->th[i];
	*ev = *s->head;
	if (h)	/* taken before an earlier one: at its time (the same quantum) */
		ev->ts_ns = t->th[t->heap[0]].head->ts_ns;
	int r = advance(t, s);
	if (r < 0)
		return r;
	if (r == 0)
		t->heap[h] = t->heap[--t->nheap];
	if (h < t->nheap) {
		sift_down(t, h);
		sift_up(t, h);
	}
	if (!t->nheap)
		rd_stop(t);	/* every stream read: no workers idle until close */
	return 1;
}

int trace_rewind(struct trace *t)
{
	rd_stop(t);
	t->started = 0;
	return 0;
}
