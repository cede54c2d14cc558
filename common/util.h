/*
 * util.h - the base every part of mfx but the agent uses: one-line errors,
 * durations and sizes, files, the clock, where the agent lives, progress.
 */
#ifndef MFX_COMMON_UTIL_H
#define MFX_COMMON_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define MFX_VERSION "0.1.0"

/* Exit statuses of every command but launch (docs/spec.md, "Output streams
 * and exit status"). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* "mfx: <message>\n" on stderr in one write(2).  Clears a progress line first. */
void mfx_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* mfx_err() plus "Try 'mfx CMD --help' for more information."; returns EXIT_USAGE. */
int mfx_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Chatter on stderr ("mfx: " prefix), suppressed by quiet mode. */
void mfx_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int mfx_quiet;

/* "500ms", "30s", "2m", "1h", "250us", "10ns"; a bare number is seconds.
 * Returns 0 or -EINVAL. */
int parse_duration(const char *s, uint64_t *ns);
/* "4096", "64k", "512M", "2G" (powers of 1024). 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *bytes);
/* Non-negative decimal integer that fits in *out. 0 or -EINVAL. */
int parse_uint(const char *s, uint64_t max, uint64_t *out);
/* An on/off environment switch (MFX_NO_DOORBELL=1, ...): set, not "" nor "0". */
int env_flag(const char *name);
/* "12.3 MiB", "512 B" into buf; returns buf. */
char *fmt_bytes(uint64_t bytes, char *buf, size_t n);
/* "1.25 s", "340 ms", "12 us" into buf; returns buf. */
char *fmt_duration(uint64_t ns, char *buf, size_t n);
/* "1.2M", "340k", "12" into buf; returns buf. */
char *fmt_count(uint64_t v, char *buf, size_t n);

uint64_t now_ns(void);		/* CLOCK_MONOTONIC */
uint64_t realtime_ns(void);	/* CLOCK_REALTIME */

/* Join dir and name into buf (PATH_MAX); returns buf. */
char *path_join(char *buf, size_t n, const char *dir, const char *name);

/* Absolute path of libmfx.so: next to the running mfx, else
 * PREFIX/lib/mfx/.  0 or -MFX_E_NOAGENT. */
int agent_path(char *buf, size_t n);
/* Absolute path of a helper binary installed beside the agent
 * (e.g. "mfx-replay"). 0 or -ENOENT. */
int helper_path(const char *name, char *buf, size_t n);

/* Make the array at *(T **)arrp hold at least n + 1 elements of elem bytes
 * (capacity *cap, doubled as needed).  0 or -ENOMEM (the array is kept). */
int grow_array(void *arrp, size_t *cap, size_t n, size_t elem);
/* Read a whole small file (e.g. under /proc) into a malloc'ed NUL-terminated
 * buffer.  0 or -errno. */
int read_file(const char *path, char **buf, size_t *len);
/* Read at most n - 1 bytes of a small file (/proc/PID/status, comm, ...)
 * into buf, NUL-terminated, without allocating.  Its length, or -errno. */
ssize_t read_small(const char *path, char *buf, size_t n);
/* Write buf to path atomically: a fresh 0600 temporary file (O_EXCL,
 * O_NOFOLLOW) renamed over path.  0 or -errno. */
int write_file(const char *path, const void *buf, size_t len);
/* The same for a stream: fopen_replace() creates "<path>.tmpXXXXXX" (tmp
 * gets its name, n >= strlen(path) + 11); fclose_replace() closes it and
 * renames it over path unless err (or a write or close error) says
 * otherwise, in which case the temporary file is removed.  Returns err, or
 * the first error seen. */
FILE *fopen_replace(const char *path, char *tmp, size_t n);
int fclose_replace(FILE *f, const char *tmp, const char *path, int err);
/* The same as an fd: file_replace_open() returns it (or -errno);
 * file_replace_commit() renames tmp over path unless err (the fd closed
 * first), removing tmp otherwise.  Returns err or the rename's error. */
int file_replace_open(const char *path, char *tmp, size_t n);
int file_replace_commit(const char *tmp, const char *path, int err);

/* Is name (a file name, no folder) one of the traces mfx writes:
 * "trace.mfx", "trace-<pid>.mfx" or "trace-<pid>.<n>.mfx"? */
int is_trace_name(const char *name);
/* Is name stem + ext, or with sep '-' stem-<digits>[.<digits>] + ext (a
 * child's file: trace-<pid>[.<n>].mfx and its report's), or with sep '.'
 * stem.<digits> + ext? */
int is_numbered_name(const char *name, const char *stem, char sep, const char *ext);
/*
 * Files mfx creates (see util.c "files"): O_EXCL|O_NOFOLLOW, mode 0600 at
 * most, relative to the run directory's fd once dir_bind() named it.
 * dir_bind(): open `dir` (O_NOFOLLOW when nofollow: mfx made it) and
 * resolve every later path directly under it through that fd; returns the
 * fd or -errno (-MFX_E_UNSAFE: it is a symlink).  dir_bound_fd(): that fd
 * if `dir` is the bound directory, else -1.
 */
int dir_bind(const char *dir, int nofollow);
int dir_bound_fd(const char *dir);
/* open(2) of path, never following a symlink in its last component;
 * O_CREAT implies O_EXCL; mode is masked to 0600.  fd or -errno. */
int file_open(const char *path, int flags, mode_t mode);
int file_unlink(const char *path);
/* open(path, O_RDONLY): through the bound fd (and never a symlink) when
 * path is in the run directory, else as given.  fd or -errno. */
int open_read(const char *path);
/* mmap(NULL, size, PROT_READ, flags, fd, 0), but the holes of a tmpfs file
 * read as zeros without faulting in the file system (a full tmpfs would
 * be a SIGBUS).  MAP_FAILED with errno on failure. */
void *map_file_read(int fd, size_t size, int flags);
/* opendir(3), through the bound fd when dir is the run directory. */
#include <dirent.h>
DIR *dir_open(const char *dir);
/* Remove the temporary files being written (async-signal-safe): mfx is
 * ending at once (a second Ctrl-C). */
void mfx_tmp_cleanup(void);

/* Progress, for the watchdog that ends an interrupted mfx which stopped
 * moving (attach/stopping.c): long loops call mfx_tick() now and then. */
extern volatile uint64_t mfx_ticks;
static inline void mfx_tick(void)
{
	__atomic_fetch_add(&mfx_ticks, 1, __ATOMIC_RELAXED);
}

/* Progress line on stderr, only when stderr is a terminal and not quiet:
 * progress_show() redraws it in place, progress_clear() erases it. */
int progress_enabled(void);
void progress_show(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void progress_clear(void);

#endif /* MFX_COMMON_UTIL_H */
