/*
 * trace_codec.c - unit tests of the trace file: varints, format 1's column
 * transform (split then join gives back the same bytes) and a format 1 file
 * that uses it; the reader on a hand-built raw trace (exact events back), on
 * the layout mfx's drain thread writes (encoded chunks packed in a region,
 * zeros after them), on the finalised form (events encoded, times floored to
 * 0.1 us); a block handed between threads within one quantum; a newer
 * version refused; damaged copies (an error code, never a crash).  The
 * event codec itself is tests/unit/evcodec.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace/reader.h"
#include "trace/tracefile.h"
#include "trace/columns.h"
#include "common/error.h"
#include "trace/pack.h"
#include "trace/varint.h"
#include "tests/unit/check.h"


static void test_varint(void)
{
	static const uint64_t v[] = { 0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX,
				      UINT64_MAX - 1, UINT64_MAX };
	uint8_t buf[16];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t *e = put_varint(buf, v[i]);
		const uint8_t *p = buf;
		uint64_t out;
		CHECK(get_varint(&p, e, &out) == 0 && out == v[i] && p == e, "varint %" PRIu64, v[i]);
		p = buf;
		CHECK(e - buf == 1 || get_varint(&p, e - 1, &out) != 0, "truncated varint rejected");
	}
	int64_t s[] = { 0, -1, 1, -16, INT64_MIN, INT64_MAX };
	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		CHECK(unzigzag(zigzag(s[i])) == s[i], "zigzag %" PRId64, s[i]);
}

/* A raw payload with every kind and flag combination the agent writes. */
static size_t build_payload(uint8_t *buf, int stacks)
{
	uint8_t *p = buf;
	uint64_t ptr = 0;
	for (int i = 0; i < 500; i++) {
		unsigned kind = 1 + (unsigned)i % 10;
		unsigned flags = (i % 3 == 0 ? MFX_F_SAME_STACK : 0) | (i % 7 == 0 ? MFX_F_NULL : 0);
		if (kind == MFX_K_FREE)
			flags = 0;
		if ((kind == MFX_K_REALLOC || kind == MFX_K_REALLOCARRAY) && i % 4 == 0)
			flags |= MFX_F_OLD_NULL;
		*p++ = (uint8_t)(kind | flags);
		p = put_varint(p, (uint64_t)i * 37 % 900);
		if (kind == MFX_K_FREE) {
			p = put_varint(p, zigzag(-(int64_t)i * 48));
			continue;
		}
		p = put_varint(p, 16 + (uint64_t)i * 13);
		if (kind == MFX_K_REALLOC || kind == MFX_K_REALLOCARRAY) {
			if (!(flags & MFX_F_OLD_NULL))
				p = put_varint(p, zigzag(i * 3));
		} else if (kind >= MFX_K_POSIX_MEMALIGN && kind <= MFX_K_MEMALIGN) {
			p = put_varint(p, 64);
		}
		if (!(flags & MFX_F_NULL))
			p = put_varint(p, zigzag((int64_t)i * 1000 - 7));
		if (stacks && !(flags & MFX_F_SAME_STACK))
			p = put_varint(p, 1 + (uint64_t)i % 40);
		if (i % 50 == 0) {	/* an extended record in between */
			*p++ = MFX_K_EXT;
			*p++ = MFX_EXT_SYNC;
			*p++ = 3;
			*p++ = 1;
			*p++ = 2;
			*p++ = 3;
		}
		(void)ptr;
	}
	return (size_t)(p - buf);
}

static void test_columns(void)
{
	for (int stacks = 0; stacks < 2; stacks++) {
		static uint8_t raw[65536], cols[COL_N][65536], back[65536];
		size_t len = build_payload(raw, stacks);
		struct col_buf c[COL_N];
		for (int i = 0; i < COL_N; i++)
			c[i] = (struct col_buf){ cols[i], cols[i] + sizeof(cols[i]) };
		const uint8_t *rp = raw;
		int bad = 0;
		while (rp < raw + len && !bad)
			bad = col_record(&rp, NULL, raw + len, NULL, c, 1, stacks);
		CHECK(!bad && rp == raw + len, "split consumes the payload (stacks=%d)", stacks);
		struct col_buf r[COL_N];
		for (int i = 0; i < COL_N; i++)
			r[i] = (struct col_buf){ cols[i], c[i].p };
		uint8_t *w = back;
		while (r[COL_OP].p < r[COL_OP].end && !bad)
			bad = col_record(NULL, &w, NULL, back + sizeof(back), r, 0, stacks);
		CHECK(!bad && (size_t)(w - back) == len && !memcmp(raw, back, len),
		      "join(split(x)) == x (stacks=%d)", stacks);
		for (int i = 1; i < COL_N; i++)
			CHECK(r[i].p == r[i].end, "column %d fully consumed", i);
		/* A truncated column must be refused, not overrun. */
		for (int i = 0; i < COL_N; i++)
			r[i].p = cols[i];
		r[COL_PTR].end = cols[COL_PTR] + 3;
		w = back;
		bad = 0;
		while (r[COL_OP].p < r[COL_OP].end && !bad)
			bad = col_record(NULL, &w, NULL, back + sizeof(back), r, 0, stacks);
		CHECK(bad, "truncated pointer column refused");
	}
}

/* ---- hand-built traces ---------------------------------------------------------- */

#define FSIZE (MFX_FIRST_CHUNK + 24 * MFX_CHUNK_SIZE)

static uint8_t *new_file(uint32_t flags, uint32_t nthreads)
{
	uint8_t *f = calloc(1, FSIZE);
	struct mfx_file_header *h = (void *)f;
	h->magic = MFX_TRACE_MAGIC;
	h->version = MFX_TRACE_VERSION;
	h->header_size = MFX_HEADER_SIZE;
	h->chunk_size = MFX_CHUNK_SIZE;
	h->flags = flags;	/* time base: ns */
	h->pid = 42;
	h->first_chunk = MFX_FIRST_CHUNK;
	h->next_chunk = FSIZE;
	h->nthreads = nthreads;
	strcpy(h->cmdline, "unit test");
	return f;
}

static struct mfx_chunk_header *new_chunk(uint8_t *f, unsigned slot, uint16_t type, uint32_t tid,
					  uint32_t seq, uint64_t base)
{
	struct mfx_chunk_header *c = (void *)(f + MFX_FIRST_CHUNK + slot * MFX_CHUNK_SIZE);
	c->magic = MFX_CHUNK_MAGIC;
	c->type = type;
	c->tid = tid;
	c->seq = seq;
	c->span = MFX_CHUNK_SIZE;
	c->timebase = 1;
	c->base_ts = c->base_ns = base;
	return c;
}

/*
 * Thread 7: malloc(100) -> 0x1000 at t=1000, calloc -> 0x2000 at 1150,
 * realloc 0x1000 -> 0x3000 (200) at 1320, free 0x2000 at 1400; and a META
 * chunk with stack 1.
 */
static void put_events(struct mfx_chunk_header *c)
{
	uint8_t *p = (uint8_t *)(c + 1), *b = p;
	*p++ = MFX_K_MALLOC | MFX_F_SHR4;
	p = put_varint(p, 0);
	p = put_varint(p, 100);
	p = put_varint(p, zigzag(0x1000 >> 4));
	p = put_varint(p, 1);
	*p++ = MFX_K_CALLOC | MFX_F_SHR4 | MFX_F_SAME_STACK;
	p = put_varint(p, 150);
	p = put_varint(p, 50);
	p = put_varint(p, zigzag(0x1000 >> 4));
	*p++ = MFX_K_REALLOC | MFX_F_SHR4 | MFX_F_SAME_STACK;
	p = put_varint(p, 170);
	p = put_varint(p, 200);
	p = put_varint(p, zigzag(-(0x1000 >> 4)));	/* old 0x1000, from 0x2000 */
	p = put_varint(p, zigzag(0x2000 >> 4));		/* new 0x3000, from the old */
	*p++ = MFX_K_FREE | MFX_F_SHR4;
	p = put_varint(p, 80);
	p = put_varint(p, zigzag(-(0x1000 >> 4)));	/* 0x2000 from 0x3000 */
	c->used = (uint32_t)(p - b);
}

static void put_stack(struct mfx_chunk_header *m)
{
	uint8_t *p = (uint8_t *)(m + 1), *b = p, body[64], *q = body;
	q = put_varint(q, 1);
	q = put_varint(q, 2);
	q = put_varint(q, 0x401000);
	q = put_varint(q, zigzag(0x20));
	*p++ = MFX_K_EXT;
	*p++ = MFX_EXT_STACK;
	p = put_varint(p, (uint64_t)(q - body));
	memcpy(p, body, (size_t)(q - body));
	p += q - body;
	m->used = (uint32_t)(p - b);
}

static void save(const char *path, const uint8_t *f, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t w = write(fd, f, size);
	(void)w;
	close(fd);
}

/* A raw trace as the agent leaves it: an EVENTS slot, a META slot. */
static void write_raw_trace(const char *path)
{
	uint8_t *f = new_file(MFX_HF_STACKS, 1);
	struct mfx_thread_slot *slot = (void *)(f + MFX_HEADER_SIZE);
	slot->tid = 7;
	slot->events = 4;
	put_events(new_chunk(f, 0, MFX_CT_EVENTS, 7, 0, 1000));
	put_stack(new_chunk(f, 1, MFX_CT_META, 0, 0, 0));
	save(path, f, FSIZE);
	free(f);
}

/*
 * The layout mfx's drain thread leaves while the window runs: the events
 * encoded (MODEL) at the start of a region of slots, zeros after them, the
 * META slot after the region; the header's quantum set (100 ns).
 */
static void write_drained_trace(const char *path)
{
	uint8_t *f = new_file(MFX_HF_STACKS, 1);
	struct mfx_file_header *h = (void *)f;
	struct mfx_thread_slot *slot = (void *)(f + MFX_HEADER_SIZE);
	slot->tid = 7;
	slot->events = 4;
	h->time_quantum = 100;
	struct mfx_chunk_header *raw = malloc(MFX_CHUNK_SIZE);
	memset(raw, 0, MFX_CHUNK_SIZE);
	*raw = *new_chunk(f, 0, MFX_CT_EVENTS, 7, 0, 1000);
	put_events(raw);
	memset(f + MFX_FIRST_CHUNK, 0, 16 * MFX_CHUNK_SIZE);	/* the region */
	struct packer *pk;
	const uint8_t *out;
	CHECK(pack_new(&pk) == 0, "packer");
	const struct mfx_chunk_header *c = raw;
	size_t span = pack_events(pk, &c, 1, 1, 100, &out);
	CHECK(span > 0 && span < 200, "4 events packed in %zu bytes", span);
	memcpy(f + MFX_FIRST_CHUNK, out, span);
	put_stack(new_chunk(f, 16, MFX_CT_META, 0, 0, 0));
	save(path, f, FSIZE);
	pack_free(pk);
	free(raw);
	free(f);
}

static void check_events(const char *path, const char *what, int floored)
{
	static const uint64_t exact[4] = { 1000, 1150, 1320, 1400 }, q100[4] = { 1000, 1100, 1300,
										  1400 };
	const uint64_t *ts = floored ? q100 : exact;
	struct trace *t;
	int err = trace_open(path, &t);
	CHECK(err == 0, "%s: open: %s", what, mfx_strerror(-err));
	if (err)
		return;
	struct trace_event ev[8];
	int n = 0;
	while (n < 8 && trace_next(t, &ev[n]) > 0)
		n++;
	CHECK(n == 4, "%s: 4 events, got %d", what, n);
	if (n == 4) {
		CHECK(ev[0].kind == MFX_K_MALLOC && ev[0].ptr == 0x1000 && ev[0].size == 100 &&
			      ev[0].ts_ns == ts[0] && ev[0].stack == 1 && ev[0].tid == 7,
		      "%s: malloc decoded", what);
		CHECK(ev[1].kind == MFX_K_CALLOC && ev[1].ptr == 0x2000 && ev[1].stack == 1 &&
			      ev[1].size == 50 && ev[1].ts_ns == ts[1], "%s: calloc decoded (%" PRIu64 ")",
		      what, ev[1].ts_ns);
		CHECK(ev[2].kind == MFX_K_REALLOC && ev[2].old_ptr == 0x1000 && ev[2].ptr == 0x3000 &&
			      ev[2].size == 200 && ev[2].ts_ns == ts[2], "%s: realloc decoded", what);
		CHECK(ev[3].kind == MFX_K_FREE && ev[3].ptr == 0x2000 && ev[3].ts_ns == ts[3],
		      "%s: free decoded", what);
	}
	uint32_t depth = 0;
	const uint64_t *fr = trace_stack(t, 1, &depth);
	CHECK(fr && depth == 2 && fr[0] == 0x401000 && fr[1] == 0x401020, "%s: stack 1", what);
	CHECK(trace_info(t)->pid == 42 && trace_info(t)->nthreads == 1, "%s: info", what);
	trace_close(t);
}

/*
 * Format 1's finaliser wrote event chunks in columns (MFX_CODEC_COLS);
 * format 2 reads them.  Columns stored (method 0) here.
 */
static void write_v1_trace(const char *path)
{
	uint8_t *f = new_file(MFX_HF_STACKS | MFX_HF_FINAL, 1);
	struct mfx_file_header *h = (void *)f;
	h->version = 1;
	struct mfx_thread_slot *slot = (void *)(f + MFX_HEADER_SIZE);
	slot->tid = 7;
	slot->events = 4;
	static uint8_t raw[4096], cols[COL_N][4096];
	struct mfx_chunk_header *rc = (void *)raw;
	*rc = (struct mfx_chunk_header){ .magic = MFX_CHUNK_MAGIC, .type = MFX_CT_EVENTS, .tid = 7,
					 .timebase = 1, .base_ts = 1000, .base_ns = 1000 };
	put_events(rc);
	struct col_buf c[COL_N];
	for (int i = 0; i < COL_N; i++)
		c[i] = (struct col_buf){ cols[i], cols[i] + sizeof(cols[i]) };
	const uint8_t *rp = (uint8_t *)(rc + 1);
	while (rp < (uint8_t *)(rc + 1) + rc->used)
		col_record(&rp, NULL, (uint8_t *)(rc + 1) + rc->used, NULL, c, 1, 1);
	/* chunks packed after the slot table of one thread */
	uint64_t first = MFX_HEADER_SIZE + MFX_SLOT_SIZE;
	struct mfx_chunk_header *ec = (void *)(f + first);
	*ec = *rc;
	ec->codec = MFX_CODEC_COLS;
	uint8_t *p = (uint8_t *)(ec + 1), *b = p;
	p = put_varint(p, COL_N);
	for (int i = 0; i < COL_N; i++) {
		p = put_varint(p, (uint64_t)(c[i].p - cols[i]));
		p = put_varint(p, (uint64_t)(c[i].p - cols[i]));
		*p++ = 0;
	}
	for (int i = 0; i < COL_N; i++) {
		memcpy(p, cols[i], (size_t)(c[i].p - cols[i]));
		p += c[i].p - cols[i];
	}
	ec->stored = (uint32_t)(p - b);
	ec->span = (uint32_t)((sizeof(*ec) + ec->stored + 7) & ~7u);
	struct mfx_chunk_header *m = (void *)((uint8_t *)ec + ec->span);
	*m = (struct mfx_chunk_header){ .magic = MFX_CHUNK_MAGIC, .type = MFX_CT_META,
					.timebase = 1 };
	put_stack(m);
	m->stored = m->used;
	m->span = (uint32_t)((sizeof(*m) + m->used + 7) & ~7u);
	h->first_chunk = first;
	h->next_chunk = (uint64_t)((uint8_t *)m + m->span - f);
	save(path, f, h->next_chunk);
	free(f);
}

/*
 * Thread 7 frees 0x5000 at t=1050 and thread 9 allocates it at t=1020: in
 * quanta of 100 ns both are at 1000.  Thread 7's stream comes first (lower
 * index), yet the block must be allocated before it is freed.  With TSC
 * times (tsc: 1 tick = 1 ns), thread 9's chunk's clock pair says 3 ns later
 * than thread 7's: its allocation reads as 1003 ns, the free as 1000, and
 * it still comes first (at 1000: times are kept to the quantum).
 */
static void test_handover(const char *path, int tsc)
{
	uint8_t *f = new_file(tsc ? MFX_HF_TSC : 0, 2);
	struct mfx_file_header *h = (void *)f;
	h->time_quantum = 100;
	h->tsc_hz = 1000000000;
	struct mfx_chunk_header *a = new_chunk(f, 0, MFX_CT_EVENTS, 7, 0, 1000);
	a->timebase = !tsc;
	uint8_t *p = (uint8_t *)(a + 1), *b = p;
	*p++ = MFX_K_FREE | MFX_F_SHR4;
	p = put_varint(p, 50);
	p = put_varint(p, zigzag(0x500));
	a->used = (uint32_t)(p - b);
	struct mfx_chunk_header *c = new_chunk(f, 1, MFX_CT_EVENTS, 9, 0, 1000);
	c->timebase = !tsc;
	c->base_ns += tsc ? 3 : 0;
	p = b = (uint8_t *)(c + 1);
	*p++ = MFX_K_MALLOC | MFX_F_SHR4;
	p = put_varint(p, 20);
	p = put_varint(p, 64);
	p = put_varint(p, zigzag(0x500));
	c->used = (uint32_t)(p - b);
	save(path, f, FSIZE);
	free(f);
	struct trace *t;
	struct trace_event ev[2];
	CHECK(trace_open(path, &t) == 0, "hand-over trace opens");
	CHECK(trace_next(t, &ev[0]) == 1 && trace_next(t, &ev[1]) == 1, "two events");
	CHECK(ev[0].kind == MFX_K_MALLOC && ev[0].tid == 9 && ev[1].kind == MFX_K_FREE &&
		      ev[0].ts_ns == 1000 && ev[1].ts_ns == 1000,
	      "allocated (thread %u) before freed (thread %u), both at 1000 ns", ev[0].tid, ev[1].tid);
	trace_close(t);
}

/*
 * The same hand-over behind another event of the allocating thread in the
 * quantum: thread 9 frees 0x900 at 1010 ns and gets 0x500 at 1020, thread 7
 * frees 0x500 at 1050 (all in [1000, 1100)): 9's two events come first.
 */
static void test_handover_behind(const char *path)
{
	uint8_t *f = new_file(0, 2);
	struct mfx_file_header *h = (void *)f;
	h->time_quantum = 100;
	struct mfx_chunk_header *a = new_chunk(f, 0, MFX_CT_EVENTS, 7, 0, 1000);
	uint8_t *p = (uint8_t *)(a + 1), *b = p;
	*p++ = MFX_K_FREE | MFX_F_SHR4;
	p = put_varint(p, 50);
	p = put_varint(p, zigzag(0x50));
	a->used = (uint32_t)(p - b);
	struct mfx_chunk_header *c = new_chunk(f, 1, MFX_CT_EVENTS, 9, 0, 1000);
	p = b = (uint8_t *)(c + 1);
	*p++ = MFX_K_FREE | MFX_F_SHR4;
	p = put_varint(p, 10);
	p = put_varint(p, zigzag(0x90));
	*p++ = MFX_K_MALLOC | MFX_F_SHR4;
	p = put_varint(p, 10);
	p = put_varint(p, 64);
	p = put_varint(p, zigzag(0x50 - 0x90));
	c->used = (uint32_t)(p - b);
	save(path, f, FSIZE);
	free(f);
	struct trace *t;
	struct trace_event ev[3];
	CHECK(trace_open(path, &t) == 0, "hand-over trace opens");
	CHECK(trace_next(t, &ev[0]) == 1 && trace_next(t, &ev[1]) == 1 &&
		      trace_next(t, &ev[2]) == 1, "three events");
	CHECK(ev[0].tid == 9 && ev[0].ptr == 0x900 && ev[1].tid == 9 && ev[1].ptr == 0x500 &&
		      ev[1].kind == MFX_K_MALLOC && ev[2].tid == 7 && ev[2].ptr == 0x500,
	      "thread 9's free and allocation of 0x500 before thread 7 frees it (got %u %#llx, "
	      "%u %#llx, %u %#llx)", ev[0].tid, (unsigned long long)ev[0].ptr, ev[1].tid,
	      (unsigned long long)ev[1].ptr, ev[2].tid, (unsigned long long)ev[2].ptr);
	CHECK(ev[0].ts_ns == 1000 && ev[1].ts_ns == 1000 && ev[2].ts_ns == 1000,
	      "all three at 1000 ns (the quantum)");
	trace_close(t);
}

static void test_version(const char *path)
{
	uint8_t *f = new_file(0, 0);
	((struct mfx_file_header *)f)->version = MFX_TRACE_VERSION + 1;
	save(path, f, MFX_FIRST_CHUNK);
	free(f);
	struct trace *t;
	CHECK(trace_open(path, &t) == -MFX_E_VERSION, "a newer format refused");
}

/* Every truncation and a sweep of byte flips: an error or a clean end, no crash. */
static void test_damage(const char *path)
{
	FILE *f = fopen(path, "rb");
	fseek(f, 0, SEEK_END);
	long size = ftell(f);
	rewind(f);
	uint8_t *buf = malloc((size_t)size), *copy = malloc((size_t)size);
	size_t r = fread(buf, 1, (size_t)size, f);
	fclose(f);
	CHECK(r == (size_t)size, "read back");
	int opened = 0, refused = 0;
	for (long cut = 0; cut < size; cut += cut < 8192 ? 61 : 4093) {
		struct trace *t;
		if (trace_open_mem(buf, (size_t)cut, &t) == 0) {
			struct trace_event ev;
			while (trace_next(t, &ev) > 0)
				;
			trace_close(t);
			opened++;
		} else {
			refused++;
		}
	}
	for (long i = 0; i < size; i += i < 8192 ? 7 : 997) {
		memcpy(copy, buf, (size_t)size);
		copy[i] ^= 0x5a;
		struct trace *t;
		if (trace_open_mem(copy, (size_t)size, &t) == 0) {
			struct trace_event ev;
			while (trace_next(t, &ev) > 0)
				;
			trace_close(t);
		}
	}
	CHECK(refused > 0, "truncated traces refused (%d refused, %d opened)", refused, opened);
	free(buf);
	free(copy);
}

static void finalize(const char *path, const char *what)
{
	struct finalize_stats st;
	int err = tfile_finalize(path, 0, &st);
	CHECK(err == 0, "%s: finalize: %s", what, mfx_strerror(-err));
	CHECK(st.events == 4 && st.final_bytes < st.raw_bytes / 100, "%s: finalize stats: %" PRIu64
	      " events, %" PRIu64 " -> %" PRIu64 " bytes", what, st.events, st.raw_bytes,
	      st.final_bytes);
}

int main(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/mfx-unit-%d.mfx", (int)getpid());
	test_varint();
	test_columns();
	write_raw_trace(path);
	check_events(path, "raw", 0);
	test_damage(path);
	finalize(path, "raw");
	check_events(path, "raw, finalised", 1);
	test_damage(path);
	write_drained_trace(path);
	check_events(path, "drained", 1);
	test_damage(path);
	finalize(path, "drained");
	check_events(path, "drained, finalised", 1);
	write_v1_trace(path);
	check_events(path, "format 1", 0);
	test_damage(path);
	test_handover(path, 0);
	test_handover(path, 1);
	test_handover_behind(path);
	test_version(path);
	unlink(path);
	return check_done("trace_codec");
}
