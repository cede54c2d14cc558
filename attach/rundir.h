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

/*
 * attach: where the children the target forks during the window create
 * their traces (preload/forkchild.c): the run directory itself when the
 * target runs as mfx's user; otherwise RUN/.forks, made 0700 and given to
 * the target's effective user and group (a child has its parent's
 * credentials: it could not create a file in a directory of root's), whose
 * traces the session moves into RUN as they appear (run_adopt_forks).  A
 * new fd of it (O_DIRECTORY), or -errno.
 */
#define RUN_FORKS_DIR ".forks"
int run_forks_dir(const char *dir, pid_t pid);
/* Move the traces in RUN/.forks into RUN (never over a file, never a
 * link); with rmdir, remove .forks when it is empty. */
void run_adopt_forks(const char *dir, int rmdir);
#endif /* MFX_ATTACH_RUNDIR_H */
