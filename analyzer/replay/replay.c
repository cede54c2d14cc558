/*
 * replay.c - Approach B (`mfx replay RUN_DIR`): what would another
 * allocator, or a glibc tunable, have made of the same calls?
 *
 *   1. The trace's calls become RUN/replay.ops: one stream per thread, in
 *      recorded order, every block named by a dense id (an address reused
 *      by the allocator gets a new id), frees of blocks allocated before the
 *      window dropped (attach: their sizes are unknown).
 *   2. RUN/replay.c is the replayer's source (analyzer/replay/replayer.c),
 *      compiled with cc into RUN/replay; without a compiler the replayer
 *      built with mfx is copied there instead.
 *   3. It runs once per allocator (LD_PRELOAD of jemalloc, tcmalloc,
 *      mimalloc; glibc as is, GLIBC_TUNABLES for --tunable), each run
 *      printing one row of replay.json.
 *   4. rss_comparison.png: the original (RSS peak, after malloc_trim when
 *      one was measured) against every replay's RSS peak and end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analyzer/chart.h"
#include "common/json.h"
#include "analyzer/replay/ops.h"
#include "analyzer/replay/replay.h"
#include "trace/reader.h"
#include "common/hmap.h"
#include "common/procfs.h"
#include "common/util.h"
#include "common/error.h"
#include "trace/format.h"



/* ---- pointer -> block id ----------------------------------------------------------- */

/* common/hmap.h, values uint32_t; id 0 is "none", as is pointer NULL. */
static int idmap_put(struct hmap *m, uint64_t k, uint32_t v)
{
	uint32_t *p = k ? hmap_put(m, k, NULL) : &v;
	if (!p)
		return -ENOMEM;
	*p = v;
	return 0;
}

static uint32_t idmap_get(const struct hmap *m, uint64_t k)
{
	const uint32_t *p = k ? hmap_get(m, k) : NULL;
	return p ? *p : 0;
}

/* Remove k; its id, or 0. */
static uint32_t idmap_take(struct hmap *m, uint64_t k)
{
	uint32_t v = 0;
	if (k)
		hmap_del(m, k, &v);
	return v;
}

/* ---- the ops file --------------------------------------------------------------------- */

struct stream {
	struct op *ops;
	size_t n, cap;
};

static int push(struct stream *s, const struct op *o)
{
	if (grow_array(&s->ops, &s->cap, s->n, sizeof(*s->ops)))
		return -ENOMEM;
	s->ops[s->n++] = *o;
	return 0;
}

struct gen_stats {
	uint64_t ops, blocks, skipped_frees, failed, nthreads, cross_thread;
	uint64_t counts[6];
};

/* Where each block was made: its thread and its op's index there. */
struct origin {
	uint32_t thread, index;
};

static int origin_set(struct origin **o, size_t *cap, uint32_t id, uint32_t th, size_t index)
{
	if (grow_array(o, cap, id, sizeof(**o)))
		return -ENOMEM;
	(*o)[id].thread = th;
	(*o)[id].index = (uint32_t)index;
	return 0;
}

/* Block id is freed or reallocated on thread th: its size; if another
 * thread made it, the op waits (OPF_WAIT) and the making op says when the
 * block exists (OPF_PUBLISH). */
static uint64_t use_block(struct stream *st, const struct origin *org, uint32_t id, uint32_t th,
			  struct op *o, struct gen_stats *gs)
{
	struct op *made = &st[org[id].thread].ops[org[id].index];
	if (org[id].thread != th) {
		o->flags |= OPF_WAIT;
		made->flags |= OPF_PUBLISH;
		gs->cross_thread++;
	}
	return made->size;
}

static int write_ops(const char *trace_path, const char *out, struct gen_stats *gs)
{
	struct trace *t;
	int err = trace_open(trace_path, &t);
	if (err)
		return err;
	const struct trace_info *ti = trace_info(t);
	uint32_t nt = ti->nthreads ? ti->nthreads : 1;
	struct stream *st = calloc(nt, sizeof(*st));
	struct hmap map;
	hmap_init(&map, sizeof(uint32_t), 1 << 16);
	struct origin *org = NULL;
	size_t org_cap = 0;
	uint32_t next_id = 1;
	memset(gs, 0, sizeof(*gs));
	struct trace_event ev;
	int r;
	while (!err && (r = trace_next(t, &ev)) > 0) {
		if (!st)
			break;
		if (gs->ops >= UINT32_MAX || next_id == UINT32_MAX) {
			err = -EFBIG;	/* 4G calls: beyond what a replay can name */
			break;
		}
		struct op o = { 0 };
		o.seq = (uint32_t)gs->ops;
		uint32_t th = ev.thread < nt ? ev.thread : 0;
		if (ev.failed)	/* replayed too: it fails again (or its result is dropped) */
			gs->failed++;
		switch (ev.kind) {
		case MFX_K_MALLOC:
		case MFX_K_CALLOC:
			o.kind = ev.kind == MFX_K_MALLOC ? OP_MALLOC : OP_CALLOC;
			o.size = ev.size;
			break;
		case MFX_K_POSIX_MEMALIGN:
		case MFX_K_ALIGNED_ALLOC:
		case MFX_K_MEMALIGN:
		case MFX_K_VALLOC:
		case MFX_K_PVALLOC: {
			o.kind = OP_MEMALIGN;
			o.size = ev.size;
			uint64_t a = ev.align ? ev.align : 4096;
			while ((1ull << o.align_log2) < a && o.align_log2 < 30)
				o.align_log2++;
			if (o.align_log2 < 3)
				o.align_log2 = 3;
			break;
		}
		case MFX_K_FREE:
			o.kind = OP_FREE;
			o.id = idmap_take(&map, ev.ptr);
			if (!o.id) {
				gs->skipped_frees++;	/* allocated before the window */
				continue;
			}
			o.size = use_block(st, org, o.id, th, &o, gs);
			err = push(&st[th], &o);
			gs->counts[OP_FREE]++;
			gs->ops++;
			continue;
		case MFX_K_REALLOC:
		case MFX_K_REALLOCARRAY:
			o.kind = OP_REALLOC;
			o.size = ev.size;
			if (ev.failed) {	/* the old block stays where it was */
				o.old = ev.old_ptr ? idmap_get(&map, ev.old_ptr) : 0;
				ev.ptr = 0;
			} else {
				o.old = ev.old_ptr ? idmap_take(&map, ev.old_ptr) : 0;
			}
			if (o.old)
				use_block(st, org, o.old, th, &o, gs);
			break;
		default:
			continue;
		}
		if (ev.ptr && !ev.failed) {
			o.id = next_id++;
			if ((err = idmap_put(&map, ev.ptr, o.id)) ||
			    (err = origin_set(&org, &org_cap, o.id, th, st[th].n)))
				break;
		}
		err = push(&st[th], &o);
		gs->counts[o.kind]++;
		gs->ops++;
	}
	if (!st)
		err = -ENOMEM;
	FILE *f = err ? NULL : fopen(out, "we");
	if (!err && !f)
		err = -errno;
	if (f) {
		struct ops_header h = { OPS_MAGIC, nt, 0, next_id, gs->ops };
		fwrite(&h, sizeof(h), 1, f);
		for (uint32_t i = 0; i < nt; i++) {
			struct ops_thread ot = { i < ti->nthreads ? ti->tids[i] : 0, 0, st[i].n };
			fwrite(&ot, sizeof(ot), 1, f);
		}
		for (uint32_t i = 0; i < nt; i++)
			if (st[i].n && fwrite(st[i].ops, sizeof(struct op), st[i].n, f) != st[i].n)
				err = -EIO;
		if (fclose(f))
			err = -errno;
	}
	gs->blocks = next_id - 1;
	gs->nthreads = nt;
	for (uint32_t i = 0; st && i < nt; i++)
		free(st[i].ops);
	free(st);
	hmap_free(&map);
	free(org);
	trace_close(t);
	return err;
}

/* ---- replay.c: the window as a readable program ---------------------------------- */

static const char c_head[] =
	"#define _GNU_SOURCE\n"
	"#include <pthread.h>\n#include <sched.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
	"#include <string.h>\n#include <time.h>\n#include <unistd.h>\n\n"
	"static void *b[NBLOCKS + 1];\t\t/* block id -> pointer */\n"
	"static volatile char made[NBLOCKS + 1];\t/* W/P: cross-thread blocks */\n"
	"static long long d[NCALLS];\t\t/* live-bytes change of each call, by place */\n"
	"static unsigned long long calls[6];\n\n"
	"static void touch(void *p, unsigned long long n)\n{\n"
	"\tvolatile char *c = p;\n\tif (!p || !n)\n\t\treturn;\n"
	"\tfor (unsigned long long i = 0; i < n; i += 4096)\n\t\tc[i] = 1;\n\tc[n - 1] = 1;\n}\n\n"
	"static void W(unsigned id)\n{\n"
	"\twhile (!__atomic_load_n(&made[id], __ATOMIC_ACQUIRE))\n\t\tsched_yield();\n}\n"
	"static void P(unsigned id)\n{\n\t__atomic_store_n(&made[id], 1, __ATOMIC_RELEASE);\n}\n\n"
	"static void K(int kind)\n{\n\t__atomic_fetch_add(&calls[kind], 1, __ATOMIC_RELAXED);\n}\n\n"
	"/* s: the call's place in the window; id: the block made; n: bytes */\n"
	"static void M(unsigned s, unsigned id, unsigned long long n)\n{\n"
	"\tb[id] = malloc(n);\n\ttouch(b[id], n);\n\td[s] = n;\n\tK(1);\n}\n\n"
	"static void C(unsigned s, unsigned id, unsigned long long n)\n{\n"
	"\tb[id] = calloc(1, n);\n\ttouch(b[id], n);\n\td[s] = n;\n\tK(2);\n}\n\n"
	"static void R(unsigned s, unsigned id, unsigned old, unsigned long long oldn, "
	"unsigned long long n)\n{\n"
	"\tb[id] = realloc(b[old], n);\n\ttouch(b[id], n);\n"
	"\td[s] = (long long)n - (long long)oldn;\n\tK(3);\n}\n\n"
	"static void F(unsigned s, unsigned id, unsigned long long n)\n{\n"
	"\tfree(b[id]);\n\td[s] = -(long long)n;\n\tK(4);\n}\n\n"
	"static void A(unsigned s, unsigned id, unsigned long long al, unsigned long long n)\n{\n"
	"\tif (posix_memalign(&b[id], al, n))\n\t\tb[id] = NULL;\n\ttouch(b[id], n);\n"
	"\td[s] = n;\n\tK(5);\n}\n\n"
	"/* calls that failed in the original: made again, the result dropped */\n"
	"static void XM(unsigned long long n)\n{\n\tfree(malloc(n));\n\tK(1);\n}\n\n"
	"static void XC(unsigned long long n)\n{\n\tfree(calloc(1, n));\n\tK(2);\n}\n\n"
	"static void XR(unsigned old, unsigned long long n)\n{\n"
	"\tvoid *q = realloc(b[old], n);\n\tif (q && old)\n\t\tb[old] = q;\n\telse\n\t\tfree(q);\n"
	"\tK(3);\n}\n\n"
	"static void XA(unsigned long long al, unsigned long long n)\n{\n\tvoid *q;\n"
	"\tif (!posix_memalign(&q, al, n))\n\t\tfree(q);\n\tK(5);\n}\n\n";

/* The generated program is one file compiled alone: its clock and RssAnon
 * reader are its own, not common/'s. */
static const char c_main[] =
	"\nstatic unsigned long long now_ns(void)\n{\n\tstruct timespec ts;\n"
	"\tclock_gettime(CLOCK_MONOTONIC, &ts);\n"
	"\treturn (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;\n}\n\n"
	"static unsigned long long rss_anon(void)\n{\n\tchar l[256];\n\tunsigned long long kb = 0;\n"
	"\tFILE *f = fopen(\"/proc/self/status\", \"r\");\n"
	"\twhile (f && fgets(l, sizeof(l), f))\n"
	"\t\tif (sscanf(l, \"RssAnon: %llu\", &kb) == 1)\n\t\t\tbreak;\n"
	"\tif (f)\n\t\tfclose(f);\n\treturn kb * 1024;\n}\n\n"
	"int main(int argc, char **argv)\n{\n"
	"\tpthread_t t[NTHREADS];\n\tunsigned long long t0 = now_ns();\n"
	"\tfor (int i = 0; i < NTHREADS; i++)\n\t\tpthread_create(&t[i], NULL, thread[i], NULL);\n"
	"\tfor (int i = 0; i < NTHREADS; i++)\n\t\tpthread_join(t[i], NULL);\n"
	"\tunsigned long long wall = now_ns() - t0, ops = 0;\n"
	"\tlong long live = 0, peak = 0;\n"
	"\tfor (long i = 0; i < NCALLS; i++)\t/* live bytes in the recorded order */\n"
	"\t\tif ((live += d[i]) > peak)\n\t\t\tpeak = live;\n"
	"\tfor (int k = 1; k < 6; k++)\n\t\tops += calls[k];\n"
	"\tprintf(\"{\\\"replayer\\\": \\\"replay.c\\\", \\\"threads\\\": %d, \\\"ops\\\": %llu, "
	"\\\"peak_live_bytes\\\": %lld, \\\"live_bytes_end\\\": %lld, \\\"wall_ns\\\": %llu, "
	"\\\"counts\\\": {\\\"malloc\\\": %llu, \\\"calloc\\\": %llu, \\\"realloc\\\": %llu, "
	"\\\"free\\\": %llu, \\\"memalign\\\": %llu}, \\\"rss_end_self_bytes\\\": %llu, "
	"\\\"cut\\\": %s}\\n\",\n"
	"\t       NTHREADS, ops, peak, live, wall, calls[1], calls[2], calls[3], calls[4], calls[5],\n"
	"\t       rss_anon(), CUT ? \"true\" : \"false\");\n"
	"\tfflush(stdout);\n"
	"\tif (argc > 1 && !strcmp(argv[1], \"--hold\"))\t/* mfx measures us, then closes stdin */\n"
	"\t\twhile (getchar() != EOF)\n\t\t\t;\n"
	"\t(void)argv;\n\t_exit(0);\t/* the blocks still live stay allocated */\n}\n";

#define C_CHUNK 2000	/* calls per generated function: quick to compile */

/* RUN/replay.c from RUN/replay.ops: the first max_calls calls of the window
 * in the recorded order (a prefix keeps every happens-before), each thread
 * a sequence of plain calls.  *written gets how many. */
static int write_c(const char *path, const char *ops_path, const char *trace_path,
		   uint64_t max_calls, uint64_t *written)
{
	char *m;
	size_t len;
	int err = read_file(ops_path, &m, &len);
	if (err)
		return err;
	const struct ops_header *h = (const void *)m;
	const struct ops_thread *th = (const void *)(h + 1);
	const struct op *ops = (const void *)(th + h->nthreads);
	uint64_t ncalls = h->nops < max_calls ? h->nops : max_calls, nblocks = 0;
	uint64_t *size = calloc(h->nblocks + 1, sizeof(*size));	/* block id -> bytes */
	FILE *f = size ? fopen(path, "we") : NULL;
	if (!f) {
		err = size ? -errno : -ENOMEM;
		free(size);
		free(m);
		return err;
	}
	const struct op *o = ops;
	for (uint32_t i = 0; i < h->nthreads; o += th[i].nops, i++)
		for (uint64_t k = 0; k < th[i].nops; k++) {
			if (o[k].seq < ncalls && o[k].id > nblocks)
				nblocks = o[k].id;
			if (o[k].id && o[k].kind != OP_FREE && o[k].id <= h->nblocks)
				size[o[k].id] = o[k].size;
		}
	fprintf(f, "/*\n * replay.c - generated by mfx %s from %s:\n"
		   " * %s%llu allocation calls of the captured window on %u thread%s, in the\n"
		   " * order each thread made them, as plain C (Approach B).  The native\n"
		   " * replayer (mfx-replay, run by `mfx replay`) replays any length from\n"
		   " * replay.ops; this file is the same calls to read, change and run:\n *\n"
		   " *   cc -pthread -o replay replay.c && ./replay\n"
		   " *   LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ./replay\n"
		   " *   GLIBC_TUNABLES=glibc.malloc.arena_max=1 ./replay\n *\n"
		   " * Prints one JSON line: calls made, live-bytes peak (in the recorded\n"
		   " * order), wall time, RssAnon at the end.  Frees of blocks allocated\n"
		   " * before the window are left out.  Every block's pages are written.\n */\n",
		MFX_VERSION, trace_path, ncalls < h->nops ? "the first " : "",
		(unsigned long long)ncalls, h->nthreads, h->nthreads == 1 ? "" : "s");
	fprintf(f, "#define NTHREADS %u\n#define NBLOCKS %llu\n#define NCALLS %llu\n#define CUT %d\n",
		h->nthreads, (unsigned long long)nblocks, (unsigned long long)(ncalls ? ncalls : 1),
		ncalls < h->nops);
	fputs(c_head, f);
	o = ops;
	for (uint32_t i = 0; i < h->nthreads; o += th[i].nops, i++) {
		uint64_t part = 0, k;
		for (k = 0; k < th[i].nops && o[k].seq < ncalls; k++) {
			const struct op *x = &o[k];
			if (k % C_CHUNK == 0)
				fprintf(f, "%sstatic void t%u_%llu(void)\t/* thread %u (tid %u) */\n{\n",
					k ? "}\n\n" : "", i, (unsigned long long)part++, i, th[i].tid);
			unsigned long long s = x->seq, n = x->size, id = x->id, old = x->old;
			if ((x->flags & OPF_WAIT) && (x->kind == OP_FREE ? id : old))
				fprintf(f, "\tW(%llu);\n", x->kind == OP_FREE ? id : old);
			switch (x->kind) {
			case OP_MALLOC:
			case OP_CALLOC:
				if (id)
					fprintf(f, "\t%c(%llu, %llu, %llu);\n",
						x->kind == OP_MALLOC ? 'M' : 'C', s, id, n);
				else
					fprintf(f, "\tX%c(%llu);\n", x->kind == OP_MALLOC ? 'M' : 'C', n);
				break;
			case OP_MEMALIGN:
				if (id)
					fprintf(f, "\tA(%llu, %llu, %llu, %llu);\n", s, id,
						1ull << x->align_log2, n);
				else
					fprintf(f, "\tXA(%llu, %llu);\n", 1ull << x->align_log2, n);
				break;
			case OP_REALLOC:
				if (id)
					fprintf(f, "\tR(%llu, %llu, %llu, %llu, %llu);\n", s, id, old,
						old ? (unsigned long long)size[old] : 0ull, n);
				else
					fprintf(f, "\tXR(%llu, %llu);\n", old, n);
				break;
			case OP_FREE:
				fprintf(f, "\tF(%llu, %llu, %llu);\n", s, id, n);
				break;
			}
			if (id && x->kind != OP_FREE && (x->flags & OPF_PUBLISH))
				fprintf(f, "\tP(%llu);\n", id);
		}
		if (k)
			fprintf(f, "}\n\n");
		fprintf(f, "static void *thread%u(void *arg)\n{\n", i);
		for (uint64_t p = 0; p < part; p++)
			fprintf(f, "\tt%u_%llu();\n", i, (unsigned long long)p);
		fprintf(f, "\treturn arg;\n}\n\n");
	}
	fprintf(f, "static void *(*const thread[NTHREADS])(void *) = {");
	for (uint32_t i = 0; i < h->nthreads; i++)
		fprintf(f, "%s thread%u", i ? "," : "", i);
	fprintf(f, " };\n");
	fputs(c_main, f);
	err = ferror(f) ? -EIO : 0;
	if (fclose(f) && !err)
		err = -errno;
	free(size);
	free(m);
	*written = ncalls;
	return err;
}

/* ---- allocators -------------------------------------------------------------------------- */

struct allocator {
	const char *name;
	const char *libs[3];	/* first that exists; NULL: glibc itself */
	const char *pkg;
};

static const struct allocator allocators[] = {
	{ "glibc", { NULL }, "libc6" },
	{ "jemalloc", { "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", NULL }, "libjemalloc2" },
	{ "tcmalloc", { "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
			"/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4", NULL }, "libtcmalloc-minimal4" },
	{ "mimalloc", { "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2",
			"/usr/lib/x86_64-linux-gnu/libmimalloc.so", NULL }, "libmimalloc2.0" },
};
#define NALLOC (sizeof(allocators) / sizeof(allocators[0]))

static const char *alloc_lib(const struct allocator *a)
{
	for (int i = 0; a->libs[i]; i++)
		if (access(a->libs[i], R_OK) == 0)
			return a->libs[i];
	return NULL;
}

/* "M_ARENA_MAX=2" (mallopt style) or "glibc.malloc.arena_max=2" -> GLIBC_TUNABLES */
static void tunable_env(const char *t, char *out, size_t n)
{
	static const struct { const char *m, *g; } map[] = {
		{ "M_ARENA_MAX", "glibc.malloc.arena_max" },
		{ "M_MMAP_THRESHOLD", "glibc.malloc.mmap_threshold" },
		{ "M_TRIM_THRESHOLD", "glibc.malloc.trim_threshold" },
		{ "M_TOP_PAD", "glibc.malloc.top_pad" },
		{ "M_MMAP_MAX", "glibc.malloc.mmap_max" },
		{ "M_ARENA_TEST", "glibc.malloc.arena_test" },
		{ "TCACHE_COUNT", "glibc.malloc.tcache_count" },
	};
	out[0] = 0;
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", t);
	for (char *tok = strtok(buf, ":,"); tok; tok = strtok(NULL, ":,")) {
		char *eq = strchr(tok, '=');
		const char *key = tok;
		if (eq)
			*eq = 0;
		for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (!strcmp(tok, map[i].m))
				key = map[i].g;
		size_t l = strlen(out);
		snprintf(out + l, n - l, "%s%s=%s", l ? ":" : "", key, eq ? eq + 1 : "");
	}
}

struct run_row {
	char name[64], tunables[256];
	char json[2048];	/* the replayer's line, without its closing brace */
	uint64_t rss_peak, rss_end, ops, wall_ns;
	int64_t peak_live;
	char smaps[300];	/* its smaps_replay file */
	char replayer[16];	/* "native" or "replay.c" */
	struct tl_point {
		double s, mib;	/* seconds since the replay's exec, RssAnon */
	} *tl;			/* RSS timeline, sampled from outside */
	size_t ntl, captl;
	int ok, cut;
};

static uint64_t jnum(const char *json, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\": ", key);
	const char *p = strstr(json, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

/* The replay's allocator memory, read from outside: RssAnon (the ops file
 * is file-backed and the replayer's tables are shared mappings, so neither
 * counts; its thread stacks do, as in the original). */
static uint64_t rss_anon_of(pid_t pid)
{
	uint64_t v = 0;
	return procfs_status_field(pid, "RssAnon", &v) ? 0 : v;
}

static void tl_add(struct run_row *row, double t, uint64_t rss)
{
	if (grow_array(&row->tl, &row->captl, row->ntl, sizeof(*row->tl)) == 0)
		row->tl[row->ntl++] = (struct tl_point){ t, (double)rss / 1048576.0 };
}

/* A fresh copy of pid's smaps in place of *buf. */
static int grab_smaps(pid_t pid, char **buf, size_t *len)
{
	char path[64], *b;
	size_t n;
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	int err = read_file(path, &b, &n);
	if (err)
		return err;
	free(*buf);
	*buf = b;
	*len = n;
	return 0;
}

#define SAMPLE_MS 2
#define SMAPS_GAP_NS 100000000ull	/* at most one smaps copy per 100 ms */

/* Run the replayer once; sample its RSS from outside every SAMPLE_MS and
 * copy its smaps at the highest RSS (into smaps_path); its JSON into row. */
static int run_one(const char *bin, const char *ops, const struct allocator *a,
		   const char *tunables, uint64_t max_ops, uint64_t max_live, const char *smaps_path,
		   struct run_row *row)
{
	int out[2], in[2];
	if (pipe2(out, O_CLOEXEC))
		return -errno;
	if (pipe2(in, O_CLOEXEC)) {
		close(out[0]);
		close(out[1]);
		return -errno;
	}
	char maxs[32], maxl[32];
	snprintf(maxs, sizeof(maxs), "%llu", (unsigned long long)max_ops);
	snprintf(maxl, sizeof(maxl), "%llu", (unsigned long long)max_live);
	int ex[2];	/* closes on exec: sampling starts in the replayer, not in our copy */
	if (pipe2(ex, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(ex[0]);
		dup2(out[1], 1);
		dup2(in[0], 0);
		const char *lib = a->libs[0] && a->libs[0][0] == '/' && !a->pkg ? a->libs[0] : alloc_lib(a);
		/* an address-space limit: a runaway replay fails its mallocs, not the machine */
		struct rlimit rl = { (rlim_t)(max_live < (1ull << 40) ? 4 * max_live + (1ull << 30) : RLIM_INFINITY),
				     RLIM_INFINITY };
		if (rl.rlim_cur != RLIM_INFINITY)
			setrlimit(RLIMIT_AS, &rl);
		unsetenv("LD_PRELOAD");
		unsetenv("MFX_OUT");
		if (lib)
			setenv("LD_PRELOAD", lib, 1);
		if (tunables && *tunables) {
			char env[600];
			tunable_env(tunables, env, sizeof(env));
			setenv("GLIBC_TUNABLES", env, 1);
		}
		const char *argv[] = { bin, "--hold", ops, "--max-ops", maxs, "--max-live-bytes", maxl,
				       NULL };
		execv(bin, (char **)argv);
		int e = errno;
		if (write(ex[1], &e, sizeof(e)) < 0)
			_exit(126);
		_exit(127);
	}
	close(ex[1]);
	close(out[1]);
	close(in[0]);
	int e;
	ssize_t er;
	while ((er = read(ex[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(ex[0]);	/* 0 bytes: exec succeeded; a failure shows below (no JSON line) */
	uint64_t t0 = now_ns(), smaps_at = 0, smaps_rss = 0;
	char *smaps = NULL;
	size_t smaps_len = 0, len = 0;
	int line = 0;
	row->rss_peak = 0;
	for (;;) {
		struct pollfd p = { out[0], POLLIN, 0 };
		int r = poll(&p, 1, SAMPLE_MS);
		uint64_t rss = rss_anon_of(pid), now = now_ns();
		if (rss) {
			tl_add(row, (double)(now - t0) / 1e9, rss);
			if (rss > row->rss_peak)
				row->rss_peak = rss;
			/* smaps at the highest RSS: on every new high 2% above the last copy */
			if (smaps_path && rss > smaps_rss + smaps_rss / 50 && now - smaps_at > SMAPS_GAP_NS &&
			    grab_smaps(pid, &smaps, &smaps_len) == 0) {
				smaps_rss = rss;
				smaps_at = now;
			}
		}
		if (r < 0 && errno != EINTR)
			break;
		if (r > 0) {
			ssize_t n = read(out[0], row->json + len, sizeof(row->json) - 1 - len);
			if (n <= 0)
				break;	/* it ended without --hold's wait (crashed?) */
			len += (size_t)n;
			row->json[len] = 0;
			if (strchr(row->json, '\n') || len == sizeof(row->json) - 1) {
				line = 1;
				break;
			}
		}
	}
	/* the replay is over and waits on its stdin: the last readings */
	row->rss_end = rss_anon_of(pid);
	if (row->rss_end > row->rss_peak)
		row->rss_peak = row->rss_end;
	if (smaps_path && line && (!smaps || row->rss_end >= smaps_rss))
		grab_smaps(pid, &smaps, &smaps_len);
	if (row->rss_end)
		tl_add(row, (double)(now_ns() - t0) / 1e9, row->rss_end);
	close(in[1]);	/* let it exit */
	close(out[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	snprintf(row->name, sizeof(row->name), "%s", a->name);
	snprintf(row->tunables, sizeof(row->tunables), "%s", tunables ? tunables : "");
	if (smaps && smaps_path)
		write_file(smaps_path, smaps, smaps_len);
	free(smaps);
	if (!line || !WIFEXITED(st) || WEXITSTATUS(st) || row->json[0] != '{')
		return -MFX_E_REMOTE;
	row->json[strcspn(row->json, "\n")] = 0;
	char *close_brace = strrchr(row->json, '}');
	if (close_brace)
		*close_brace = 0;
	row->ops = jnum(row->json, "ops");
	row->wall_ns = jnum(row->json, "wall_ns");
	row->peak_live = (int64_t)jnum(row->json, "peak_live_bytes");
	row->cut = strstr(row->json, "\"cut\": true") != NULL;
	row->ok = 1;
	return 0;
}

/* One row of replay.json: the replayer's fields, then what mfx measured. */
static void write_row(FILE *f, const struct run_row *row)
{
	/* the replayer's line starts {"replayer": "X", ...: ours goes first */
	const char *j = strstr(row->json, "\", ");
	j = j ? j + 3 : "";
	fprintf(f, "{\"allocator\": ");
	json_quote(f, row->name);
	fprintf(f, ", \"tunables\": ");
	json_quote(f, row->tunables);
	fprintf(f, ", \"replayer\": \"%s\", ", row->replayer);
	fprintf(f, "%s, \"rss_peak_bytes\": %llu, \"rss_end_bytes\": %llu, \"smaps\": \"%s\", "
		   "\"rss_samples\": %zu, \"rss_timeline\": [", j,
		(unsigned long long)row->rss_peak, (unsigned long long)row->rss_end, row->smaps,
		row->ntl);
	/* at most 400 points: each the highest sample of its stretch */
	size_t step = row->ntl > 400 ? (row->ntl + 399) / 400 : 1;
	for (size_t i = 0, k = 0; i < row->ntl; i += step, k++) {
		double m = 0, t = row->tl[i].s;
		for (size_t q = i; q < i + step && q < row->ntl; q++)
			if (row->tl[q].mib > m)
				m = row->tl[q].mib;
		fprintf(f, "%s[%.4f, %llu]", k ? ", " : "", t,
			(unsigned long long)(m * 1048576.0));
	}
	fprintf(f, "]}");
}

/* ---- the chart -------------------------------------------------------------------------- */

/* The original's allocator memory: the highest heap RSS sampled. */
static uint64_t heap_rss_peak(const struct trace *t)
{
	const struct trace_sample *sm;
	size_t ns = trace_samples(t, &sm);
	uint64_t peak = 0;
	for (size_t i = 0; i < ns; i++)
		if (sm[i].v[MFX_SF_HEAP_RSS] > peak)
			peak = sm[i].v[MFX_SF_HEAP_RSS];
	return peak;
}

static const uint32_t run_colours[] = { CHART_ORANGE, CHART_GREEN, CHART_RED, CHART_PURPLE,
					CHART_TEAL, CHART_GREY };

/* RSS against progress through each run (0-100% of its own duration): the
 * original's heap RSS (and after malloc_trim: Approach A) and each replay's
 * (Approach B) on the same axes. */
static int comparison_chart(const char *dir, const struct trace *t, const struct run_row *rows,
			    int nrows)
{
	const struct trace_sample *sm;
	size_t ns = trace_samples(t, &sm);
	const struct trace_info *ti = trace_info(t);
	double max = 0;
	double *ox = calloc(ns + 1, sizeof(double)), *oy = calloc(ns + 1, sizeof(double));
	if (!ox || !oy) {
		free(ox);
		free(oy);
		return -ENOMEM;
	}
	uint64_t t0 = ti->window_start_ns, t1 = ti->window_end_ns;
	if ((!t0 || !t1 || t1 <= t0) && ns) {
		t0 = sm[0].ts_ns;
		t1 = sm[ns - 1].ts_ns;
	}
	size_t no = 0;
	for (size_t i = 0; i < ns; i++) {
		if (sm[i].ts_ns < t0 || sm[i].ts_ns > t1 + 1000000000ull || !sm[i].v[MFX_SF_HEAP_RSS])
			continue;	/* (a sample without smaps has no heap figure) */
		double x = t1 > t0 ? 100.0 * (double)(sm[i].ts_ns - t0) / (double)(t1 - t0) : 0;
		ox[no] = x > 100 ? 100 : x;
		oy[no] = (double)sm[i].v[MFX_SF_HEAP_RSS] / 1048576.0;
		if (oy[no] > max)
			max = oy[no];
		no++;
	}
	double trim_after = -1;
	const struct trace_mark *mk;
	size_t nm = trace_marks(t, &mk);
	for (size_t i = 0; i < nm; i++)
		if (mk[i].kind == MFX_MARK_TRIM && mk[i].nvals >= 4)
			trim_after = (double)mk[i].vals[3] / 1048576.0;
	for (int i = 0; i < nrows; i++)
		for (size_t k = 0; rows[i].ok && k < rows[i].ntl; k++)
			if (rows[i].tl[k].mib > max)
				max = rows[i].tl[k].mib;
	struct chart *c = chart_new(1200, 700, "Allocator RSS: the original against its replays");
	if (!c) {
		free(ox);
		free(oy);
		return -ENOMEM;
	}
	chart_subtitle(c, "A: the original's heap RSS (and after malloc_trim); B: the same calls "
			  "replayed, RssAnon sampled from outside");
	chart_axes(c, 0, 100, 0, max > 0 ? max * 1.1 : 1, "progress through the run (% of its duration)",
		   "RSS (MiB)");
	if (no)
		chart_line(c, ox, oy, no, CHART_BLUE, "original heap RSS (A)", 0);
	if (trim_after >= 0) {
		double tx[2] = { 90, 100 }, ty[2] = { trim_after, trim_after };
		chart_line(c, tx, ty, 2, CHART_BLUE, "original after malloc_trim (A)", 1);
	}
	int k = 0;
	for (int i = 0; i < nrows; i++) {
		if (!rows[i].ok || !rows[i].ntl)
			continue;
		double *x = calloc(2 * rows[i].ntl, sizeof(double)), *y = x + rows[i].ntl;
		if (!x)
			continue;
		double d = rows[i].tl[rows[i].ntl - 1].s;
		for (size_t j = 0; j < rows[i].ntl; j++) {
			x[j] = d > 0 ? 100.0 * rows[i].tl[j].s / d : 0;
			y[j] = rows[i].tl[j].mib;
		}
		char label[200];
		snprintf(label, sizeof(label), "%s%s%s%s (B)", rows[i].name,
			 rows[i].tunables[0] ? " " : "", rows[i].tunables,
			 strcmp(rows[i].replayer, "native") ? ", replay.c" : "");
		chart_line(c, x, y, rows[i].ntl,
			   run_colours[k++ % (sizeof(run_colours) / sizeof(run_colours[0]))], label, 0);
		free(x);
	}
	if (!no && !k)
		chart_note(c, "no RSS samples");
	chart_legend(c);
	char path[PATH_MAX];
	int err = chart_save(c, path_join(path, sizeof(path), dir, "rss_comparison.png"));
	chart_free(c);
	free(ox);
	free(oy);
	return err;
}

/* Run argv (PATH searched), its output to /dev/null: its exit status, or -1. */
static int run_quiet(const char *const *argv)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- a replay run ----------------------------------------------------------------------- */

int replay_run(const char *dir, const struct replay_opts *o)
{
	const char *alist = o->allocators;
	const char *const *tun = o->tunables;
	int ntun = o->ntunables, quiet = o->quiet, no_compile = o->no_compile;
	uint64_t max_ops = o->max_ops, max_live = o->max_live_bytes, c_max = o->c_max_calls;
	struct allocator custom = { NULL, { NULL }, NULL };
	char tpath[PATH_MAX], ops[PATH_MAX], src[PATH_MAX], bin[PATH_MAX];
	path_join(tpath, sizeof(tpath), dir, "trace.mfx");
	if (access(tpath, R_OK)) {
		mfx_err("no trace in '%s' (run 'mfx launch' or 'mfx attach' first)", dir);
		return EXIT_FAIL;
	}
	/* which allocators */
	int want[NALLOC] = { 0 }, nwant = 0;
	for (size_t i = 0; i < NALLOC; i++) {
		int asked = !alist;
		if (alist) {
			char buf[256];
			snprintf(buf, sizeof(buf), "%s", alist);
			for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
				asked |= !strcmp(tok, allocators[i].name);
		}
		if (!asked)
			continue;
		if (allocators[i].libs[0] && !alloc_lib(&allocators[i])) {
			if (alist)
				mfx_note("%s is not installed (apt-get install %s); skipped",
					 allocators[i].name, allocators[i].pkg);
			continue;
		}
		want[i] = 1;
		nwant++;
	}
	static char custom_path[PATH_MAX];
	if (alist) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s", alist);
		for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
			int known = 0;
			if (strchr(tok, '/')) {	/* --allocator /path/to/libfoo.so */
				snprintf(custom_path, sizeof(custom_path), "%s", tok);
				custom.name = strrchr(custom_path, '/') + 1;
				custom.libs[0] = custom_path;
				nwant++;
				continue;
			}
			for (size_t i = 0; i < NALLOC; i++)
				known |= !strcmp(tok, allocators[i].name);
			(void)known;	/* cmd_replay checked the names */
		}
	}
	if (!nwant && !ntun) {
		mfx_err("none of the allocators asked for is installed");
		return EXIT_FAIL;
	}

	struct gen_stats gs;
	path_join(ops, sizeof(ops), dir, "replay.ops");
	if (!quiet)
		progress_show("mfx: replay: reading the trace");
	int err = write_ops(tpath, ops, &gs);
	progress_clear();
	if (err) {
		mfx_err("cannot turn '%s' into a replay: %s", tpath, mfx_strerror(-err));
		return EXIT_FAIL;
	}
	/* the native replayer, built with mfx */
	char native[PATH_MAX];
	if (helper_path("mfx-replay", native, sizeof(native)) || access(native, X_OK)) {
		mfx_err("cannot find mfx-replay next to mfx (reinstall mfx)");
		return EXIT_FAIL;
	}
	/* replay.c: the window as a program; compiled into RUN/replay */
	path_join(src, sizeof(src), dir, "replay.c");
	path_join(bin, sizeof(bin), dir, "replay");
	uint64_t c_calls = 0;
	int compiled = 0;
	if ((err = write_c(src, ops, tpath, c_max, &c_calls))) {
		mfx_err("cannot write '%s': %s", src, mfx_strerror(-err));
		return EXIT_FAIL;
	}
	if (!no_compile) {
		if (!quiet)
			progress_show("mfx: replay: compiling replay.c (%llu calls) ...",
				      (unsigned long long)c_calls);
		const char *cc[] = { "cc", "-std=gnu11", "-O0", "-pthread", "-w", "-o", bin, src, NULL };
		compiled = run_quiet(cc) == 0;
		progress_clear();
		if (!compiled)
			mfx_note("replay.c not compiled (no working cc? apt-get install gcc); the "
				 "native replayer runs anyway");
	}
	if (!quiet) {
		char a[32], b[32];
		mfx_note("replay: %s calls in %llu threads (%s blocks, %llu freed on another thread)%s",
			 fmt_count(gs.ops, a, sizeof(a)), (unsigned long long)gs.nthreads,
			 fmt_count(gs.blocks, b, sizeof(b)), (unsigned long long)gs.cross_thread,
			 gs.skipped_frees ? "; frees of blocks from before the window left out" : "");
		if (c_calls < gs.ops)
			mfx_note("replay.c holds the first %llu calls (--c-max-calls); the native "
				 "replayer replays all of them", (unsigned long long)c_calls);
	}

	struct run_row rows[NALLOC + 10];
	memset(rows, 0, sizeof(rows));
	int nrows = 0, nfail = 0, ncut = 0, custom_done = 0;
	for (size_t i = 0; i <= NALLOC + (size_t)ntun + 1; i++) {
		const struct allocator *a;
		const char *t = NULL, *runner = native;
		if (i < NALLOC) {
			if (!want[i])
				continue;
			a = &allocators[i];
		} else if (i - NALLOC < (size_t)ntun) {
			a = &allocators[0];
			t = tun[i - NALLOC];
		} else if (custom.name && !custom_done) {
			a = &custom;
			custom_done = 1;
			i--;	/* the generated program comes next */
		} else if (i == NALLOC + (size_t)ntun && compiled && c_calls == gs.ops &&
			   max_ops == UINT64_MAX && max_live == UINT64_MAX && want[0]) {
			a = &allocators[0];	/* replay.c itself, under glibc: a cross-check */
			runner = bin;
		} else {
			continue;
		}
		if (!quiet)
			progress_show("mfx: replay under %s%s%s%s ...", a->name, t ? " " : "", t ? t : "",
				      runner == bin ? " (replay.c)" : "");
		struct run_row *row = &rows[nrows++];
		char sm[PATH_MAX], smn[300];
		if (nrows == 1)
			snprintf(smn, sizeof(smn), "smaps_replay");
		else
			snprintf(smn, sizeof(smn), "smaps_replay.%d", nrows - 1);
		path_join(sm, sizeof(sm), dir, smn);
		snprintf(row->smaps, sizeof(row->smaps), "%s", smn);
		snprintf(row->replayer, sizeof(row->replayer), "%s",
			 runner == bin ? "replay.c" : "native");
		err = run_one(runner, ops, a, t, max_ops, max_live, sm, row);
		if (!err && row->cut)
			ncut++;
		progress_clear();
		if (err) {
			mfx_err("the replay under %s%s%s failed", a->name, t ? " " : "", t ? t : "");
			nfail++;
		}
	}
	/* replay.json */
	char jpath[PATH_MAX], jtmp[PATH_MAX + 8];
	FILE *f = fopen_replace(path_join(jpath, sizeof(jpath), dir, "replay.json"), jtmp,
				sizeof(jtmp));
	if (!f) {
		mfx_err("cannot write '%s': %s", jpath, strerror(errno));
		return EXIT_FAIL;
	}
	fprintf(f, "{\"runs\": [\n");
	int first = 1;
	for (int i = 0; i < nrows; i++)
		if (rows[i].ok) {
			fputs(first ? "  " : ",\n  ", f);
			write_row(f, &rows[i]);
			first = 0;
		}
	fprintf(f, "\n],\n \"trace_ops\": %llu, \"skipped_frees\": %llu, \"failed_calls\": %llu, "
		   "\"cross_thread_frees\": %llu, \"replay_c_calls\": %llu, \"replay_compiled\": %s}\n",
		(unsigned long long)gs.ops, (unsigned long long)gs.skipped_frees,
		(unsigned long long)gs.failed, (unsigned long long)gs.cross_thread,
		(unsigned long long)c_calls, compiled ? "true" : "false");
	if ((err = fclose_replace(f, jtmp, jpath, 0)))
		mfx_err("cannot write '%s': %s", jpath, mfx_strerror(-err));
	struct trace *t;
	uint64_t orig_heap = 0;
	if (trace_open(tpath, &t) == 0) {
		orig_heap = heap_rss_peak(t);
		if ((err = comparison_chart(dir, t, rows, nrows)))
			mfx_err("cannot draw rss_comparison.png: %s", mfx_strerror(-err));
		trace_close(t);
	}
	/* the terminal table */
	char hb[32];
	printf("original heap RSS peak: %s\n", fmt_bytes(orig_heap, hb, sizeof(hb)));
	printf("%-34s %12s %12s %12s %10s %10s\n", "replayed under", "RSS peak", "RSS end", "live peak",
	       "wall", "calls/s");
	for (int i = 0; i < nrows; i++) {
		if (!rows[i].ok)
			continue;
		char n[160], a[32], b[32], d[32], e[32], g[32];
		snprintf(n, sizeof(n), "%s%s%s%s", rows[i].name, rows[i].tunables[0] ? " " : "",
			 rows[i].tunables, strcmp(rows[i].replayer, "native") ? " (replay.c)" : "");
		printf("%-34s %12s %12s %12s %10s %10s\n", n, fmt_bytes(rows[i].rss_peak, a, sizeof(a)),
		       fmt_bytes(rows[i].rss_end, b, sizeof(b)),
		       fmt_bytes((uint64_t)(rows[i].peak_live > 0 ? rows[i].peak_live : 0), d,
				 sizeof(d)),
		       fmt_duration(rows[i].wall_ns, e, sizeof(e)),
		       fmt_count(rows[i].wall_ns ? (uint64_t)((double)rows[i].ops * 1e9 /
							       (double)rows[i].wall_ns) : 0,
				 g, sizeof(g)));
	}
	int best = -1;
	for (int i = 0; i < nrows; i++)
		if (rows[i].ok && !strcmp(rows[i].replayer, "native") &&
		    (best < 0 || rows[i].rss_peak < rows[best].rss_peak))
			best = i;
	if (best >= 0 && rows[0].ok && best != 0 && rows[0].rss_peak) {
		char a[32];
		printf("lowest RSS peak: %s%s%s, %s (%.0f%%) below %s's\n", rows[best].name,
		       rows[best].tunables[0] ? " " : "", rows[best].tunables,
		       fmt_bytes(rows[0].rss_peak - rows[best].rss_peak, a, sizeof(a)),
		       100.0 * (double)(rows[0].rss_peak - rows[best].rss_peak) /
			       (double)rows[0].rss_peak, rows[0].name);
	}
	if (ncut)
		mfx_note("a bound (--max-ops or --max-live-bytes) cut %d replay%s short: its numbers "
			 "cover only the calls replayed (\"cut\": true in replay.json)", ncut,
			 ncut == 1 ? "" : "s");
	/* report.html shows the replays: refresh it when there is one */
	char html[PATH_MAX];
	path_join(html, sizeof(html), dir, "report.html");
	int refreshed = 0;
	if (access(html, F_OK) == 0) {
		char self[PATH_MAX];
		if (helper_path("mfx", self, sizeof(self)) == 0) {
			const char *rep[] = { self, "report", "-q", dir, NULL };
			refreshed = run_quiet(rep) == 0;
		}
	}
	if (!quiet)
		mfx_note("wrote replay.json, replay.c%s, rss_comparison.png, smaps_replay%s in %s",
			 compiled ? ", replay" : "", refreshed ? " and refreshed report.html" : "", dir);
	for (int i = 0; i < nrows; i++) {
		free(rows[i].tl);
	}
	return nfail ? EXIT_FAIL : EXIT_OK;
}
