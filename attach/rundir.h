/*
 * rundir.h - the run directory of `mfx launch` and `mfx attach` (rundir.c).
 */
#ifndef MFX_ATTACH_RUNDIR_H
#define MFX_ATTACH_RUNDIR_H

#include <stddef.h>
#include <sys/types.h>

/* Create run directory `dir` (mode 0700; parents 0755) and bind it
 * (dir_bind: every later file in it is created through its fd).  An
 * existing empty directory of ours is fine; a non-empty one is refused with
 * -MFX_E_NOTEMPTY unless `force`, in which case mfx's own files in it are
 * removed first; a symlink is -MFX_E_UNSAFE, another user's directory
 * -MFX_E_FOREIGN. */
int run_dir_create(const char *dir, int force);
/* "results/<prog>-<pid>-<YYYYmmdd-HHMMSS>" (basename of prog); malloc'ed. */
char *run_dir_default(const char *prog, pid_t pid);
/* Before run_dir_create: the topmost component of `dir` that does not
 * exist yet ("" when dir exists), into top (n >= PATH_MAX). 0 or -errno. */
int run_dir_missing_part(const char *dir, char *top, size_t n);
/* A refused or failed capture leaves nothing: remove mfx's files from dir,
 * and the directories run_dir_create made (those below and at `top`, the
 * result of run_dir_missing_part), if empty. */
void run_dir_discard(const char *dir, const char *top);
#endif /* MFX_ATTACH_RUNDIR_H */
