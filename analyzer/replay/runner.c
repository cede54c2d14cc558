/*
 * runner.c - the allocators a replay can run under, and one replay run:
 * the replayer started under a config (LD_PRELOAD, GLIBC_TUNABLES,
 * MALLOC_CONF, ...), its memory sampled from outside every SAMPLE_MS
 * (RssAnon: the ops file is file-backed and the replayer's tables are
 * shared mappings, so neither counts; its thread stacks do, as in the
 * original), its smaps copied at the highest RSS, its JSON line read.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analyzer/replay/internal.h"
#include "common/procfs.h"
#include "common/util.h"

const struct allocator replay__allocators[] = {
	{ "glibc", { NULL }, "libc6" },
	{ "jemalloc", { "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", NULL }, "libjemalloc2" },
	{ "tcmalloc", { "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
			"/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4", NULL }, "libtcmalloc-minimal4" },
	{ "mimalloc", { "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2",
			"/usr/lib/x86_64-linux-gnu/libmimalloc.so", NULL }, "libmimalloc2.0" },
};
const size_t replay__nallocators = sizeof(replay__allocators) / sizeof(replay__allocators[0]);

const char *replay__alloc_lib(const struct allocator *a)
{
	for (int i = 0; a->libs[i]; i++)
		if (access(a->libs[i], R_OK) == 0)
			return a->libs[i];
	return NULL;
}

/* "M_ARENA_MAX=2" (mallopt style) or "glibc.malloc.arena_max=2" -> the
 * GLIBC_TUNABLES value (tunables joined by ':'). */
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

void replay__config_env(struct replay_config *c, const char *name, const char *value)
{
	if (c->nenv < REPLAY_MAX_ENV)
		snprintf(c->env[c->nenv++], sizeof(c->env[0]), "%s=%s", name, value);
}

int replay__config(struct replay_config *c, const char *name, const char *tunables)
{
	memset(c, 0, sizeof(*c));
	if (strchr(name, '/')) {	/* --allocator /path/to/libfoo.so */
		snprintf(c->name, sizeof(c->name), "%s", strrchr(name, '/') + 1);
		snprintf(c->lib, sizeof(c->lib), "%s", name);
	} else {
		const struct allocator *a = NULL;
		for (size_t i = 0; i < replay__nallocators; i++)
			if (!strcmp(name, replay__allocators[i].name))
				a = &replay__allocators[i];
		if (!a)
			return -EINVAL;
		const char *lib = replay__alloc_lib(a);
		if (a->libs[0] && !lib)
			return -ENOENT;
		snprintf(c->name, sizeof(c->name), "%s", a->name);
		snprintf(c->lib, sizeof(c->lib), "%s", lib ? lib : "");
	}
	if (tunables && *tunables) {
		char env[600];
		tunable_env(tunables, env, sizeof(env));
		snprintf(c->knobs, sizeof(c->knobs), "%s", tunables);
		replay__config_env(c, "GLIBC_TUNABLES", env);
	}
	return 0;
}

char *replay__apply_line(const struct replay_config *c, char *buf, size_t n)
{
	size_t l = 0;
	buf[0] = 0;
	if (c->lib[0])
		l += (size_t)snprintf(buf, n, "LD_PRELOAD=%s", c->lib);
	for (int i = 0; i < c->nenv && l < n; i++)
		l += (size_t)snprintf(buf + l, n - l, "%s%s", l ? " " : "", c->env[i]);
	return buf;
}

char *replay__label(const struct replay_config *c, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s%s", c->name, c->knobs[0] ? " " : "", c->knobs,
		 c->replay_c ? " (replay.c)" : "");
	return buf;
}

/* ---- one run ------------------------------------------------------------------------ */

static uint64_t jnum(const char *json, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\": ", key);
	const char *p = strstr(json, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static uint64_t rss_anon_of(pid_t pid)
{
	uint64_t v = 0;
	return procfs_status_field(pid, "RssAnon", &v) ? 0 : v;
}

static void tl_add(struct run_row *row, double t, uint64_t rss)
{
	if (grow_array(&row->tl, &row->captl, row->ntl, sizeof(*row->tl)) == 0)
		row->tl[row->ntl++] = (struct tl_pt){ t, (double)rss / 1048576.0 };
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

/* In the child: the config's environment and limits, then exec. */
static void child(const char *bin, const char *ops, const struct replay_config *c,
		  const struct run_bounds *b, int out, int in, int ex)
{
	dup2(out, 1);
	dup2(in, 0);
	/* the user's own allocator settings would blur the comparison */
	static const char *const clear[] = { "LD_PRELOAD", "MFX_OUT", "GLIBC_TUNABLES", "MALLOC_CONF",
					     "MALLOC_ARENA_MAX", "MALLOC_TRIM_THRESHOLD_",
					     "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_" };
	for (size_t i = 0; i < sizeof(clear) / sizeof(clear[0]); i++)
		unsetenv(clear[i]);
	if (c->lib[0])
		setenv("LD_PRELOAD", c->lib, 1);
	for (int i = 0; i < c->nenv; i++)
		putenv((char *)c->env[i]);
	char maxs[32], maxl[32];
	snprintf(maxs, sizeof(maxs), "%llu", (unsigned long long)b->max_ops);
	snprintf(maxl, sizeof(maxl), "%llu", (unsigned long long)b->max_live);
	/* an address-space limit: a runaway replay fails its mallocs, not the
	 * machine; set last, nothing here allocates after it (an ASan build of
	 * mfx has its shadow mapped already and could not map any more) */
	uint64_t ml = b->max_live;
	struct rlimit rl = { (rlim_t)(ml < (1ull << 40) ? 4 * ml + (1ull << 30) : RLIM_INFINITY),
			     RLIM_INFINITY };
	if (rl.rlim_cur != RLIM_INFINITY)
		setrlimit(RLIMIT_AS, &rl);
	const char *argv[] = { bin, "--hold", ops, "--max-ops", maxs, "--max-live-bytes", maxl, NULL };
	execv(bin, (char **)argv);
	int e = errno;
	if (write(ex, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

struct sampling {
	pid_t pid;
	int out;		/* the replayer's stdout */
	const char *smaps_path;
	char *smaps;		/* the copy at the highest RSS so far */
	size_t smaps_len;
	uint64_t smaps_rss, smaps_at;
};

#define SAMPLE_MS 2
#define SMAPS_GAP_NS 100000000ull	/* at most one smaps copy per 100 ms */

/* Sample RssAnon until the replayer prints its line (it then waits, with
 * --hold, for its stdin to close).  1 when the line came, else 0. */
static int sample(struct sampling *s, struct run_row *row, uint64_t t0)
{
	size_t len = 0;
	for (;;) {
		struct pollfd p = { s->out, POLLIN, 0 };
		int r = poll(&p, 1, SAMPLE_MS);
		uint64_t rss = rss_anon_of(s->pid), now = now_ns();
		if (rss) {
			tl_add(row, (double)(now - t0) / 1e9, rss);
			if (rss > row->rss_peak)
				row->rss_peak = rss;
			/* smaps at the highest RSS: on every new high 2% above the last copy */
			if (s->smaps_path && rss > s->smaps_rss + s->smaps_rss / 50 &&
			    now - s->smaps_at > SMAPS_GAP_NS && grab_smaps(s->pid, &s->smaps, &s->smaps_len) == 0) {
				s->smaps_rss = rss;
				s->smaps_at = now;
			}
		}
		if (r < 0 && errno != EINTR)
			return 0;
		if (r <= 0)
			continue;
		ssize_t n = read(s->out, row->json + len, sizeof(row->json) - 1 - len);
		if (n <= 0)
			return 0;	/* it ended without --hold's wait (crashed?) */
		len += (size_t)n;
		row->json[len] = 0;
		if (strchr(row->json, '\n') || len == sizeof(row->json) - 1)
			return 1;
	}
}

/* The replayer's JSON line into row's figures. */
static int parse_line(struct run_row *row)
{
	if (row->json[0] != '{')
		return -MFX_E_REMOTE;
	row->json[strcspn(row->json, "\n")] = 0;
	char *close_brace = strrchr(row->json, '}');
	if (close_brace)
		*close_brace = 0;
	row->ops = jnum(row->json, "ops");
	row->wall_ns = jnum(row->json, "wall_ns");
	row->peak_live = (int64_t)jnum(row->json, "peak_live_bytes");
	row->threads_alive_max = jnum(row->json, "threads_alive_max");
	row->threads_overlap_max = jnum(row->json, "threads_overlap_max");
	row->cut = strstr(row->json, "\"cut\": true") != NULL;
	row->ok = 1;
	return 0;
}

/* After the line: the last readings of the finished replay, then let it go. */
static int finish(struct sampling *s, struct run_row *row, int line, int in, uint64_t t0)
{
	row->rss_end = rss_anon_of(s->pid);
	if (row->rss_end > row->rss_peak)
		row->rss_peak = row->rss_end;
	if (s->smaps_path && line && (!s->smaps || row->rss_end >= s->smaps_rss))
		grab_smaps(s->pid, &s->smaps, &s->smaps_len);
	if (row->rss_end)
		tl_add(row, (double)(now_ns() - t0) / 1e9, row->rss_end);
	close(in);	/* let it exit */
	int st = 0;
	while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
		;
	if (s->smaps && s->smaps_path)
		write_file(s->smaps_path, s->smaps, s->smaps_len);
	free(s->smaps);
	if (!line || !WIFEXITED(st) || WEXITSTATUS(st))
		return -MFX_E_REMOTE;
	return parse_line(row);
}

int replay__run_one(const char *bin, const char *ops, const struct replay_config *c,
		    const struct run_bounds *b, const char *smaps_path, struct run_row *row)
{
	int out[2] = { -1, -1 }, in[2] = { -1, -1 }, ex[2] = { -1, -1 }, err = 0;
	/* ex closes on exec: sampling starts in the replayer, not in our copy */
	if (pipe2(out, O_CLOEXEC) || pipe2(in, O_CLOEXEC) || pipe2(ex, O_CLOEXEC)) {
		err = -errno;
		goto out;
	}
	row->cfg = *c;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		err = -errno;
		goto out;
	}
	if (pid == 0)
		child(bin, ops, c, b, out[1], in[0], ex[1]);
	close(ex[1]);
	close(out[1]);
	close(in[0]);
	ex[1] = out[1] = in[0] = -1;
	int e;
	while (read(ex[0], &e, sizeof(e)) < 0 && errno == EINTR)
		;	/* 0 bytes: exec succeeded; a failure shows below (no JSON line) */
	uint64_t t0 = now_ns();
	struct sampling s = { .pid = pid, .out = out[0], .smaps_path = smaps_path };
	row->rss_peak = 0;
	int line = sample(&s, row, t0);
	err = finish(&s, row, line, in[1], t0);
	in[1] = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (in[i] >= 0)
			close(in[i]);
		if (ex[i] >= 0)
			close(ex[i]);
	}
	return err;
}

int replay__run_quiet(const char *const *argv)
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
