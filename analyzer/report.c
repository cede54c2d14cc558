/*
 * report.c - report_run(): from a run directory to summary.json, the charts,
 * report.html and the terminal summary (see report.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "analyzer/model.h"
#include "analyzer/report.h"
#include "common/util.h"

int report_run(const char *run_dir, const struct report_opts *o)
{
	struct model m;
	int err = model_build(run_dir, o->trace, o->top, o->quiet, &m);
	if (err) {
		model_free(&m);
		return err;
	}
	char path[PATH_MAX];
	if ((err = model_write_json(&m, path_join(path, sizeof(path), run_dir, "summary.json")))) {
		mfx_err("cannot write '%s': %s", path, mfx_strerror(-err));
		model_free(&m);
		return err;
	}
	if (!o->no_charts) {
		int e2 = model_write_charts(&m, run_dir);
		if (e2)
			mfx_err("cannot draw the charts: %s", mfx_strerror(-e2));
		e2 = model_write_html(&m, path_join(path, sizeof(path), run_dir, "report.html"));
		if (e2)
			mfx_err("cannot write '%s': %s", path, mfx_strerror(-e2));
	}
	if (o->json) {
		char *text;
		size_t len;
		if (read_file(path_join(path, sizeof(path), run_dir, "summary.json"), &text, &len) == 0) {
			fwrite(text, 1, len, stdout);
			free(text);
		}
	} else {
		model_print(&m, stdout);
	}
	fflush(stdout);
	model_free(&m);
	return 0;
}
