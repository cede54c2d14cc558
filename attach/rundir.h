/*
 * rundir.h - the run directory of `mfx launch` and `mfx attach` (rundir.c).
 */
#ifndef MFX_ATTACH_RUNDIR_H
#define MFX_ATTACH_RUNDIR_H

#include <sys/types.h>

/* Create run directory `dir` (and parents).  An existing empty directory is
 * fine; a non-empty one is refused with -MFX_E_NOTEMPTY unless `force`, in
 * which case mfx's own files in it are removed first. */
int run_dir_create(const char *dir, int force);
/* "results/<prog>-<pid>-<YYYYmmdd-HHMMSS>" (basename of prog); malloc'ed. */
char *run_dir_default(const char *prog, pid_t pid);
#endif /* MFX_ATTACH_RUNDIR_H */
