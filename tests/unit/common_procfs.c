/*
 * common_procfs.c - unit tests of common/procfs.c.
 *
 * The maps iterator on hand-made lines and on this process's own
 * /proc/self/maps, checked against what we know independently: the
 * mappings we make ourselves (mmap of a file whose name holds spaces, at
 * an offset, then unlinked: its inode and device from fstat), our code
 * (/proc/self/exe), our stack.  The smaps classification and totals on
 * hand-made smaps text ([heap], an arena, a thread stack, memfd, mfx's
 * own mappings).  Threads, comm, state and status fields of a process we
 * shape ourselves (a named thread, a zombie child, 64 MiB touched).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/procfs.h"
#include "common/util.h"
#include "tests/unit/check.h"

/* ---- hand-made maps lines ------------------------------------------------ */

static void test_maps_lines(void)
{
	char line[8192];
	struct maps_entry e;
	strcpy(line, "7f0000001000-7f0000003000 r-xp 00002000 fe:01 1234567                    "
		     "/usr/lib/x86_64-linux-gnu/libc.so.6\n");
	CHECK(procfs_maps_parse(line, &e) == 0 && e.lo == 0x7f0000001000ull &&
	      e.hi == 0x7f0000003000ull && !strcmp(e.perms, "r-xp") && e.offset == 0x2000 &&
	      e.dev_major == 0xfe && e.dev_minor == 1 && e.inode == 1234567 &&
	      !strcmp(e.path, "/usr/lib/x86_64-linux-gnu/libc.so.6"), "a file line: %s", e.path);
	strcpy(line, "00400000-0040b000 rw-p 00000000 00:00 0 ");
	CHECK(procfs_maps_parse(line, &e) == 0 && e.lo == 0x400000 && e.hi == 0x40b000 &&
	      !strcmp(e.path, ""), "anonymous, short addresses");
	strcpy(line, "00400000-0040b000 rw-p 00000000 00:00 0");
	CHECK(procfs_maps_parse(line, &e) == 0 && !strcmp(e.path, ""), "no blank after the inode");
	strcpy(line, "7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]\n");
	CHECK(procfs_maps_parse(line, &e) == 0 && !strcmp(e.path, "[stack]"), "[stack]");
	strcpy(line, "1000-2000 rw-s 00000000 00:01 77  /tmp/run dir/trace-12.mfx (deleted)\n");
	CHECK(procfs_maps_parse(line, &e) == 0 && !strcmp(e.perms, "rw-s") &&
	      !strcmp(e.path, "/tmp/run dir/trace-12.mfx (deleted)"), "spaces in the path: %s",
	      e.path);
	strcpy(line, "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0   [vsyscall]");
	CHECK(procfs_maps_parse(line, &e) == 0 && e.lo == 0xffffffffff600000ull &&
	      e.hi == 0xffffffffff601000ull, "the top of the address space");
	/* a path longer than PATH_MAX: the kernel shows it whole */
	int n = snprintf(line, sizeof(line), "1000-2000 r--p 00000000 08:02 9 /");
	memset(line + n, 'a', 6000);
	line[n + 6000] = 0;
	CHECK(procfs_maps_parse(line, &e) == 0 && strlen(e.path) == 6001, "a 6001-byte path");
	static const char *const bad[] = {
		"", "\n", "garbage", "1000-", "1000-2000", "1000-2000 rw-p", "1000-2000 rw 0 00:00 0",
		"1000-2000 rw-p zz 00:00 0", "1000-2000 rw-p 0 00-00 0", "1000-2000 rw-p 0 00:00 x",
		"2000-1000 rw-p 00000000 00:00 0", "-1000-2000 rw-p 00000000 00:00 0",
		"Rss:                   8 kB", "1000 -2000 rw-p 00000000 00:00 0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(line, sizeof(line), "%s", bad[i]);
		CHECK(procfs_maps_parse(line, &e) == -EINVAL, "refused: \"%s\"", bad[i]);
	}
}

/* ---- our own /proc/self/maps ---------------------------------------------- */

static size_t count_lines(const char *path)
{
	FILE *f = fopen(path, "re");
	size_t n = 0;
	int c;
	while (f && (c = fgetc(f)) != EOF)
		n += c == '\n';
	if (f)
		fclose(f);
	return n;
}

/* The entry holding addr in our own maps (its path copied to path). */
static int find_self(uint64_t addr, struct maps_entry *out, char *path, size_t n, size_t *count)
{
	struct maps_iter it;
	struct maps_entry e;
	int found = 0;
	*count = 0;
	if (procfs_maps_open(0, &it))
		return 0;
	while (procfs_maps_next(&it, &e) > 0) {
		(*count)++;
		if (!found && addr >= e.lo && addr < e.hi) {
			*out = e;
			snprintf(path, n, "%s", e.path);
			out->path = path;
			found = 1;
		}
	}
	procfs_maps_close(&it);
	return found;
}

static void test_maps_self(void)
{
	char tmpl[] = "/tmp/mfx unit maps XXXXXX", path[PATH_MAX + 64], exe[PATH_MAX];
	int fd = mkstemp(tmpl);
	CHECK(fd >= 0 && ftruncate(fd, 3 * 4096) == 0, "a file with spaces in its name");
	struct stat st;
	fstat(fd, &st);
	char *fm = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
	char *am = mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(fm != MAP_FAILED && am != MAP_FAILED, "mmap");
	unlink(tmpl);
	close(fd);
	struct maps_entry e;
	size_t count;
	int ok = find_self((uint64_t)(uintptr_t)fm, &e, path, sizeof(path), &count);
	char want[sizeof(tmpl) + 16];
	snprintf(want, sizeof(want), "%s (deleted)", tmpl);
	CHECK(ok && e.lo == (uintptr_t)fm && e.hi == (uintptr_t)fm + 4096 && e.offset == 4096 &&
	      !strcmp(e.perms, "r--s") && e.inode == st.st_ino &&
	      e.dev_major == major(st.st_dev) && e.dev_minor == minor(st.st_dev) &&
	      !strcmp(e.path, want), "our unlinked file mapping: \"%s\" off %" PRIx64, e.path,
	      e.offset);
	ok = find_self((uint64_t)(uintptr_t)am + 4096, &e, path, sizeof(path), &count);
	CHECK(ok && e.lo == (uintptr_t)am && e.hi == (uintptr_t)am + 3 * 4096 &&
	      !strcmp(e.perms, "r--p") && e.inode == 0 && !*e.path, "our anonymous mapping");
	ok = find_self((uint64_t)(uintptr_t)&test_maps_self, &e, path, sizeof(path), &count);
	ssize_t el = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[el > 0 ? el : 0] = 0;
	CHECK(ok && e.perms[2] == 'x' && !strcmp(e.path, exe), "our code: %s (exe %s)", e.path, exe);
	int local;
	ok = find_self((uint64_t)(uintptr_t)&local, &e, path, sizeof(path), &count);
	CHECK(ok && !strcmp(e.path, "[stack]") && e.perms[1] == 'w', "our stack: %s", e.path);
	/* every line of the file is one entry (the count is read after ours) */
	size_t lines = count_lines("/proc/self/maps");
	CHECK(count == lines, "%zu entries for %zu lines", count, lines);
	munmap(fm, 4096);
	munmap(am, 3 * 4096);
	struct maps_iter it;
	CHECK(procfs_maps_open(999999999, &it) == -ENOENT, "no such process");
	CHECK(procfs_maps_next(&it, &e) == 0, "a failed open iterates nothing");
	procfs_maps_close(&it);
}

/* ---- smaps classification -------------------------------------------------- */

struct fake {
	const char *head;	/* "lo-hi perms off dev inode path" */
	unsigned rss_kb, pss_kb, swap_kb;
	enum map_kind kind;
	int allocator;
};

static const struct fake fakes[] = {
	{ "555500000000-555500002000 r--p 00000000 fe:00 11 /usr/bin/svc", 8, 8, 0, MK_FILE, 0 },
	{ "555500002000-555500010000 r-xp 00002000 fe:00 11 /usr/bin/svc", 40, 40, 0, MK_FILE, 0 },
	{ "555500010000-555500012000 rw-p 00010000 fe:00 11 /usr/bin/svc", 8, 8, 0, MK_FILE, 0 },
	/* .bss right after the writable file mapping: static data */
	{ "555500012000-555500014000 rw-p 00000000 00:00 0 ", 8, 8, 0, MK_OTHER, 0 },
	{ "555500100000-555500900000 rw-p 00000000 00:00 0        [heap]", 4000, 4000, 100,
	  MK_HEAP, 1 },
	/* a glibc arena: its used part, then the reserved rest */
	{ "7f0000000000-7f0000400000 rw-p 00000000 00:00 0 ", 3000, 3000, 0, MK_ANON, 1 },
	{ "7f0000400000-7f0004000000 ---p 00000000 00:00 0 ", 0, 0, 0, MK_OTHER, 0 },
	/* a thread stack: a guard page, then 8 MiB */
	{ "7f0010000000-7f0010001000 ---p 00000000 00:00 0 ", 0, 0, 0, MK_OTHER, 0 },
	{ "7f0010001000-7f0010801000 rw-p 00000000 00:00 0 ", 64, 64, 0, MK_STACK, 0 },
	/* above a guard page too, but 128 MiB: no stack is that large */
	{ "7f0020000000-7f0020001000 ---p 00000000 00:00 0 ", 0, 0, 0, MK_OTHER, 0 },
	{ "7f0020001000-7f0028001000 rw-p 00000000 00:00 0 ", 500, 500, 0, MK_ANON, 1 },
	{ "7f0030000000-7f0030100000 rw-s 00000000 00:01 99 /memfd:pool (deleted)", 1024, 512, 0,
	  MK_SHMEM, 0 },
	{ "7f0030100000-7f0030200000 rw-s 00000000 00:19 98 /dev/shm/cache", 256, 256, 0, MK_SHMEM, 0 },
	{ "7f0030200000-7f0030300000 rw-s 00000000 00:01 97 /dev/zero (deleted)", 16, 8, 0,
	  MK_SHMEM, 0 },
	{ "7f0030300000-7f0030400000 r--p 00000000 00:00 0 ", 4, 4, 0, MK_OTHER, 0 },
	/* mfx's own */
	{ "7f0040000000-7f0040100000 rw-p 00000000 00:01 50 /memfd:mfx-agent (deleted)", 128, 128,
	  0, MK_MFX, 0 },
	{ "7f0040100000-7f0040110000 rw-s 00000000 fe:00 51 /tmp/run 1/trace.mfx", 64, 64, 0,
	  MK_MFX, 0 },
	{ "7f0040110000-7f0040120000 rw-s 00000000 fe:00 52 /tmp/run/trace-77.2.mfx (deleted)", 64,
	  64, 0, MK_MFX, 0 },
	{ "7f0040120000-7f0040130000 r-xp 00000000 fe:00 53 /opt/mfx/lib/mfx/libmfx.so", 32, 32, 0,
	  MK_MFX, 0 },
	{ "7f0040130000-7f0040140000 r-xp 00000000 00:01 54 /memfd:libmfx.so (deleted)", 32, 32, 0,
	  MK_MFX, 0 },
	{ "7f0040140000-7f0040150000 rw-p 00000000 00:00 0   [anon:mfx spool]", 16, 16, 0, MK_MFX,
	  0 },
	/* not mfx's: a user's file that only looks like it */
	{ "7f0040150000-7f0040160000 r--p 00000000 fe:00 55 /data/trace.mfx.bak", 8, 8, 0, MK_FILE,
	  0 },
	{ "7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0        [stack]", 132, 132, 0, MK_STACK,
	  0 },
	{ "7ffc00100000-7ffc00102000 r-xp 00000000 00:00 0        [vdso]", 8, 0, 0, MK_OTHER, 0 },
};
#define NFAKES (sizeof(fakes) / sizeof(fakes[0]))

static char *fake_smaps(size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	for (size_t i = 0; f && i < NFAKES; i++)
		fprintf(f, "%s\nSize:               1 kB\nRss:   %u kB\nPss:   %u kB\n"
			"Private_Dirty:  %u kB\nAnonymous:   %u kB\nSwap:    %u kB\n"
			"VmFlags: rd wr mr mw me ac\n", fakes[i].head, fakes[i].rss_kb,
			fakes[i].pss_kb, fakes[i].rss_kb, fakes[i].rss_kb, fakes[i].swap_kb);
	if (f)
		fclose(f);
	return text;
}

static void test_smaps(void)
{
	size_t len;
	char *text = fake_smaps(&len);
	struct smaps s;
	CHECK(text && procfs_smaps_parse(text, len, &s) == 0 && s.n == NFAKES,
	      "%zu mappings parsed of %zu", text ? s.n : 0, NFAKES);
	if (!text || s.n != NFAKES)
		return;
	struct smaps_totals want = { 0 };
	for (size_t i = 0; i < NFAKES; i++) {
		const struct smaps_map *m = &s.maps[i];
		CHECK(m->kind == fakes[i].kind && m->allocator == fakes[i].allocator,
		      "%s: %s%s, want %s%s", fakes[i].head, map_kind_name(m->kind),
		      m->allocator ? " (heap)" : "", map_kind_name(fakes[i].kind),
		      fakes[i].allocator ? " (heap)" : "");
		CHECK(m->rss == fakes[i].rss_kb * 1024ull && m->pss == fakes[i].pss_kb * 1024ull &&
		      m->swap == fakes[i].swap_kb * 1024ull && m->private_dirty == m->rss &&
		      m->anon == m->rss, "%s: fields", fakes[i].head);
		want.rss += fakes[i].rss_kb * 1024ull;
		want.pss += fakes[i].pss_kb * 1024ull;
		want.swap += fakes[i].swap_kb * 1024ull;
		want.kind_rss[fakes[i].kind] += fakes[i].rss_kb * 1024ull;
		if (fakes[i].allocator) {
			want.heap_rss += fakes[i].rss_kb * 1024ull;
			want.allocator_mappings++;
		}
	}
	CHECK(memcmp(s.text, text, len) == 0, "the raw text is kept as it was");
	struct smaps_totals t;
	procfs_smaps_totals(&s, &t);
	CHECK(t.rss == want.rss && t.pss == want.pss && t.swap == want.swap, "rss/pss/swap totals");
	CHECK(t.heap_rss == (4000 + 3000 + 500) * 1024ull && t.heap_rss == want.heap_rss &&
	      t.allocator_mappings == 3, "heap RSS %" PRIu64 " = [heap] + arena + anon, %" PRIu64
	      " mappings", t.heap_rss, t.allocator_mappings);
	CHECK(t.brk_rss == 4000 * 1024ull, "brk RSS is [heap] alone");
	for (int k = 0; k < MK_NKINDS; k++)
		CHECK(t.kind_rss[k] == want.kind_rss[k], "%s RSS %" PRIu64 ", want %" PRIu64,
		      map_kind_name(k), t.kind_rss[k], want.kind_rss[k]);
	/* live blocks found in the read-only anonymous mapping, mfx's memfd
	 * and a file: only the first becomes an allocator mapping */
	uint64_t addrs[] = { 0x555500001000ull, 0x7f0030300010ull, 0x7f0030300020ull,
			     0x7f0040000100ull };
	CHECK(procfs_smaps_mark_allocator(&s, addrs, 4) == 1 && s.maps[14].allocator &&
	      !s.maps[0].allocator && !s.maps[15].allocator, "mark_allocator: one mapping changed");
	procfs_smaps_free(&s);
	/* a damaged copy: a truncated header and stray field lines */
	char bad[] = "Rss: 4 kB\n1000-2000 rw-p 0000\nRss: 8 kB\n3000-4000 rw-p 00000000 00:00 0 \n"
		     "Rss: 12 kB\n";
	char *dup = strdup(bad);
	CHECK(dup && procfs_smaps_parse(dup, strlen(bad), &s) == 0 && s.n == 1 &&
	      s.maps[0].rss == 12 * 1024, "damaged text: the good mapping only");
	procfs_smaps_free(&s);
}

/* ---- a process we shape ourselves ------------------------------------------ */

static int pipefd[2];

static void *worker(void *arg)
{
	char c;
	__atomic_store_n((pid_t *)arg, gettid(), __ATOMIC_RELEASE);
	ssize_t r = read(pipefd[0], &c, 1);	/* blocks until the test ends */
	(void)r;
	return NULL;
}

static void test_process(void)
{
	pid_t me = getpid(), wtid = 0;
	pthread_t t;
	CHECK(pipe(pipefd) == 0 && pthread_create(&t, NULL, worker, &wtid) == 0, "a worker thread");
	pthread_setname_np(t, "unit-worker");
	for (int i = 0; i < 10000 && !__atomic_load_n(&wtid, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	pid_t *tids;
	size_t n;
	CHECK(procfs_tids(me, &tids, &n) == 0 && n == 2 &&
	      ((tids[0] == me && tids[1] == wtid) || (tids[1] == me && tids[0] == wtid)),
	      "procfs_tids: us and the worker (%zu)", n);
	free(tids);
	char comm[64];
	CHECK(procfs_task_comm(me, wtid, comm, sizeof(comm)) == 0 && !strcmp(comm, "unit-worker"),
	      "procfs_task_comm: %s", comm);
	CHECK(procfs_comm(me, comm, sizeof(comm)) == 0 && !strcmp(comm, "common_procfs"),
	      "procfs_comm: %s", comm);
	CHECK(procfs_state(me) == 'R', "we are running");
	uint64_t v = 0;
	CHECK(procfs_status_field(me, "Threads", &v) == 0 && v == 2, "Threads: %" PRIu64, v);
	CHECK(procfs_status_field(me, "Tgid", &v) == 0 && v == (uint64_t)me, "Tgid");
	CHECK(procfs_status_field(me, "Name", &v) == -EINVAL, "Name is not a number");
	CHECK(procfs_status_field(me, "NoSuchField", &v) == -ENOENT, "no such field");
	CHECK(procfs_status_field(me, "Rss", &v) == -ENOENT, "a prefix of a field is not it");
	/* RssAnon grows by what we touch (72 MiB: larger than any thread stack) */
	uint64_t before = 0, after = 0;
	procfs_status_field(me, "RssAnon", &before);
	char *big = mmap(NULL, 72 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (big != MAP_FAILED)
		memset(big, 1, 72 << 20);
	CHECK(procfs_status_field(me, "RssAnon", &after) == 0 && after >= before + (70ull << 20),
	      "RssAnon %" PRIu64 " -> %" PRIu64 " after touching 72 MiB", before, after);
	/* the worker's stack, found from its stack pointer */
	struct smaps s;
	CHECK(procfs_smaps_read(me, &s) == 0, "procfs_smaps_read(self)");
	int found = 0;
	for (size_t i = 0; i < s.n; i++)
		if (big != MAP_FAILED && s.maps[i].lo <= (uintptr_t)big &&
		    (uintptr_t)big < s.maps[i].hi)
			found = s.maps[i].kind == MK_ANON && s.maps[i].allocator &&
				s.maps[i].rss >= (72ull << 20);
	CHECK(found, "our 72 MiB is anonymous heap-like memory, resident");
	procfs_smaps_free(&s);
	if (big != MAP_FAILED)
		munmap(big, 72 << 20);
	close(pipefd[1]);
	pthread_join(t, NULL);
	close(pipefd[0]);
	/* a zombie child, then none */
	pid_t c = fork();
	if (c == 0)
		_exit(0);
	int st = 0;
	for (int i = 0; i < 10000 && (st = procfs_state(c)) != 'Z'; i++)
		usleep(1000);
	CHECK(st == 'Z', "an exited, unreaped child is a zombie (%c)", st);
	waitpid(c, NULL, 0);
	CHECK(procfs_state(c) == -ESRCH && procfs_tids(c, &tids, &n) == -ESRCH &&
	      procfs_status_field(c, "Threads", &v) == -ESRCH, "a reaped child is gone");
	struct rollup r;
	CHECK(procfs_rollup(me, &r) == 0 && r.rss > 0 && r.anon > 0 && r.rss >= r.anon,
	      "smaps_rollup of self");
}

int main(void)
{
	test_maps_lines();
	test_maps_self();
	test_smaps();
	test_process();
	return check_done("common_procfs");
}
