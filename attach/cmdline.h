/*
 * cmdline.h - options before or after operands, for every command but
 * `launch` (whose operands after PROGRAM are the program's own).
 *
 *   struct cmdline cl = { 0 };
 *   while ((c = cmdline_next(&cl, argc, argv, ":o:qh", longopts)) != -1)
 *           switch (c) { ... }          operands are not seen here
 *   cl.nops, cl.ops[0..]                the operands, in order
 *
 * getopt_long with '-' first in the option string returns every operand in
 * place as "option" 1 with optarg = the operand (RETURN_IN_ORDER), whatever
 * POSIXLY_CORRECT says; `--` ends the options and what follows it is
 * operands (`mfx report -- -odd-dir-name`).  So `mfx attach 4242 --for 30s`
 * and `mfx attach --for 30s 4242` are the same command.
 */
#ifndef MFX_ATTACH_CMDLINE_H
#define MFX_ATTACH_CMDLINE_H

#include <getopt.h>
#include <stdio.h>

#define CMDLINE_MAX_OPS 8

struct cmdline {
	int started;
	int nops;			/* operands seen (may exceed CMDLINE_MAX_OPS) */
	char *ops[CMDLINE_MAX_OPS];
	char optstr[64];
};

static inline void cmdline__add(struct cmdline *cl, char *op)
{
	if (cl->nops < CMDLINE_MAX_OPS)
		cl->ops[cl->nops] = op;
	cl->nops++;
}

/* The next option (as getopt_long returns it: its char or val, ':' for a
 * missing value, '?' for an unknown one), or -1 once argv is done.
 * `opts` is a getopt option string without a leading '+' or '-'. */
static inline int cmdline_next(struct cmdline *cl, int argc, char **argv, const char *opts,
			       const struct option *longopts)
{
	if (!cl->started) {
		snprintf(cl->optstr, sizeof(cl->optstr), "-%s", opts);
		optind = 1;
		opterr = 0;
		cl->started = 1;
	}
	int c;
	while ((c = getopt_long(argc, argv, cl->optstr, longopts, NULL)) == 1)
		cmdline__add(cl, optarg);
	if (c == -1)
		while (optind < argc)
			cmdline__add(cl, argv[optind++]);
	return c;
}

/* The one operand of report, export and replay: a run directory, whose
 * files are then read and written through one fd (dir_bind).  0 and *dir,
 * or the exit status after one line saying why (cmdline.c). */
int cmdline_run_dir(const char *cmd, const struct cmdline *cl, const char **dir);

#endif /* MFX_ATTACH_CMDLINE_H */
