/*
 * stopping.h - after the capture window ends (stopping.c): a second
 * SIGINT/SIGTERM/SIGHUP, or 5 s without progress, ends mfx at once; the
 * agent undoes its hooks on its own when mfx's channel closes.
 */
#ifndef MFX_ATTACH_STOPPING_H
#define MFX_ATTACH_STOPPING_H

/* From now on SIGINT, SIGTERM and SIGHUP end mfx at once with one line
 * naming `dir` (exit 128 + the signal); with watch_progress (the window
 * was ended by a signal), so does 5 s without mfx_tick() (exit 1).
 * The caller's mask is changed: those signals are unblocked. */
void stop_arm(const char *dir, int watch_progress);
/* While h (a trace header mfx maps) may miss chunks still in the spool,
 * leaving at once marks it stopped early ("the last chunks may be
 * missing"); NULL once the final drain is done. */
struct mfx_file_header;
void stop_undrained(struct mfx_file_header *h);
/* Back to the handlers before stop_arm (the signals stay unblocked). */
void stop_disarm(void);

/* As root: the agent's thread in pid at nice -20 for a START or STOP
 * exchange (the agent restores its own nice once it is done). */
#include <sys/types.h>
void stop_boost_agent(pid_t pid);

#endif
