/*
 * smaps_fuzz.c - libFuzzer target for the smaps parser (common/procfs.c):
 * any text given to procfs_smaps_parse() must parse (or fail with -errno)
 * into mappings whose fields are sane: a known kind, perms a string, a path
 * inside the parsed copy; the totals must be the sums of the mappings
 * (kinds, heap RSS of the allocator mappings, [heap] alone); mfx's own and
 * file-backed mappings never count as heap; marking mappings that hold
 * given addresses (procfs_smaps_mark_allocator) marks at most one per
 * address when the mappings are in order (as the kernel writes them), and
 * never mfx's or a file's.  Never a crash, hang or leak.
 * Built and run by scripts/fuzz.sh (`make fuzz`, and briefly `make check`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/procfs.h"

static void die(const char *what, size_t i)
{
	fprintf(stderr, "smaps_fuzz: mapping %zu: %s\n", i, what);
	abort();
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void check_maps(const struct smaps *s)
{
	struct smaps_totals t;
	procfs_smaps_totals(s, &t);
	uint64_t rss = 0, heap = 0, brk = 0, kinds = 0, nalloc = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct smaps_map *m = &s->maps[i];
		if ((unsigned)m->kind >= MK_NKINDS)
			die("unknown kind", i);
		if (memchr(m->perms, 0, sizeof(m->perms)) == NULL)
			die("perms not a string", i);
		if (*m->path && (m->path < s->strings || m->path >= s->strings + s->len + 1))
			die("path outside the parsed text", i);
		if (m->allocator && (m->kind == MK_MFX || m->kind == MK_FILE))
			die("mfx's own or a file's mapping counted as heap", i);
		rss += m->rss;
		heap += m->allocator ? m->rss : 0;
		nalloc += m->allocator != 0;
		brk += m->kind == MK_HEAP ? m->rss : 0;
	}
	for (int k = 0; k < MK_NKINDS; k++)
		kinds += t.kind_rss[k];
	if (t.rss != rss || kinds != rss || t.heap_rss != heap || t.brk_rss != brk ||
	    t.allocator_mappings != nalloc)
		die("totals are not the sums of the mappings", s->n);
}

/* Mappings in address order, none overlapping. */
static int sorted(const struct smaps *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->maps[i].lo > s->maps[i].hi || (i && s->maps[i - 1].hi > s->maps[i].lo))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	struct smaps s;
	if (procfs_smaps_parse(text, size, &s)) {	/* takes text, even on failure */
		procfs_smaps_free(&s);
		return 0;
	}
	check_maps(&s);
	/* addresses inside every third mapping, plus the input's last 8 bytes */
	size_t n = 0;
	uint64_t *addrs = calloc(s.n + 1, sizeof(*addrs));
	for (size_t i = 0; addrs && i < s.n; i += 3)
		addrs[n++] = s.maps[i].lo + (s.maps[i].hi - s.maps[i].lo) / 2;
	if (addrs && size >= 8)
		memcpy(&addrs[n++], data + size - 8, 8);
	if (addrs) {
		qsort(addrs, n, sizeof(*addrs), cmp_u64);
		size_t changed = procfs_smaps_mark_allocator(&s, addrs, n);
		if (changed > n && sorted(&s))	/* as the kernel writes them */
			die("more mappings marked than addresses", changed);
		check_maps(&s);
	}
	free(addrs);
	procfs_smaps_free(&s);
	return 0;
}
