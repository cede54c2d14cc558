/*
 * replay_ops_fuzz.c - libFuzzer target for the replay ops reader
 * (analyzer/replay/opsread.h, what mfx-replay checks before it replays):
 * any bytes either are refused with a reason, or every op the replayer
 * would touch is inside the file and every block id inside the block table,
 * and two dry runs pass:
 *  - in recorded order (seq, a merge of the threads' streams): the seqs are
 *    0 .. nops-1, each block is made before it is used, never ended twice,
 *    and a wait is only ever for a published block;
 *  - the replayer's own schedule (replayer.c), single-threaded: threads
 *    started in order of first call, once that call's epoch is due and
 *    every started thread whose last call came before has ended; the main
 *    thread's stream (tid == pid) running from the start; each thread
 *    handing in its calls at every epoch change and waiting for the epochs
 *    before (OPS_EPOCH), and for a published block before it uses another
 *    thread's block.  Every thread must finish: a file the check accepts
 *    must never make the replayer wait forever.
 * Never a crash, hang or leak.
 * Built and run by scripts/fuzz.sh (`make fuzz`, and briefly `make check`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/replay/opsread.h"

static void die(const char *what)
{
	fprintf(stderr, "replay_ops_fuzz: %s\n", what);
	abort();
}

static void *zalloc(size_t n, size_t size)
{
	void *p = calloc(n + 1, size);
	if (!p)
		die("out of memory");
	return p;
}

/* One call on block states (1 made, 2 ended) and published flags: the
 * replay's rules whatever the order the calls come in. */
static void apply(const struct op *o, uint8_t *state, const uint8_t *pub_now, uint8_t *pub)
{
	uint32_t b = o->kind == OP_FREE ? o->id : o->kind == OP_REALLOC ? o->old : 0;
	if (b) {
		if (state[b] != 1)
			die("a block used before it was made or after it ended");
		if ((o->flags & OPF_WAIT) && !pub_now[b])
			die("a wait for a block not published (yet)");
		if (o->kind == OP_FREE || o->id || !o->size)	/* realloc(p, 0) freed */
			state[b] = 2;
	}
	if (o->kind != OP_FREE && o->id) {
		if (state[o->id])
			die("a block made twice");
		state[o->id] = 1;
		pub[o->id] = !!(o->flags & OPF_PUBLISH);
	}
}

/* The replay, dry, in seq order: a merge of the threads' streams. */
static void dry_run_seq(const struct ops_file *of, const uint64_t *start)
{
	uint32_t nt = of->h->nthreads;
	uint64_t *pos = zalloc(nt, sizeof(*pos));
	uint8_t *state = zalloc(of->h->nblocks, 1), *pub = zalloc(of->h->nblocks, 1);
	for (uint64_t done = 0; done < of->h->nops; done++) {
		uint32_t best = UINT32_MAX;
		for (uint32_t t = 0; t < nt; t++)
			if (pos[t] < of->th[t].nops &&
			    (best == UINT32_MAX ||
			     of->ops[start[t] + pos[t]].seq < of->ops[start[best] + pos[best]].seq))
				best = t;
		const struct op *o = &of->ops[start[best] + pos[best]++];
		if (o->seq != done)
			die("the seqs are not 0 .. nops-1");
		apply(o, state, pub, pub);
	}
	free(pos);
	free(state);
	free(pub);
}

/* ---- the replayer's schedule, simulated ----------------------------------------- */

struct sim_thread {
	uint64_t start, n, pos, unflushed, epoch;
	uint32_t first, last;
	int is_main, started, finished, in_heap;
};

struct sim {
	const struct ops_file *of;
	struct sim_thread *t;
	uint32_t *order, norder, next;
	uint64_t progress;
	uint8_t *state, *pub, *ready;
};

static const struct op *sim_op(const struct sim *s, const struct sim_thread *w)
{
	return &s->of->ops[w->start + w->pos];
}

/* replayer_run.c's pump(): start what is due and allowed. */
static int sim_pump(struct sim *s)
{
	int did = 0;
	while (s->next < s->norder) {
		struct sim_thread *j = &s->t[s->order[s->next]], *k;
		for (;;) {	/* the started thread with the smallest last call */
			k = NULL;
			for (uint32_t i = 0; i < s->next; i++) {
				struct sim_thread *c = &s->t[s->order[i]];
				if (c->in_heap && (!k || c->last < k->last))
					k = c;
			}
			if (!k || k->last >= j->first)
				break;
			if (!k->finished)
				return did;
			k->in_heap = 0;
			did = 1;
		}
		if (s->progress < (uint64_t)(j->first / OPS_EPOCH) * OPS_EPOCH)
			return did;
		if (!j->is_main)	/* ours runs on main from the start: nothing to start */
			j->started = 1;
		j->in_heap = 1;
		s->next++;
		did = 1;
	}
	return did;
}

/* replayer_run.c's run_thread(), one call at a time: 1 if it did something. */
static int sim_step(struct sim *s, struct sim_thread *w)
{
	if (!w->started || w->finished)
		return 0;
	const struct op *o = sim_op(s, w);
	uint64_t e = o->seq / OPS_EPOCH;
	int did = 0;
	if (e != w->epoch) {	/* gate(): hand in, then wait for the epochs before */
		s->progress += w->unflushed;
		w->unflushed = 0;
		w->epoch = e;
		did = 1;
	}
	if (s->progress < e * OPS_EPOCH)
		return did;
	uint32_t b = o->kind == OP_FREE ? o->id : o->kind == OP_REALLOC ? o->old : 0;
	if ((o->flags & OPF_WAIT) && b && !s->ready[b])
		return did;	/* wait_ready() */
	apply(o, s->state, s->ready, s->pub);
	if (o->kind != OP_FREE && o->id && (o->flags & OPF_PUBLISH))
		s->ready[o->id] = 1;
	w->unflushed++;
	if (++w->pos == w->n) {
		s->progress += w->unflushed;
		w->finished = 1;
	}
	return 1;
}

static void dry_run_schedule(const struct ops_file *of, const uint64_t *start)
{
	uint32_t nt = of->h->nthreads;
	struct sim s = { .of = of, .t = zalloc(nt, sizeof(*s.t)), .order = zalloc(nt, sizeof(uint32_t)),
			 .state = zalloc(of->h->nblocks, 1), .pub = zalloc(of->h->nblocks, 1),
			 .ready = zalloc(of->h->nblocks, 1) };
	for (uint32_t i = 0; i < nt; i++) {
		struct sim_thread *w = &s.t[i];
		*w = (struct sim_thread){ .start = start[i], .n = of->th[i].nops, .epoch = UINT64_MAX };
		if (!w->n)
			continue;
		w->first = of->ops[w->start].seq;
		w->last = of->ops[w->start + w->n - 1].seq;
		w->is_main = of->h->pid && of->th[i].tid == of->h->pid;
		uint32_t k = s.norder++;	/* insertion by first call */
		for (; k && s.t[s.order[k - 1]].first > w->first; k--)
			s.order[k] = s.order[k - 1];
		s.order[k] = i;
	}
	struct sim_thread *mine = NULL;	/* run_all(): ours runs first, on main */
	for (uint32_t i = 0; i < s.norder; i++)
		if (s.t[s.order[i]].is_main)
			mine = &s.t[s.order[i]];
	if (mine)
		mine->started = 1;
	for (int did = 1; did;) {
		did = sim_pump(&s);
		for (uint32_t i = 0; i < s.norder; i++)
			while (sim_step(&s, &s.t[s.order[i]]))
				did = 1;
	}
	for (uint32_t i = 0; i < s.norder; i++)
		if (!s.t[s.order[i]].finished)
			die("the replay would wait forever");
	free(s.t);
	free(s.order);
	free(s.state);
	free(s.pub);
	free(s.ready);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the replayer maps the file: page-aligned, so aligned structs */
	void *m = aligned_alloc(64, (size + 64) & ~(size_t)63);
	if (!m)
		return 0;
	memcpy(m, data, size);
	struct ops_file of;
	const char *why = ops_read(m, size, &of);
	if (!why && of.h->nblocks > (1u << 24))	/* keep libFuzzer's inputs cheap */
		why = "too big to fuzz";
	if (!why) {
		uint64_t *scratch = zalloc(ops_check_words(of.h), sizeof(uint64_t));
		why = ops_check(&of, scratch);
		free(scratch);
	}
	if (!why) {
		uint64_t *start = zalloc(of.h->nthreads, sizeof(*start));
		for (uint32_t t = 1; t <= of.h->nthreads; t++)
			start[t] = start[t - 1] + of.th[t - 1].nops;
		dry_run_seq(&of, start);
		dry_run_schedule(&of, start);
		free(start);
	}
	free(m);
	return 0;
}
