/*
 * config.c - what the agent reads before it records: its configuration (a
 * string from mfx, or the environment in launch mode), the real allocator's
 * functions, whether the TSC can be the clock, the trace header's fields;
 * and the small helpers for it that must not allocate.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "preload/internal.h"
#include "preload/record.h"

/* ---- small helpers that must not allocate ---------------------------------- */

/* One of the agent's threads: detached, every signal blocked (the
 * program's signals go to its own threads), a stack of `stack` bytes.
 * tls_busy is set while pthread_create allocates: its calls are the
 * agent's, never recorded.  0 or -errno. */
int agent_thread(void *(*fn)(void *), void *arg, size_t stack)
{
	int busy = tls_busy;
	tls_busy = 1;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, stack);
	pthread_t t;
	int err = pthread_create(&t, &a, fn, arg);
	pthread_attr_destroy(&a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	tls_busy = busy;
	return -err;
}

size_t agent_u64_to_dec(char *out, uint64_t v)
{
	char tmp[24];
	size_t n = 0, i = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out[i++] = tmp[--n];
	out[i] = 0;
	return i;
}

int agent_parse_u64(const char *s, uint64_t *v)
{
	uint64_t r = 0;
	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		r = r * 10 + (uint64_t)(*s - '0');
	}
	*v = r;
	return 0;
}

/* Read a small file into buf (NUL-terminated); returns bytes or -errno. */
long agent_read_small(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	while (len + 1 < n) {
		ssize_t r = read(fd, buf + len, n - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = 0;
	return (long)len;
}

/* An invariant TSC (same rate on every core, in every C-state) lets the
 * hooks read time with rdtscp (~10 ns) instead of clock_gettime (~28 ns on
 * this kind of VM). */
int agent_tsc_usable(void)
{
	const char *force = getenv("MFX_CLOCK");
	if (force && !strcmp(force, "ns"))
		return 0;
	static char buf[16384];
	if (agent_read_small("/proc/cpuinfo", buf, sizeof(buf)) <= 0)
		return 0;
	char *flags = strstr(buf, "\nflags");
	if (!flags)
		return 0;
	char *eol = strchr(flags + 1, '\n');
	if (eol)
		*eol = 0;
	return strstr(flags, " constant_tsc") && strstr(flags, " nonstop_tsc");
}

/* ---- the real functions ----------------------------------------------------- */

int agent_resolve(int attach)
{
	int busy = tls_busy;
	tls_busy = 1;	/* dlsym may allocate: serve it from the bootstrap arena */
	struct agent_real r;
#define RESOLVE(f) (*(void **)&r.f = attach ? got_find_defined(#f) : dlsym(RTLD_NEXT, #f))
	RESOLVE(free);
	RESOLVE(malloc);
	RESOLVE(calloc);
	RESOLVE(realloc);
	RESOLVE(reallocarray);
	RESOLVE(posix_memalign);
	RESOLVE(aligned_alloc);
	RESOLVE(memalign);
	RESOLVE(valloc);
	RESOLVE(pvalloc);
	RESOLVE(malloc_trim);
	RESOLVE(malloc_info);
	RESOLVE(dlclose);
#undef RESOLVE
	tls_busy = busy;
	if (!r.malloc || !r.free || !r.calloc || !r.realloc)
		return -ENOENT;
	/* Publish free first: a block from the real malloc must never reach a
	 * free that does not know the real allocator. */
	agent_real.free = r.free;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	agent_real = r;
	return 0;
}

/* ---- configuration ------------------------------------------------------------ */

int agent_parse_config(const char *s, struct agent_config *c)
{
	memset(c, 0, sizeof(*c));
	c->trace_fd = -1;
	c->spool_fd = -1;
	c->stack_depth = 64;
	while (s && *s) {
		const char *eq = strchr(s, '='), *end = strchr(s, ',');
		if (!end)
			end = s + strlen(s);
		if (!eq || eq > end)
			return -EINVAL;
		char val[4096];
		size_t kl = (size_t)(eq - s), vl = (size_t)(end - eq - 1);
		if (vl >= sizeof(val))
			return -EINVAL;
		memcpy(val, eq + 1, vl);
		val[vl] = 0;
		uint64_t v = 0;
		if (kl == 5 && !memcmp(s, "trace", 5)) {
			memcpy(c->trace_path, val, vl + 1);
		} else if (kl == 2 && !memcmp(s, "fd", 2) && !agent_parse_u64(val, &v) && v < 1u << 30) {
			c->trace_fd = (int)v;
		} else if (kl == 5 && !memcmp(s, "spool", 5) && !agent_parse_u64(val, &v) && v < 1u << 30) {
			c->spool_fd = (int)v;
		} else if (kl == 5 && !memcmp(s, "depth", 5) && !agent_parse_u64(val, &v)) {
			c->stack_depth = v > MFX_MAX_DEPTH ? MFX_MAX_DEPTH : (unsigned)v;
		} else if (kl == 6 && !memcmp(s, "stacks", 6) && !agent_parse_u64(val, &v)) {
			if (!v)
				c->stack_depth = 0;
		} else if (kl == 6 && !memcmp(s, "attach", 6) && !agent_parse_u64(val, &v)) {
			c->attach = v != 0;
		} else if (kl == 6 && !memcmp(s, "sample", 6) && !agent_parse_u64(val, &v)) {
			c->sample_bytes = v;
		} else {
			return -EINVAL;
		}
		s = *end ? end + 1 : end;
	}
	return 0;
}

void agent_fill_header(struct mfx_file_header *h, const struct agent_config *c)
{
	memset(h, 0, MFX_FIRST_CHUNK);
	h->version = MFX_TRACE_VERSION;
	h->header_size = MFX_HEADER_SIZE;
	h->chunk_size = MFX_CHUNK_SIZE;
	h->flags = (c->stack_depth ? MFX_HF_STACKS : 0) | (rec.use_tsc ? MFX_HF_TSC : 0) |
		   (c->attach ? MFX_HF_ATTACH : 0) | (c->child ? MFX_HF_CHILD : 0) |
		   (c->sample_bytes ? MFX_HF_SAMPLED : 0);
	h->sample_bytes = c->sample_bytes;
	h->pid = (uint32_t)getpid();
	h->ppid = (uint32_t)getppid();
	h->stack_depth = c->stack_depth;
	h->tsc_shift = rec.use_tsc ? AGENT_TSC_SHIFT : 0;
	h->tsc_known = (uint32_t)rec.use_tsc;
	h->first_chunk = MFX_FIRST_CHUNK;
	h->next_chunk = MFX_FIRST_CHUNK;
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	h->start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	h->start_tsc = agent_tsc();
	h->start_ns = agent_now_ns();
	ssize_t n = readlink("/proc/self/exe", h->exe, sizeof(h->exe) - 1);
	h->exe[n > 0 ? n : 0] = 0;
	n = agent_read_small("/proc/self/cmdline", h->cmdline, sizeof(h->cmdline));
	for (ssize_t i = 0; i + 1 < n; i++)
		if (!h->cmdline[i])
			h->cmdline[i] = ' ';
	h->next_stack_id = 1;
	/* Names this trace in spool slots: any value unlikely to repeat. */
	h->trace_uid = (agent_tsc() * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)getpid() << 32) ^
		       (uint64_t)(uintptr_t)&h;
	h->state = MFX_ST_INIT;
	__atomic_store_n(&h->magic, MFX_TRACE_MAGIC, __ATOMIC_RELEASE);
}

/* VmHWM of /proc/self/status in bytes, 0 if unknown. */
uint64_t agent_vm_hwm(void)
{
	char buf[4096];
	if (agent_read_small("/proc/self/status", buf, sizeof(buf)) <= 0)
		return 0;
	const char *p = strstr(buf, "\nVmHWM:");
	uint64_t kb = 0;
	for (p = p ? p + 7 : ""; *p == ' ' || *p == '\t'; p++)
		;
	for (; *p >= '0' && *p <= '9'; p++)
		kb = kb * 10 + (uint64_t)(*p - '0');
	return kb * 1024;
}
