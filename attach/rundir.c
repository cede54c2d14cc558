/*
 * rundir.c - the run directory of `mfx launch` and `mfx attach` (rundir.h):
 * its default name, its creation, and what --force may remove from it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attach/rundir.h"
#include "common/util.h"

/* The parents of dir (like mkdir -p: 0755), not dir itself. */
static int mkdir_parents(const char *dir)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	size_t l = strlen(tmp);
	while (l > 1 && tmp[l - 1] == '/')
		tmp[--l] = 0;
	char *last = strrchr(tmp, '/');
	if (!last || last == tmp)
		return 0;
	*last = 0;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * The files mfx itself writes into a run directory, by their exact names:
 * the only ones --force removes (a user's notes.png or smaps-old stays).
 *   trace.mfx, trace-<pid>.mfx, trace-<pid>.<n>.mfx   the agent, attach
 *   smaps, .smaps-exit-<pid>, .stop                    the capture session
 *   summary, report, the report's charts: NAME.EXT or NAME-<pid>[.<n>].EXT
 *   (the report of trace-<pid>[.<n>].mfx)             mfx report
 *   mftrace_log.csv, stacks.folded, profile.pb.gz      mfx export
 *   replay, replay.c, replay.ops, replay.json, rss_comparison.png,
 *   smaps_replay, smaps_replay.<n>                     mfx replay
 * and any of them + ".tmp" or ".tmpXXXXXX", the file being written when mfx
 * was stopped.
 */
static int is_mfx_file(const char *name)
{
	static const char *const exact[] = {
		"smaps", ".stop", "mftrace_log.csv", "stacks.folded", "profile.pb.gz", "replay",
		"replay.c", "replay.ops", "replay.json", "rss_comparison.png",
	};
	static const char *const report[][2] = {
		{ "summary", ".json" }, { "report", ".html" }, { "heatmap_allocations", ".png" },
		{ "impact_memory_usage", ".png" }, { "page_occupancy", ".png" },
		{ "sites_over_time", ".png" },
	};
	char base[NAME_MAX + 1];
	size_t l = strlen(name);
	const char *t = l > 4 ? strstr(name, ".tmp") : NULL;
	while (t && strstr(t + 1, ".tmp"))
		t = strstr(t + 1, ".tmp");
	/* NAME.tmp, or NAME.tmpXXXXXX (util.c's fresh temporary names) */
	if (t && l <= NAME_MAX && (strlen(t) == 4 || strlen(t) == 10)) {
		memcpy(base, name, (size_t)(t - name));
		base[t - name] = 0;
		name = base;
	}
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (!strcmp(name, exact[i]))
			return 1;
	for (size_t i = 0; i < sizeof(report) / sizeof(report[0]); i++)
		if (is_numbered_name(name, report[i][0], '-', report[i][1]))
			return 1;
	const char *pid = !strncmp(name, ".smaps-exit-", 12) ? name + 12 : NULL;
	return is_trace_name(name) || is_numbered_name(name, "smaps_replay", '.', "") ||
	       (pid && *pid && strspn(pid, "0123456789") == strlen(pid));
}

/*
 * The run directory is made 0700 (a trace shows the target's address
 * layout, which /proc denies other users), then opened once with
 * O_NOFOLLOW and bound (dir_bind): every file mfx writes in it afterwards
 * is created relative to that fd, so a user who can write its parent and
 * swaps it for a directory of symlinks changes nothing.  An existing
 * directory must be a real one (not a symlink) and ours.
 */
int run_dir_create(const char *dir, int force)
{
	int err = mkdir_parents(dir);
	if (err)
		return err;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	int fd = dir_bind(dir, 1);
	if (fd < 0)
		return fd == -ENOTDIR ? -MFX_E_UNSAFE : fd;
	struct stat st;
	if (fstat(fd, &st))
		return -errno;
	if (st.st_uid != geteuid())
		return -MFX_E_FOREIGN;
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		err = -errno;
		if (dfd >= 0)
			close(dfd);
		return err;
	}
	struct dirent *e;
	int nonempty = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		nonempty = 1;
		if (!force)
			break;
		/* --force removes mfx's own files only, never follows a link */
		if (is_mfx_file(e->d_name) && unlinkat(fd, e->d_name, 0) && errno != EISDIR &&
		    errno != ENOENT) {
			err = -errno;
			break;
		}
	}
	closedir(d);
	if (err)
		return err;
	return nonempty && !force ? -MFX_E_NOTEMPTY : 0;
}

char *run_dir_default(const char *prog, pid_t pid)
{
	const char *base = strrchr(prog, '/');
	base = base ? base + 1 : prog;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	char *out;
	if (asprintf(&out, "results/%s-%d-%s", *base ? base : "prog", (int)pid, stamp) < 0)
		return NULL;
	for (char *p = out + 8; *p; p++)	/* keep the name one path component */
		if (*p == '/' || *p == ' ')
			*p = '_';
	return out;
}


int run_dir_missing_part(const char *dir, char *top, size_t n)
{
	char tmp[PATH_MAX];
	struct stat st;
	top[0] = 0;
	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp) || n < sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = 0;
		if (stat(tmp, &st)) {
			snprintf(top, n, "%s", tmp);
			return 0;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

void run_dir_discard(const char *dir, const char *top)
{
	char path[PATH_MAX];
	static const char *const ours[] = { "trace.mfx", "smaps", ".stop" };
	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		file_unlink(path_join(path, sizeof(path), dir, ours[i]));
	rmdir(path_join(path, sizeof(path), dir, RUN_FORKS_DIR));
	if (!*top)
		return;	/* it was there before: only our files go */
	snprintf(path, sizeof(path), "%s", dir);
	size_t tl = strlen(top);
	for (;;) {
		if (rmdir(path) || strlen(path) <= tl)
			break;
		char *slash = strrchr(path, '/');
		if (!slash || slash == path)
			break;
		*slash = 0;
	}
}

/* The effective uid and gid of pid (/proc/PID/status "Uid:", "Gid:"). */
static int proc_ids(pid_t pid, uid_t *uid, gid_t *gid)
{
	char path[64], line[256];
	unsigned long r, e;
	int got = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Uid: %lu %lu", &r, &e) == 2) {
			*uid = (uid_t)e;
			got |= 1;
		} else if (sscanf(line, "Gid: %lu %lu", &r, &e) == 2) {
			*gid = (gid_t)e;
			got |= 2;
		}
	}
	if (f)
		fclose(f);
	return got == 3 ? 0 : -ESRCH;
}

int run_forks_dir(const char *dir, pid_t pid)
{
	int dfd = dir_bound_fd(dir);
	uid_t uid;
	gid_t gid;
	if (dfd < 0)
		return -EBADF;
	int err = proc_ids(pid, &uid, &gid);
	if (err)
		return err;
	if (uid == geteuid()) {
		int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	if (mkdirat(dfd, RUN_FORKS_DIR, 0700) && errno != EEXIST)
		return -errno;
	int fd = openat(dfd, RUN_FORKS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchown(fd, uid, gid)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

void run_adopt_forks(const char *dir, int rm)
{
	int dfd = dir_bound_fd(dir);
	int fd = dfd < 0 ? -1 : openat(dfd, RUN_FORKS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		struct stat st;
		if (is_trace_name(e->d_name) &&
		    fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			renameat2(fd, e->d_name, dfd, e->d_name, RENAME_NOREPLACE);
	}
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
	if (rm && dfd >= 0)
		unlinkat(dfd, RUN_FORKS_DIR, AT_REMOVEDIR);
}
