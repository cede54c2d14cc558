/*
 * report.c - report_run(): from a run directory to summary.json, the charts,
 * report.html and the terminal summary (see report.h).
 */
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "analyzer/model.h"
#include "analyzer/report.h"
#include "analyzer/term.h"
#include "common/util.h"

static void print_json(const char *path, FILE *out)
{
	char *text;
	size_t len;
	if (read_file(path, &text, &len) == 0) {
		fwrite(text, 1, len, out);
		free(text);
	}
}

int report_check_wrappers(const char *const *w, int n, char *err, size_t errn)
{
	for (int i = 0; i < n; i++) {
		char why[200];
		regex_t re;
		int e = regcomp(&re, w[i], REG_EXTENDED | REG_NOSUB);
		if (e) {
			regerror(e, &re, why, sizeof(why));
			snprintf(err, errn, "'%s': %s", w[i], why);
			return -EINVAL;
		}
		regfree(&re);
	}
	return 0;
}

/* One line for a file of the report that could not be written; on a full
 * disk, what to do about it. */
static void say_write_error(const char *what, const char *run_dir, int err)
{
	int full = err == -ENOSPC || err == -EDQUOT;
	mfx_err("cannot write %s: %s%s%s%s", what, mfx_strerror(-err),
		full ? " (free some space, then run 'mfx report " : "", full ? run_dir : "",
		full ? "')" : "");
}

/* The charts, then report.html (which shows them): 0 or the first error,
 * said in one line; after a failure nothing more is written. */
static int write_files(const struct model *m, const char *run_dir)
{
	char path[PATH_MAX], what[PATH_MAX + 32];
	int err = model_write_charts(m, run_dir);
	if (err) {
		snprintf(what, sizeof(what), "the charts in '%s'", run_dir);
		say_write_error(what, run_dir, err);
		return err;
	}
	err = model_write_html(m, model_file(m, run_dir, "report", ".html", path, sizeof(path)));
	if (err) {
		snprintf(what, sizeof(what), "'%s'", path);
		say_write_error(what, run_dir, err);
	}
	return err;
}

/*
 * Every error is said here, in one line (callers add none): the trace that
 * cannot be analysed, or the first file that cannot be written.  The
 * terminal summary is printed even when a chart or report.html failed (the
 * analysis is done; only summary.json missing stops everything).
 */
int report_run(const char *run_dir, const struct report_opts *o)
{
	struct model m;
	struct model_opts mo = { o->trace, o->top, o->quiet, o->wrappers, o->nwrappers };
	char why[256] = "", path[PATH_MAX], json[PATH_MAX + 2];
	int err = model_build(run_dir, &mo, &m, why, sizeof(why));
	if (err) {
		if (err == -EINVAL && why[0])
			mfx_err("invalid --wrapper expression: %s", why);
		else
			mfx_err("cannot analyse '%s': %s",
				path_join(path, sizeof(path), run_dir, o->trace ? o->trace : "trace.mfx"),
				mfx_strerror(-err));
		model_free(&m);
		return err;
	}
	FILE *out = o->out ? o->out : stdout;
	if (o->events)
		*o->events = m.a.nevents;
	if ((err = model_write_json(&m, model_file(&m, run_dir, "summary", ".json", path, sizeof(path))))) {
		snprintf(json, sizeof(json), "'%s'", path);
		say_write_error(json, run_dir, err);
		model_free(&m);
		return err;
	}
	if (!o->no_charts)
		err = write_files(&m, run_dir);
	if (o->json)
		print_json(path, out);
	else if (!o->quiet)
		model_print(&m, out, term_width(fileno(out)));
	fflush(out);
	model_free(&m);
	return err;
}
