/*
 * runend.c - what the capture session reads at the end of a run (see
 * runend.h).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "attach/runend.h"
#include "common/util.h"
#include "trace/reader.h"
#include "trace/tracefile.h"

/* get_mm_hiwater_rss(): the larger of the mark the kernel keeps and the RSS
 * now. */
uint64_t run_read_hwm(pid_t pid)
{
	char path[64], *text;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_file(path, &text, NULL))
		return 0;
	const char *p = strstr(text, "\nVmHWM:");
	unsigned long long kb = 0;
	if (p)
		sscanf(p + 7, "%llu", &kb);
	free(text);
	return kb * 1024;
}

/* /proc/PID/stat field 52, exit_code (Linux 3.5+), readable until the
 * parent reaps the zombie. */
int run_zombie_status(pid_t pid, int *st)
{
	char path[64], *text;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int err = read_file(path, &text, NULL);
	if (err)
		return err;
	char *p = strrchr(text, ')'), *save = NULL;
	int field = 2;
	err = -ENOENT;
	for (char *tok = p ? strtok_r(p + 1, " \n", &save) : NULL; tok; tok = strtok_r(NULL, " \n", &save)) {
		if (++field == 3 && strcmp(tok, "Z"))
			break;	/* not a zombie: the code is not there yet */
		if (field == 52) {
			*st = atoi(tok);
			err = 0;
			break;
		}
	}
	free(text);
	return err;
}

/* The header's thread slots count the events of the first
 * MFX_THREAD_SLOTS threads only (a thread past them records without a
 * slot): past that, the events are counted by reading the trace (~0.1 s a
 * million). */
uint64_t run_trace_events(const char *path, uint64_t from_slots)
{
	struct trace *t;
	if (trace_open(path, &t))
		return from_slots;
	uint64_t n = trace_info(t)->nevents;
	if (trace_info(t)->nthreads >= MFX_THREAD_SLOTS) {
		struct trace_event ev;
		n = 0;
		while (trace_next(t, &ev) > 0)
			n++;
	}
	trace_close(t);
	return n;
}

int run_trace_exit_status(const char *path, int *st)
{
	struct trace *t;
	int err = -ENOENT;
	if (trace_open(path, &t))
		return err;
	const struct trace_mark *m;
	size_t n = trace_marks(t, &m);
	for (size_t i = 0; i < n && err; i++)
		if (m[i].kind == MFX_MARK_EXITING && m[i].nvals >= 1) {
			*st = (int)((m[i].vals[0] & 0xff) << 8);
			err = 0;
		}
	trace_close(t);
	return err;
}

int run_rename_main(const char *dir, const char *main_name, pid_t pid, char *first, size_t n)
{
	char from[PATH_MAX], to[PATH_MAX];
	snprintf(first, n, "trace-%d.0.mfx", (int)pid);
	if (rename(path_join(from, sizeof(from), dir, "trace.mfx"), path_join(to, sizeof(to), dir, first)) ||
	    rename(path_join(from, sizeof(from), dir, main_name), path_join(to, sizeof(to), dir, "trace.mfx")))
		return -errno;
	return 0;
}

void run_record_wrappers(struct tfile *tf, const char *const *w, int n)
{
	char buf[4096] = "";
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		int k = snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? "\n" : "", w[i]);
		if (k < 0 || (size_t)k >= sizeof(buf) - len)
			break;
		len += (size_t)k;
	}
	if (len)
		tfile_info(tf, "wrappers", buf);
}

/*
 * The agent could not start for want of room: it needs blocks for its
 * first chunk (MFX_FIRST_CHUNK, fallocate'd: preload/agent.c) and finds
 * ENOSPC.  It leaves an empty trace file, which would read as corrupt:
 * those are removed.  -ENOSPC when the file system of dir has less than
 * the first chunk free, else 0 (the agent failed for another reason).
 */
int run_no_room_to_start(const char *dir)
{
	struct statvfs v;
	int fd = dir_bound_fd(dir);
	if ((fd >= 0 ? fstatvfs(fd, &v) : statvfs(dir, &v)) ||
	    (uint64_t)v.f_bavail * v.f_frsize >= MFX_FIRST_CHUNK)
		return 0;
	DIR *d = dir_open(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;
		if (is_trace_name(e->d_name) &&
		    !stat(path_join(path, sizeof(path), dir, e->d_name), &st) &&
		    S_ISREG(st.st_mode) && st.st_size == 0)
			file_unlink(path);
	}
	if (d)
		closedir(d);
	return -ENOSPC;
}
