/*
 * main.c - `mfx`: the table of subcommands and the top-level --help.
 */
#include <stdio.h>
#include <string.h>

#include "attach/commands.h"
#include "common/util.h"

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "launch",   cmd_launch,   "trace a fresh process (LD_PRELOAD agent)" },
	{ "attach",   cmd_attach,   "inject the agent into a running process" },
	{ "trim",     cmd_trim,     "make a process's allocator give free memory back (Approach A)" },
	{ "snapshot", cmd_snapshot, "copy /proc/PID/smaps plus a parsed summary" },
	{ "report",   cmd_report,   "analyse a run: summary, top sites, charts" },
	{ "replay",   cmd_replay,   "Approach B: replay the captured window" },
	{ "export",   cmd_export,   "seed-compatible CSV, or folded stacks" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mfx [--version] [--help] <command> [<args>]\n\n"
		"Why does this process's memory grow?  mfx records every malloc-family\n"
		"call of a live or fresh process, then tells leak, fragmentation and\n"
		"allocator retention apart, with numbers.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "   %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nExamples:\n"
		"   mfx attach 4242 --for 30s        watch a live service for 30 seconds\n"
		"   mfx launch -- ./app --flag       trace a program from its start\n"
		"   mfx trim 4242 --json             what does the allocator give back?\n"
		"   mfx report results/app-4242-...  re-run the analysis of a run\n\n"
		"Options may come before or after a command's operands ('--' ends them);\n"
		"launch's own options come before PROGRAM.  See 'mfx <command> --help'.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		if (argc > 2 && strcmp(cmd, "help") == 0) {
			char *sub[] = { argv[2], "--help", NULL };
			for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
				if (!strcmp(commands[i].name, argv[2]))
					return commands[i].fn(2, sub);
		}
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("mfx %s\n", MFX_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, cmd))
			return commands[i].fn(argc - 1, argv + 1);
	mfx_err("'%s' is not an mfx command. See 'mfx --help'.", cmd);
	return EXIT_USAGE;
}
