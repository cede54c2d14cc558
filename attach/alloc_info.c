/*
 * alloc_info.c - the allocator's statistics for `mfx snapshot`
 * (alloc_info.h).
 *
 * The agent's thread answers INFO (include/mfx/control.h) by writing into a
 * memfd of ours: a header of "key value" lines (preload/control.c, do_info),
 * an empty line, then the allocator's own text: glibc's malloc_info(3) XML,
 * jemalloc's malloc_stats_print(), tcmalloc's MallocExtension_GetStats(),
 * mimalloc's mi_stats_print_out().  glibc's XML is also read for its totals.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach/agentctl.h"
#include "attach/alloc_info.h"
#include "common/util.h"

static const char *suffix_of(const char *name)
{
	return !strcmp(name, "glibc") ? ".malloc_info.xml" :
	       !strcmp(name, "jemalloc") ? ".malloc_stats.txt" :
	       !strcmp(name, "tcmalloc") ? ".tcmalloc_stats.txt" :
	       !strcmp(name, "mimalloc") ? ".mimalloc_stats.txt" : "";
}

/* The size="N" of the first `<tag type="TYPE"` at or after p. */
static uint64_t xml_size(const char *p, const char *tag, const char *type)
{
	char key[64];
	snprintf(key, sizeof(key), "<%s type=\"%s\"", tag, type);
	const char *q = p ? strstr(p, key) : NULL, *z;
	if (!q || !(z = strstr(q, "size=\"")) || strchr(q, '>') < z)
		return 0;
	return strtoull(z + 6, NULL, 10);
}

/* glibc's totals: the arenas, and what follows the last one. */
static void glibc_totals(struct alloc_info *ai, const unsigned long long *mi)
{
	const char *x = ai->text;
	ai->top_bytes = mi[6];
	ai->in_use_bytes = mi[4] + mi[3];
	for (const char *p = x; (p = strstr(p, "<heap nr=")); p++)
		ai->arenas++;
	const char *tail = x, *h;
	for (const char *p = x; (h = strstr(p, "</heap>")); p = h + 1)
		tail = h;
	ai->free_bytes = xml_size(tail, "total", "fast") + xml_size(tail, "total", "rest");
	ai->mmap_bytes = xml_size(tail, "total", "mmap");
	ai->system_bytes = xml_size(tail, "system", "current");
	ai->glibc_ok = strstr(x, "<malloc") != NULL;
}

/* The header lines, up to the empty line; ai->text gets what follows. */
static void parse(struct alloc_info *ai, char *buf)
{
	unsigned long long mi[7];
	int have_mi = 0;
	char *p = buf;
	while (*p && *p != '\n') {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		if (!strncmp(p, "allocator ", 10)) {
			size_t n = strcspn(p + 10, " ");
			snprintf(ai->name, sizeof(ai->name), "%.*s", (int)n, p + 10);
			snprintf(ai->module, sizeof(ai->module), "%s", p[10 + n] ? p + 11 + n : "");
		} else if (!strncmp(p, "figures ", 8)) {
			char *e;
			ai->figs.valid = (uint32_t)strtoul(p + 8, &e, 10);
			for (int i = 0; i < MFX_AF_NFIELDS; i++)
				ai->figs.v[i] = strtoull(e, &e, 10);
		} else if (!strncmp(p, "arena ", 6) && ai->narenas < 64) {
			struct alloc_arena *a = &ai->arena[ai->narenas];
			unsigned long long v[4];
			if (sscanf(p + 6, "%u %u %llu %llu %llu %llu", &a->id, &a->threads, &v[0], &v[1],
				   &v[2], &v[3]) == 6) {
				a->active = v[0];
				a->dirty = v[1];
				a->muzzy = v[2];
				a->resident = v[3];
				ai->narenas++;
			}
		} else if (!strncmp(p, "call ", 5)) {
			snprintf(ai->call, sizeof(ai->call), "%s", p + 5);
		} else if (sscanf(p, "mallinfo2 %llu %llu %llu %llu %llu %llu %llu", &mi[0], &mi[1],
				  &mi[2], &mi[3], &mi[4], &mi[5], &mi[6]) == 7) {
			have_mi = 1;
		}
		if (!nl)
			return;
		p = nl + 1;
	}
	if (*p == '\n')
		p++;
	ai->text = strdup(p);
	if (ai->text && have_mi)
		glibc_totals(ai, mi);
}

/* INFO through the doorbell: 0, -ENOENT (no agent), other -errno. */
static int ask_agent(pid_t pid, struct alloc_info *ai)
{
	int chan, err = agent_ring(pid, &chan);
	if (err)
		return err;
	int fd = memfd_create("mfx-alloc-info", MFD_CLOEXEC);
	struct mfx_ctl m;
	struct stat st;
	char *buf = NULL;
	if (fd < 0)
		err = -errno;
	if (!err)
		err = agent_send(chan, MFX_CTL_INFO, NULL, &fd, 1);
	if (!err)
		err = agent_recv(chan, MFX_CTL_INFOED, &m, AGENT_REPLY_MS);
	close(chan);
	/* m.status: the allocator gave no text (-ENOSYS); the header is there */
	if (!err && fstat(fd, &st))
		err = -errno;
	if (!err && !(buf = calloc(1, (size_t)st.st_size + 1)))
		err = -ENOMEM;
	if (!err && pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		err = -EIO;
	if (fd >= 0)
		close(fd);
	if (!err) {
		parse(ai, buf);
		ai->from_agent = ai->name[0] != 0;
	}
	free(buf);
	return err ? err : ai->from_agent ? 0 : -EPROTO;
}

int alloc_info_get(pid_t pid, struct alloc_info *ai)
{
	memset(ai, 0, sizeof(*ai));
	int err = ask_agent(pid, ai);
	if (err) {
		free(ai->text);
		memset(ai, 0, sizeof(*ai));
		struct alloc_remote ar;
		err = alloc_remote_detect(pid, &ar);
		snprintf(ai->name, sizeof(ai->name), "%s", mfx_allocator_names[ar.kind]);
		snprintf(ai->module, sizeof(ai->module), "%s", ar.module);
		snprintf(ai->call, sizeof(ai->call), "%s", mfx_release_call[ar.kind]);
	}
	ai->text_suffix = ai->text && *ai->text ? suffix_of(ai->name) : "";
	return err;
}

void alloc_info_free(struct alloc_info *ai)
{
	free(ai->text);
	ai->text = NULL;
}
