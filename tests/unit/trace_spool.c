/*
 * trace_spool.c - unit test of mfx's end of the spool (trace/spool.c) with a
 * real memfd, a real drain thread and a real trace file: this test plays
 * the agent, fills slots with raw events, marks them FULL, and asks the
 * drain to stop while its first pass is still encoding them (the end of an
 * attach window when the agent answers STOP at once).  Every event must be
 * in the finalised trace, counted by the reader: a pass cut short by the
 * stop used to leave the slots it had claimed DRAINING, and the final drain
 * skipped them (events lost, the summary still "complete").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "common/util.h"
#include "trace/reader.h"
#include "trace/spool.h"
#include "trace/spool_format.h"
#include "trace/tracefile.h"
#include "trace/varint.h"

#define NSLOTS 240u	/* slots filled: far more than a pass encodes in a blink */
#define UID 0x5eed5eedull
#define TID 7u

/* A raw trace as the agent starts it: the header and the slot table. */
static int write_trace(const char *path)
{
	uint8_t *f = calloc(1, MFX_FIRST_CHUNK);
	struct mfx_file_header *h = (void *)f;
	h->magic = MFX_TRACE_MAGIC;
	h->version = MFX_TRACE_VERSION;
	h->header_size = MFX_HEADER_SIZE;
	h->chunk_size = MFX_CHUNK_SIZE;
	h->flags = MFX_HF_STACKS;
	h->pid = (uint32_t)getpid();
	h->first_chunk = MFX_FIRST_CHUNK;
	h->next_chunk = MFX_FIRST_CHUNK;
	h->nthreads = 1;
	h->trace_uid = UID;
	strcpy(h->cmdline, "unit test");
	struct mfx_thread_slot *slot = (void *)(f + MFX_HEADER_SIZE);
	slot->tid = TID;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ssize_t w = fd >= 0 ? write(fd, f, MFX_FIRST_CHUNK) : -1;
	if (fd >= 0)
		close(fd);
	free(f);
	return w == (ssize_t)MFX_FIRST_CHUNK ? 0 : -1;
}

/* Slot i: thread TID's chunk i, malloc/free pairs (times in ns, pointers
 * apart); returns how many events it holds. */
static uint64_t fill_slot(void *spool, uint32_t i)
{
	struct mfx_chunk_header *c = mfx_spool_chunk(spool, i);
	memset(c, 0, sizeof(*c));
	c->magic = MFX_CHUNK_MAGIC;
	c->type = MFX_CT_EVENTS;
	c->codec = MFX_CODEC_RAW;
	c->tid = TID;
	c->seq = i;
	c->span = MFX_SPOOL_SLOT;
	c->timebase = 1;
	c->base_ts = c->base_ns = 1000000 + (uint64_t)i * 10000000;
	uint8_t *p = (uint8_t *)(c + 1), *b = p, *end = (uint8_t *)c + MFX_SPOOL_SLOT - 32;
	uint64_t n = 0;
	for (uint32_t k = 0; p < end; k++) {
		*p++ = MFX_K_MALLOC | MFX_F_SHR4;	/* the pointer moves on 0x40 + a little */
		p = put_varint(p, 10);
		p = put_varint(p, 16 + k % 200);
		p = put_varint(p, zigzag(k == 0 ? 0x100000 + (int64_t)i * 0x40000 : 4 + k % 3));
		p = put_varint(p, 1 + k % 5);
		*p++ = MFX_K_FREE | MFX_F_SHR4;		/* the same block */
		p = put_varint(p, 10);
		p = put_varint(p, zigzag(0));
		n += 2;
	}
	c->used = (uint32_t)(p - b);
	return n;
}

static uint64_t count_events(const char *path)
{
	struct trace *t;
	int err = trace_open(path, &t);
	CHECK(err == 0, "open the drained trace: %s", mfx_strerror(-err));
	if (err)
		return 0;
	struct trace_event ev;
	uint64_t n = 0;
	while (trace_next(t, &ev) > 0)
		n++;
	trace_close(t);
	return n;
}

/* Wait (at most 10 s) until the drain thread has written a slot back: its
 * first pass has claimed every FULL slot and is holding them. */
static int first_slot_written(struct mfx_spool_header *h)
{
	for (int k = 0; k < 100000; k++) {
		for (uint32_t i = 0; i < NSLOTS; i++)
			if (__atomic_load_n(&h->slot[i].state, __ATOMIC_ACQUIRE) == MFX_SLOT_FREE)
				return 1;
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/mfx-unit-spool-XXXXXX", path[PATH_MAX];
	CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	path_join(path, sizeof(path), dir, "trace.mfx");
	CHECK(write_trace(path) == 0, "write %s", path);
	struct spool *sp;
	int err = spool_create(&sp);
	CHECK(err == 0, "spool_create: %s", mfx_strerror(-err));
	if (err)
		return check_done("trace_spool");
	void *m = mmap(NULL, MFX_SPOOL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, spool_fd(sp), 0);
	CHECK(m != MAP_FAILED, "map the spool: %s", strerror(errno));
	if (m == MAP_FAILED)
		return check_done("trace_spool");
	struct mfx_spool_header *h = m;
	uint64_t want = 0;
	for (uint32_t i = 0; i < NSLOTS; i++) {
		want += fill_slot(m, i);
		h->slot[i].pid = (uint32_t)getpid();
		h->slot[i].trace_uid = UID;
		__atomic_store_n(&h->slot[i].state, MFX_SLOT_FULL, __ATOMIC_RELEASE);
	}
	err = spool_start(sp, dir);
	CHECK(err == 0, "spool_start: %s", mfx_strerror(-err));
	CHECK(first_slot_written(h), "the drain thread wrote nothing in 10 s");
	int left = 0;	/* slots the pass had not reached when asked to stop */
	for (uint32_t i = 0; i < NSLOTS; i++)
		left += __atomic_load_n(&h->slot[i].state, __ATOMIC_ACQUIRE) == MFX_SLOT_DRAINING;
	spool_stop(sp);
	for (uint32_t i = 0; i < NSLOTS; i++)
		CHECK(h->slot[i].state == MFX_SLOT_FREE, "slot %u left in state %u", i,
		      h->slot[i].state);
	struct spool_stats st;
	spool_stats(sp, &st);
	CHECK(st.write_errors == 0, "write errors: %llu", (unsigned long long)st.write_errors);
	struct finalize_stats fs;
	err = tfile_finalize(path, 0, &fs);
	CHECK(err == 0, "finalise: %s", mfx_strerror(-err));
	uint64_t got = count_events(path);
	CHECK(got == want, "%llu events in the trace, %llu made (%d slots were still claimed "
	      "when the drain was stopped)", (unsigned long long)got, (unsigned long long)want,
	      left);
	printf("trace_spool: %llu events in %u slots, %d still claimed at the stop\n",
	       (unsigned long long)want, NSLOTS, left);
	munmap(m, MFX_SPOOL_BYTES);
	spool_free(sp);
	unlink(path);
	rmdir(dir);
	return check_done("trace_spool");
}
