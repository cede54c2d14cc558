/*
 * commands.h - the subcommands of mfx.  Each takes the argv that starts at
 * its own name and returns the process exit status (docs/spec.md: 0 ok,
 * 1 runtime failure, 2 bad usage; launch returns the program's status).
 */
#ifndef MFX_ATTACH_COMMANDS_H
#define MFX_ATTACH_COMMANDS_H

int cmd_launch(int argc, char **argv);		/* attach/launch.c */
int cmd_attach(int argc, char **argv);		/* attach/attach.c */
int cmd_trim(int argc, char **argv);		/* attach/trim.c */
int cmd_snapshot(int argc, char **argv);	/* attach/snapshot.c */
int cmd_report(int argc, char **argv);		/* attach/cmd_report.c */
int cmd_replay(int argc, char **argv);		/* attach/cmd_replay.c */
int cmd_export(int argc, char **argv);		/* attach/cmd_export.c */

#endif
