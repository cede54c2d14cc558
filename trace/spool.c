/*
 * spool.c - creating and draining the shared-memory spool (see spool.h and
 * trace/spool_format.h for the slot protocol).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "trace/spool_int.h"
#include "common/util.h"
#include "trace/pack.h"
#include "trace/spool_format.h"
#include "trace/tracefile.h"

int spool_create(struct spool **out)
{
	struct spool *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return -ENOMEM;
	sp->fd = memfd_create("mfx-spool", MFD_CLOEXEC);
	if (sp->fd < 0 || ftruncate(sp->fd, (off_t)MFX_SPOOL_BYTES)) {
		int e = -errno;
		if (sp->fd >= 0)
			close(sp->fd);
		free(sp);
		return e;
	}
	void *m = mmap(NULL, MFX_SPOOL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, sp->fd, 0);
	if (m == MAP_FAILED) {
		int e = -errno;
		close(sp->fd);
		free(sp);
		return e;
	}
	sp->h = m;
	sp->h->nslots = MFX_SPOOL_SLOTS;
	sp->h->slot_size = MFX_SPOOL_SLOT;
	__atomic_store_n(&sp->h->magic, MFX_SPOOL_MAGIC, __ATOMIC_RELEASE);
	*out = sp;
	return 0;
}

int spool_fd(const struct spool *sp)
{
	return sp->fd;
}

/* FULL (or a dead owner's OWNED) -> DRAINING: ours to write.  The agent
 * claims slots the same way once mfx is gone (preload/drain.c), and takes
 * over DRAINING ones a killed mfx left: no slot is written by both. */
static int claim(struct spool *sp, uint32_t i, uint32_t from)
{
	return __atomic_compare_exchange_n(&sp->h->slot[i].state, &from, MFX_SLOT_DRAINING, 0,
					   __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static void slot_free(struct spool *sp, uint32_t i)
{
	mfx_spool_chunk(sp->h, i)->magic = 0;
	sp->h->slot[i].off = 0;
	__atomic_store_n(&sp->h->slot[i].state, MFX_SLOT_FREE, __ATOMIC_RELEASE);
}

/*
 * Write group g's slots into trace file d: one MODEL chunk, or each chunk on
 * its own when the model refuses them.  With `lock` (the final drain, on
 * several threads) the appends and counters are taken under it.
 */
static void group_write(struct spool *sp, struct packer *pk, const struct group *g,
			struct dest *d, uint64_t q, pthread_mutex_t *lock)
{
	const struct mfx_chunk_header *c[HOLD_SLOTS];
	for (uint32_t i = 0; i < g->n; i++)
		c[i] = mfx_spool_chunk(sp->h, g->slot[i]);
	const uint8_t *out;
	size_t span = d && pk ? pack_events(pk, c, g->n, d->stacks, q, &out) : 0;
	if (lock)
		pthread_mutex_lock(lock);
	if (!d) {
		sp->st.orphans += g->n;
	} else if (span) {
		int err = spool_dest_append(d, out, span);
		if (!err)
			sp->st.chunks += g->n;
		else
			spool_write_failed(sp, d, err, g->n);
	} else {	/* each as it is, compressed if we can */
		for (uint32_t i = 0; i < g->n; i++) {
			if (lock)
				pthread_mutex_unlock(lock);
			span = pk ? pack_plain(pk, c[i], &out) : 0;
			if (!span) {
				out = (const uint8_t *)c[i];
				span = MFX_CHUNK_SIZE;
			}
			if (lock)
				pthread_mutex_lock(lock);
			int err = spool_dest_append(d, out, span);
			if (!err)
				sp->st.chunks++;
			else
				spool_write_failed(sp, d, err, 1);
		}
	}
	if (lock)
		pthread_mutex_unlock(lock);
}

/* The slots of a written group go back to the agents (or stay with a live
 * owner at the end). */
static void group_release(struct spool *sp, const struct group *g)
{
	for (uint32_t i = 0; i < g->n; i++) {
		sp->held[g->slot[i]] = 0;
		if (g->dead[i])
			slot_free(sp, g->slot[i]);
	}
}

/* Write group g and let its slots go (the last group moves into its place). */
static void group_flush(struct spool *sp, struct group *g)
{
	struct dest *d = spool_dest_for(sp, g->uid);
	group_write(sp, sp->pk, g, d, d ? spool_dest_quantum(sp, d) : 0, NULL);
	group_release(sp, g);
	sp->nheld -= (int)g->n;
	*g = sp->grp[--sp->ngrp];
}

/* Write group k and let it go (the last group moves into its place). */
static void group_flush_at(struct spool *sp, int k)
{
	group_flush(sp, &sp->grp[k]);
}

/* Hold slot i back with its thread's earlier ones (flushing them first
 * when i does not follow them), HOLD_TOTAL slots at most in all. */
static void hold(struct spool *sp, uint32_t i, int free_it)
{
	struct mfx_spool_slot *s = &sp->h->slot[i];
	struct mfx_chunk_header *c = mfx_spool_chunk(sp->h, i);
	if (c->magic != MFX_CHUNK_MAGIC || !c->used || c->type != MFX_CT_EVENTS) {
		if (free_it)
			slot_free(sp, i);
		return;
	}
	int k = sp->ngrp;
	while (k-- > 0 && !(sp->grp[k].uid == s->trace_uid && sp->grp[k].tid == c->tid))
		;
	if (k >= 0 && sp->grp[k].next_seq != c->seq) {
		group_flush_at(sp, k);
		k = -1;
	}
	while (sp->nheld >= (int)HOLD_TOTAL || (k < 0 && sp->ngrp >= (int)HOLD_TOTAL)) {
		int v = k >= 0 ? k : 0;	/* this thread's own group first */
		group_flush_at(sp, v);
		if (v == k)
			k = -1;
		else if (k == sp->ngrp)	/* it was the last: moved into v */
			k = v;
	}
	if (k < 0) {
		k = sp->ngrp++;
		sp->grp[k] = (struct group){ .uid = s->trace_uid, .tid = c->tid, .since = now_ns() };
	}
	struct group *g = &sp->grp[k];
	g->slot[g->n] = i;
	g->dead[g->n++] = (uint8_t)free_it;
	g->next_seq = c->seq + 1;
	sp->held[i] = 1;
	sp->nheld++;
	if (g->n == HOLD_SLOTS)
		group_flush_at(sp, k);
}

/*
 * The drain is behind (fewer than SPILL_FREE slots free): slot i goes into
 * its trace as it is -- its raw records, one write, no encoding -- and the
 * finaliser encodes it on every core once the program has ended.  Encoding
 * costs ~50 ns an event on one core; a program allocating on every core
 * makes events faster than that, and a full spool makes the agent drop
 * events (chunk_open_locked in preload/record.c).  Spilling keeps every
 * event; SPILL_MAX bounds the pass it adds after the window (~1 s of
 * encoding on two cores), beyond which the drain encodes as before.  The
 * chunk's span is cut to its records (8-aligned, as readers expect).
 */
static void spill(struct spool *sp, uint32_t i, int free_it)
{
	struct mfx_spool_slot *s = &sp->h->slot[i];
	struct mfx_chunk_header *c = mfx_spool_chunk(sp->h, i);
	uint32_t used = c->used;
	struct dest *d;
	if (c->magic == MFX_CHUNK_MAGIC && used && used <= MFX_SPOOL_SLOT - sizeof(*c) &&
	    c->type == MFX_CT_EVENTS && c->codec == MFX_CODEC_RAW) {
		if (!(d = spool_dest_for(sp, s->trace_uid))) {
			sp->st.orphans++;
		} else {
			c->span = (uint32_t)((sizeof(*c) + used + 7) & ~(size_t)7);
			int err = spool_dest_append(d, (const uint8_t *)c, c->span);
			if (!err) {
				sp->st.chunks++;
				sp->st.spilled++;
				sp->spilled_bytes += c->span;
			} else {
				spool_write_failed(sp, d, err, 1);
			}
		}
	}
	if (free_it)
		slot_free(sp, i);
}

static uint32_t free_slots(const struct spool *sp)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < MFX_SPOOL_SLOTS; i++)
		n += __atomic_load_n(&sp->h->slot[i].state, __ATOMIC_RELAXED) == MFX_SLOT_FREE;
	return n;
}

/* Flush the groups held too long. */
static void flush_old(struct spool *sp)
{
	uint64_t now = now_ns();
	for (int k = sp->ngrp; k-- > 0;)
		if (now - sp->grp[k].since >= HOLD_NS)
			group_flush(sp, &sp->grp[k]);
}

static int owner_dead(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static int cmp_take(const void *a, const void *b)
{
	const struct take *x = a, *y = b;
	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	if (x->tid != y->tid)
		return x->tid < y->tid ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One pass of the drain thread; `orphans`: also the slots of dead owners.
 * Slots are taken in each thread's order (the agent fills them in any slot
 * order), so a thread's consecutive chunks are encoded together.  Returns
 * how many slots were taken. */
static int drain_pass(struct spool *sp, int orphans)
{
	struct take *tk = sp->tk;
	int n = 0;
	uint32_t nfree = 0;
	for (uint32_t i = 0; i < MFX_SPOOL_SLOTS; i++) {
		struct mfx_spool_slot *s = &sp->h->slot[i];
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		const struct mfx_chunk_header *c = mfx_spool_chunk(sp->h, i);
		int take = 0, free_it = 1;
		nfree += st == MFX_SLOT_FREE;
		if (sp->held[i])
			continue;
		if (st == MFX_SLOT_FULL) {
			take = claim(sp, i, st);
		} else if (st == MFX_SLOT_OWNED && orphans && owner_dead((pid_t)s->pid)) {
			take = claim(sp, i, st);	/* its process died holding it */
		}
		if (take)
			tk[n++] = (struct take){ s->trace_uid, c->tid, c->seq, i, (uint32_t)free_it };
	}
	qsort(tk, (size_t)n, sizeof(tk[0]), cmp_take);
	/* Asked to stop: the rest goes to the final drain, on every core; it
	 * takes FULL slots only, so the ones claimed here go back to FULL. */
	int k = 0, behind = nfree < SPILL_FREE || sp->spill_all;
	for (; k < n && !sp->stop; k++) {
		if (k && !(k & 3))	/* encoding a slot takes ~1 ms: look again */
			behind = free_slots(sp) < SPILL_FREE || sp->spill_all;
		if (behind && sp->spilled_bytes < SPILL_MAX)
			spill(sp, tk[k].slot, (int)tk[k].free_it);
		else
			hold(sp, tk[k].slot, (int)tk[k].free_it);
	}
	for (; k < n; k++)
		__atomic_store_n(&sp->h->slot[tk[k].slot].state, MFX_SLOT_FULL, __ATOMIC_RELEASE);
	if (!sp->stop)
		flush_old(sp);
	return n;
}

static void *drain_thread(void *arg)
{
	struct spool *sp = arg;
	uint64_t last_orphans = now_ns();
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);	/* signals are the session's */
	while (!sp->stop) {
		__atomic_store_n(&sp->h->waiting, 1, __ATOMIC_SEQ_CST);
		uint32_t seq = __atomic_load_n(&sp->h->full_seq, __ATOMIC_SEQ_CST);
		uint64_t now = now_ns();
		int orphans = now - last_orphans >= ORPHAN_CHECK_NS;
		if (orphans)
			last_orphans = now;
		if (drain_pass(sp, orphans)) {
			mfx_tick();	/* progress, for the watchdog of an interrupted mfx */
			continue;
		}
		struct timespec ts = { 0, WAIT_NS };
		syscall(SYS_futex, &sp->h->full_seq, FUTEX_WAIT, seq, &ts, NULL, 0);
		__atomic_store_n(&sp->h->waiting, 0, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

int spool_start(struct spool *sp, const char *run_dir)
{
	snprintf(sp->dir, sizeof(sp->dir), "%s", run_dir);
	const char *e = getenv("MFX_SPILL");
	sp->spill_all = e && !strcmp(e, "1");
	sp->tsc0 = tfile_tsc();
	sp->ns0 = now_ns();
	int err = sp->pk ? 0 : pack_new(&sp->pk);
	if (err)
		return err;
	err = pthread_create(&sp->thr, NULL, drain_thread, sp);
	if (err)
		return -err;
	sp->running = 1;
	return 0;
}

/* A slot of the final drain into its thread's group (a new one unless it
 * follows the group's last slot). */
static void fin_add(struct spool *sp, int *n, const struct take *t)
{
	int k = *n;
	while (k-- > 0) {
		struct group *g = &sp->fin[k];
		if (g->uid == t->uid && g->tid == t->tid && g->next_seq == t->seq &&
		    g->n < HOLD_SLOTS)
			break;
	}
	if (k < 0) {
		k = (*n)++;
		sp->fin[k] = (struct group){ .uid = t->uid, .tid = t->tid };
	}
	struct group *g = &sp->fin[k];
	g->slot[g->n] = t->slot;
	g->dead[g->n++] = (uint8_t)t->free_it;
	g->next_seq = t->seq + 1;
}

static int fin_job(void *ctx, size_t i, struct packer *pk)
{
	struct spool *sp = ctx;
	const struct group *g = &sp->fin[i];
	group_write(sp, pk, g, g->d, g->q, &sp->lock);
	return 0;
}

/*
 * Everything left after the drain thread: the groups it held and every slot
 * still FULL, or OWNED (a dead owner's; or the window is over).  The program
 * has usually ended by then, so the encoding runs on every core.
 */
static void final_drain(struct spool *sp)
{
	int n = 0, nt = 0;
	for (int k = 0; k < sp->ngrp; k++)
		sp->fin[n++] = sp->grp[k];
	for (uint32_t i = 0; i < MFX_SPOOL_SLOTS; i++) {
		struct mfx_spool_slot *s = &sp->h->slot[i];
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		const struct mfx_chunk_header *c = mfx_spool_chunk(sp->h, i);
		if (sp->held[i] || (st != MFX_SLOT_FULL && st != MFX_SLOT_OWNED))
			continue;
		int dead = st == MFX_SLOT_FULL || owner_dead((pid_t)s->pid);
		if (dead && !claim(sp, i, st))
			continue;	/* the agent took it (mfx was thought gone) */
		if (c->magic != MFX_CHUNK_MAGIC || !c->used || c->type != MFX_CT_EVENTS) {
			if (dead)
				slot_free(sp, i);
			continue;
		}
		sp->tk[nt++] = (struct take){ s->trace_uid, c->tid, c->seq, i, (uint32_t)dead };
		sp->held[i] = 1;
	}
	qsort(sp->tk, (size_t)nt, sizeof(sp->tk[0]), cmp_take);
	for (int k = 0; k < nt; k++)
		fin_add(sp, &n, &sp->tk[k]);
	for (int k = 0; k < n; k++) {	/* files and quanta first: one thread */
		struct group *g = &sp->fin[k];
		g->d = spool_dest_for(sp, g->uid);
		g->q = g->d ? spool_dest_quantum(sp, g->d) : 0;
	}
	pthread_mutex_init(&sp->lock, NULL);
	pack_each((size_t)n, pack_threads(), fin_job, sp, &sp->fin_model);
	pthread_mutex_destroy(&sp->lock);
	for (int k = 0; k < n; k++)
		group_release(sp, &sp->fin[k]);
	sp->ngrp = sp->nheld = 0;
}

void spool_stop(struct spool *sp)
{
	if (sp->running) {
		sp->stop = 1;
		syscall(SYS_futex, &sp->h->full_seq, FUTEX_WAKE, 1, NULL, NULL, 0);
		pthread_join(sp->thr, NULL);
		sp->running = 0;
	}
	final_drain(sp);
}

void spool_stats(const struct spool *sp, struct spool_stats *st)
{
	*st = sp->st;
	st->fallbacks = sp->h->fallbacks;
	st->model = sp->fin_model;
	if (sp->pk)
		evc_stats_add(&st->model, pack_stats(sp->pk));
}

void spool_free(struct spool *sp)
{
	if (!sp)
		return;
	if (sp->running)
		spool_stop(sp);
	for (int i = 0; i < sp->ndst; i++) {
		munmap(sp->dst[i].hdr, MFX_HEADER_SIZE);
		close(sp->dst[i].fd);
	}
	munmap(sp->h, MFX_SPOOL_BYTES);
	close(sp->fd);
	pack_free(sp->pk);
	free(sp);
}
