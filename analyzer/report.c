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

int report_run(const char *run_dir, const struct report_opts *o)
{
	struct model m;
	struct model_opts mo = { o->trace, o->top, o->quiet, o->wrappers, o->nwrappers };
	char why[256] = "";
	int err = model_build(run_dir, &mo, &m, why, sizeof(why));
	if (err) {
		if (err == -EINVAL && why[0])
			mfx_err("invalid --wrapper expression: %s", why);
		model_free(&m);
		return err;
	}
	FILE *out = o->out ? o->out : stdout;
	if (o->events)
		*o->events = m.a.nevents;
	char path[PATH_MAX], json[PATH_MAX];
	if ((err = model_write_json(&m, model_file(&m, run_dir, "summary", ".json", json, sizeof(json))))) {
		mfx_err("cannot write '%s': %s", json, mfx_strerror(-err));
		model_free(&m);
		return err;
	}
	if (!o->no_charts) {
		int e2 = model_write_charts(&m, run_dir);
		if (e2)
			mfx_err("cannot draw the charts: %s", mfx_strerror(-e2));
		e2 = model_write_html(&m, model_file(&m, run_dir, "report", ".html", path, sizeof(path)));
		if (e2)
			mfx_err("cannot write '%s': %s", path, mfx_strerror(-e2));
	}
	if (o->json)
		print_json(json, out);
	else if (!o->quiet)
		model_print(&m, out, term_width(fileno(out)));
	fflush(out);
	model_free(&m);
	return 0;
}
