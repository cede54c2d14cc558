/*
 * evcodec.c - unit tests of the event model codec (trace/evcodec.h): event
 * streams written as the agent writes them (raw records, trace/format.h),
 * encoded, decoded, and compared with the events that were written: every
 * field exact, times floored to the quantum and never going back.  Streams:
 * a simulated heap with thread caches (what the model predicts), random
 * ones (what it does not), and adversarial ones (double frees, a block
 * allocated twice, failed calls, realloc in place, to 0 and failing, sizes
 * and stacks at their limits, time jumps, pointers far apart).  What the
 * codec cannot represent it must refuse, never decode differently.  Then
 * damaged payloads: an error or events, never a crash (the ASan build runs
 * this too).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "trace/evcodec.h"
#include "trace/varint.h"
#include "tests/unit/check.h"


static uint64_t seed = 88172645463325252ull;

static uint64_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return seed;
}

/* ---- raw records, written exactly as preload/record.h writes them ---------- */

struct rw {
	uint8_t *p;
	uint64_t ts, ptr;
	uint32_t stack;
	int stacks;
};

static uint8_t *w_ts(struct rw *w, uint8_t *p, uint64_t ts)
{
	uint64_t d = ts > w->ts ? ts - w->ts : 0;
	w->ts += d;
	return put_varint(p, d);
}

static uint8_t *w_stack(struct rw *w, uint8_t *p, unsigned *fl, uint32_t stack)
{
	if (!w->stacks)
		return p;
	if (stack == w->stack) {
		*fl |= MFX_F_SAME_STACK;
		return p;
	}
	w->stack = stack;
	return put_varint(p, stack);
}

static void w_event(struct rw *w, const struct evc_event *e)
{
	uint8_t *b0 = w->p, *p = b0 + 1;
	unsigned fl = 0;
	p = w_ts(w, p, e->ts);
	if (e->kind == MFX_K_FREE) {
		int64_t d = (int64_t)(e->ptr - w->ptr);
		if (!(d & 15)) {
			fl |= MFX_F_SHR4;
			d >>= 4;
		}
		w->ptr = e->ptr;
		p = put_varint(p, zigzag(d));
	} else if (e->kind == MFX_K_REALLOC || e->kind == MFX_K_REALLOCARRAY) {
		int64_t dold = (int64_t)(e->old - w->ptr);
		uint64_t from = e->old ? e->old : w->ptr;
		int64_t dnew = (int64_t)(e->ptr - from);
		if ((!e->old || !(dold & 15)) && (!e->ptr || !(dnew & 15))) {
			fl |= MFX_F_SHR4;
			dold >>= 4;
			dnew >>= 4;
		}
		p = put_varint(p, e->size);
		if (e->old)
			p = put_varint(p, zigzag(dold));
		else
			fl |= MFX_F_OLD_NULL;
		if (e->ptr)
			p = put_varint(p, zigzag(dnew));
		else
			fl |= MFX_F_NULL;
		w->ptr = e->ptr ? e->ptr : from;
		p = w_stack(w, p, &fl, e->stack);
	} else {
		p = put_varint(p, e->size);
		if (e->kind >= MFX_K_POSIX_MEMALIGN && e->kind <= MFX_K_MEMALIGN)
			p = put_varint(p, e->align);
		if (e->ptr) {
			int64_t d = (int64_t)(e->ptr - w->ptr);
			if (!(d & 15)) {
				fl |= MFX_F_SHR4;
				d >>= 4;
			}
			w->ptr = e->ptr;
			p = put_varint(p, zigzag(d));
		} else {
			fl |= MFX_F_NULL;
		}
		p = w_stack(w, p, &fl, e->stack);
	}
	*b0 = (uint8_t)(e->kind | fl);
	w->p = p;
}

/* ---- streams ------------------------------------------------------------------ */

#define MAXEV 60000
static struct evc_event ev[MAXEV];

enum style { HEAP, RANDOM, NASTY };

/* A block for the simulated heap: reuse a recently freed one of a close
 * size (a thread cache), else carve a new one. */
static uint64_t heap_ptr(uint64_t *freed, int *nfreed, uint64_t *top, uint64_t size)
{
	if (*nfreed && rnd() % 4) {
		int i = (int)(rnd() % (uint64_t)(*nfreed < 4 ? *nfreed : 4));
		int k = *nfreed - 1 - i;
		uint64_t p = freed[k];
		*nfreed -= 1;
		freed[k] = freed[*nfreed];
		return p;
	}
	uint64_t p = *top;
	if (size < 1ull << 36)	/* user-space addresses stay below 2^47 */
		*top += (size + 8 + 15) & ~15ull;
	return p;
}

static uint64_t any_size(enum style st)
{
	uint64_t r = rnd() % 100;
	if (st == NASTY && r < 5)
		return (uint64_t[]){ 0, 1, SIZE_MAX, 1ull << 52, (1ull << 53) + 7, 1ull << 63 }[rnd() % 6];
	if (r < 60)
		return 16 * (1 + rnd() % 16);
	if (r < 90)
		return 1 + rnd() % 5000;
	return rnd() % (1u << 24);
}

static uint64_t any_ptr(enum style st)
{
	if (st == NASTY && rnd() % 10 == 0)	/* unaligned, near 0 or the top */
		return (uint64_t[]){ 1, 0x10, 0x7fffffffffffull, 0xffffffffffffull,
				     0x1234567 }[rnd() % 5] + (rnd() % 3);
	return 0x7f0000000000ull + (rnd() % (1ull << 30)) * 16;
}

/* n events of a thread into ev[]; times from t0, monotone. */
static int make_stream(enum style st, int n, uint64_t t0, int stacks)
{
	static uint64_t live[4096], freed[4096];
	int nlive = 0, nfreed = 0;
	uint64_t top = 0x555555000000ull, ts = t0;
	for (int i = 0; i < n; i++) {
		struct evc_event *e = &ev[i];
		memset(e, 0, sizeof(*e));
		uint64_t r = rnd() % 100;
		ts += st == NASTY && r % 17 == 0 ? rnd() % (1ull << 40) : rnd() % 300;
		e->ts = ts;
		if (r < 40 && nlive) {	/* free a live block, often the newest or oldest */
			int k = r < 15 ? nlive - 1 : r < 25 ? 0 : (int)(rnd() % (uint64_t)nlive);
			e->kind = MFX_K_FREE;
			e->ptr = live[k];
			live[k] = live[--nlive];
			if (nfreed < 4096)
				freed[nfreed++] = e->ptr;
			if (st == NASTY && r % 5 == 0 && nlive < 4096)
				live[nlive++] = e->ptr;	/* it will be freed again */
			continue;
		}
		if (r < 44 && st != HEAP) {	/* free of a block this stream never saw */
			e->kind = MFX_K_FREE;
			e->ptr = any_ptr(st) | 1;
			continue;
		}
		e->kind = (uint8_t)(r < 70 ? MFX_K_MALLOC : 1 + rnd() % 10);
		if (e->kind == MFX_K_FREE)
			e->kind = MFX_K_CALLOC;
		e->size = any_size(st);
		e->stack = stacks ? (uint32_t)(st == NASTY && r % 7 == 0 ? rnd() : 1 + rnd() % 90) : 0;
		if (e->kind >= MFX_K_POSIX_MEMALIGN && e->kind <= MFX_K_MEMALIGN)
			e->align = st == NASTY ? rnd() : 16ull << (rnd() % 8);
		int re = e->kind == MFX_K_REALLOC || e->kind == MFX_K_REALLOCARRAY;
		if (re && nlive && rnd() % 5) {
			int k = (int)(rnd() % (uint64_t)nlive);
			e->old = live[k];
			uint64_t how = rnd() % 10;
			if (how < 3)
				e->ptr = e->old;	/* grown in place */
			else if (how < 4)
				e->ptr = 0;	/* failed (or to size 0) */
			else
				e->ptr = heap_ptr(freed, &nfreed, &top, e->size);
			if (e->ptr)
				live[k] = live[--nlive];
		} else if (rnd() % 20 == 0) {
			e->ptr = 0;	/* a failed call */
		} else {
			e->ptr = st == RANDOM ? any_ptr(st) : heap_ptr(freed, &nfreed, &top, e->size);
		}
		if (e->ptr && nlive < 4096)
			live[nlive++] = e->ptr;
		if (st == NASTY && r % 11 == 0 && e->ptr && nlive < 4096)
			live[nlive++] = e->ptr;	/* the same block live twice */
	}
	return n;
}

/* ---- round trips ----------------------------------------------------------------- */

static uint8_t raw[1 << 22];

/* Write ev[0..n) as `nchunks` raw chunks, encode them together, decode, and
 * compare.  Returns 1 when the encoder refused (then nothing is compared). */
static int round_trip(int n, int nchunks, int stacks, uint64_t q, const char *what)
{
	static struct evc_enc *e;
	static struct evc_dec *d;
	static ZSTD_DCtx *zd;
	if (!e) {
		e = evc_enc_new();
		d = evc_dec_new();
		zd = ZSTD_createDCtx();
	}
	uint64_t base0 = ev[0].ts - (ev[0].ts % 7), used = 0;
	uint8_t *p = raw;
	int added = 1;
	evc_enc_begin(e, base0, stacks, q);
	for (int c = 0, i = 0; c < nchunks; c++) {
		/* uneven chunks: a big one then small ones, or the reverse */
		int end = c == nchunks - 1 ? n : i + (int)(rnd() % (uint64_t)(n - i + 1));
		uint64_t base = c ? ev[i > 0 ? i - 1 : 0].ts : base0;
		struct rw w = { p, base, 0, 0, stacks };
		for (; i < end; i++)
			w_event(&w, &ev[i]);
		added &= evc_enc_add(e, p, (size_t)(w.p - p), base) == 0;
		used += (uint64_t)(w.p - p);
		p = w.p;
	}
	const uint8_t *out;
	size_t len = evc_enc_finish(e, 3, &out);
	CHECK(added || !len, "%s: refused by add, then by finish", what);
	if (!len) {
		printf("  %s: refused\n", what);
		return 1;
	}
	int err = evc_dec_open(d, zd, out, len, (uint32_t)used, base0, stacks);
	CHECK(!err, "%s: decoder opens the payload (%d)", what, err);
	if (err)
		return 0;
	struct evc_event got;
	uint64_t prev = base0 / q * q;
	int k = 0, r, bad = 0;
	while ((r = evc_dec_next(d, &got)) == 1 && k < n) {
		struct evc_event want = ev[k++];
		want.ts = want.ts / q * q;
		if (want.ts < prev)	/* the next chunk's clock read a hair behind */
			want.ts = prev;
		prev = want.ts;
		if (!stacks)
			want.stack = 0;
		if (memcmp(&want, &got, sizeof(got)) && bad++ < 3)
			printf("  %s: event %d: kind %u/%u ptr %#" PRIx64 "/%#" PRIx64 " old %#" PRIx64
			       "/%#" PRIx64 " size %" PRIu64 "/%" PRIu64 " ts %" PRIu64 "/%" PRIu64
			       " stack %u/%u\n", what, k - 1, want.kind, got.kind, want.ptr, got.ptr,
			       want.old, got.old, want.size, got.size, want.ts, got.ts, want.stack,
			       got.stack);
	}
	CHECK(r == 0 && k == n && !bad, "%s: %d of %d events back exactly (end %d, %d wrong)", what,
	      k, n, r, bad);
	return 0;
}

static void test_streams(void)
{
	static const uint64_t qs[] = { 1, 16, 100, 1000 };
	static const char *const names[] = { "heap", "random", "nasty" };
	char what[96];
	int refused = 0, runs = 0;
	for (int st = HEAP; st <= NASTY; st++)
		for (int stacks = 0; stacks < 2; stacks++)
			for (int qi = 0; qi < 4; qi++)
				for (int nch = 1; nch <= 4; nch *= 2) {
					int n = 200 + (int)(rnd() % 20000);
					make_stream((enum style)st, n, 1000 + rnd() % 100000, stacks);
					snprintf(what, sizeof(what), "%s stacks=%d q=%" PRIu64 " chunks=%d n=%d",
						 names[st], stacks, qs[qi], nch, n);
					refused += round_trip(n, nch, stacks, qs[qi], what);
					runs++;
				}
	/* Only pointers 2^61 apart are refused (test_refusals): user-space
	 * addresses never are. */
	CHECK(refused == 0, "every stream encoded (%d of %d refused)", refused, runs);
}

/*
 * What the model is for: a program whose call sites each allocate one or two
 * sizes, served LIFO per size class by a thread cache (glibc's tcache, size
 * = request + 8 rounded up to 16), blocks freed soon or kept a while, a
 * call every ~100 ns.  That costs well under 2 bytes an event (the format's
 * goal).
 */
static int make_program(int n, uint64_t t0)
{
	static uint64_t live[512], cache[256][8];
	static unsigned lcls[512];
	static int ncache[256];
	int nlive = 0, i = 0;
	uint64_t top = 0x555555560000ull, ts = t0;
	memset(ncache, 0, sizeof(ncache));
	while (i < n) {
		struct evc_event *e = &ev[i++];
		memset(e, 0, sizeof(*e));
		ts += 50 + rnd() % 100;
		e->ts = ts;
		if (nlive == 512 || (nlive && rnd() % 2)) {	/* free the newest or the oldest */
			int k = rnd() % 3 ? nlive - 1 : 0;
			e->kind = MFX_K_FREE;
			e->ptr = live[k];
			unsigned c = lcls[k];
			memmove(&live[k], &live[k + 1], (size_t)(nlive - k - 1) * sizeof(live[0]));
			memmove(&lcls[k], &lcls[k + 1], (size_t)(nlive - k - 1) * sizeof(lcls[0]));
			nlive--;
			if (ncache[c] < 8)
				cache[c][ncache[c]++] = e->ptr;
			continue;
		}
		uint32_t site = 1 + (uint32_t)(rnd() % 40);
		e->kind = MFX_K_MALLOC;
		e->stack = site;
		e->size = 24 + (site % 20) * 16 + (rnd() % 8 == 0 ? 8 : 0);
		unsigned c = (unsigned)((e->size + 8 + 15) >> 4);
		if (ncache[c]) {
			e->ptr = cache[c][--ncache[c]];
		} else {
			e->ptr = top;
			top += c * 16;
		}
		lcls[nlive] = c;
		live[nlive++] = e->ptr;
	}
	return n;
}

static void test_size(void)
{
	struct evc_enc *e = evc_enc_new();
	int n = make_program(50000, 5000);
	struct rw w = { raw, 5000, 0, 0, 1 };
	for (int i = 0; i < n; i++)
		w_event(&w, &ev[i]);
	const uint8_t *out;
	evc_enc_begin(e, 5000, 1, 100);
	CHECK(evc_enc_add(e, raw, (size_t)(w.p - raw), 5000) == 0, "program stream parsed");
	size_t len = evc_enc_finish(e, 3, &out);
	printf("program: %zu raw bytes, %zu encoded: %.2f bytes/event\n", (size_t)(w.p - raw),
	       len, (double)len / n);
	CHECK(len && (double)len / n < 2.0, "under 2 bytes an event (%.2f)", (double)len / n);
	evc_enc_free(e);
}

/* What the encoder must refuse, and what the raw parser must reject. */
static void test_refusals(void)
{
	struct evc_enc *e = evc_enc_new();
	const uint8_t *out;
	memset(ev, 0, 3 * sizeof(ev[0]));
	ev[0] = (struct evc_event){ .ts = 10, .ptr = 0x10, .size = 8, .kind = MFX_K_MALLOC };
	ev[1] = (struct evc_event){ .ts = 20, .ptr = 0x4000000000000010ull, .size = 8,
				    .kind = MFX_K_MALLOC };
	struct rw w = { raw, 0, 0, 0, 0 };
	w_event(&w, &ev[0]);
	w_event(&w, &ev[1]);
	evc_enc_begin(e, 0, 0, 1);
	CHECK(evc_enc_add(e, raw, (size_t)(w.p - raw), 0) == -1, "pointers 2^61 apart refused");
	CHECK(evc_enc_finish(e, 3, &out) == 0, "... and the payload with them");
	uint8_t ext[] = { MFX_K_EXT, MFX_EXT_SYNC, 2, 1, 1 };
	uint8_t nullfree[] = { MFX_K_FREE, 0, 0 };
	uint8_t cut[] = { MFX_K_MALLOC, 0, 0x80 };
	uint8_t ok[] = { MFX_K_MALLOC, 0, 8, 2 };
	const uint8_t *bad[] = { ext, nullfree, cut };
	size_t badlen[] = { sizeof(ext), sizeof(nullfree), sizeof(cut) };
	const char *why[] = { "extended records", "free(NULL)", "a truncated record" };
	for (int i = 0; i < 3; i++) {
		evc_enc_begin(e, 0, 0, 1);
		CHECK(evc_enc_add(e, ok, sizeof(ok), 0) == 0, "a good payload");
		CHECK(evc_enc_add(e, bad[i], badlen[i], 0) == -1, "%s refused", why[i]);
		CHECK(evc_enc_finish(e, 3, &out) == 0, "%s: nothing encoded", why[i]);
	}
	evc_enc_begin(e, 0, 0, 1);
	CHECK(evc_enc_add(e, ok, sizeof(ok), 0) == 0 && evc_enc_finish(e, 3, &out) > 0,
	      "a good payload after refused ones");
	evc_enc_free(e);
}

/* Damaged payloads: errors or events, never a crash or a hang. */
static void test_damage(void)
{
	struct evc_enc *e = evc_enc_new();
	struct evc_dec *d = evc_dec_new();
	ZSTD_DCtx *zd = ZSTD_createDCtx();
	int n = make_stream(HEAP, 3000, 100, 1);
	struct rw w = { raw, 100, 0, 0, 1 };
	for (int i = 0; i < n; i++)
		w_event(&w, &ev[i]);
	uint32_t used = (uint32_t)(w.p - raw);
	const uint8_t *out;
	evc_enc_begin(e, 100, 1, 1);
	evc_enc_add(e, raw, used, 100);
	size_t len = evc_enc_finish(e, 3, &out);
	uint8_t *good = malloc(len), *bad = malloc(len);
	memcpy(good, out, len);
	int errors = 0, events = 0;
	for (int k = 0; k < 3000; k++) {
		memcpy(bad, good, len);
		size_t cut = len;
		if (k % 3 == 0)
			cut = rnd() % len;
		else
			for (int f = 0; f < 1 + k % 4; f++)
				bad[rnd() % len] ^= (uint8_t)(1 + rnd() % 255);
		struct evc_event got;
		int r = evc_dec_open(d, zd, bad, cut, used, 100, 1);
		while (!r && (r = evc_dec_next(d, &got)) == 1)
			events++;
		errors += r < 0;
	}
	CHECK(errors > 1000, "damage detected (%d errors, %d events read)", errors, events);
	CHECK(evc_dec_open(d, zd, good, len, used / 8, 100, 1) < 0, "event count above the raw "
	      "size refused");
	free(good);
	free(bad);
	ZSTD_freeDCtx(zd);
	evc_dec_free(d);
	evc_enc_free(e);
}

int main(void)
{
	test_streams();
	test_size();
	test_refusals();
	test_damage();
	return check_done("evcodec");
}
