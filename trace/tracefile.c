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

#include "trace/tracefile.h"
#include "common/util.h"
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
	int fd = file_open(path, O_RDWR | O_NONBLOCK, 0);	/* never a symlink, never a FIFO's wait */
	if (fd < 0)
		return fd;
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < (off_t)MFX_FIRST_CHUNK) {
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
