/*
 * allocator.c - which allocator serves the process's malloc, its own
 * figures, and its own way of giving memory back (include/mfx/allocators.h).
 *
 * The allocator is the module the program's malloc binds to: the first in
 * load order that defines "malloc" (got_find_defined: the agent itself and
 * PLT stubs never count), named by that module's own symbols.  Debian's
 * redis-server links libjemalloc, which defines malloc before libc does; an
 * LD_PRELOAD of libtcmalloc_minimal or libmimalloc puts theirs first.  A
 * program that calls a prefixed jemalloc directly (je_malloc: upstream
 * redis's own build) binds malloc to glibc, but its memory is jemalloc's:
 * mfx then reads jemalloc's figures and says the calls are not seen.
 *
 * The figures are read on the agent's own thread (attach, every
 * ALLOC_SAMPLE_NS while a window records, and at its start and end) or, in
 * launch mode where the agent has no thread, by a hook that notices the
 * time has come (at most every ALLOC_SAMPLE_NS), and written into the trace
 * as ALLOC marks (trace/format.h).  glibc's mallinfo2() walks every free
 * chunk of every arena under its lock, so glibc is read at the start and
 * the end of an attach window only (launch: never; the trace has every
 * block); its heap is measured from smaps.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <dlfcn.h>

#include "mfx/allocators.h"
#include "preload/internal.h"
#include "preload/record.h"

#define ALLOC_SAMPLE_NS 100000000ull	/* 100 ms: the heap at the RSS peak, within that */

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
typedef void (*write_cb)(void *, const char *);
typedef void (*mi_out_fn)(const char *, void *);

static struct {
	int detected;
	int kind;			/* enum mfx_allocator */
	int direct;			/* prefixed jemalloc the program calls directly */
	char module[256];		/* the file that defines the malloc the program calls */
	mallctl_fn mallctl;
	void (*je_print)(write_cb, void *, const char *);
	int (*tc_prop)(const char *, size_t *);
	void (*tc_release)(void);
	void (*tc_stats)(char *, int);
	void (*mi_info)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *,
			size_t *);
	void (*mi_collect)(_Bool);
	void (*mi_print)(mi_out_fn, void *);
	struct mallinfo2 (*mallinfo2)(void);
	int (*trim)(size_t);
	int (*info)(int, FILE *);
} al;

int alloc_sampling;	/* launch mode: hooks take samples (not glibc) */
static int launch;	/* launch mode: glibc's figures are not needed (the trace has
			   every block), and mallinfo2 at exit could take long */
static uint64_t next_sample_ns;

static void find_jemalloc(const void *in, int anywhere)
{
	for (int i = 0; i < MFX_JE_NPREFIX && !al.mallctl; i++) {
		char a[64], b[64];
		snprintf(a, sizeof(a), "%smallctl", mfx_je_prefixes[i]);
		snprintf(b, sizeof(b), "%smalloc_stats_print", mfx_je_prefixes[i]);
		if (!anywhere && i > 0)
			break;	/* in malloc's own module: the plain names */
		void *f = anywhere ? got_find_defined(a) : got_module_sym(in, a);
		if (!f)
			continue;
		*(void **)&al.mallctl = f;
		*(void **)&al.je_print = anywhere ? got_find_defined(b) : got_module_sym(in, b);
	}
}

void alloc_detect(void)
{
	if (al.detected)
		return;
	int busy = tls_busy;
	tls_busy = 1;
	void *m = got_find_defined("malloc");
	Dl_info di;
	if (m && dladdr(m, &di) && di.dli_fname)
		snprintf(al.module, sizeof(al.module), "%s", di.dli_fname);
	if (m)
		find_jemalloc(m, 0);
	if (al.mallctl) {
		al.kind = MFX_ALLOC_JEMALLOC;
	} else if (m && (*(void **)&al.tc_prop = got_module_sym(m, "MallocExtension_GetNumericProperty"))) {
		al.kind = MFX_ALLOC_TCMALLOC;
		*(void **)&al.tc_release = got_module_sym(m, "MallocExtension_ReleaseFreeMemory");
		*(void **)&al.tc_stats = got_module_sym(m, "MallocExtension_GetStats");
	} else if (m && (*(void **)&al.mi_info = got_module_sym(m, "mi_process_info"))) {
		al.kind = MFX_ALLOC_MIMALLOC;
		*(void **)&al.mi_collect = got_module_sym(m, "mi_collect");
		*(void **)&al.mi_print = got_module_sym(m, "mi_stats_print_out");
	} else if (m && got_module_sym(m, "__libc_malloc")) {
		al.kind = MFX_ALLOC_GLIBC;
		*(void **)&al.mallinfo2 = got_module_sym(m, "mallinfo2");
		*(void **)&al.trim = got_module_sym(m, "malloc_trim");
		*(void **)&al.info = got_module_sym(m, "malloc_info");
		find_jemalloc(m, 1);	/* je_malloc called directly? */
		if (al.mallctl) {
			al.kind = MFX_ALLOC_JEMALLOC;
			al.direct = 1;
		}
	}
	al.detected = 1;
	tls_busy = busy;
}

const char *alloc_name(void)
{
	alloc_detect();
	return mfx_allocator_names[al.kind];
}

int alloc_kind(void)
{
	alloc_detect();
	return al.kind;
}

/* jemalloc: one size_t statistic, refreshed by the last "epoch" write. */
static int je_get(const char *name, uint64_t *v)
{
	size_t x = 0, sz = sizeof(x);
	if (al.mallctl(name, &x, &sz, NULL, 0))
		return -1;
	*v = x;
	return 0;
}

int alloc_stats(uint64_t *v, uint32_t *valid)
{
	alloc_detect();
	int busy = tls_busy;
	tls_busy = 1;
	memset(v, 0, MFX_AF_NFIELDS * sizeof(*v));
	*valid = 0;
	if (al.kind == MFX_ALLOC_JEMALLOC) {
		uint64_t e = 1, pd, pm, page;
		size_t sz = sizeof(e);
		al.mallctl("epoch", &e, &sz, &e, sz);
		for (int i = 0; i < MFX_AF_NFIELDS; i++)
			if (mfx_je_stat[i] && je_get(mfx_je_stat[i], &v[i]) == 0)
				*valid |= 1u << i;
		if (!je_get(MFX_JE_PDIRTY, &pd) && !je_get(MFX_JE_PMUZZY, &pm) &&
		    !je_get("arenas.page", &page)) {
			v[MFX_AF_FREE] = (pd + pm) * page;
			*valid |= 1u << MFX_AF_FREE;
		}
	} else if (al.kind == MFX_ALLOC_TCMALLOC) {
		for (int i = 0; i < MFX_AF_NFIELDS; i++) {
			size_t x = 0;
			if (mfx_tc_prop[i] && al.tc_prop(mfx_tc_prop[i], &x)) {
				v[i] = x;
				*valid |= 1u << i;
			}
		}
	} else if (al.kind == MFX_ALLOC_MIMALLOC) {
		/* A release build keeps no count of bytes in use: only what it
		 * committed from the system (mi_process_info's current_commit). */
		size_t a[8] = { 0 };
		al.mi_info(&a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7]);
		v[MFX_AF_MAPPED] = a[5];
		*valid |= 1u << MFX_AF_MAPPED;
	} else if (al.kind == MFX_ALLOC_GLIBC && al.mallinfo2) {
		struct mallinfo2 mi = al.mallinfo2();
		v[MFX_AF_IN_USE] = mi.uordblks + mi.hblkhd;
		v[MFX_AF_MAPPED] = mi.arena + mi.hblkhd;
		v[MFX_AF_FREE] = mi.fordblks;
		*valid = 1u << MFX_AF_IN_USE | 1u << MFX_AF_MAPPED | 1u << MFX_AF_FREE;
	}
	tls_busy = busy;
	return *valid ? 0 : -ENOSYS;
}

/* One ALLOC mark (trace/format.h) with the figures of now. */
void alloc_mark(unsigned phase)
{
	uint64_t vals[2 + MFX_AF_NFIELDS];
	uint32_t valid = 0;
	if (al.kind != MFX_ALLOC_GLIBC || (phase != MFX_AP_SAMPLE && !launch))
		alloc_stats(vals + 2, &valid);
	else
		memset(vals + 2, 0, sizeof(vals) - 2 * sizeof(vals[0]));
	vals[0] = phase;
	vals[1] = valid;
	char text[320];
	snprintf(text, sizeof(text), "%s%s%s", alloc_name(),
		 phase == MFX_AP_SAMPLE ? "" : " ", phase == MFX_AP_SAMPLE ? "" : al.module);
	agent_mark(MFX_MARK_ALLOC, vals, 2 + MFX_AF_NFIELDS, text);
}

/* A sample if ALLOC_SAMPLE_NS went by since the last one: on the agent's
 * thread (attach), or from a hook (launch), whichever thread gets there
 * first. */
void alloc_tick(void)
{
	if (!al.detected || al.kind == MFX_ALLOC_GLIBC || al.kind == MFX_ALLOC_UNKNOWN)
		return;
	uint64_t now = agent_now_ns(), due = __atomic_load_n(&next_sample_ns, __ATOMIC_RELAXED);
	if (now < due || !__atomic_compare_exchange_n(&next_sample_ns, &due, now + ALLOC_SAMPLE_NS,
						     0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	int busy = tls_busy;
	tls_busy = 1;
	alloc_mark(MFX_AP_SAMPLE);
	tls_busy = busy;
}

/* Launch mode: the hooks take the samples (the agent has no thread). */
void alloc_launch_sampling(void)
{
	alloc_detect();
	launch = 1;
	alloc_sampling = al.kind != MFX_ALLOC_GLIBC && al.kind != MFX_ALLOC_UNKNOWN;
}

int alloc_release(int64_t *ret, const char **call)
{
	alloc_detect();
	int busy = tls_busy, err = 0;
	tls_busy = 1;
	*ret = 0;
	*call = mfx_release_call[al.kind];
	switch (al.kind) {
	case MFX_ALLOC_GLIBC:
		if (al.trim)
			*ret = al.trim(0);
		else
			err = -ENOSYS;
		break;
	case MFX_ALLOC_JEMALLOC:
		*ret = al.mallctl(MFX_JE_PURGE, NULL, NULL, NULL, 0);
		if (*ret) {
			*call = "mallctl(\"" MFX_JE_DECAY "\")";
			*ret = al.mallctl(MFX_JE_DECAY, NULL, NULL, NULL, 0);
		}
		err = *ret ? -(int)*ret : 0;
		break;
	case MFX_ALLOC_TCMALLOC:
		if (al.tc_release)
			al.tc_release();
		else
			err = -ENOSYS;
		break;
	case MFX_ALLOC_MIMALLOC:
		if (al.mi_collect)
			al.mi_collect(1);
		else
			err = -ENOSYS;
		break;
	default:
		err = -ENOSYS;
	}
	tls_busy = busy;
	return err;
}

/* jemalloc, per arena (INFO, for `mfx snapshot`): one line each,
 * "arena I THREADS ACTIVE DIRTY MUZZY RESIDENT" (bytes), from the
 * statistics the last "epoch" write refreshed.  Arenas never used answer
 * ENOENT and are left out. */
void alloc_arenas(FILE *f)
{
	alloc_detect();
	if (al.kind != MFX_ALLOC_JEMALLOC)
		return;
	int busy = tls_busy;
	tls_busy = 1;
	uint64_t e = 1, page = 4096;
	size_t sz = sizeof(e);
	unsigned narenas = 0;
	size_t usz = sizeof(narenas);
	al.mallctl("epoch", &e, &sz, &e, sz);
	al.mallctl("arenas.narenas", &narenas, &usz, NULL, 0);
	je_get("arenas.page", &page);
	for (unsigned i = 0; i < narenas && i < 4096; i++) {
		static const char *const what[] = { "pactive", "pdirty", "pmuzzy", "resident" };
		uint64_t v[4];
		unsigned th = 0;
		size_t tsz = sizeof(th);
		char name[64];
		snprintf(name, sizeof(name), "stats.arenas.%u.nthreads", i);
		if (al.mallctl(name, &th, &tsz, NULL, 0))
			continue;
		int ok = 1;
		for (int k = 0; k < 4 && ok; k++) {
			snprintf(name, sizeof(name), "stats.arenas.%u.%s", i, what[k]);
			ok = je_get(name, &v[k]) == 0;
		}
		if (!ok)
			continue;
		fprintf(f, "arena %u %u %llu %llu %llu %llu\n", i, th,
			(unsigned long long)(v[0] * page), (unsigned long long)(v[1] * page),
			(unsigned long long)(v[2] * page), (unsigned long long)v[3]);
	}
	tls_busy = busy;
}

static void je_write(void *f, const char *s)
{
	fputs(s, f);
}

static void mi_write(const char *s, void *f)
{
	fputs(s, f);
}

int alloc_print(FILE *f)
{
	alloc_detect();
	int busy = tls_busy, err = 0;
	tls_busy = 1;
	if (al.kind == MFX_ALLOC_GLIBC && al.info) {
		err = al.info(0, f) ? -EIO : 0;
	} else if (al.kind == MFX_ALLOC_JEMALLOC && al.je_print) {
		al.je_print(je_write, f, NULL);
	} else if (al.kind == MFX_ALLOC_TCMALLOC && al.tc_stats) {
		enum { TC_STATS = 1 << 17 };
		char *buf = agent_real.malloc ? agent_real.malloc(TC_STATS) : NULL;
		if (buf) {
			buf[0] = 0;
			al.tc_stats(buf, TC_STATS);
			fputs(buf, f);
			agent_real.free(buf);
		} else {
			err = -ENOMEM;
		}
	} else if (al.kind == MFX_ALLOC_MIMALLOC && al.mi_print) {
		al.mi_print(mi_write, f);
	} else {
		err = -ENOSYS;
	}
	tls_busy = busy;
	return err;
}

const char *alloc_module(void)
{
	alloc_detect();
	return al.module;
}

int alloc_direct(void)
{
	alloc_detect();
	return al.direct;
}
