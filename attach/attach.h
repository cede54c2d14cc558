/*
 * attach.h - what `mfx attach` shares with `mfx trim` (attach.c).
 */
#ifndef MFX_ATTACH_ATTACH_H
#define MFX_ATTACH_ATTACH_H

#include <sys/types.h>

struct inject_err;

/* Print the one-line error for err (an inject_check()/inject_open() code)
 * when `verb` ("attach to", "trim") failed on pid (refusal.c); e (may be
 * NULL) has the tracer's pid and the specifics.  Returns the exit status
 * (1, or 2 for our own pid). */
int attach_refusal(const char *verb, pid_t pid, int err, const struct inject_err *e);

#endif
