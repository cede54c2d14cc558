/*
 * files.c - the files mfx writes and reads in a run directory, made safely
 * (declared in util.h: write_file, fopen_replace, dir_bind, file_open...).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/util.h"

/* ---- files: created safely, relative to one directory fd -------------------
 *
 * mfx often runs as root and writes into directories other users may be
 * able to write (their parents, at least).  So every file it writes is
 *   - created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600: a symlink or a file
 *     planted under the name is never followed nor reused, and a trace or an
 *     smaps copy of root's process is not readable by others;
 *   - written under a fresh random temporary name, then renamed over the
 *     final name (rename(2) replaces a planted symlink itself, never what it
 *     points to);
 *   - for the run directory (dir_bind), made with openat/renameat relative
 *     to the fd opened when mfx created it: swapping the directory for
 *     another (or for a symlink) afterwards changes nothing.
 * Other paths (a -o FILE the user named) go through their parent directory,
 * opened once per file.
 */
static char bound_path[PATH_MAX];
static int bound_fd = -1;

int dir_bind(const char *dir, int nofollow)
{
	size_t l = strlen(dir);
	while (l > 1 && dir[l - 1] == '/')
		l--;
	if (l >= sizeof(bound_path))
		return -ENAMETOOLONG;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0)
		return errno == ELOOP ? -MFX_E_UNSAFE : -errno;
	if (bound_fd >= 0)
		close(bound_fd);
	memcpy(bound_path, dir, l);
	bound_path[l] = 0;
	bound_fd = fd;
	return fd;
}

int dir_bound_fd(const char *dir)
{
	size_t l = strlen(dir);
	while (l > 1 && dir[l - 1] == '/')
		l--;
	return bound_fd >= 0 && l == strlen(bound_path) && !memcmp(dir, bound_path, l) ? bound_fd
										       : -1;
}

/* The directory holding `path` as an fd (the bound one, or its parent
 * opened now: *owned = 1, close it), and its last component in base. */
static int parent_of(const char *path, char *base, size_t n, int *owned)
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	size_t dl = slash ? (size_t)(slash - path) : 0;
	*owned = 0;
	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EISDIR;
	if (strlen(name) >= n)
		return -ENAMETOOLONG;
	strcpy(base, name);
	char dir[PATH_MAX];
	if (!slash)
		strcpy(dir, ".");
	else if (dl == 0)
		strcpy(dir, "/");
	else if (dl < sizeof(dir))
		memcpy(dir, path, dl), dir[dl] = 0;
	else
		return -ENAMETOOLONG;
	int fd = dir_bound_fd(dir);
	if (fd >= 0)
		return fd;
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*owned = 1;
	return fd;
}

int file_open(const char *path, int flags, mode_t mode)
{
	char base[NAME_MAX + 1];
	int owned, dfd = parent_of(path, base, sizeof(base), &owned);
	if (dfd < 0)
		return dfd;
	if (flags & O_CREAT)
		flags |= O_EXCL;
	int fd = openat(dfd, base, flags | O_NOFOLLOW | O_CLOEXEC, mode & 0600);
	int err = fd < 0 ? (errno == ELOOP ? -MFX_E_UNSAFE : -errno) : 0;
	if (owned)
		close(dfd);
	return fd >= 0 ? fd : err;
}

int open_read(const char *path)
{
	char base[NAME_MAX + 1];
	int owned, dfd = parent_of(path, base, sizeof(base), &owned), fd;
	if (dfd >= 0 && !owned) {	/* in the run directory: through its fd */
		fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		return fd >= 0 ? fd : errno == ELOOP ? -MFX_E_UNSAFE : -errno;
	}
	if (owned)
		close(dfd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int file_unlink(const char *path)
{
	char base[NAME_MAX + 1];
	int owned, dfd = parent_of(path, base, sizeof(base), &owned);
	if (dfd < 0)
		return dfd;
	int err = unlinkat(dfd, base, 0) ? -errno : 0;
	if (owned)
		close(dfd);
	return err;
}

DIR *dir_open(const char *dir)
{
	int b = dir_bound_fd(dir);
	if (b < 0)
		return opendir(dir);
	int fd = openat(b, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d && fd >= 0)
		close(fd);
	return d;
}

/* Temporary files being written, for mfx_tmp_cleanup() (a signal handler
 * or the watchdog ending mfx at once): dir fd and name. */
#define LIVE_TMP 8
static struct {
	volatile int dfd;
	char name[NAME_MAX + 1];
} live_tmp[LIVE_TMP] = { [0 ... LIVE_TMP - 1] = { -1, "" } };

static void tmp_track(int dfd, const char *name, int on)
{
	for (int i = 0; i < LIVE_TMP; i++) {
		if (on && live_tmp[i].dfd < 0) {
			snprintf(live_tmp[i].name, sizeof(live_tmp[i].name), "%s", name);
			live_tmp[i].dfd = dfd;
			return;
		}
		if (!on && live_tmp[i].dfd == dfd && !strcmp(live_tmp[i].name, name)) {
			live_tmp[i].dfd = -1;
			return;
		}
	}
}

void mfx_tmp_cleanup(void)
{
	for (int i = 0; i < LIVE_TMP; i++)
		if (live_tmp[i].dfd >= 0)
			unlinkat(live_tmp[i].dfd, live_tmp[i].name, 0);
}

/* Create "<path>.tmp<6 random chars>" O_EXCL, 0600; its full name in tmp. */
static int tmp_create(const char *path, char *tmp, size_t n)
{
	static const char az[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	for (int tries = 0; tries < 100; tries++) {
		uint64_t r = now_ns() * 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 40) ^
			     (uint64_t)tries * 0xff51afd7ed558ccdull;
		if (snprintf(tmp, n, "%s.tmp%c%c%c%c%c%c", path, az[r % 36], az[r / 36 % 36],
			     az[r / 1296 % 36], az[r / 46656 % 36], az[r / 1679616 % 36],
			     az[r / 60466176 % 36]) >= (int)n)
			return -ENAMETOOLONG;
		int fd = file_open(tmp, O_WRONLY | O_CREAT, 0600);
		if (fd != -EEXIST)
			return fd;
	}
	return -EEXIST;
}

/* rename tmp over path in their directory; tmp is removed on failure. */
static int tmp_commit(const char *tmp, const char *path, int err)
{
	char tb[NAME_MAX + 1], pb[NAME_MAX + 1];
	int o1, o2, d1 = parent_of(tmp, tb, sizeof(tb), &o1);
	if (d1 < 0)
		return err ? err : d1;
	int d2 = parent_of(path, pb, sizeof(pb), &o2);
	if (!err && d2 < 0)
		err = d2;
	if (!err && renameat(d1, tb, d2, pb))
		err = -errno;
	if (err)
		unlinkat(d1, tb, 0);
	tmp_track(d1, tb, 0);
	if (o1)
		close(d1);
	if (o2 && d2 >= 0)
		close(d2);
	return err;
}

static void tmp_track_path(const char *tmp)
{
	char b[NAME_MAX + 1];
	int owned, d = parent_of(tmp, b, sizeof(b), &owned);
	if (d >= 0 && !owned)	/* only the bound directory's: its fd stays open */
		tmp_track(d, b, 1);
	if (owned)
		close(d);
}

int file_replace_open(const char *path, char *tmp, size_t n)
{
	int fd = tmp_create(path, tmp, n);
	if (fd >= 0)
		tmp_track_path(tmp);
	return fd;
}

int file_replace_commit(const char *tmp, const char *path, int err)
{
	return tmp_commit(tmp, path, err);
}

int write_file(const char *path, const void *buf, size_t len)
{
	char tmp[PATH_MAX + 16];
	int fd = tmp_create(path, tmp, sizeof(tmp)), err = 0;
	if (fd < 0)
		return fd;
	tmp_track_path(tmp);
	const char *p = buf;
	while (len && !err) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			err = w < 0 ? -errno : -EIO;
		else
			p += w, len -= (size_t)w;
	}
	if (close(fd) && !err)
		err = -errno;
	return tmp_commit(tmp, path, err);
}

/*
 * The stream of fopen_replace writes through these cookie functions so that
 * the reason a write failed (ENOSPC, EDQUOT, EIO) is kept: stdio itself
 * only sets ferror(), and errno is long overwritten when fclose_replace
 * looks (a full disk used to read "Input/output error").  fclose() returns
 * what the close function returns, with its errno (glibc _IO_cookie_close).
 */
struct wcookie {
	int fd;
	int err;	/* the first write error (errno), 0 if none */
};

static ssize_t wc_write(void *c, const char *buf, size_t len)
{
	struct wcookie *w = c;
	size_t done = 0;
	while (done < len && !w->err) {
		ssize_t r = write(w->fd, buf + done, len - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			w->err = r < 0 ? errno : ENOSPC;	/* 0 bytes: no room */
		else
			done += (size_t)r;
	}
	return w->err ? -1 : (ssize_t)done;
}

static int wc_close(void *c)
{
	struct wcookie *w = c;
	int err = w->err;
	if (close(w->fd) && !err)
		err = errno;
	free(w);
	errno = err;
	return err ? -1 : 0;
}

FILE *fopen_replace(const char *path, char *tmp, size_t n)
{
	int fd = tmp_create(path, tmp, n);
	if (fd < 0) {
		errno = -fd < MFX_E_BASE ? -fd : EPERM;
		return NULL;
	}
	tmp_track_path(tmp);
	struct wcookie *w = malloc(sizeof(*w));
	FILE *f = w ? fopencookie(w, "w", (cookie_io_functions_t){ .write = wc_write,
								     .close = wc_close })
		    : NULL;
	if (!f) {
		int e = errno ? errno : ENOMEM;
		free(w);
		close(fd);
		tmp_commit(tmp, path, -e);
		errno = e;
		return NULL;
	}
	*w = (struct wcookie){ fd, 0 };
	return f;
}

int fclose_replace(FILE *f, const char *tmp, const char *path, int err)
{
	int bad = ferror(f);
	int e = fclose(f) ? (errno ? errno : EIO) : 0;
	if (!err && (e || bad))
		err = -(e ? e : EIO);
	return tmp_commit(tmp, path, err);
}

/*
 * A tmpfs file's holes are not free to read through a mapping: a read
 * fault in a hole allocates a page (shmem_fault), and on a full tmpfs that
 * is a SIGBUS, not an error (a raw trace has holes: the unused tails of its
 * regions, a chunk a full disk cut short).  read(2) of a hole allocates
 * nothing, and neither does an anonymous mapping: so on tmpfs each hole
 * (SEEK_HOLE/SEEK_DATA) is covered by anonymous zero pages, and reads as
 * the zeros it holds.  Other file systems read holes from the page cache.
 * A file with more holes than MAP_HOLES keeps the rest mapped from the file.
 */
#define MAP_HOLES 8192

void *map_file_read(int fd, size_t size, int flags)
{
	void *m = mmap(NULL, size, PROT_READ, flags, fd, 0);
	struct statfs fs;
	if (m == MAP_FAILED || fstatfs(fd, &fs) || fs.f_type != TMPFS_MAGIC)
		return m;
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE), end = (size + pg - 1) / pg * pg;
	off_t off = 0;
	for (int n = 0; n < MAP_HOLES && (uint64_t)off < size; n++) {
		off_t h = lseek(fd, off, SEEK_HOLE), d;
		if (h < 0 || (uint64_t)h >= size)
			break;
		d = lseek(fd, h, SEEK_DATA);	/* ENXIO: a hole up to the end */
		uint64_t a = ((uint64_t)h + pg - 1) / pg * pg;
		uint64_t b = d < 0 || (uint64_t)d >= size ? end : (uint64_t)d / pg * pg;
		if (b > a && mmap((char *)m + a, b - a, PROT_READ,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
			int e = errno;
			munmap(m, size);
			errno = e;
			return MAP_FAILED;
		}
		if (d < 0)
			break;
		off = d;
	}
	return m;
}
