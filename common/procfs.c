/*
 * procfs.c - reading a process's memory from /proc (see procfs.h): the
 * smaps_rollup sample, smaps parsed and classified per mapping, totals.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/procfs.h"
#include "common/util.h"

const char *map_kind_name(enum map_kind k)
{
	static const char *const n[] = { "heap", "anon", "stack", "file", "shmem", "mfx", "other" };
	return k < MK_NKINDS ? n[k] : "?";
}

/* "Rss:   1234 kB" -> bytes, when the line starts with `key`. */
static int kb_field(const char *line, const char *key, uint64_t *out)
{
	size_t kl = strlen(key);
	if (strncmp(line, key, kl) || line[kl] != ':')
		return 0;
	*out = strtoull(line + kl + 1, NULL, 10) * 1024;
	return 1;
}

/* ---- /proc/PID/maps ------------------------------------------------------------ */

/* A hex number ending at `end`'s first character; NULL when there is none. */
static char *hex_field(char *p, uint64_t *v, char end)
{
	char *q;
	errno = 0;
	unsigned long long x = strtoull(p, &q, 16);
	if (q == p || errno || *q != end || *p == '-' || *p == '+' || *p == ' ')
		return NULL;
	*v = x;
	return q + 1;
}

/*
 * The kernel writes each line as (fs/proc/task_mmu.c, show_map_vma):
 * "%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu " then pads with spaces to a
 * column and writes the path, if any, unescaped but for '\n' (so a path may
 * hold spaces, and ends with " (deleted)" once unlinked).
 */
int procfs_maps_parse(char *line, struct maps_entry *e)
{
	uint64_t maj, min;
	char *p = line, *q;
	line[strcspn(line, "\n")] = 0;
	if (!(p = hex_field(p, &e->lo, '-')) || !(p = hex_field(p, &e->hi, ' ')))
		return -EINVAL;
	if (strlen(p) < 5 || p[4] != ' ')
		return -EINVAL;
	memcpy(e->perms, p, 4);
	e->perms[4] = 0;
	if (!(p = hex_field(p + 5, &e->offset, ' ')) || !(p = hex_field(p, &maj, ':')) ||
	    !(p = hex_field(p, &min, ' ')))
		return -EINVAL;
	e->dev_major = (unsigned)maj;
	e->dev_minor = (unsigned)min;
	errno = 0;
	unsigned long long ino = strtoull(p, &q, 10);
	if (q == p || errno || (*q && *q != ' ') || e->hi < e->lo)
		return -EINVAL;
	e->inode = ino;
	e->path = q + strspn(q, " ");
	return 0;
}

int procfs_maps_open(pid_t pid, struct maps_iter *it)
{
	char path[64];
	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/maps");
	memset(it, 0, sizeof(*it));
	it->f = fopen(path, "re");
	return it->f ? 0 : -errno;
}

int procfs_maps_next(struct maps_iter *it, struct maps_entry *e)
{
	while (it->f && getline(&it->line, &it->cap, it->f) > 0)
		if (procfs_maps_parse(it->line, e) == 0)
			return 1;
	return 0;
}

void procfs_maps_close(struct maps_iter *it)
{
	if (it->f)
		fclose(it->f);
	free(it->line);
	memset(it, 0, sizeof(*it));
}

/* ---- smaps_rollup, smaps --------------------------------------------------------- */

int procfs_rollup(pid_t pid, struct rollup *r)
{
	char path[64], *text;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	int err = read_file(path, &text, NULL);
	if (err == -ENOENT) {
		/* Kernels before 4.14: sum smaps instead. */
		struct smaps s;
		snprintf(path, sizeof(path), "/proc/%d", (int)pid);
		if ((err = procfs_smaps_read(pid, &s)))
			return err;
		struct smaps_totals t;
		procfs_smaps_totals(&s, &t);
		memset(r, 0, sizeof(*r));
		r->rss = t.rss;
		r->pss = t.pss;
		r->swap = t.swap;
		for (size_t i = 0; i < s.n; i++)
			r->anon += s.maps[i].anon;
		r->shmem = t.kind_rss[MK_SHMEM];
		r->file = r->rss > r->anon + r->shmem ? r->rss - r->anon - r->shmem : 0;
		procfs_smaps_free(&s);
		return 0;
	}
	if (err)
		return err;
	memset(r, 0, sizeof(*r));
	uint64_t shmem_pss = 0;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		(void)(kb_field(line, "Rss", &r->rss) || kb_field(line, "Pss", &r->pss) ||
		       kb_field(line, "Anonymous", &r->anon) || kb_field(line, "Swap", &r->swap) ||
		       kb_field(line, "Pss_Shmem", &shmem_pss));
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	r->shmem = shmem_pss;
	r->file = r->rss > r->anon + r->shmem ? r->rss - r->anon - r->shmem : 0;
	return 0;
}

/* Header line of a mapping: "lo-hi perms offset dev inode   path". */
static int parse_map_line(char *line, struct smaps_map *m)
{
	struct maps_entry e;
	if (procfs_maps_parse(line, &e))
		return -1;
	memset(m, 0, sizeof(*m));
	m->lo = e.lo;
	m->hi = e.hi;
	memcpy(m->perms, e.perms, sizeof(m->perms));
	m->offset = e.offset;
	m->inode = e.inode;
	m->path = e.path;
	return 0;
}

static int is_map_header(const char *line)
{
	/* Field lines are "Name:   value"; headers begin with a hex range. */
	const char *p = line;
	while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
		p++;
	return p > line && *p == '-';
}

static int mfx_owned(const struct smaps_map *m)
{
	const char *base = strrchr(m->path, '/');
	base = base ? base + 1 : m->path;
	/* "trace.mfx", or "trace.mfx (deleted)" once the run folder is gone */
	char name[64];
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(base, " "), base);
	return !strncmp(m->path, "[anon:mfx", 9) || !strcmp(base, "libmfx.so") ||
	       is_trace_name(name) ||
	       strstr(m->path, "/memfd:mfx") || !strncmp(m->path, "/memfd:libmfx", 13);
}

static void classify(struct smaps *s)
{
	for (size_t i = 0; i < s->n; i++) {
		struct smaps_map *m = &s->maps[i];
		const char *p = m->path;
		int anon = !*p || !strncmp(p, "[anon:", 6);
		if (mfx_owned(m))
			m->kind = MK_MFX;
		else if (!strcmp(p, "[heap]"))
			m->kind = MK_HEAP;
		else if (!strncmp(p, "[stack", 6))
			m->kind = MK_STACK;
		else if (m->perms[3] == 's' || !strncmp(p, "/dev/shm/", 9) ||
			 !strncmp(p, "/memfd:", 7) || !strncmp(p, "/SYSV", 5))
			m->kind = MK_SHMEM;
		else if (anon && m->perms[0] == 'r' && m->perms[1] == 'w')
			m->kind = MK_ANON;
		else if (anon || p[0] == '[')
			m->kind = MK_OTHER;
		else
			m->kind = MK_FILE;
		/* A thread stack (glibc allocates them with mmap) sits right
		 * above a PROT_NONE guard mapping of its own. */
		if (m->kind == MK_ANON && i > 0) {
			const struct smaps_map *g = &s->maps[i - 1];
			if (g->hi == m->lo && !strcmp(g->perms, "---p") && !*g->path &&
			    g->hi - g->lo <= 64 * 1024 && m->hi - m->lo <= 64ull << 20)
				m->kind = MK_STACK;
		}
		/* The .bss of a loaded object: anonymous, right after its file
		 * mapping.  Static data, not the allocator's. */
		if (m->kind == MK_ANON && i > 0) {
			const struct smaps_map *f = &s->maps[i - 1];
			if (f->hi == m->lo && f->kind == MK_FILE && f->perms[1] == 'w')
				m->kind = MK_OTHER;
		}
		m->allocator = m->kind == MK_HEAP || m->kind == MK_ANON;
	}
}

/* Mark thread stacks from the threads' stack pointers (best effort: needs
 * ptrace access to read /proc/PID/task/TID/syscall; a running thread has
 * none to show). */
static void mark_stacks(pid_t pid, struct smaps *s)
{
	pid_t *tids;
	size_t n;
	if (procfs_tids(pid, &tids, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		char path[80], *text;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, (int)tids[i]);
		if (read_file(path, &text, NULL))
			continue;
		/* "nr a0 a1 a2 a3 a4 a5 sp pc" */
		char *f[9];
		int k = 0;
		for (char *tok = strtok(text, " \n"); tok && k < 9; tok = strtok(NULL, " \n"))
			f[k++] = tok;
		if (k == 9) {
			uint64_t sp = strtoull(f[7], NULL, 16);
			for (size_t j = 0; j < s->n; j++)
				if (sp >= s->maps[j].lo && sp < s->maps[j].hi &&
				    s->maps[j].kind == MK_ANON) {
					s->maps[j].kind = MK_STACK;
					s->maps[j].allocator = 0;
				}
		}
		free(text);
	}
	free(tids);
}

int procfs_smaps_parse(char *text, size_t len, struct smaps *s)
{
	memset(s, 0, sizeof(*s));
	s->text = text;
	s->len = len;
	/* Parse a copy: the text itself is kept intact for writing out. */
	char *copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = 0;
	size_t cap = 0;
	struct smaps_map *cur = NULL;
	for (char *line = copy; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (is_map_header(line)) {
			if (grow_array(&s->maps, &cap, s->n, sizeof(*s->maps))) {
				free(copy);
				return -ENOMEM;
			}
			cur = &s->maps[s->n];
			if (parse_map_line(line, cur) == 0)
				s->n++;
			else
				cur = NULL;
		} else if (cur) {
			(void)(kb_field(line, "Rss", &cur->rss) || kb_field(line, "Pss", &cur->pss) ||
			       kb_field(line, "Anonymous", &cur->anon) ||
			       kb_field(line, "Swap", &cur->swap) ||
			       kb_field(line, "Private_Dirty", &cur->private_dirty) ||
			       kb_field(line, "Private_Clean", &cur->private_clean) ||
			       kb_field(line, "Shared_Clean", &cur->shared_clean));
		}
		line = nl ? nl + 1 : NULL;
	}
	/* Paths point into `copy`, kept as the string store. */
	s->strings = copy;
	classify(s);
	return 0;
}

int procfs_smaps_read(pid_t pid, struct smaps *s)
{
	char path[64], *text;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	int err = read_file(path, &text, &len);
	if (err)
		return err;
	if ((err = procfs_smaps_parse(text, len, s))) {
		procfs_smaps_free(s);
		return err;
	}
	mark_stacks(pid, s);
	return 0;
}

int procfs_smaps_load(const char *path, struct smaps *s)
{
	char *text;
	size_t len;
	int err = read_file(path, &text, &len);
	if (err)
		return err;
	if ((err = procfs_smaps_parse(text, len, s)))
		procfs_smaps_free(s);
	return err;
}

void procfs_smaps_free(struct smaps *s)
{
	free(s->maps);
	free(s->text);
	free(s->strings);
	memset(s, 0, sizeof(*s));
}

void procfs_smaps_totals(const struct smaps *s, struct smaps_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < s->n; i++) {
		const struct smaps_map *m = &s->maps[i];
		t->rss += m->rss;
		t->pss += m->pss;
		t->swap += m->swap;
		t->kind_rss[m->kind] += m->rss;
		if (m->kind == MK_HEAP)
			t->brk_rss += m->rss;
		if (m->allocator) {
			t->heap_rss += m->rss;
			t->allocator_mappings++;
		}
	}
}

size_t procfs_smaps_mark_allocator(struct smaps *s, const uint64_t *addrs, size_t n)
{
	size_t changed = 0, j = 0;
	/* Both sorted by address: one merge pass. */
	for (size_t i = 0; i < s->n && j < n; i++) {
		struct smaps_map *m = &s->maps[i];
		while (j < n && addrs[j] < m->lo)
			j++;
		if (j < n && addrs[j] < m->hi && !m->allocator && m->kind != MK_MFX &&
		    m->kind != MK_FILE) {
			m->allocator = 1;
			changed++;
		}
	}
	return changed;
}

int procfs_state(pid_t pid)
{
	char path[64], text[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	ssize_t r = read_small(path, text, sizeof(text));
	if (r < 0)
		return r == -ENOENT ? -ESRCH : (int)r;
	/* "pid (comm) S ..." - comm may hold spaces and parentheses. */
	char *rp = strrchr(text, ')');
	return rp && rp[1] == ' ' && rp[2] ? rp[2] : -EINVAL;
}

static int comm_at(const char *path, char *buf, size_t n)
{
	char text[64];
	ssize_t r = read_small(path, text, sizeof(text));
	if (r < 0)
		return (int)r;
	text[strcspn(text, "\n")] = 0;
	snprintf(buf, n, "%s", text);
	return 0;
}

int procfs_comm(pid_t pid, char *buf, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	return comm_at(path, buf, n);
}

int procfs_task_comm(pid_t pid, pid_t tid, char *buf, size_t n)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, (int)tid);
	return comm_at(path, buf, n);
}

int procfs_tids(pid_t pid, pid_t **tids, size_t *n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ESRCH : -errno;
	size_t cap = 0, k = 0;
	pid_t *v = NULL;
	int err = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		if ((err = grow_array(&v, &cap, k, sizeof(*v))))
			break;
		v[k++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	if (!err && !v)	/* every thread gone: an empty list, not NULL */
		err = grow_array(&v, &cap, 0, sizeof(*v));
	if (err) {
		free(v);
		return err;
	}
	*tids = v;
	*n = k;
	return 0;
}

int procfs_status_field(pid_t pid, const char *name, uint64_t *out)
{
	char path[64], text[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	ssize_t r = read_small(path, text, sizeof(text));
	if (r < 0)
		return r == -ENOENT ? -ESRCH : (int)r;
	/* Fields are "Name:\tvalue[ kB]", one a line. */
	size_t kl = strlen(name);
	const char *p = text;
	while (strncmp(p, name, kl) || p[kl] != ':')
		if (!(p = strchr(p, '\n')) || !*++p)
			return -ENOENT;
	p += kl + 1;
	char *end;
	uint64_t v = strtoull(p, &end, 10);
	if (end == p)
		return -EINVAL;
	*out = !strncmp(end, " kB", 3) ? v * 1024 : v;
	return 0;
}
