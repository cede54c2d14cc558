/*
 * runend.h - facts the capture session needs at the end of a run, read
 * from /proc and from the traces: the kernel's RSS high-water mark, a
 * zombie's exit status, a trace's exact event count and the agent's exit
 * mark, naming the main trace after exec, the --wrapper expressions kept.
 */
#ifndef MFX_ATTACH_RUNEND_H
#define MFX_ATTACH_RUNEND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tfile;

/* VmHWM of /proc/PID/status in bytes; 0 when unknown. */
uint64_t run_read_hwm(pid_t pid);
/* The wait status of a zombie (not reaped yet).  0 or -errno. */
int run_zombie_status(pid_t pid, int *st);
/* Events in a finalised trace: the header's count, or past
 * MFX_THREAD_SLOTS threads, counted (from_slots: when it cannot be read). */
uint64_t run_trace_events(const char *path, uint64_t from_slots);
/* The wait status the agent's EXITING mark implies (exit(n): n << 8).
 * 0 or -ENOENT. */
int run_trace_exit_status(const char *path, int *st);
/* dir/main_name becomes dir/trace.mfx, the old trace.mfx dir/first
 * ("trace-<pid>.0.mfx", written into first).  0 or -errno. */
int run_rename_main(const char *dir, const char *main_name, pid_t pid, char *first, size_t n);
/* --wrapper expressions into the main trace (INFO "wrappers", one a line). */
void run_record_wrappers(struct tfile *tf, const char *const *w, int n);
/* -ENOSPC (empty trace files removed) when dir's file system has too
 * little room for the agent to start recording, else 0. */
int run_no_room_to_start(const char *dir);

#endif
