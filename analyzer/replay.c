/*
 * replay.c - `mfx replay RUN_DIR` (Approach B): what would another
 * allocator, or a glibc tunable, have made of the same calls?
 *
 *   1. The trace's calls become RUN/replay.ops: one stream per thread, in
 *      recorded order, every block named by a dense id (an address reused
 *      by the allocator gets a new id), frees of blocks allocated before the
 *      window dropped (attach: their sizes are unknown).
 *   2. RUN/replay.c is the replayer's source (analyzer/replayer/replay.c),
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analyzer/chart.h"
#include "analyzer/json.h"
#include "analyzer/replayer/ops.h"
#include "analyzer/trace.h"
#include "attach/commands.h"
#include "attach/util.h"
#include "mfx/error.h"
#include "mfx/trace_format.h"

extern const char replay_src[];	/* build/obj/replay_src.c */


/* ---- pointer -> block id ----------------------------------------------------------- */

struct idmap {
	uint64_t *key;
	uint32_t *val;
	size_t cap, n;
};

static size_t slot_of(const struct idmap *m, uint64_t k)
{
	uint64_t h = k * 0x9E3779B97F4A7C15ull;
	size_t i = (size_t)(h >> 20) & (m->cap - 1);
	while (m->key[i] && m->key[i] != k)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int idmap_put(struct idmap *m, uint64_t k, uint32_t v)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct idmap g = { 0 };
		g.cap = m->cap ? m->cap * 2 : 1 << 16;
		g.key = calloc(g.cap, sizeof(*g.key));
		g.val = calloc(g.cap, sizeof(*g.val));
		if (!g.key || !g.val) {
			free(g.key);
			free(g.val);
			return -ENOMEM;
		}
		for (size_t i = 0; i < m->cap; i++)
			if (m->key[i]) {
				size_t j = slot_of(&g, m->key[i]);
				g.key[j] = m->key[i];
				g.val[j] = m->val[i];
				g.n++;
			}
		free(m->key);
		free(m->val);
		*m = g;
	}
	size_t i = slot_of(m, k);
	if (!m->key[i])
		m->n++;
	m->key[i] = k;
	m->val[i] = v;
	return 0;
}

static uint32_t idmap_get(const struct idmap *m, uint64_t k)
{
	if (!m->cap)
		return 0;
	size_t i = slot_of(m, k);
	return m->key[i] ? m->val[i] : 0;
}

/* Remove k; its id, or 0. (Backward-shift deletion keeps probing intact.) */
static uint32_t idmap_take(struct idmap *m, uint64_t k)
{
	if (!m->cap)
		return 0;
	size_t i = slot_of(m, k);
	if (!m->key[i])
		return 0;
	uint32_t v = m->val[i];
	m->key[i] = 0;
	m->n--;
	for (size_t j = (i + 1) & (m->cap - 1); m->key[j]; j = (j + 1) & (m->cap - 1)) {
		uint64_t kk = m->key[j];
		uint32_t vv = m->val[j];
		m->key[j] = 0;
		m->n--;
		size_t t = slot_of(m, kk);
		m->key[t] = kk;
		m->val[t] = vv;
		m->n++;
	}
	return v;
}

/* ---- the ops file --------------------------------------------------------------------- */

struct stream {
	struct op *ops;
	size_t n, cap;
};

static int push(struct stream *s, const struct op *o)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4096;
		struct op *no = realloc(s->ops, nc * sizeof(*no));
		if (!no)
			return -ENOMEM;
		s->ops = no;
		s->cap = nc;
	}
	s->ops[s->n++] = *o;
	return 0;
}

struct gen_stats {
	uint64_t ops, blocks, skipped_frees, failed, nthreads;
	uint64_t counts[6];
};

static int write_ops(const char *trace_path, const char *out, struct gen_stats *gs)
{
	struct trace *t;
	int err = trace_open(trace_path, &t);
	if (err)
		return err;
	const struct trace_info *ti = trace_info(t);
	uint32_t nt = ti->nthreads ? ti->nthreads : 1;
	struct stream *st = calloc(nt, sizeof(*st));
	struct idmap map = { 0 };
	uint32_t next_id = 1;
	memset(gs, 0, sizeof(*gs));
	struct trace_event ev;
	int r;
	while (!err && (r = trace_next(t, &ev)) > 0) {
		if (!st)
			break;
		struct op o = { 0 };
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
				break;
			}
			o.old = ev.old_ptr ? idmap_take(&map, ev.old_ptr) : 0;
			break;
		default:
			continue;
		}
		if (ev.ptr && !ev.failed) {
			o.id = next_id++;
			if ((err = idmap_put(&map, ev.ptr, o.id)))
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
	free(map.key);
	free(map.val);
	trace_close(t);
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
	char json[2048];
	uint64_t rss_peak, rss_end, ops, wall_ns;
	int64_t peak_live;
	int ok;
};

static uint64_t jnum(const char *json, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\": ", key);
	const char *p = strstr(json, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

/* Run RUN/replay once; its JSON line into row. */
static int run_one(const char *dir, const char *bin, const char *ops, const struct allocator *a,
		   const char *tunables, uint64_t max_ops, uint64_t max_live, int want_smaps,
		   struct run_row *row)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	char smaps[PATH_MAX], maxs[32], maxl[32], name[96];
	path_join(smaps, sizeof(smaps), dir, "smaps_replay");
	snprintf(maxs, sizeof(maxs), "%llu", (unsigned long long)max_ops);
	snprintf(maxl, sizeof(maxl), "%llu", (unsigned long long)max_live);
	snprintf(name, sizeof(name), "%s", a->name);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		dup2(pfd[1], 1);
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
		const char *argv[14] = { bin, ops, "--name", name, "--tunables",
					 tunables ? tunables : "", "--max-ops", maxs, "--max-live-bytes", maxl };
		int n = 10;
		if (want_smaps) {
			argv[n++] = "--smaps";
			argv[n++] = smaps;
		}
		argv[n] = NULL;
		execv(bin, (char **)argv);
		_exit(127);
	}
	close(pfd[1]);
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(row->json) - 1 &&
	       (r = read(pfd[0], row->json + len, sizeof(row->json) - 1 - len)) > 0)
		len += (size_t)r;
	close(pfd[0]);
	row->json[len] = 0;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	snprintf(row->name, sizeof(row->name), "%s", a->name);
	snprintf(row->tunables, sizeof(row->tunables), "%s", tunables ? tunables : "");
	if (!WIFEXITED(st) || WEXITSTATUS(st) || row->json[0] != '{')
		return -MFX_E_REMOTE;
	row->json[strcspn(row->json, "\n")] = 0;
	row->rss_peak = jnum(row->json, "rss_peak_bytes");
	row->rss_end = jnum(row->json, "rss_end_bytes");
	row->ops = jnum(row->json, "ops");
	row->wall_ns = jnum(row->json, "wall_ns");
	row->peak_live = (int64_t)jnum(row->json, "peak_live_bytes");
	row->ok = 1;
	return 0;
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

static int comparison_chart(const char *dir, const struct trace *t, uint64_t orig_heap,
			    const struct run_row *rows, int nrows)
{
	const char *cats[32];
	char labels[32][96];
	double v[32], max = 0;
	int n = 0;
	/* the original: its heap RSS peak, and a measured trim */
	snprintf(labels[n], sizeof(labels[n]), "original");
	v[n++] = (double)orig_heap / 1048576.0;
	const struct trace_mark *mk;
	size_t nm = trace_marks(t, &mk);
	for (size_t i = 0; i < nm; i++)
		if (mk[i].kind == MFX_MARK_TRIM && mk[i].nvals >= 2 && n < 3) {
			snprintf(labels[n], sizeof(labels[n]), "after trim");
			v[n++] = (double)mk[i].vals[3] / 1048576.0;
		}
	for (int i = 0; i < nrows && n < 32; i++) {
		if (!rows[i].ok)
			continue;
		snprintf(labels[n], sizeof(labels[n]), "%s%s%s", rows[i].name,
			 rows[i].tunables[0] ? " " : "", rows[i].tunables);
		v[n++] = (double)rows[i].rss_peak / 1048576.0;
	}
	for (int i = 0; i < n; i++) {
		cats[i] = labels[i];
		if (v[i] > max)
			max = v[i];
	}
	struct chart *c = chart_new(1200, 700, "Allocator RSS: the original against its replays");
	if (!c)
		return -ENOMEM;
	chart_subtitle(c, "peak allocator memory: the original's heap RSS (and after malloc_trim, "
			  "Approach A) against the same calls replayed under each allocator (B)");
	chart_categorical(c);
	chart_axes(c, 0, 1, 0, max > 0 ? max * 1.15 : 1, "", "RSS (MiB)");
	chart_bars(c, cats, v, (size_t)n, CHART_BLUE, "MiB", 1);
	char path[PATH_MAX];
	int err = chart_save(c, path_join(path, sizeof(path), dir, "rss_comparison.png"));
	chart_free(c);
	return err;
}

/* ---- the command ---------------------------------------------------------------------------- */

static void replay_help(void)
{
	printf("usage: mfx replay [OPTIONS] RUN_DIR\n\n"
	       "Approach B: replay the captured window's allocation calls - same threads,\n"
	       "same sizes, same order - under glibc, jemalloc, tcmalloc and mimalloc (and\n"
	       "glibc tunables), and compare their RSS with the original's.  Writes\n"
	       "replay.ops, replay.c and replay (the replayer), replay.json, smaps_replay\n"
	       "and rss_comparison.png into RUN_DIR.\n\n"
	       "Options:\n"
	       "        --allocator LIST   comma-separated: glibc,jemalloc,tcmalloc,mimalloc,\n"
	       "                           or the path of an allocator library (LD_PRELOAD)\n"
	       "                           (default: every one installed)\n"
	       "        --tunable T        also replay under glibc with tunable T, e.g.\n"
	       "                           M_ARENA_MAX=2 or glibc.malloc.trim_threshold=0\n"
	       "                           (repeatable)\n"
	       "        --max-ops N        replay at most N calls (each thread's tail is cut)\n"
	       "        --max-live-bytes SIZE  stop a replay when its live bytes would pass SIZE\n"
	       "                           (its address space is limited to 4 x SIZE + 1 GiB)\n"
	       "        --no-compile       use the replayer built with mfx, not cc\n"
	       "    -q, --quiet            no progress\n"
	       "    -h, --help             this text\n\n"
	       "Examples:\n"
	       "    mfx replay results/app-4242-20261125-101500\n"
	       "    mfx replay --allocator glibc,jemalloc --tunable M_ARENA_MAX=2 RUN_DIR\n");
}

int cmd_replay(int argc, char **argv)
{
	const char *alist = NULL, *tun[8];
	int ntun = 0, quiet = 0, no_compile = 0;
	uint64_t max_ops = UINT64_MAX, max_live = UINT64_MAX;
	struct allocator custom = { NULL, { NULL }, NULL };
	static const struct option opts[] = {
		{ "max-live-bytes", required_argument, NULL, 'L' },
		{ "allocator", required_argument, NULL, 'a' },
		{ "tunable", required_argument, NULL, 't' },
		{ "max-ops", required_argument, NULL, 'm' },
		{ "no-compile", no_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+qh", opts, NULL)) != -1) {
		switch (c) {
		case 'a': alist = optarg; break;
		case 't':
			if (ntun == 8)
				return mfx_usage("replay", "at most 8 --tunable");
			tun[ntun++] = optarg;
			break;
		case 'm':
			if (parse_uint(optarg, UINT64_MAX, &max_ops) || !max_ops)
				return mfx_usage("replay", "--max-ops wants a positive number");
			break;
		case 'L':
			if (parse_size(optarg, &max_live) || !max_live)
				return mfx_usage("replay", "--max-live-bytes wants a size (e.g. 2G)");
			break;
		case 'n': no_compile = 1; break;
		case 'q': quiet = 1; break;
		case 'h': replay_help(); return EXIT_OK;
		default:
			return mfx_usage("replay", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return mfx_usage("replay", "no run directory given");
	const char *dir = argv[optind];
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
				if (access(tok, R_OK))
					return mfx_usage("replay", "cannot read allocator library '%s'", tok);
				snprintf(custom_path, sizeof(custom_path), "%s", tok);
				custom.name = strrchr(custom_path, '/') + 1;
				custom.libs[0] = custom_path;
				nwant++;
				continue;
			}
			for (size_t i = 0; i < NALLOC; i++)
				known |= !strcmp(tok, allocators[i].name);
			if (!known)
				return mfx_usage("replay", "unknown allocator '%s' (glibc, jemalloc, "
							   "tcmalloc, mimalloc)", tok);
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
	/* the replayer: RUN/replay.c, compiled; or the one built with mfx */
	path_join(src, sizeof(src), dir, "replay.c");
	path_join(bin, sizeof(bin), dir, "replay");
	if ((err = write_file(src, replay_src, strlen(replay_src)))) {
		mfx_err("cannot write '%s': %s", src, mfx_strerror(-err));
		return EXIT_FAIL;
	}
	int compiled = 0;
	if (!no_compile) {
		char cmd[3 * PATH_MAX];
		snprintf(cmd, sizeof(cmd), "cc -std=gnu11 -O2 -pthread -o '%s' '%s' 2>/dev/null", bin,
			 src);
		compiled = system(cmd) == 0;
	}
	if (!compiled) {
		char pre[PATH_MAX];
		char *buf;
		size_t len;
		if (helper_path("mfx-replay", pre, sizeof(pre)) || read_file(pre, &buf, &len)) {
			mfx_err("cannot build the replayer: no C compiler (apt-get install gcc) and no "
				"mfx-replay next to mfx");
			return EXIT_FAIL;
		}
		err = write_file(bin, buf, len);
		free(buf);
		if (err || chmod(bin, 0755)) {
			mfx_err("cannot write '%s'", bin);
			return EXIT_FAIL;
		}
	}
	if (!quiet) {
		char a[32], b[32];
		mfx_note("replay: %s calls in %llu threads (%s blocks)%s; replayer %s",
			 fmt_count(gs.ops, a, sizeof(a)), (unsigned long long)gs.nthreads,
			 fmt_count(gs.blocks, b, sizeof(b)),
			 gs.skipped_frees ? " - frees of blocks from before the window left out" : "",
			 compiled ? "compiled from replay.c" : "built with mfx");
	}

	struct run_row rows[NALLOC + 9];
	int nrows = 0, nfail = 0, ncut = 0, custom_done = 0;
	for (size_t i = 0; i <= NALLOC + (size_t)ntun; i++) {
		const struct allocator *a;
		const char *t = NULL;
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
			i--;	/* the loop ends on the next turn */
		} else {
			break;
		}
		if (!quiet)
			progress_show("mfx: replay under %s%s%s ...", a->name, t ? " " : "", t ? t : "");
		struct run_row *row = &rows[nrows++];
		memset(row, 0, sizeof(*row));
		err = run_one(dir, bin, ops, a, t, max_ops, max_live, i == 0, row);
		if (!err && strstr(row->json, "\"cut\": true"))
			ncut++;
		progress_clear();
		if (err) {
			mfx_err("the replay under %s%s%s failed", a->name, t ? " " : "", t ? t : "");
			nfail++;
		}
	}
	/* replay.json */
	char jpath[PATH_MAX];
	FILE *f = fopen(path_join(jpath, sizeof(jpath), dir, "replay.json"), "we");
	if (!f) {
		mfx_err("cannot write '%s': %s", jpath, strerror(errno));
		return EXIT_FAIL;
	}
	fprintf(f, "{\"runs\": [\n");
	int first = 1;
	for (int i = 0; i < nrows; i++)
		if (rows[i].ok) {
			fprintf(f, "%s  %s", first ? "" : ",\n", rows[i].json);
			first = 0;
		}
	fprintf(f, "\n],\n \"trace_ops\": %llu, \"skipped_frees\": %llu, \"failed_calls\": %llu}\n",
		(unsigned long long)gs.ops, (unsigned long long)gs.skipped_frees,
		(unsigned long long)gs.failed);
	fclose(f);
	struct trace *t;
	uint64_t orig_heap = 0;
	if (trace_open(tpath, &t) == 0) {
		orig_heap = heap_rss_peak(t);
		if ((err = comparison_chart(dir, t, orig_heap, rows, nrows)))
			mfx_err("cannot draw rss_comparison.png: %s", mfx_strerror(-err));
		trace_close(t);
	}
	/* the terminal table */
	char hb[32];
	printf("original heap RSS peak: %s\n", fmt_bytes(orig_heap, hb, sizeof(hb)));
	printf("%-34s %12s %12s %12s %10s\n", "replayed under", "RSS peak", "RSS end", "live peak", "wall");
	for (int i = 0; i < nrows; i++) {
		if (!rows[i].ok)
			continue;
		char n[128], a[32], b[32], d[32], e[32];
		snprintf(n, sizeof(n), "%s%s%s", rows[i].name, rows[i].tunables[0] ? " " : "",
			 rows[i].tunables);
		printf("%-34s %12s %12s %12s %10s\n", n, fmt_bytes(rows[i].rss_peak, a, sizeof(a)),
		       fmt_bytes(rows[i].rss_end, b, sizeof(b)),
		       fmt_bytes((uint64_t)(rows[i].peak_live > 0 ? rows[i].peak_live : 0), d,
				 sizeof(d)),
		       fmt_duration(rows[i].wall_ns, e, sizeof(e)));
	}
	int best = -1;
	for (int i = 0; i < nrows; i++)
		if (rows[i].ok && (best < 0 || rows[i].rss_peak < rows[best].rss_peak))
			best = i;
	if (best >= 0 && rows[0].ok && best != 0 && rows[0].rss_peak) {
		char a[32];
		printf("lowest RSS peak: %s%s%s, %s (%.0f%%) below glibc's\n", rows[best].name,
		       rows[best].tunables[0] ? " " : "", rows[best].tunables,
		       fmt_bytes(rows[0].rss_peak - rows[best].rss_peak, a, sizeof(a)),
		       100.0 * (double)(rows[0].rss_peak - rows[best].rss_peak) /
			       (double)rows[0].rss_peak);
	}
	if (ncut)
		mfx_note("a bound (--max-ops or --max-live-bytes) cut %d replay%s short: its numbers "
			 "cover only the calls replayed (\"cut\": true in replay.json)", ncut,
			 ncut == 1 ? "" : "s");
	if (!quiet)
		mfx_note("wrote replay.json, rss_comparison.png%s in %s ('mfx report %s' adds the "
			 "replays to report.html)", rows[0].ok && want[0] ? ", smaps_replay" : "", dir, dir);
	return nfail ? EXIT_FAIL : EXIT_OK;
}
