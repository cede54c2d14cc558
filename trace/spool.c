/*
 * spool.c - creating and draining the shared-memory spool (see spool.h and
 * trace/spool_format.h for the slot protocol).
 */
#include <dirent.h>
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

#include "trace/spool.h"
#include "common/util.h"
#include "trace/spool_format.h"

#define WAIT_NS 5000000L		/* longest sleep between drains */
#define ORPHAN_CHECK_NS 200000000ull	/* look for slots of dead processes */
#define MAX_TRACES 256

struct dest {
	uint64_t uid;
	int fd;
	struct mfx_file_header *hdr;
};

struct spool {
	int fd;
	struct mfx_spool_header *h;
	char dir[4096];
	pthread_t thr;
	int running;
	volatile int stop;
	struct dest dst[MAX_TRACES];
	int ndst;
	struct spool_stats st;
};

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

/* The trace file a slot belongs to, opened on first sight by its uid. */
static struct dest *dest_for(struct spool *sp, uint64_t uid)
{
	for (int i = 0; i < sp->ndst; i++)
		if (sp->dst[i].uid == uid)
			return &sp->dst[i];
	DIR *d = opendir(sp->dir);
	if (!d)
		return NULL;
	struct dirent *e;
	struct dest *found = NULL;
	while (!found && (e = readdir(d)) && sp->ndst < MAX_TRACES) {
		if (!is_trace_name(e->d_name))
			continue;
		char path[4200];
		int fd = open(path_join(path, sizeof(path), sp->dir, e->d_name), O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* Look before mapping: a trace file the agent has just created is
		 * still empty, and touching a mapping past its end is a SIGBUS. */
		struct mfx_file_header peek;
		struct stat st;
		if (fstat(fd, &st) || st.st_size < (off_t)MFX_HEADER_SIZE ||
		    pread(fd, &peek, sizeof(peek), 0) != (ssize_t)sizeof(peek) ||
		    peek.magic != MFX_TRACE_MAGIC || peek.trace_uid != uid) {
			close(fd);
			continue;
		}
		struct mfx_file_header *h = mmap(NULL, MFX_HEADER_SIZE, PROT_READ | PROT_WRITE,
						 MAP_SHARED, fd, 0);
		if (h == MAP_FAILED || h->magic != MFX_TRACE_MAGIC || h->trace_uid != uid) {
			if (h != MAP_FAILED)
				munmap(h, MFX_HEADER_SIZE);
			close(fd);
			continue;
		}
		found = &sp->dst[sp->ndst++];
		*found = (struct dest){ uid, fd, h };
	}
	closedir(d);
	return found;
}

/* Copy slot i into its trace file, at a chunk slot taken from the file's
 * own bump counter (shared with the agent and mfx's sampler). */
static void drain_slot(struct spool *sp, uint32_t i, int free_it)
{
	struct mfx_spool_slot *s = &sp->h->slot[i];
	struct mfx_chunk_header *c = mfx_spool_chunk(sp->h, i);
	struct dest *d = dest_for(sp, s->trace_uid);
	if (d && c->magic == MFX_CHUNK_MAGIC && c->used) {
		uint64_t off = __atomic_fetch_add(&d->hdr->next_chunk, MFX_CHUNK_SIZE,
						  __ATOMIC_SEQ_CST);
		ssize_t w = pwrite(d->fd, c, MFX_CHUNK_SIZE, (off_t)off);
		if (w == (ssize_t)MFX_CHUNK_SIZE)
			sp->st.chunks++;
	} else if (!d) {
		sp->st.orphans++;
	}
	if (free_it) {
		c->magic = 0;
		__atomic_store_n(&s->state, MFX_SLOT_FREE, __ATOMIC_RELEASE);
	}
}

static int owner_dead(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

/* One pass; `all`: also slots still owned (final drain).  Returns how many
 * slots were drained. */
static int drain_pass(struct spool *sp, int orphans, int all)
{
	int n = 0;
	for (uint32_t i = 0; i < MFX_SPOOL_SLOTS; i++) {
		struct mfx_spool_slot *s = &sp->h->slot[i];
		uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		if (st == MFX_SLOT_FULL) {
			drain_slot(sp, i, 1);
			n++;
		} else if (st == MFX_SLOT_OWNED && (all || (orphans && owner_dead((pid_t)s->pid)))) {
			/* Its process died holding it (crash, _exit, kill), or the
			 * capture is over.  A live owner keeps it. */
			int dead = owner_dead((pid_t)s->pid);
			drain_slot(sp, i, dead);
			n++;
		}
	}
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
		if (drain_pass(sp, orphans, 0))
			continue;
		struct timespec ts = { 0, WAIT_NS };
		syscall(SYS_futex, &sp->h->full_seq, FUTEX_WAIT, seq, &ts, NULL, 0);
		__atomic_store_n(&sp->h->waiting, 0, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

int spool_start(struct spool *sp, const char *run_dir)
{
	snprintf(sp->dir, sizeof(sp->dir), "%s", run_dir);
	int err = pthread_create(&sp->thr, NULL, drain_thread, sp);
	if (err)
		return -err;
	sp->running = 1;
	return 0;
}

void spool_stop(struct spool *sp)
{
	if (sp->running) {
		sp->stop = 1;
		syscall(SYS_futex, &sp->h->full_seq, FUTEX_WAKE, 1, NULL, NULL, 0);
		pthread_join(sp->thr, NULL);
		sp->running = 0;
	}
	drain_pass(sp, 1, 1);
}

void spool_stats(const struct spool *sp, struct spool_stats *st)
{
	*st = sp->st;
	st->fallbacks = sp->h->fallbacks;
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
	free(sp);
}
