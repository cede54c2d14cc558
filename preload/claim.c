/*
 * claim.c - attach mode: the one agent of a process.  The copy of libmfx.so
 * mfx loads closes the memfd it was loaded from and claims the process,
 * unless another copy already did (see mfx_agent_inert).
 */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfx/control.h"
#include "preload/agent.h"
#include "preload/internal.h"

/* One agent per process, claimed here.  Two mfx attaching at once each load
 * a copy (two memfds are two files to dlopen), but dlopen runs constructors
 * under the loader lock, one after the other: the second copy finds the
 * first already mapped and stays inert - no thread, no doorbell, no hook -
 * and its mfx (which reads this flag) unloads it and says another mfx is
 * attaching.  A copy is the same build: the same GNU build-id note. */
MFX_EXPORT int mfx_agent_inert;

struct build_id {
	uintptr_t self;
	const uint8_t *id;
	size_t len;
	int found;
};

static const uint8_t *note_build_id(struct dl_phdr_info *info, size_t *len)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
		while (p + 12 <= end) {
			const uint32_t *n = (const uint32_t *)p;
			const uint8_t *desc = p + 12 + ((n[0] + 3) & ~3u);
			if (desc + n[1] > end)
				break;
			if (n[2] == NT_GNU_BUILD_ID && n[0] == 4 && !memcmp(p + 12, "GNU", 4)) {
				*len = n[1];
				return desc;
			}
			p = desc + ((n[1] + 3) & ~3u);
		}
	}
	return NULL;
}

static int copy_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct build_id *b = arg;
	size_t len = 0;
	const uint8_t *id = note_build_id(info, &len);
	(void)size;
	if (!id)
		return 0;
	if (info->dlpi_addr == b->self) {
		b->id = id;
		b->len = len;
	} else if (b->id && len == b->len && !memcmp(id, b->id, len)) {
		b->found = 1;
	}
	return 0;
}

static int another_copy(void)
{
	Dl_info di;
	struct link_map *lm = NULL;
	if (!dladdr1((void *)another_copy, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
		return 0;
	struct build_id b = { lm->l_addr, NULL, 0, 0 };
	dl_iterate_phdr(copy_cb, &b);	/* a copy listed before us is seen ... */
	if (b.id && !b.found)
		dl_iterate_phdr(copy_cb, &b);	/* ... once our own id is known */
	return b.found;
}

/* mfx dlopen()ed us from "//proc/self/fd/N", a memfd it made here: close
 * it now (the mapping keeps the file), so no fd is left behind whatever
 * becomes of mfx.  Only if N still is that memfd. */
static void close_own_memfd(void)
{
	Dl_info di;
	char p[64], link[64];
	int fd;
	struct stat st;
	if (!dladdr((void *)close_own_memfd, &di) || !di.dli_fname ||
	    sscanf(di.dli_fname, MFX_AGENT_DLNAME "%d", &fd) != 1 || fd < 0)
		return;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, link, sizeof(link) - 1);
	if (n <= 0)
		return;
	link[n] = 0;
	if (!strncmp(link, "/memfd:libmfx.so", 16) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_nlink == 0)
		close(fd);
}

/* At the copy's start (its constructor, on the thread mfx holds): 0 when
 * this copy is the process's agent, 1 when another copy is (this one is
 * then marked inert for its mfx). */
int claim_agent(void)
{
	close_own_memfd();
	if (!another_copy())
		return 0;
	mfx_agent_inert = 1;
	return 1;
}
