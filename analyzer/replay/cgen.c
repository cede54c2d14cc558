/*
 * cgen.c - RUN/replay.c: the captured window as a plain, readable C program
 * (Approach B's second replayer), generated from RUN/replay.ops.  Per
 * thread, functions of C_CHUNK plain calls (M, C, R, F, A; X* for calls that
 * failed; R0 for a realloc(p, 0) that freed; Z for implied frees; W/P for
 * blocks that cross threads; G at each epoch of the recorded order), and a
 * main that starts the threads in the order of their first call (joining
 * those whose last call came before: no more at once than in the
 * original), computes the live peak in recorded order
 * from a per-call delta array, and prints the replayer's JSON line.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/replay/internal.h"
#include "analyzer/replay/ops.h"
#include "common/util.h"

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
	"/* the window's order, loosely: hand in n calls made, then wait until every\n"
	" * call of the epochs before e was made (EPOCH calls an epoch) */\n"
	"static unsigned long long progress;\n"
	"static void G(unsigned long long n, unsigned long long e)\n{\n"
	"\t__atomic_add_fetch(&progress, n, __ATOMIC_RELEASE);\n"
	"\twhile (__atomic_load_n(&progress, __ATOMIC_ACQUIRE) < e * EPOCH)\n\t\tsched_yield();\n}\n\n"
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
	"/* not a call of the trace: the address came back from an allocation while\n"
	" * the block was live (its free was not seen), so the block ends here */\n"
	"static void Z(unsigned s, unsigned id, unsigned long long n)\n{\n"
	"\tfree(b[id]);\n\td[s] = -(long long)n;\n}\n\n"
	"static void A(unsigned s, unsigned id, unsigned long long al, unsigned long long n)\n{\n"
	"\tif (posix_memalign(&b[id], al, n))\n\t\tb[id] = NULL;\n\ttouch(b[id], n);\n"
	"\td[s] = n;\n\tK(5);\n}\n\n"
	"/* calls that failed in the original: made again, the result dropped */\n"
	"static void XM(unsigned long long n)\n{\n\tfree(malloc(n));\n\tK(1);\n}\n\n"
	"static void XC(unsigned long long n)\n{\n\tfree(calloc(1, n));\n\tK(2);\n}\n\n"
	"static void XR(unsigned old, unsigned long long n)\n{\n"
	"\tvoid *q = realloc(b[old], n);\n\tif (q && old)\n\t\tb[old] = q;\n\telse\n\t\tfree(q);\n"
	"\tK(3);\n}\n\n"
	"/* realloc(p, 0) that gave NULL in the original: it freed the block */\n"
	"static void R0(unsigned s, unsigned old, unsigned long long oldn)\n{\n"
	"\tfree(realloc(b[old], 0));\n\td[s] = -(long long)oldn;\n\tK(3);\n}\n\n"
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
	"\tstatic pthread_t t[NTHREADS];\n\tstatic char up[NTHREADS];\n"
	"\tunsigned long long t0 = now_ns();\n"
	"\t/* threads in the order of their first call; one whose last call came\n"
	"\t * before the next one's first is joined first: no more threads at once\n"
	"\t * than the original had */\n"
	"\tfor (int i = 0; i < NTHREADS; i++) {\n"
	"\t\tint j = order[i];\n"
	"\t\tfor (int k = 0; k < i; k++)\n"
	"\t\t\tif (up[order[k]] && last[order[k]] < first[j]) {\n"
	"\t\t\t\tpthread_join(t[order[k]], NULL);\n\t\t\t\tup[order[k]] = 0;\n\t\t\t}\n"
	"\t\tup[j] = !pthread_create(&t[j], NULL, thread[j], NULL);\n\t}\n"
	"\tfor (int i = 0; i < NTHREADS; i++)\n\t\tif (up[i])\n\t\t\tpthread_join(t[i], NULL);\n"
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

struct cgen {
	FILE *f;
	const struct ops_header *h;
	const struct ops_thread *th;
	const struct op *ops;
	uint64_t ncalls, nblocks;
	uint64_t *size;		/* block id -> bytes */
	uint32_t *first, *last;	/* per thread, over the calls written; UINT32_MAX: none */
};

/* Block sizes (for R's live-bytes change), the highest block id written,
 * each thread's first and last call written. */
static void scan(struct cgen *g)
{
	const struct op *o = g->ops;
	for (uint32_t i = 0; i < g->h->nthreads; o += g->th[i].nops, i++) {
		g->first[i] = g->last[i] = UINT32_MAX;
		for (uint64_t k = 0; k < g->th[i].nops; k++) {
			if (o[k].seq < g->ncalls) {
				if (o[k].id > g->nblocks)
					g->nblocks = o[k].id;
				if (g->first[i] == UINT32_MAX)
					g->first[i] = o[k].seq;
				g->last[i] = o[k].seq;
			}
			if (o[k].id && o[k].kind != OP_FREE && o[k].id <= g->h->nblocks)
				g->size[o[k].id] = o[k].size;
		}
	}
}

static void head(struct cgen *g, const char *trace_path)
{
	const struct ops_header *h = g->h;
	fprintf(g->f, "/*\n * replay.c - generated by mfx %s from %s:\n"
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
		MFX_VERSION, trace_path, g->ncalls < h->nops ? "the first " : "",
		(unsigned long long)g->ncalls, h->nthreads, h->nthreads == 1 ? "" : "s");
	fprintf(g->f, "#define NTHREADS %u\n#define NBLOCKS %llu\n#define NCALLS %llu\n#define CUT %d\n"
		      "#define EPOCH %d\n", h->nthreads, (unsigned long long)g->nblocks,
		(unsigned long long)(g->ncalls ? g->ncalls : 1), g->ncalls < h->nops, OPS_EPOCH);
	fputs(c_head, g->f);
}

static void emit_call(FILE *f, const struct op *x, const uint64_t *size)
{
	unsigned long long s = x->seq, n = x->size, id = x->id, old = x->old;
	if ((x->flags & OPF_WAIT) && (x->kind == OP_FREE ? id : old))
		fprintf(f, "\tW(%llu);\n", x->kind == OP_FREE ? id : old);
	switch (x->kind) {
	case OP_MALLOC:
	case OP_CALLOC:
		if (id)
			fprintf(f, "\t%c(%llu, %llu, %llu);\n", x->kind == OP_MALLOC ? 'M' : 'C', s, id, n);
		else
			fprintf(f, "\tX%c(%llu);\n", x->kind == OP_MALLOC ? 'M' : 'C', n);
		break;
	case OP_MEMALIGN:
		if (id)
			fprintf(f, "\tA(%llu, %llu, %llu, %llu);\n", s, id, 1ull << x->align_log2, n);
		else
			fprintf(f, "\tXA(%llu, %llu);\n", 1ull << x->align_log2, n);
		break;
	case OP_REALLOC:
		if (id)
			fprintf(f, "\tR(%llu, %llu, %llu, %llu, %llu);\n", s, id, old,
				old ? (unsigned long long)size[old] : 0ull, n);
		else if (old && !n)
			fprintf(f, "\tR0(%llu, %llu, %llu);\n", s, old, (unsigned long long)size[old]);
		else
			fprintf(f, "\tXR(%llu, %llu);\n", old, n);
		break;
	case OP_FREE:
		fprintf(f, "\t%c(%llu, %llu, %llu);\n", x->flags & OPF_IMPLIED ? 'Z' : 'F', s, id, n);
		break;
	}
	if (id && x->kind != OP_FREE && (x->flags & OPF_PUBLISH))
		fprintf(f, "\tP(%llu);\n", id);
}

/* Thread i's calls: functions of C_CHUNK calls, then thread<i>() calling them. */
static void emit_thread(struct cgen *g, uint32_t i, const struct op *o)
{
	FILE *f = g->f;
	uint64_t part = 0, k, epoch = UINT64_MAX, pending = 0;
	for (k = 0; k < g->th[i].nops && o[k].seq < g->ncalls; k++) {
		if (k % C_CHUNK == 0)
			fprintf(f, "%sstatic void t%u_%llu(void)\t/* thread %u (tid %u) */\n{\n",
				k ? "}\n\n" : "", i, (unsigned long long)part++, i, g->th[i].tid);
		if (o[k].seq / OPS_EPOCH != epoch) {
			epoch = o[k].seq / OPS_EPOCH;
			fprintf(f, "\tG(%llu, %llu);\n", (unsigned long long)pending,
				(unsigned long long)epoch);
			pending = 0;
		}
		emit_call(f, &o[k], g->size);
		pending++;
	}
	if (k)
		fprintf(f, "}\n\n");
	fprintf(f, "static void *thread%u(void *arg)\n{\n", i);
	for (uint64_t p = 0; p < part; p++)
		fprintf(f, "\tt%u_%llu();\n", i, (unsigned long long)p);
	fprintf(f, "\tG(%llu, 0);\n\treturn arg;\n}\n\n", (unsigned long long)pending);
}

static const struct cgen *sort_g;

static int by_first(const void *x, const void *y)
{
	uint32_t a = sort_g->first[*(const uint32_t *)x], b = sort_g->first[*(const uint32_t *)y];
	return a < b ? -1 : a > b;
}

/* The thread table: functions, first and last calls, start order. */
static int emit_table(struct cgen *g)
{
	uint32_t n = g->h->nthreads, *order = calloc(n + 1, sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	sort_g = g;
	qsort(order, n, sizeof(*order), by_first);
	const char *names[] = { "first", "last", "order" };
	const uint32_t *vals[] = { g->first, g->last, order };
	for (int a = 0; a < 3; a++) {
		fprintf(g->f, "static const unsigned %s[NTHREADS] = {", names[a]);
		for (uint32_t i = 0; i < n; i++)
			fprintf(g->f, "%s%s%u", i ? "," : "", i % 16 ? " " : "\n\t", vals[a][i]);
		fprintf(g->f, "\n};\n");
	}
	fprintf(g->f, "static void *(*const thread[NTHREADS])(void *) = {");
	for (uint32_t i = 0; i < n; i++)
		fprintf(g->f, "%s%sthread%u", i ? "," : "", i % 8 ? " " : "\n\t", i);
	fprintf(g->f, "\n};\n");
	free(order);
	return 0;
}

int replay__write_c(const char *path, const char *ops_path, const char *trace_path,
		    uint64_t max_calls, uint64_t *written)
{
	char *m;
	size_t len;
	int err = read_file(ops_path, &m, &len);
	if (err)
		return err;
	struct cgen g = { .h = (const void *)m };
	g.th = (const void *)(g.h + 1);
	g.ops = (const void *)(g.th + g.h->nthreads);
	g.ncalls = g.h->nops < max_calls ? g.h->nops : max_calls;
	g.size = calloc(g.h->nblocks + 1, sizeof(*g.size));
	g.first = calloc(2 * (size_t)g.h->nthreads + 2, sizeof(*g.first));
	g.last = g.first ? g.first + g.h->nthreads + 1 : NULL;
	char tmp[PATH_MAX + 16];	/* 0600, O_EXCL, renamed over (util.h) */
	g.f = g.size && g.first ? fopen_replace(path, tmp, sizeof(tmp)) : NULL;
	if (!g.f) {
		err = g.size && g.first ? -errno : -ENOMEM;
		goto out;
	}
	scan(&g);
	head(&g, trace_path);
	const struct op *o = g.ops;
	for (uint32_t i = 0; i < g.h->nthreads; o += g.th[i].nops, i++)
		emit_thread(&g, i, o);
	err = emit_table(&g);
	fputs(c_main, g.f);
	if (!err && ferror(g.f))
		err = -EIO;
	err = fclose_replace(g.f, tmp, path, err);
	*written = g.ncalls;
out:
	free(g.size);
	free(g.first);
	free(m);
	return err;
}
