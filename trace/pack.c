/*
 * pack.c - raw chunks into their stored form (see pack.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "trace/pack.h"

struct packer {
	struct evc_enc *enc;
	ZSTD_CCtx *z;
	uint8_t *out;
	size_t outcap;
};

int pack_new(struct packer **out)
{
	struct packer *pk = calloc(1, sizeof(*pk));
	if (!pk)
		return -ENOMEM;
	pk->enc = evc_enc_new();
	pk->z = ZSTD_createCCtx();
	if (!pk->enc || !pk->z) {
		pack_free(pk);
		return -ENOMEM;
	}
	*out = pk;
	return 0;
}

void pack_free(struct packer *pk)
{
	if (!pk)
		return;
	evc_enc_free(pk->enc);
	ZSTD_freeCCtx(pk->z);
	free(pk->out);
	free(pk);
}

const struct evc_stats *pack_stats(const struct packer *pk)
{
	return evc_enc_stats(pk->enc);
}

static int out_room(struct packer *pk, size_t need)
{
	if (need <= pk->outcap)
		return 0;
	uint8_t *o = realloc(pk->out, need);
	if (!o)
		return -ENOMEM;
	pk->out = o;
	pk->outcap = need;
	return 0;
}

/* Header h and payload p[0..len) into pk->out, padded; the span. */
static size_t emit(struct packer *pk, struct mfx_chunk_header *h, const void *p, size_t len)
{
	size_t span = (sizeof(*h) + len + 7) & ~(size_t)7;
	if (out_room(pk, span))
		return 0;
	h->stored = (uint32_t)len;
	h->span = (uint32_t)span;
	memcpy(pk->out, h, sizeof(*h));
	memmove(pk->out + sizeof(*h), p, len);
	memset(pk->out + sizeof(*h) + len, 0, span - sizeof(*h) - len);
	return span;
}

size_t pack_events(struct packer *pk, const struct mfx_chunk_header *const *c, size_t n,
		   int stacks, uint64_t q, const uint8_t **out)
{
	uint64_t used = 0;
	evc_enc_begin(pk->enc, c[0]->base_ts, stacks, q);
	for (size_t i = 0; i < n; i++) {
		uint32_t u = __atomic_load_n(&c[i]->used, __ATOMIC_ACQUIRE);
		if (c[i]->type != MFX_CT_EVENTS || c[i]->codec != MFX_CODEC_RAW ||
		    c[i]->timebase != c[0]->timebase || c[i]->tid != c[0]->tid ||
		    u > c[i]->span - sizeof(*c[i]) || used + u > EVC_MAX_RAW ||
		    evc_enc_add(pk->enc, (const uint8_t *)(c[i] + 1), u, c[i]->base_ts))
			return 0;
		used += u;
	}
	const uint8_t *p;
	size_t len = evc_enc_finish(pk->enc, PACK_LEVEL, &p);
	if (!len)
		return 0;
	struct mfx_chunk_header h = *c[0];
	h.magic = MFX_CHUNK_MAGIC;
	h.codec = MFX_CODEC_MODEL;
	h.used = (uint32_t)used;
	size_t span = emit(pk, &h, p, len);
	*out = pk->out;
	return span;
}

size_t pack_plain(struct packer *pk, const struct mfx_chunk_header *c, const uint8_t **out)
{
	struct mfx_chunk_header h = *c;
	uint32_t used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
	const uint8_t *src = (const uint8_t *)(c + 1);
	if (c->codec != MFX_CODEC_RAW) {	/* stored already: as it is */
		h.used = used;
		size_t span = emit(pk, &h, src, c->stored);
		*out = pk->out;
		return span;
	}
	size_t bound = ZSTD_compressBound(used);
	uint8_t *z = malloc(bound);
	if (!z)
		return 0;
	size_t r = used > 64 ? ZSTD_compressCCtx(pk->z, z, bound, src, used, 3) : 0;
	h.used = used;
	size_t span;
	if (used > 64 && !ZSTD_isError(r) && r < used) {
		h.codec = MFX_CODEC_ZSTD;
		span = emit(pk, &h, z, r);
	} else {
		span = emit(pk, &h, src, used);
	}
	free(z);
	*out = pk->out;
	return span;
}

/* ---- packing on every core ------------------------------------------------- */

struct each {
	size_t n, next;		/* next: taken with an atomic add */
	int (*job)(void *ctx, size_t i, struct packer *pk);
	void *ctx;
	int err;
	struct evc_stats *sum;
	pthread_mutex_t lock;	/* err, sum */
};

static void *each_worker(void *arg)
{
	struct each *w = arg;
	struct packer *pk = NULL;
	int err = 0;
	if (pack_new(&pk))
		return NULL;	/* the others (or the caller, below) do the jobs */
	for (size_t i; (i = __atomic_fetch_add(&w->next, 1, __ATOMIC_RELAXED)) < w->n;) {
		int r = w->job(w->ctx, i, pk);
		if (r && !err)
			err = r;
	}
	pthread_mutex_lock(&w->lock);
	if (err && !w->err)
		w->err = err;
	if (pk && w->sum)
		evc_stats_add(w->sum, pack_stats(pk));
	pthread_mutex_unlock(&w->lock);
	pack_free(pk);
	return NULL;
}

int pack_each(size_t n, int threads, int (*job)(void *ctx, size_t i, struct packer *pk),
	      void *ctx, struct evc_stats *sum)
{
	struct each w = { .n = n, .job = job, .ctx = ctx, .sum = sum };
	pthread_t th[8];
	int nth = 0;
	pthread_mutex_init(&w.lock, NULL);
	if (threads > (int)(sizeof(th) / sizeof(th[0])) + 1)
		threads = (int)(sizeof(th) / sizeof(th[0])) + 1;
	for (; nth < threads - 1 && (size_t)nth + 1 < n; nth++)
		if (pthread_create(&th[nth], NULL, each_worker, &w))
			break;	/* fewer helpers: the caller does the rest */
	each_worker(&w);
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&w.lock);
	if (w.next < n && !w.err)
		w.err = -ENOMEM;	/* no packer anywhere: jobs were left */
	return w.err;
}

int pack_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

uint64_t pack_quantum(const struct mfx_file_header *h, uint64_t tsc_hz)
{
	if (!(h->flags & MFX_HF_TSC))
		return MFX_TIME_QUANTUM_NS;
	if (!tsc_hz)
		return 1;
	double unit_ns = 1e9 * (double)(1ull << (h->tsc_shift & 31)) / (double)tsc_hz;
	uint64_t q = (uint64_t)((double)MFX_TIME_QUANTUM_NS / unit_ns);
	return q ? q : 1;
}
