/*
 * glibc.c - the target's C library: where its functions are, and the few
 * layout facts inject/ relies on (glibc.h), all read from the target's
 * memory before any thread is held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "inject/glibc.h"
#include "inject/internal.h"
#include "inject/x86_64.h"

#define TEXT_SCAN_MAX (64u << 20)

/* malloc.c's functions lie together in libc's text; the exported ones
 * bound the range that also holds _int_malloc, sysmalloc, ... */
static const char *const malloc_names[] = {
	"malloc", "free", "calloc", "realloc", "memalign", "posix_memalign", "aligned_alloc",
	"valloc", "pvalloc", "malloc_trim", "malloc_usable_size", "mallinfo2", "mallopt",
	"malloc_info", "malloc_stats",
};
#define NMALLOC (sizeof(malloc_names) / sizeof(malloc_names[0]))

/* What remote calls need (enum inject_fn order). */
static const char *const fn_names[INJ_NFN] = {
	"dlopen", "dlerror", "dlclose", "memfd_create", "socketpair", "close", "malloc_trim",
	"__errno_location", "pthread_create", "sleep", "mmap", "munmap",
};

/* They take the thread-stack lock that pthread_create needs (the set*id
 * calls hold it while every thread runs their SIGSETXID handler). */
static const char *const busy_names[] = {
	"pthread_create", "pthread_detach", "pthread_join", "pthread_timedjoin_np",
	"pthread_clockjoin_np", "pthread_tryjoin_np", "pthread_exit", "setuid", "setgid",
	"seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
};
#define NBUSY (sizeof(busy_names) / sizeof(busy_names[0]))

/* __restore_rt (not exported): its code bytes in libc's own executable
 * mappings, read from memory.  A word on a stack equal to it marks a
 * signal frame; remote calls return into it when mfx has no trampoline. */
static uint64_t find_restore_rt(pid_t pid, const struct inject_module *m)
{
	for (int i = 0; i < m->ntext; i++) {
		uint64_t lo = m->text[i].lo, len = m->text[i].hi - lo;
		if (len > TEXT_SCAN_MAX)
			continue;
		uint8_t *buf = malloc(len);
		uint64_t at = 0;
		if (buf && inject_peek(pid, lo, buf, len) == 0) {
			uint8_t *hit = memmem(buf, len, x86_restore_rt_code, X86_RESTORE_RT_LEN);
			if (hit)
				at = lo + (uint64_t)(hit - buf);
		}
		free(buf);
		if (at)
			return at;
	}
	return 0;
}

static void set_ranges(struct inject_libc *lc, const uint64_t *vals, const uint64_t *sizes)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < NMALLOC; i++) {
		if (!vals[i])
			continue;
		if (vals[i] < lo)
			lo = vals[i];
		if (vals[i] + sizes[i] > hi)
			hi = vals[i] + sizes[i];
	}
	lc->malloc_lo = hi ? lo : 0;
	lc->malloc_hi = hi;
	for (size_t i = 0; i < INJ_NFN; i++)
		lc->fn[i] = vals[NMALLOC + i];
	const uint64_t *bv = vals + NMALLOC + INJ_NFN, *bs = sizes + NMALLOC + INJ_NFN;
	for (size_t i = 0; i < NBUSY && lc->nbusy < INJ_MAX_BUSY; i++)
		if (bv[i] && bs[i])
			lc->busy[lc->nbusy++] = (struct inject_range){ bv[i], bv[i] + bs[i] };
}

int glibc_load(pid_t pid, struct inject_libc *lc)
{
	memset(lc, 0, sizeof(*lc));
	if (inject_find_module(pid, "/libc.so.6", &lc->libc))
		return -MFX_E_NOGLIBC;
	lc->have_ld = inject_find_module(pid, "/ld-linux-x86-64.so.2", &lc->ld) == 0;
	enum { NB = NMALLOC + INJ_NFN, TID = NB + NBUSY, NALL = TID + 1 };
	const char *names[NALL + 1];
	uint64_t vals[NALL], sizes[NALL];
	for (size_t i = 0; i < NMALLOC; i++)
		names[i] = malloc_names[i];
	for (size_t i = 0; i < INJ_NFN; i++)
		names[NMALLOC + i] = fn_names[i];
	for (size_t i = 0; i < NBUSY; i++)
		names[NB + i] = busy_names[i];
	names[TID] = "_thread_db_pthread_tid";	/* { bits, count, offset } */
	names[NALL] = NULL;
	int err = inject_module_syms(pid, &lc->libc, names, vals, sizes);
	if (err < 0)
		return err;
	set_ranges(lc, vals, sizes);
	if (!lc->malloc_hi)
		return -MFX_E_NOSYM;
	uint32_t td[3];
	if (vals[TID] && inject_peek(pid, vals[TID], td, sizeof(td)) == 0 && td[0] == 32 &&
	    td[1] == 1 && td[2] >= 64 && td[2] < 4096)
		lc->tid_off = td[2];
	inject_module_version(pid, &lc->libc, "GLIBC_", &lc->version);
	lc->restore_rt = find_restore_rt(pid, &lc->libc);
	return 0;
}

int glibc_attr_detached(const struct inject_libc *lc, uint64_t stack_size, struct glibc_attr *a)
{
	/* glibc's struct pthread_attr (sysdeps/nptl/internaltypes.h) as
	 * pthread_attr_init leaves it, plus ATTR_FLAG_DETACHSTATE and a
	 * stack size: unchanged from 2.32 to GLIBC_ATTR_MAX. */
	if (lc->version < GLIBC_ATTR_MIN || lc->version > GLIBC_ATTR_MAX)
		return -ENOTSUP;
	memset(a, 0, sizeof(*a));
	a->flags = 0x1;		/* ATTR_FLAG_DETACHSTATE */
	a->guardsize = 4096;
	a->stacksize = stack_size;
	return 0;
}

uint64_t glibc_errno_tls(pid_t pid, uint64_t fn)
{
	/* `mov off(%rip),%rax; add %fs:0,%rax; ret`: the GOT word holds the
	 * TLS offset (initial-exec) */
	static const uint8_t tail[] = { 0x64, 0x48, 0x03, 0x04, 0x25, 0, 0, 0, 0, 0xc3 };
	uint8_t c[17];
	int32_t disp;
	uint64_t off = 0;
	if (!fn || inject_peek(pid, fn, c, sizeof(c)) || c[0] != 0x48 || c[1] != 0x8b || c[2] != 0x05 ||
	    memcmp(c + 7, tail, sizeof(tail)))
		return 0;
	memcpy(&disp, c + 3, 4);
	if (inject_peek(pid, fn + 7 + (uint64_t)(int64_t)disp, &off, sizeof(off)))
		return 0;
	return off;
}
