/*
 * cmdline.c - what the commands that read a run directory share
 * (cmdline.h).
 */
#include <sys/stat.h>

#include "attach/cmdline.h"
#include "common/util.h"

int cmdline_run_dir(const char *cmd, const struct cmdline *cl, const char **dir)
{
	struct stat st;
	if (cl->nops != 1)
		return mfx_usage(cmd, cl->nops == 0 ? "no run directory given" :
				 "one run directory only ('%s' is extra)", cl->ops[1]);
	*dir = cl->ops[0];
	if (stat(*dir, &st) || !S_ISDIR(st.st_mode)) {
		mfx_err("'%s' is not a run directory", *dir);
		return EXIT_FAIL;
	}
	dir_bind(*dir, 0);	/* its files are read and written through one fd */
	return 0;
}
