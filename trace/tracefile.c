/*
 * tracefile.c - mfx's side of a trace file (see tracefile.h).
 *
 * mfx appends through the same bump counter as the agent (an atomic add on
 * the shared header page), so its chunks interleave safely with the agent's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <x86intrin.h>
#include <zstd.h>

#include "trace/tracefile.h"
#include "common/util.h"
#include "trace/columns.h"
#include "trace/varint.h"

uint64_t tfile_tsc(void)
{
	unsigned aux;
	return __rdtscp(&aux);
}

int tfile_open(const char *path, struct tfile *tf)
{
	memset(tf, 0, sizeof(*tf));
	tf->fd = -1;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) || st.st_size < (off_t)MFX_FIRST_CHUNK) {
		close(fd);
		return -EAGAIN;
	}
	void *m = mmap(NULL, MFX_FIRST_CHUNK, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		int e = -errno;
		close(fd);
		return e;
	}
	struct mfx_file_header *h = m;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != MFX_TRACE_MAGIC) {
		munmap(m, MFX_FIRST_CHUNK);
		close(fd);
		return -EAGAIN;
	}
	tf->fd = fd;
	tf->hdr = h;
	tf->slots = (struct mfx_thread_slot *)((uint8_t *)m + MFX_HEADER_SIZE);
	snprintf(tf->path, sizeof(tf->path), "%s", path);
	return 0;
}

void tfile_close(struct tfile *tf)
{
	if (tf->chunk)
		munmap(tf->chunk, MFX_CHUNK_SIZE);
	if (tf->hdr)
		munmap(tf->hdr, MFX_FIRST_CHUNK);
	if (tf->fd >= 0)
		close(tf->fd);
	memset(tf, 0, sizeof(*tf));
	tf->fd = -1;
}

void tfile_progress(const struct tfile *tf, struct tfile_progress *p)
{
	memset(p, 0, sizeof(*p));
	if (!tf->hdr)
		return;
	uint32_t n = tf->hdr->nthreads;
	if (n > MFX_THREAD_SLOTS)
		n = MFX_THREAD_SLOTS;
	p->threads = n;
	for (uint32_t i = 0; i < n; i++) {
		const volatile struct mfx_thread_slot *s = &tf->slots[i];
		p->events += s->events;
		p->alloc_bytes += s->alloc_bytes;
		p->alloc_calls += s->alloc_calls;
		p->free_calls += s->free_calls;
	}
}

void tfile_request_stop(struct tfile *tf)
{
	if (tf->hdr)
		__atomic_store_n(&tf->hdr->stop, 1, __ATOMIC_SEQ_CST);
}

/* Map a fresh MFX chunk. */
static int next_chunk(struct tfile *tf)
{
	if (tf->chunk)
		munmap(tf->chunk, MFX_CHUNK_SIZE);
	tf->chunk = NULL;
	uint64_t off = __atomic_fetch_add(&tf->hdr->next_chunk, MFX_CHUNK_SIZE, __ATOMIC_SEQ_CST);
	if (fallocate(tf->fd, 0, (off_t)off, MFX_CHUNK_SIZE)) {
		char z = 0;
		if ((errno != EOPNOTSUPP && errno != ENOSYS) ||
		    pwrite(tf->fd, &z, 1, (off_t)(off + MFX_CHUNK_SIZE - 1)) != 1)
			return -errno;
	}
	struct mfx_chunk_header *c = mmap(NULL, MFX_CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
					  tf->fd, (off_t)off);
	if (c == MAP_FAILED)
		return -errno;
	c->type = MFX_CT_MFX;
	c->codec = MFX_CODEC_RAW;
	c->seq = tf->seq++;
	c->span = MFX_CHUNK_SIZE;
	c->timebase = 1;
	c->base_ns = c->base_ts = now_ns();
	__atomic_store_n(&c->magic, MFX_CHUNK_MAGIC, __ATOMIC_RELEASE);
	tf->chunk = c;
	tf->cur = (uint8_t *)(c + 1);
	tf->limit = (uint8_t *)c + MFX_CHUNK_SIZE;
	return 0;
}

static int append_ext(struct tfile *tf, unsigned kind, const uint8_t *body, size_t blen)
{
	if (!tf->hdr)
		return -EBADF;
	if (blen > MFX_CHUNK_SIZE / 2)
		return -E2BIG;
	size_t need = blen + 12;
	if (!tf->chunk || tf->cur + need > tf->limit) {
		int err = next_chunk(tf);
		if (err)
			return err;
	}
	uint8_t *p = tf->cur;
	*p++ = MFX_K_EXT;
	*p++ = (uint8_t)kind;
	p = put_varint(p, blen);
	memcpy(p, body, blen);
	tf->cur = p + blen;
	__atomic_store_n(&tf->chunk->used, (uint32_t)(tf->cur - (uint8_t *)(tf->chunk + 1)),
			 __ATOMIC_RELEASE);
	return 0;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t max)
{
	size_t l = strnlen(s, max);
	p = put_varint(p, l);
	memcpy(p, s, l);
	return p + l;
}

int tfile_sample(struct tfile *tf, uint64_t ts_ns, const uint64_t v[MFX_SF_NFIELDS])
{
	uint8_t body[16 + MFX_SF_NFIELDS * 10], *p = body;
	p = put_varint(p, ts_ns);
	p = put_varint(p, MFX_SF_NFIELDS);
	for (int i = 0; i < MFX_SF_NFIELDS; i++)
		p = put_varint(p, v[i]);
	return append_ext(tf, MFX_EXT_SAMPLE, body, (size_t)(p - body));
}

int tfile_mark(struct tfile *tf, uint64_t ts_ns, uint32_t kind, const uint64_t *vals,
	       uint32_t nvals, const char *text)
{
	uint8_t body[8192], *p = body;
	if (nvals > 16)
		nvals = 16;
	p = put_varint(p, ts_ns);
	p = put_varint(p, kind);
	p = put_varint(p, nvals);
	for (uint32_t i = 0; i < nvals; i++)
		p = put_varint(p, vals[i]);
	p = put_str(p, text ? text : "", sizeof(body) - 200);
	return append_ext(tf, MFX_EXT_MARK, body, (size_t)(p - body));
}

int tfile_info(struct tfile *tf, const char *key, const char *value)
{
	uint8_t body[4200], *p = body;
	p = put_str(p, key, 64);
	p = put_str(p, value, 4096);
	return append_ext(tf, MFX_EXT_INFO, body, (size_t)(p - body));
}

int tfile_thread(struct tfile *tf, uint32_t tid, const char *name)
{
	uint8_t body[128], *p = body;
	p = put_varint(p, tid);
	p = put_str(p, name, 64);
	return append_ext(tf, MFX_EXT_THREAD, body, (size_t)(p - body));
}

int tfile_sync(struct tfile *tf)
{
	uint8_t body[24], *p = body;
	unsigned shift = tf->hdr ? tf->hdr->tsc_shift & 31 : 0;
	uint64_t tsc = tfile_tsc();
	uint64_t ns = now_ns();
	p = put_varint(p, tsc >> shift);
	p = put_varint(p, ns);
	return append_ext(tf, MFX_EXT_SYNC, body, (size_t)(p - body));
}

/* ---- finalising ----------------------------------------------------------------- */

struct writer {
	FILE *f;
	uint64_t off;
};

static int wr(struct writer *w, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, w->f) != n)
		return -EIO;
	w->off += n;
	return 0;
}

struct zbufs {
	ZSTD_CCtx *z;
	uint8_t *out;		/* compressed payload */
	size_t outcap;
	uint8_t *cols;		/* COL_N column buffers of chunk_size each */
};

static int grow(uint8_t **b, size_t *cap, size_t need)
{
	if (*cap >= need)
		return 0;
	uint8_t *nb = realloc(*b, need);
	if (!nb)
		return -ENOMEM;
	*b = nb;
	*cap = need;
	return 0;
}

/*
 * EVENTS payload -> MFX_CODEC_COLS in zb->out.  Returns the stored length,
 * or 0 when the payload does not parse (kept as plain zstd then).
 */
static size_t encode_cols(struct zbufs *zb, const uint8_t *src, uint32_t used, int stacks)
{
	struct col_buf col[COL_N];
	for (int i = 0; i < COL_N; i++)
		col[i] = (struct col_buf){ zb->cols + (size_t)i * used, zb->cols + (size_t)(i + 1) * used };
	const uint8_t *rp = src, *rend = src + used;
	while (rp < rend)
		if (col_record(&rp, NULL, rend, NULL, col, 1, stacks))
			return 0;
	size_t bound = 64;
	for (int i = 0; i < COL_N; i++)
		bound += ZSTD_compressBound(used);
	if (grow(&zb->out, &zb->outcap, bound))
		return 0;
	uint8_t *hdr = zb->out, *data = zb->out + 64, *p = hdr;
	p = put_varint(p, COL_N);
	for (int i = 0; i < COL_N; i++) {
		const uint8_t *base = zb->cols + (size_t)i * used;
		size_t raw = (size_t)(col[i].p - base);
		size_t r = raw > 32 ? ZSTD_compressCCtx(zb->z, data, bound - (size_t)(data - zb->out),
							   base, raw, 3)
				    : 0;
		int method = raw > 32 && !ZSTD_isError(r) && r < raw;
		if (!method) {
			memcpy(data, base, raw);
			r = raw;
		}
		p = put_varint(p, raw);
		p = put_varint(p, r);
		*p++ = (uint8_t)method;
		data += r;
	}
	/* Close the gap between the column table and the data. */
	size_t hl = (size_t)(p - hdr), dl = (size_t)(data - (zb->out + 64));
	memmove(zb->out + hl, zb->out + 64, dl);
	return hl + dl;
}

/* Copy one chunk, compressed when that saves space.  Empty event chunks
 * (a thread that got a slot and exited) are dropped. */
static int copy_chunk(struct writer *w, const struct mfx_chunk_header *c, struct zbufs *zb,
		      int stacks)
{
	uint32_t used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
	const uint8_t *src = (const uint8_t *)(c + 1);
	if (used == 0 && c->type == MFX_CT_EVENTS)
		return 0;
	struct mfx_chunk_header h = *c;
	const uint8_t *out = src;
	size_t outlen = c->codec == MFX_CODEC_RAW ? used : c->stored;	/* else: copied as is */
	if (c->codec == MFX_CODEC_RAW && used > 64 && c->type == MFX_CT_EVENTS) {
		size_t r = encode_cols(zb, src, used, stacks);
		if (r && r < used) {
			out = zb->out;
			outlen = r;
			h.codec = MFX_CODEC_COLS;
		}
	}
	if (c->codec == MFX_CODEC_RAW && used > 64 && h.codec == MFX_CODEC_RAW) {
		size_t bound = ZSTD_compressBound(used);
		if (grow(&zb->out, &zb->outcap, bound))
			return -ENOMEM;
		size_t r = ZSTD_compressCCtx(zb->z, zb->out, bound, src, used, 3);
		if (!ZSTD_isError(r) && r < used) {
			out = zb->out;
			outlen = r;
			h.codec = MFX_CODEC_ZSTD;
		}
	}
	h.used = used;
	h.stored = (uint32_t)outlen;
	h.span = (uint32_t)((sizeof(h) + outlen + 7) & ~(size_t)7);
	static const uint8_t pad[8];
	int err = wr(w, &h, sizeof(h));
	if (!err)
		err = wr(w, out, outlen);
	if (!err)
		err = wr(w, pad, h.span - sizeof(h) - outlen);
	return err;
}

int tfile_finalize(const char *path, uint64_t tsc_hz, struct finalize_stats *st)
{
	struct finalize_stats dummy;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
	if (fd < 0)
		return -errno;
	struct stat sb;
	if (fstat(fd, &sb) || sb.st_size < (off_t)MFX_FIRST_CHUNK) {
		close(fd);
		return -MFX_E_TRUNCATED;
	}
	size_t size = (size_t)sb.st_size;
	const uint8_t *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -errno;
	struct mfx_file_header h;
	memcpy(&h, m, sizeof(h));
	if (h.magic != MFX_TRACE_MAGIC || h.first_chunk < MFX_FIRST_CHUNK ||
	    h.chunk_size < 4096 || h.chunk_size > (64u << 20) || h.first_chunk > size) {
		munmap((void *)m, size);
		return -MFX_E_CORRUPT;
	}
	st->raw_bytes = h.next_chunk < size ? h.next_chunk : size;
	if (h.flags & MFX_HF_FINAL) {
		munmap((void *)m, size);
		st->final_bytes = size;
		return 0;
	}
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	struct writer w = { fopen(tmp, "we"), 0 };
	struct zbufs zb = { ZSTD_createCCtx(), NULL, 0, malloc((size_t)COL_N * h.chunk_size) };
	if (!w.f || !zb.z || !zb.cols) {
		err = w.f ? -ENOMEM : -errno;
		goto out;
	}
	/* The header, and only the slots handed out; patched at the end. */
	uint32_t nslots = h.nthreads < MFX_THREAD_SLOTS ? h.nthreads : MFX_THREAD_SLOTS;
	uint64_t first = MFX_HEADER_SIZE + (uint64_t)nslots * MFX_SLOT_SIZE;
	if ((err = wr(&w, m, first)))
		goto out;
	uint64_t limit = st->raw_bytes;
	for (uint64_t off = h.first_chunk; off + sizeof(struct mfx_chunk_header) <= limit;) {
		const struct mfx_chunk_header *c = (const void *)(m + off);
		uint32_t magic = __atomic_load_n(&c->magic, __ATOMIC_ACQUIRE);
		if (magic == 0) {
			off += h.chunk_size;
			continue;
		}
		if (magic != MFX_CHUNK_MAGIC || c->span < sizeof(*c) || c->span > limit - off) {
			err = -MFX_E_CORRUPT;
			goto out;
		}
		if (c->used > h.chunk_size) {
			err = -MFX_E_CORRUPT;
			goto out;
		}
		if ((err = copy_chunk(&w, c, &zb, !!(h.flags & MFX_HF_STACKS))))
			goto out;
		st->chunks++;
		off += c->span;
	}
	h.flags |= MFX_HF_FINAL;
	h.first_chunk = first;
	h.next_chunk = w.off;
	if (tsc_hz)
		h.tsc_hz = tsc_hz;
	const struct mfx_thread_slot *slots = (const void *)(m + MFX_HEADER_SIZE);
	for (uint32_t i = 0; i < h.nthreads && i < MFX_THREAD_SLOTS; i++)
		st->events += slots[i].events;
	st->final_bytes = w.off;
	if (fseek(w.f, 0, SEEK_SET) || fwrite(&h, 1, sizeof(h), w.f) != sizeof(h) || fflush(w.f)) {
		err = -EIO;
		goto out;
	}
	if (fclose(w.f)) {
		w.f = NULL;
		err = -errno;
		goto out;
	}
	w.f = NULL;
	if (rename(tmp, path))
		err = -errno;
out:
	if (w.f)
		fclose(w.f);
	if (err)
		unlink(tmp);
	ZSTD_freeCCtx(zb.z);
	free(zb.out);
	free(zb.cols);
	munmap((void *)m, size);
	return err;
}
