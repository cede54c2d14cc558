/*
 * trace_codec.c - unit tests of the trace codecs: varints, the column
 * transform (split then join gives back the same bytes), and the reader on a
 * hand-built raw trace (exact events back), on its finalised form, and on
 * damaged copies (an error code, never a crash).
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
#include "trace/varint.h"

static int failures, checks;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		checks++;                                                 \
		if (!(cond)) {                                            \
			failures++;                                       \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);       \
			printf(__VA_ARGS__);                              \
			printf("\n");                                     \
		}                                                         \
	} while (0)

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

/* Write a raw trace file by hand: header, one EVENTS chunk, one META chunk
 * with a stack. Returns the path. */
static const char *write_raw_trace(char *path, size_t n)
{
	snprintf(path, n, "/tmp/mfx-unit-%d.mfx", (int)getpid());
	size_t size = MFX_FIRST_CHUNK + 2 * MFX_CHUNK_SIZE;
	uint8_t *f = calloc(1, size);
	struct mfx_file_header *h = (void *)f;
	h->magic = MFX_TRACE_MAGIC;
	h->version = MFX_TRACE_VERSION;
	h->header_size = MFX_HEADER_SIZE;
	h->chunk_size = MFX_CHUNK_SIZE;
	h->flags = MFX_HF_STACKS;	/* time base: ns */
	h->pid = 42;
	h->first_chunk = MFX_FIRST_CHUNK;
	h->next_chunk = size;
	h->nthreads = 1;
	strcpy(h->cmdline, "unit test");
	struct mfx_thread_slot *slot = (void *)(f + MFX_HEADER_SIZE);
	slot->tid = 7;
	slot->events = 4;
	/* events: malloc(100) -> 0x1000 at t=1000, calloc -> 0x2000, realloc
	 * 0x1000 -> 0x3000 (200), free 0x2000 */
	struct mfx_chunk_header *c = (void *)(f + MFX_FIRST_CHUNK);
	c->magic = MFX_CHUNK_MAGIC;
	c->type = MFX_CT_EVENTS;
	c->tid = 7;
	c->span = MFX_CHUNK_SIZE;
	c->timebase = 1;
	c->base_ts = c->base_ns = 1000;
	uint8_t *p = (uint8_t *)(c + 1), *b = p;
	*p++ = MFX_K_MALLOC | MFX_F_SHR4;
	p = put_varint(p, 0);
	p = put_varint(p, 100);
	p = put_varint(p, zigzag(0x1000 >> 4));
	p = put_varint(p, 1);
	*p++ = MFX_K_CALLOC | MFX_F_SHR4 | MFX_F_SAME_STACK;
	p = put_varint(p, 10);
	p = put_varint(p, 50);
	p = put_varint(p, zigzag(0x1000 >> 4));
	*p++ = MFX_K_REALLOC | MFX_F_SHR4 | MFX_F_SAME_STACK;
	p = put_varint(p, 10);
	p = put_varint(p, 200);
	p = put_varint(p, zigzag(-(0x1000 >> 4)));	/* old 0x1000, from 0x2000 */
	p = put_varint(p, zigzag(0x2000 >> 4));		/* new 0x3000, from the old */
	*p++ = MFX_K_FREE | MFX_F_SHR4;
	p = put_varint(p, 10);
	p = put_varint(p, zigzag(-(0x1000 >> 4)));	/* 0x2000 from 0x3000 */
	c->used = (uint32_t)(p - b);
	struct mfx_chunk_header *m = (void *)(f + MFX_FIRST_CHUNK + MFX_CHUNK_SIZE);
	m->magic = MFX_CHUNK_MAGIC;
	m->type = MFX_CT_META;
	m->span = MFX_CHUNK_SIZE;
	m->timebase = 1;
	p = b = (uint8_t *)(m + 1);
	uint8_t body[64], *q = body;
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
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t w = write(fd, f, size);
	(void)w;
	close(fd);
	free(f);
	return path;
}

static void check_events(const char *path, const char *what)
{
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
			      ev[0].ts_ns == 1000 && ev[0].stack == 1 && ev[0].tid == 7,
		      "%s: malloc decoded", what);
		CHECK(ev[1].kind == MFX_K_CALLOC && ev[1].ptr == 0x2000 && ev[1].stack == 1 &&
			      ev[1].ts_ns == 1010, "%s: calloc decoded", what);
		CHECK(ev[2].kind == MFX_K_REALLOC && ev[2].old_ptr == 0x1000 && ev[2].ptr == 0x3000 &&
			      ev[2].size == 200, "%s: realloc decoded", what);
		CHECK(ev[3].kind == MFX_K_FREE && ev[3].ptr == 0x2000 && ev[3].ts_ns == 1030,
		      "%s: free decoded", what);
	}
	uint32_t depth = 0;
	const uint64_t *fr = trace_stack(t, 1, &depth);
	CHECK(fr && depth == 2 && fr[0] == 0x401000 && fr[1] == 0x401020, "%s: stack 1", what);
	CHECK(trace_info(t)->pid == 42 && trace_info(t)->nthreads == 1, "%s: info", what);
	trace_close(t);
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

int main(void)
{
	test_varint();
	test_columns();
	char path[64];
	write_raw_trace(path, sizeof(path));
	check_events(path, "raw");
	test_damage(path);
	struct finalize_stats st;
	int err = tfile_finalize(path, 0, &st);
	CHECK(err == 0, "finalize: %s", mfx_strerror(-err));
	CHECK(st.events == 4 && st.final_bytes < st.raw_bytes, "finalize stats: %" PRIu64 " events, "
	      "%" PRIu64 " -> %" PRIu64 " bytes", st.events, st.raw_bytes, st.final_bytes);
	check_events(path, "final");
	test_damage(path);
	unlink(path);
	printf("%d checks, %d failures\n", checks, failures);
	return failures != 0;
}
