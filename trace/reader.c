/*
 * reader.c - the trace reader (see reader.h): checks the header, walks the
 * chunks, loads the metadata (reader_meta.c); events are decoded by
 * reader_chunk.c and merged by reader_merge.c (reader_int.h says who does
 * what).  Every length and offset read from the file is checked before use:
 * a malformed trace ends in -MFX_E_CORRUPT, never in a crash.
 *
 * Memory and time are bounded by the file's size, whatever its bytes say
 * (a 659 KB corrupted trace once made report allocate 13.6 GB): a stack
 * id by how many STACK records the file can hold, a chunk's decoded size
 * by the raw slot size, the decoded bytes of all chunks together by
 * DECODE_RATIO times the file (plus a floor), and an event's stack id by
 * the stacks actually defined (others read as 0, "no stack").  The file is
 * read with pread(), a chunk at a time, not mapped: the reader's memory
 * does not grow with the trace (a billion events: docs/bench.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trace/reader_int.h"
#include "common/util.h"
#include "common/error.h"
#include "trace/evcodec.h"

/* Decoded bytes allowed per byte of file (zstd and the column codec do not
 * reach this on event data), plus a floor for small files. */
#define DECODE_RATIO 256u
#define DECODE_FLOOR (64ull << 20)

#define GROW(arr, n, cap)                                                             \
	do {                                                                          \
		if (grow_array(&(arr), &(cap), (n), sizeof(*(arr))))                  \
			return -ENOMEM;                                               \
	} while (0)

/* ---- opening ------------------------------------------------------------------------ */

static struct tstream *stream_for(struct trace *t, uint32_t tid)
{
	for (size_t i = t->nth; i-- > 0;)	/* recent threads first */
		if (t->th[i].tid == tid)
			return &t->th[i];
	if (grow_array(&t->th, &t->capth, t->nth, sizeof(*t->th)))
		return NULL;
	struct tstream *s = &t->th[t->nth++];
	memset(s, 0, sizeof(*s));
	s->tid = tid;
	return s;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct chunk_ref *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	if (x->base_ts != y->base_ts)
		return x->base_ts < y->base_ts ? -1 : 1;
	return x->used > y->used ? -1 : x->used < y->used;	/* longest copy first */
}

/*
 * The same chunk twice: a slot copied while its thread still filled it (a
 * process that never saw the stop) and copied again later, by the agent
 * once mfx was gone.  Same thread, seq and start time: keep the longest,
 * which holds the other as a prefix.
 */
static void drop_copies(struct tstream *s)
{
	size_t w = 0;
	for (size_t i = 0; i < s->nchunks; i++) {
		const struct chunk_ref *c = &s->chunks[i];
		if (w && s->chunks[w - 1].seq == c->seq && s->chunks[w - 1].base_ts == c->base_ts)
			continue;
		s->chunks[w++] = *c;
	}
	s->nchunks = w;
}

/* One chunk header at off: an EVENTS chunk noted in its thread's stream,
 * a META or MFX chunk's records loaded; *span set (0: an unwritten slot). */
static int walk_one(struct trace *t, uint64_t off, int final, uint32_t *span)
{
	const uint8_t *hp;
	int err = rd_read(t, &t->mx, off, sizeof(struct mfx_chunk_header), &hp);
	if (err)
		return err;
	const struct mfx_chunk_header *c = (const struct mfx_chunk_header *)hp;
	uint32_t magic = __atomic_load_n(&c->magic, __ATOMIC_ACQUIRE);
	*span = 0;
	if (magic == 0 && !final)	/* nothing (more) written in this slot */
		return 0;
	if (magic != MFX_CHUNK_MAGIC || c->span < sizeof(*c) || c->span > t->limit - off ||
	    (c->span & 7))
		return -MFX_E_CORRUPT;
	*span = c->span;
	if (c->type == MFX_CT_EVENTS) {
		struct tstream *s = stream_for(t, c->tid);
		if (!s)
			return -ENOMEM;
		GROW(s->chunks, s->nchunks, s->cap);
		uint32_t used = __atomic_load_n(&c->used, __ATOMIC_ACQUIRE);
		s->chunks[s->nchunks++] = (struct chunk_ref){ off, c->seq, used, c->base_ts };
		t->decoded += used;
		if (c->timebase == 0)
			rd_note_sync(t, c->base_ts, c->base_ns);
	} else if (c->type == MFX_CT_META || c->type == MFX_CT_MFX) {
		const uint8_t *p;
		size_t len;
		if (!(err = rd_chunk(t, &t->mx, off, &c)))
			err = rd_payload(t, &t->mx, c, &t->metabuf, &t->metacap, &p, &len);
		if (!err)
			err = rd_parse_meta(t, p, p + len);
		if (err)
			return err;
	}	/* unknown types: skipped */
	return 0;
}

static int walk_chunks(struct trace *t)
{
	uint64_t off = t->hdr.first_chunk;
	int final = !!(t->hdr.flags & MFX_HF_FINAL);
	while (off + sizeof(struct mfx_chunk_header) <= t->limit) {
		uint32_t span;
		int err = walk_one(t, off, final, &span);
		if (err)
			return err;
		if (!span) {
			uint64_t cs = t->hdr.chunk_size;
			off = t->hdr.first_chunk + ((off - t->hdr.first_chunk) / cs + 1) * cs;
			continue;
		}
		off += span;
	}
	if (final && off != t->limit && t->limit - off >= sizeof(struct mfx_chunk_header))
		return -MFX_E_TRUNCATED;
	if (t->decoded > DECODE_FLOOR + (uint64_t)DECODE_RATIO * t->size)
		return -MFX_E_CORRUPT;	/* more than any real trace this size decodes to */
	return 0;
}

static void fit_clock(struct trace *t)
{
	if (!(t->hdr.flags & MFX_HF_TSC)) {
		t->ns_per_unit = 1.0;
	} else if (t->hdr.tsc_hz) {
		t->ns_per_unit = 1e9 * (double)(1ull << (t->hdr.tsc_shift & 31)) / (double)t->hdr.tsc_hz;
	} else {
		/* The header's start and end pairs count too (raw TSC there). */
		uint64_t sh = t->hdr.tsc_shift & 31;
		if (t->hdr.start_tsc && t->hdr.start_ns)
			rd_note_sync(t, t->hdr.start_tsc >> sh, t->hdr.start_ns);
		if (t->hdr.end_tsc && t->hdr.end_ns)
			rd_note_sync(t, t->hdr.end_tsc >> sh, t->hdr.end_ns);
		uint64_t du = t->sync_hi_u - t->sync_lo_u, dn = t->sync_hi_ns - t->sync_lo_ns;
		if (t->have_sync && du > 0 && dn >= 1000000 && t->sync_hi_ns > t->sync_lo_ns)
			t->ns_per_unit = (double)dn / (double)du;
		else	/* too short to measure: assume a 2.5 GHz TSC */
			t->ns_per_unit = (double)(1ull << sh) / 2.5;
	}
	/* A damaged header can make the rate anything: keep the cast defined. */
	if (!(t->ns_per_unit > 0 && t->ns_per_unit < 4294967296.0))
		t->ns_per_unit = 1;
	t->mult = (uint64_t)(t->ns_per_unit * 4294967296.0);
	t->quantum = t->hdr.time_quantum ? t->hdr.time_quantum : 1;
	t->quantum_ns = (uint64_t)((double)t->quantum * t->ns_per_unit + 0.999);
}

static int check_header(struct trace *t)
{
	const uint8_t *hp;
	int err = rd_read(t, &t->mx, 0, sizeof(t->hdr), &hp);
	if (err || t->size < MFX_HEADER_SIZE)
		return err ? err : -MFX_E_TRUNCATED;
	memcpy(&t->hdr, hp, sizeof(t->hdr));
	struct mfx_file_header *h = &t->hdr;
	if (h->magic != MFX_TRACE_MAGIC)
		return -MFX_E_CORRUPT;
	if (h->version > MFX_TRACE_VERSION)
		return -MFX_E_VERSION;
	if (h->header_size != MFX_HEADER_SIZE || h->chunk_size < 4096 ||
	    h->chunk_size > (64u << 20) || (h->chunk_size & 7) || h->first_chunk < MFX_HEADER_SIZE ||
	    (h->first_chunk & 7))
		return -MFX_E_CORRUPT;
	if (h->first_chunk > t->size)
		return -MFX_E_TRUNCATED;
	h->exe[sizeof(h->exe) - 1] = 0;
	h->cmdline[sizeof(h->cmdline) - 1] = 0;
	/* A raw file may be longer (preallocated) or shorter (crash, copy) than
	 * the slots handed out. */
	t->limit = t->size;
	if (!(h->flags & MFX_HF_FINAL) && h->next_chunk >= h->first_chunk && h->next_chunk < t->size)
		t->limit = h->next_chunk;
	return 0;
}

static uint64_t count_events(struct trace *t)
{
	uint64_t n = 0;
	/* A final file keeps only the slots handed out. */
	uint64_t room = (t->hdr.first_chunk - MFX_HEADER_SIZE) / MFX_SLOT_SIZE;
	uint32_t k = t->hdr.nthreads < MFX_THREAD_SLOTS ? t->hdr.nthreads : MFX_THREAD_SLOTS;
	if (k > room)
		k = (uint32_t)room;
	const uint8_t *p;
	if (rd_read(t, &t->mx, MFX_HEADER_SIZE, (size_t)k * sizeof(struct mfx_thread_slot), &p))
		return 0;
	const struct mfx_thread_slot *s = (const struct mfx_thread_slot *)p;
	for (uint32_t i = 0; i < k; i++)
		n += s[i].events;
	return n;
}

static int open_common(struct trace *t)
{
	int err = check_header(t);
	if (!err)
		err = walk_chunks(t);
	if (err)
		return err;
	fit_clock(t);
	t->tids = calloc(t->nth + 1, sizeof(uint32_t));
	t->heap = calloc(t->nth + 1, sizeof(uint32_t));
	if (!t->tids || !t->heap)
		return -ENOMEM;
	for (size_t i = 0; i < t->nth; i++) {
		struct tstream *s = &t->th[i];
		qsort(s->chunks, s->nchunks, sizeof(*s->chunks), cmp_ref);
		drop_copies(s);
		t->tids[i] = s->tid;
	}
	struct trace_info *in = &t->info;
	in->version = t->hdr.version;
	in->flags = t->hdr.flags;
	in->pid = t->hdr.pid;
	in->ppid = t->hdr.ppid;
	in->stack_depth = t->hdr.stack_depth;
	in->sample_bytes = (t->hdr.flags & MFX_HF_SAMPLED) ? t->hdr.sample_bytes : 0;
	in->exe = t->hdr.exe;
	in->command = t->hdr.cmdline;
	in->start_ns = t->hdr.window_start_ns ? t->hdr.window_start_ns : t->hdr.start_ns;
	in->end_ns = t->hdr.window_end_ns ? t->hdr.window_end_ns : t->hdr.end_ns;
	for (size_t i = 0; i < t->nsamples; i++)
		if (t->samples[i].ts_ns > in->end_ns)
			in->end_ns = t->samples[i].ts_ns;
	in->window_start_ns = t->hdr.window_start_ns;
	in->window_end_ns = t->hdr.window_end_ns;
	/* mfx marks the end of the window too: the agent only notes it at the
	 * process's next allocation call, which may never come. */
	for (size_t i = 0; i < t->nmarks; i++)
		if (t->marks[i].kind == MFX_MARK_WINDOW_END && t->marks[i].ts_ns &&
		    (!in->window_end_ns || t->marks[i].ts_ns < in->window_end_ns) &&
		    strcmp(t->marks[i].text, "exit"))
			in->window_end_ns = t->marks[i].ts_ns;
	in->start_realtime_ns = t->hdr.start_realtime_ns;
	in->dropped_events = t->hdr.dropped_events;
	in->dropped_chunks = t->hdr.dropped_chunks;
	in->degraded = t->hdr.degraded;
	in->fail_errno = t->hdr.fail_errno;
	t->hdr.fail_what[sizeof(t->hdr.fail_what) - 1] = 0;
	in->fail_what = t->hdr.fail_what;
	in->nthreads = (uint32_t)t->nth;
	in->tids = t->tids;
	in->nevents = count_events(t);
	in->file_bytes = t->size;
	return 0;
}

static struct trace *trace_new(void)
{
	struct trace *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->fd = -1;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->work, NULL);
	pthread_cond_init(&t->ready, NULL);
	return t;
}

int trace_open_mem(const void *buf, size_t len, struct trace **out)
{
	struct trace *t = trace_new();
	if (!t)
		return -ENOMEM;
	t->map = buf;
	t->size = len;
	int err = open_common(t);
	if (err) {
		trace_close(t);
		return err;
	}
	*out = t;
	return 0;
}

int trace_open(const char *path, struct trace **out)
{
	int fd = open_read(path);	/* in the run directory: through its fd */
	if (fd < 0)
		return fd;
	struct stat st;
	struct trace *t = NULL;
	int err = fstat(fd, &st) ? -errno : 0;
	if (!err && !S_ISREG(st.st_mode))
		err = -MFX_E_CORRUPT;
	if (!err && st.st_size < (off_t)MFX_HEADER_SIZE)
		err = st.st_size == 0 ? -MFX_E_NOTRACE : -MFX_E_TRUNCATED;
	if (!err && !(t = trace_new()))
		err = -ENOMEM;
	if (err) {
		close(fd);
		return err;
	}
	/* read once, front to back: the kernel may read ahead */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	t->fd = fd;
	t->size = (size_t)st.st_size;
	if ((err = open_common(t))) {
		trace_close(t);
		return err;
	}
	*out = t;
	return 0;
}

void trace_close(struct trace *t)
{
	if (!t)
		return;
	rd_streams_free(t);
	for (size_t i = 0; i < t->nth; i++) {
		free(t->th[i].chunks);
		free(t->th[i].buf);
		evc_dec_free(t->th[i].dec);
	}
	free(t->th);
	free(t->tids);
	free(t->heap);
	for (uint32_t i = 0; i < t->nstacks; i++)
		if (t->stacks[i])
			free(t->stacks[i] - 1);
	free(t->stacks);
	for (size_t i = 0; i < t->nmods; i++)
		free(t->mods[i].path);
	free(t->mods);
	free(t->samples);
	for (size_t i = 0; i < t->nmarks; i++)
		free(t->marks[i].text);
	free(t->marks);
	for (size_t i = 0; i < t->ninfos; i++) {
		free(t->infos[i].k);
		free(t->infos[i].v);
	}
	free(t->infos);
	for (size_t i = 0; i < t->nthreadnames; i++) {
		free(t->threads[i].k);
		free(t->threads[i].v);
	}
	free(t->threads);
	rd_ctx_free(&t->mx);
	free(t->metabuf);
	if (t->fd >= 0)
		close(t->fd);
	pthread_cond_destroy(&t->ready);
	pthread_cond_destroy(&t->work);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

/* ---- accessors ------------------------------------------------------------------------------- */

const struct trace_info *trace_info(const struct trace *t)
{
	return &t->info;
}

const uint64_t *trace_stack(const struct trace *t, uint32_t id, uint32_t *depth)
{
	if (id == 0 || id >= t->nstacks || !t->stacks[id])
		return NULL;
	*depth = (uint32_t)t->stacks[id][-1];
	return t->stacks[id];
}

uint32_t trace_nstacks(const struct trace *t)
{
	uint32_t n = t->nstacks;
	while (n > 0 && !t->stacks[n - 1])
		n--;
	return n;
}

size_t trace_modules(const struct trace *t, const struct trace_module **mods)
{
	*mods = t->mods;
	return t->nmods;
}

const struct trace_module *trace_module_at(const struct trace *t, uint64_t addr)
{
	const struct trace_module *best = NULL;
	for (size_t i = 0; i < t->nmods; i++) {
		const struct trace_module *m = &t->mods[i];
		if (addr >= m->lo && addr < m->hi && (!best || m->ts_ns >= best->ts_ns))
			best = m;	/* latest load wins when ranges were reused */
	}
	return best;
}

size_t trace_samples(const struct trace *t, const struct trace_sample **s)
{
	*s = t->samples;
	return t->nsamples;
}

size_t trace_marks(const struct trace *t, const struct trace_mark **m)
{
	*m = t->marks;
	return t->nmarks;
}

const char *trace_thread_name(const struct trace *t, uint32_t tid)
{
	char k[24];
	snprintf(k, sizeof(k), "%u", tid);
	for (size_t i = t->nthreadnames; i-- > 0;)
		if (!strcmp(t->threads[i].k, k))
			return t->threads[i].v;
	return NULL;
}

const char *trace_info_value(const struct trace *t, const char *key)
{
	for (size_t i = t->ninfos; i-- > 0;)
		if (!strcmp(t->infos[i].k, key))
			return t->infos[i].v;
	return NULL;
}

enum trace_class trace_kind_class(unsigned kind)
{
	switch (kind) {
	case MFX_K_MALLOC: return TC_MALLOC;
	case MFX_K_CALLOC: return TC_CALLOC;
	case MFX_K_REALLOC:
	case MFX_K_REALLOCARRAY: return TC_REALLOC;
	case MFX_K_FREE: return TC_FREE;
	default: return TC_MEMALIGN;
	}
}

const char *trace_class_name(enum trace_class c)
{
	static const char *const n[] = { "malloc", "calloc", "realloc", "free", "memalign" };
	return c < TC_NCLASSES ? n[c] : "?";
}

const char *trace_kind_name(unsigned kind)
{
	static const char *const n[] = {
		"pad", "malloc", "calloc", "realloc", "reallocarray", "free", "posix_memalign",
		"aligned_alloc", "memalign", "valloc", "pvalloc",
	};
	return kind < sizeof(n) / sizeof(n[0]) ? n[kind] : "?";
}
