/*
 * replay.c - Approach B (`mfx replay RUN_DIR`): what would another
 * allocator, or a glibc tunable, have made of the same calls?
 *
 *   1. The trace's calls become RUN/replay.ops (opsgen.c).
 *   2. RUN/replay.c is the same calls as a plain C program (cgen.c),
 *      compiled with cc into RUN/replay.
 *   3. The native replayer (mfx-replay) runs once per config: each asked
 *      allocator (LD_PRELOAD), glibc with each --tunable, or with --sweep
 *      the grid of sweep.c; each run measured from outside (runner.c).
 *      replay.c runs once under glibc as a cross-check.
 *   4. replay.json, the terminal table (ranked, with one recommendation
 *      under --sweep), rss_comparison.png (results.c); report.html is
 *      refreshed when there is one.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/replay/internal.h"
#include "analyzer/replay/replay.h"
#include "common/util.h"
#include "trace/reader.h"

struct job {
	const char *dir;
	const struct replay_opts *o;
	char trace[PATH_MAX], ops[PATH_MAX], src[PATH_MAX], bin[PATH_MAX], native[PATH_MAX];
	struct gen_stats gs;
	uint64_t c_calls;
	int compiled;
	struct replay_config *cfg;	/* what to run, in order */
	int ncfg;
	struct run_row *rows;
	int nrows, nfail, ncut;
};

static int add_config(struct job *j, const struct replay_config *c)
{
	struct replay_config *n = realloc(j->cfg, (size_t)(j->ncfg + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	j->cfg = n;
	j->cfg[j->ncfg++] = *c;
	return 0;
}

static int asked(const char *list, const char *name)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
		if (!strcmp(tok, name))
			return 1;
	return 0;
}

/* The configs of the command line: every asked (or installed) allocator,
 * glibc with each --tunable, libraries given by path; or the sweep's grid. */
static int plan(struct job *j)
{
	const struct replay_opts *o = j->o;
	struct replay_config c;
	if (o->sweep) {
		free(j->cfg);
		return replay__sweep_configs(&j->cfg, &j->ncfg);
	}
	for (size_t i = 0; i < replay__nallocators; i++) {
		const char *name = replay__allocators[i].name;
		if (o->allocators && !asked(o->allocators, name))
			continue;
		if (replay__config(&c, name, NULL)) {
			if (o->allocators)
				mfx_note("%s is not installed (apt-get install %s); skipped", name,
					 replay__allocators[i].pkg);
			continue;
		}
		if (add_config(j, &c))
			return -ENOMEM;
	}
	for (int i = 0; i < o->ntunables; i++)
		if (replay__config(&c, "glibc", o->tunables[i]) || add_config(j, &c))
			return -ENOMEM;
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", o->allocators ? o->allocators : "");
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
		if (strchr(tok, '/') && (replay__config(&c, tok, NULL) || add_config(j, &c)))
			return -ENOMEM;	/* --allocator /path/to/libfoo.so (cmd_replay checked it) */
	return 0;
}

/* replay.ops, the native replayer, replay.c (compiled unless --no-compile). */
static int prepare(struct job *j)
{
	const struct replay_opts *o = j->o;
	if (!o->quiet)
		progress_show("mfx: replay: reading the trace");
	int err = replay__write_ops(j->trace, j->ops, &j->gs);
	progress_clear();
	if (err) {
		mfx_err("cannot turn '%s' into a replay: %s", j->trace, mfx_strerror(-err));
		return err;
	}
	if (helper_path("mfx-replay", j->native, sizeof(j->native)) || access(j->native, X_OK)) {
		mfx_err("cannot find mfx-replay next to mfx (reinstall mfx)");
		return -ENOENT;
	}
	if ((err = replay__write_c(j->src, j->ops, j->trace, o->c_max_calls, &j->c_calls))) {
		mfx_err("cannot write '%s': %s", j->src, mfx_strerror(-err));
		return err;
	}
	if (!o->no_compile) {
		if (!o->quiet)
			progress_show("mfx: replay: compiling replay.c (%llu calls) ...",
				      (unsigned long long)j->c_calls);
		const char *cc[] = { "cc", "-std=gnu11", "-O0", "-pthread", "-w", "-o", j->bin, j->src, NULL };
		j->compiled = replay__run_quiet(cc) == 0;
		progress_clear();
		if (!j->compiled)
			mfx_note("replay.c not compiled (no working cc? apt-get install gcc); the "
				 "native replayer runs anyway");
	}
	return 0;
}

static void tell(const struct job *j)
{
	char a[32], b[32];
	const struct gen_stats *gs = &j->gs;
	mfx_note("replay: %s calls in %llu threads (%s blocks, %llu freed on another thread)%s",
		 fmt_count(gs->ops - gs->implied_frees, a, sizeof(a)), (unsigned long long)gs->nthreads,
		 fmt_count(gs->blocks, b, sizeof(b)), (unsigned long long)gs->cross_thread,
		 gs->skipped_frees ? "; frees of blocks from before the window left out" : "");
	if (j->c_calls < gs->ops)
		mfx_note("replay.c holds the first %llu calls (--c-max-calls); the native "
			 "replayer replays all of them", (unsigned long long)j->c_calls);
	if (j->o->sweep)
		mfx_note("replay --sweep: %d runs, then %d alternating runs to confirm the best", j->ncfg,
			 2 * SWEEP_CONFIRM);
}

/* One run of config c (the replay.c program when c->replay_c). */
static void run(struct job *j, const struct replay_config *c, const struct run_bounds *b)
{
	struct run_row *row = &j->rows[j->nrows++];
	char sm[PATH_MAX], l[400];
	if (j->nrows == 1)
		snprintf(row->smaps, sizeof(row->smaps), "smaps_replay");
	else
		snprintf(row->smaps, sizeof(row->smaps), "smaps_replay.%d", j->nrows - 1);
	path_join(sm, sizeof(sm), j->dir, row->smaps);
	replay__label(c, l, sizeof(l));
	if (!j->o->quiet)
		progress_show("mfx: replay %d/%d under %s ...", j->nrows, j->ncfg + 1, l);
	int err = replay__run_one(c->replay_c ? j->bin : j->native, j->ops, c, b, sm, row);
	progress_clear();
	if (err) {
		mfx_err("the replay under %s failed", l);
		j->nfail++;
	} else if (row->cut) {
		j->ncut++;
	}
}

static int run_all(struct job *j)
{
	const struct replay_opts *o = j->o;
	struct run_bounds b = { o->max_ops, o->max_live_bytes };
	j->rows = calloc((size_t)j->ncfg + 1, sizeof(*j->rows));
	if (!j->rows)
		return -ENOMEM;
	int glibc = 0;
	for (int i = 0; i < j->ncfg; i++) {
		run(j, &j->cfg[i], &b);
		glibc |= !strcmp(j->cfg[i].name, "glibc") && !j->cfg[i].knobs[0];
	}
	/* replay.c itself, under glibc: a cross-check of the native replayer */
	if (glibc && j->compiled && j->c_calls == j->gs.ops && o->max_ops == UINT64_MAX &&
	    o->max_live_bytes == UINT64_MAX) {
		struct replay_config c;
		replay__config(&c, "glibc", NULL);
		c.replay_c = 1;
		run(j, &c, &b);
	}
	return 0;
}

/* report.html shows the replays: refresh it when there is one. */
static int refresh_html(const char *dir)
{
	char html[PATH_MAX], self[PATH_MAX];
	path_join(html, sizeof(html), dir, "report.html");
	if (access(html, F_OK) || helper_path("mfx", self, sizeof(self)))
		return 0;
	const char *rep[] = { self, "report", "-q", dir, NULL };
	return replay__run_quiet(rep) == 0;
}

/* replay.json, the chart, the terminal table, the recommendation. */
static int conclude(struct job *j)
{
	struct replay_summary s = { .gs = &j->gs, .c_calls = j->c_calls, .compiled = j->compiled };
	struct sweep_pick pick;
	int *rank = NULL;
	if (j->o->sweep) {
		struct run_bounds b = { j->o->max_ops, j->o->max_live_bytes };
		if (!(rank = calloc((size_t)j->nrows + 1, sizeof(*rank))))
			return -ENOMEM;
		replay__sweep_rank(j->rows, j->nrows, rank);
		replay__sweep_pick(j->native, j->ops, &b, j->rows, j->nrows, rank, j->o->quiet, &pick);
		s.rank = rank;
		s.pick = &pick;
	}
	struct trace *t;
	if (trace_open(j->trace, &t) == 0) {
		replay__original(t, &s);
		int err = replay__chart(j->dir, t, j->rows, j->nrows, rank);
		if (err)
			mfx_err("cannot draw rss_comparison.png: %s", mfx_strerror(-err));
		trace_close(t);
	}
	char jpath[PATH_MAX];
	int err = replay__write_json(path_join(jpath, sizeof(jpath), j->dir, "replay.json"), j->rows,
				     j->nrows, &s);
	if (err)
		mfx_err("cannot write '%s': %s", jpath, mfx_strerror(-err));
	replay__print_table(j->rows, j->nrows, &s);
	if (rank)
		replay__print_sweep(j->rows, j->nrows, &s);
	fflush(stdout);
	free(rank);
	return err;
}

/* 1 when the trace at path holds a sample of the calls (--sample). */
static int trace_sampled(const char *path)
{
	struct trace *t;
	if (trace_open(path, &t))
		return 0;	/* the replay says what is wrong with it */
	int s = trace_info(t)->sample_bytes != 0;
	trace_close(t);
	return s;
}

int replay_run(const char *dir, const struct replay_opts *o)
{
	struct job j = { .dir = dir, .o = o };
	int err = 0;
	path_join(j.trace, sizeof(j.trace), dir, "trace.mfx");
	path_join(j.ops, sizeof(j.ops), dir, "replay.ops");
	path_join(j.src, sizeof(j.src), dir, "replay.c");
	path_join(j.bin, sizeof(j.bin), dir, "replay");
	if (access(j.trace, R_OK)) {
		mfx_err("no trace in '%s' (run 'mfx launch' or 'mfx attach' first)", dir);
		return EXIT_FAIL;
	}
	if (trace_sampled(j.trace)) {
		mfx_err("cannot replay '%s': it was recorded with --sample, and a replay needs every "
			"call (record again without --sample)", dir);
		return EXIT_FAIL;
	}
	if ((err = plan(&j)) || !j.ncfg) {
		mfx_err(err ? "out of memory" : "none of the allocators asked for is installed");
		goto out;
	}
	if ((err = prepare(&j)))
		goto out;
	if (!o->quiet)
		tell(&j);
	if ((err = run_all(&j)) || (err = conclude(&j)))
		goto out;
	if (j.ncut)
		mfx_note("a bound (--max-ops or --max-live-bytes) cut %d replay%s short: its numbers "
			 "cover only the calls replayed (\"cut\": true in replay.json)", j.ncut,
			 j.ncut == 1 ? "" : "s");
	int refreshed = refresh_html(dir);
	if (!o->quiet)
		mfx_note("wrote replay.json, replay.c%s, rss_comparison.png, smaps_replay%s in %s",
			 j.compiled ? ", replay" : "", refreshed ? " and refreshed report.html" : "", dir);
out:
	for (int i = 0; i < j.nrows; i++)
		free(j.rows[i].tl);
	free(j.rows);
	free(j.cfg);
	return err || !j.ncfg ? EXIT_FAIL : j.nfail ? EXIT_FAIL : EXIT_OK;
}
