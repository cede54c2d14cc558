/*
 * util.c - the base every part of mfx but the agent uses (see util.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

int mfx_quiet;
static int progress_shown;
volatile uint64_t mfx_ticks;

static void vsay(const char *fmt, va_list ap)
{
	mfx_tick();
	char buf[2048];
	int n = snprintf(buf, sizeof(buf), "%smfx: ", progress_shown ? "\r\033[K" : "");
	progress_shown = 0;
	int m = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += (size_t)m < sizeof(buf) - n - 1 ? m : (int)(sizeof(buf) - n - 2);
	buf[n++] = '\n';
	/* One write: lines from concurrent processes do not interleave. */
	ssize_t w = write(2, buf, n);
	(void)w;
}

void mfx_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

void mfx_note(const char *fmt, ...)
{
	if (mfx_quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

int mfx_usage(const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (cmd)
		mfx_err("%s (try 'mfx %s --help')", msg, cmd);
	else
		mfx_err("%s (try 'mfx --help')", msg);
	return EXIT_USAGE;
}

const char *mfx_strerror(int err)
{
	switch (err) {
	case MFX_E_CORRUPT: return "trace is corrupt";
	case MFX_E_VERSION: return "trace was written by a newer mfx";
	case MFX_E_NOTRACE: return "no trace in the run directory";
	case MFX_E_TRUNCATED: return "trace is truncated";
	case MFX_E_NOTEMPTY: return "directory is not empty (use --force to reuse it)";
	case MFX_E_STATIC: return "statically linked program: no dynamic loader to load the agent";
	case MFX_E_NOGLIBC: return "process does not use glibc";
	case MFX_E_ZOMBIE: return "process is a zombie";
	case MFX_E_SELF: return "cannot trace mfx itself";
	case MFX_E_TRACED: return "process is already traced by another tracer";
	case MFX_E_EXITED: return "process exited";
	case MFX_E_STOPPED: return "process is stopped (job control)";
	case MFX_E_BUSY: return "another mfx is already tracing the process";
	case MFX_E_KTHREAD: return "process is a kernel thread";
	case MFX_E_SECCOMP: return "a seccomp filter forbids what mfx must do in the process";
	case MFX_E_SHSTK: return "process uses shadow stacks";
	case MFX_E_EXECED: return "process ran a new program meanwhile";
	case MFX_E_RLIMIT: return "process's resource limits leave too little room";
	case MFX_E_NOSAFEPOINT: return "no thread reached a safe point";
	case MFX_E_REMOTE: return "remote call in the process failed";
	case MFX_E_NOSYM: return "symbol not found in the process";
	case MFX_E_AGENT: return "the agent did not start";
	case MFX_E_NOAGENT: return "agent libmfx.so not found next to mfx or under PREFIX/lib/mfx";
	case MFX_E_KERNEL: return "the kernel lacks a needed feature";
	case MFX_E_NOEXEC: return "not an executable file";
	case MFX_E_SETUID: return "set-user-ID program: the loader ignores LD_PRELOAD for it";
	case MFX_E_BOUND: return "a replay bound was reached";
	case MFX_E_COMPILE: return "compiling the replay failed";
	case MFX_E_UNSAFE: return "refused: a symbolic link where mfx writes its files";
	case MFX_E_FOREIGN: return "the directory belongs to another user (choose one of your own)";
	case MFX_E_NOTALLOC: return "not an ELF shared object that exports malloc";
	default: return err > 0 && err < MFX_E_BASE ? strerror(err) : "unknown error";
	}
}

int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	/* A digit first: strtoull also takes " -1" (as 2^64 - 1). */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_duration(const char *s, uint64_t *ns)
{
	static const struct { const char *suf; double mul; } units[] = {
		{ "ns", 1 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 },
		{ "m", 60e9 }, { "min", 60e9 }, { "h", 3600e9 }, { "", 1e9 },
	};
	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].suf)) {
			double r = v * units[i].mul;
			if (r > 1e18)
				return -EINVAL;
			*ns = (uint64_t)r;
			return 0;
		}
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *bytes)
{
	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	double mul = 1;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': mul = 1024.0; end++; break;
	case 'm': case 'M': mul = 1024.0 * 1024; end++; break;
	case 'g': case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
	case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' && mul > 1)
		end++;
	if ((*end == 'B' || *end == 'b') && end[1] == 0)
		end++;
	if (*end || v * mul > 1.8e19)
		return -EINVAL;
	*bytes = (uint64_t)(v * mul);
	return 0;
}

char *fmt_bytes(uint64_t b, char *buf, size_t n)
{
	static const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)b);
	else
		snprintf(buf, n, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, u[i]);
	return buf;
}

char *fmt_duration(uint64_t ns, char *buf, size_t n)
{
	if (ns < 1000)
		snprintf(buf, n, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(buf, n, "%.1f us", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, n, "%.1f ms", ns / 1e6);
	else if (ns < 120000000000ull)
		snprintf(buf, n, "%.2f s", ns / 1e9);
	else
		snprintf(buf, n, "%um%02us", (unsigned)(ns / 60000000000ull),
			 (unsigned)(ns / 1000000000ull % 60));
	return buf;
}

char *fmt_count(uint64_t v, char *buf, size_t n)
{
	if (v < 10000)
		snprintf(buf, n, "%llu", (unsigned long long)v);
	else if (v < 10000000)
		snprintf(buf, n, "%.1fk", v / 1e3);
	else if (v < 10000000000ull)
		snprintf(buf, n, "%.1fM", v / 1e6);
	else
		snprintf(buf, n, "%.1fG", v / 1e9);
	return buf;
}

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

char *path_join(char *buf, size_t n, const char *dir, const char *name)
{
	size_t l = strlen(dir);
	snprintf(buf, n, "%s%s%s", dir, l && dir[l - 1] == '/' ? "" : "/", name);
	return buf;
}

static int self_dir(char *buf, size_t n)
{
	ssize_t l = readlink("/proc/self/exe", buf, n - 1);
	if (l < 0)
		return -errno;
	buf[l] = 0;
	char *slash = strrchr(buf, '/');
	if (!slash)
		return -ENOENT;
	*slash = 0;
	return 0;
}

int helper_path(const char *name, char *buf, size_t n)
{
	char dir[PATH_MAX];
	int err = self_dir(dir, sizeof(dir));
	if (err)
		return err;
	/* build/mfx -> build/NAME; PREFIX/bin/mfx -> PREFIX/lib/mfx/NAME */
	snprintf(buf, n, "%s/%s", dir, name);
	if (access(buf, R_OK) == 0)
		return 0;
	snprintf(buf, n, "%s/../lib/mfx/%s", dir, name);
	if (access(buf, R_OK) == 0) {
		char real[PATH_MAX];
		if (realpath(buf, real))
			snprintf(buf, n, "%s", real);
		return 0;
	}
	return -ENOENT;
}

int agent_path(char *buf, size_t n)
{
	const char *env = getenv("MFX_AGENT");	/* for tests and packagers */
	if (env && *env) {
		if (access(env, R_OK))
			return -MFX_E_NOAGENT;
		snprintf(buf, n, "%s", env);
		return 0;
	}
	return helper_path("libmfx.so", buf, n) ? -MFX_E_NOAGENT : 0;
}

int read_file(const char *path, char **out, size_t *outlen)
{
	int fd = open_read(path);
	if (fd < 0)
		return fd;
	size_t cap = 16384, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			free(buf);
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		len += r;
	}
	close(fd);
	buf[len] = 0;
	*out = buf;
	if (outlen)
		*outlen = len;
	return 0;
}

ssize_t read_small(const char *path, char *buf, size_t n)
{
	if (!n)
		return -EINVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* /proc files are produced per read(2): loop until EOF or full. */
	size_t len = 0;
	while (len + 1 < n) {
		ssize_t r = read(fd, buf + len, n - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			close(fd);
			buf[len] = 0;
			return e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	return (ssize_t)len;
}

int progress_enabled(void)
{
	return !mfx_quiet && isatty(2);
}

void progress_show(const char *fmt, ...)
{
	mfx_tick();
	if (!progress_enabled())
		return;
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "\r\033[K");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (m > 0)
		n += (size_t)m < sizeof(buf) - n ? m : (int)(sizeof(buf) - n - 1);
	ssize_t w = write(2, buf, n);
	(void)w;
	progress_shown = 1;
}

void progress_clear(void)
{
	if (!progress_shown)
		return;
	ssize_t w = write(2, "\r\033[K", 4);
	(void)w;
	progress_shown = 0;
}

int grow_array(void *arrp, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap : 16;
	while (nc <= n) {
		if (nc > SIZE_MAX / 2)
			return -ENOMEM;
		nc *= 2;
	}
	if (!elem || nc > SIZE_MAX / elem)	/* nc * elem would wrap */
		return -ENOMEM;
	void *p = realloc(*(void **)arrp, nc * elem);
	if (!p)
		return -ENOMEM;
	*(void **)arrp = p;
	*cap = nc;
	return 0;
}

/* Digits, at least one: the pid and counter parts of a name. */
static const char *digits(const char *s)
{
	const char *p = s;
	while (*p >= '0' && *p <= '9')
		p++;
	return p > s ? p : NULL;
}

int is_numbered_name(const char *name, const char *stem, char sep, const char *ext)
{
	size_t sl = strlen(stem);
	if (strncmp(name, stem, sl))
		return 0;
	const char *p = name + sl;
	if (!strcmp(p, ext))
		return 1;
	if (*p != sep || !(p = digits(p + 1)))
		return 0;
	if (sep == '-' && *p == '.' && digits(p + 1))
		p = digits(p + 1);
	return !strcmp(p, ext);
}

/* trace-<pid>[.<n>].mfx: preload/agent.c create_trace() */
int is_trace_name(const char *name)
{
	return is_numbered_name(name, "trace", '-', ".mfx");
}

int env_flag(const char *name)
{
	const char *v = getenv(name);
	return v && *v && strcmp(v, "0");
}
