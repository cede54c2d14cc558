/*
 * alloc_remote.c - the allocator of a process seen from outside, without
 * the agent (alloc_remote.h).
 *
 * Which allocator serves malloc: the loader binds the program's malloc to
 * the first module of its global scope, in load order, that defines it.
 * That order is the loader's own list, r_debug.r_map (<link.h>), reached
 * from the program's DT_DEBUG entry, which ld.so fills in at start: the
 * program's headers are at AT_PHDR (/proc/PID/auxv), its dynamic section
 * at PT_DYNAMIC, all read with process_vm_readv; nothing stops.  Each
 * module's ELF file (through /proc/PID/root) then says whether it defines
 * malloc, and with which allocator's own symbols (include/mfx/allocators.h).
 * The agent, when LD_PRELOADed by `mfx launch`, comes first and is passed
 * over.  If the list cannot be read, a known allocator library that is
 * mapped and defines malloc is taken, else glibc.
 *
 * The release and the figures are remote calls in a thread held at a safe
 * point (inject/): string arguments and output words go on the scratch
 * stack (inject_push) and are read back with inject_peek.  mimalloc's
 * mi_process_info takes 8 arguments, more than a remote call passes in
 * registers: through ptrace, mimalloc gives no figures.
 */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attach/alloc_remote.h"
#include "mfx/control.h"
#include "common/util.h"
#include "inject/inject.h"

#define MAX_MODULES 2048

/* The symbols looked up in each module, in one pass over its ELF file. */
enum { S_MALLOC, S_MALLCTL, S_JE_MALLCTL, S_RJEM_MALLCTL, S_TC_PROP, S_TC_RELEASE, S_MI_INFO,
       S_MI_COLLECT, S_LIBC_MALLOC, S_TRIM, S_MALLINFO2, S_N };
static const char *const sym_names[S_N + 1] = {
	"malloc", "mallctl", "je_mallctl", "_rjem_mallctl", "MallocExtension_GetNumericProperty",
	"MallocExtension_ReleaseFreeMemory", "mi_process_info", "mi_collect", "__libc_malloc",
	"malloc_trim", "mallinfo2", NULL,
};

static void file_of(pid_t pid, const char *name, char *out, size_t n)
{
	if (!*name) {
		snprintf(out, n, "/proc/%d/exe", (int)pid);
		return;
	}
	snprintf(out, n, "/proc/%d/root%s", (int)pid, name);
	if (access(out, R_OK))
		snprintf(out, n, "%s", name);
}

static int is_agent(const char *name)
{
	const char *b = strrchr(name, '/');
	b = b ? b + 1 : name;
	return !strcmp(b, "libmfx.so") || strstr(name, "memfd:libmfx") ||
	       !strncmp(name, MFX_AGENT_DLNAME, strlen(MFX_AGENT_DLNAME)) ||
	       !strncmp(name, "/proc/self/fd/", 14);	/* an agent of an older mfx */
}

/* Name it from the module's own symbols; addresses from its load bias. */
static int classify(struct alloc_remote *a, const uint64_t *v, uint64_t bias)
{
	uint64_t mallctl = v[S_MALLCTL] ? v[S_MALLCTL] : v[S_JE_MALLCTL] ? v[S_JE_MALLCTL] :
			   v[S_RJEM_MALLCTL];
	if (mallctl) {
		a->kind = MFX_ALLOC_JEMALLOC;
		a->fn[AR_MALLCTL] = bias + mallctl;
	} else if (v[S_TC_PROP]) {
		a->kind = MFX_ALLOC_TCMALLOC;
		a->fn[AR_TC_PROP] = bias + v[S_TC_PROP];
		a->fn[AR_TC_RELEASE] = v[S_TC_RELEASE] ? bias + v[S_TC_RELEASE] : 0;
	} else if (v[S_MI_INFO]) {
		a->kind = MFX_ALLOC_MIMALLOC;
		a->fn[AR_MI_COLLECT] = v[S_MI_COLLECT] ? bias + v[S_MI_COLLECT] : 0;
	} else if (v[S_LIBC_MALLOC]) {
		a->kind = MFX_ALLOC_GLIBC;
		a->fn[AR_TRIM] = v[S_TRIM] ? bias + v[S_TRIM] : 0;
		a->fn[AR_MALLINFO2] = v[S_MALLINFO2] ? bias + v[S_MALLINFO2] : 0;
	} else {
		a->kind = MFX_ALLOC_UNKNOWN;
	}
	return a->kind;
}

/* One module of the list: does it define malloc?  1 if it is the one. */
static int try_module(pid_t pid, const char *name, uint64_t bias, struct alloc_remote *a)
{
	char file[4200];
	uint64_t v[S_N];
	if (is_agent(name) || !strncmp(name, "linux-vdso", 10) || !strncmp(name, "linux-gate", 10))
		return 0;
	file_of(pid, name, file, sizeof(file));
	if (*name) {
		snprintf(a->module, sizeof(a->module), "%s", name);
	} else {
		ssize_t n = readlink(file, a->module, sizeof(a->module) - 1);
		a->module[n > 0 ? n : 0] = 0;
	}
	/* the exported symbols from the target's memory first (a file at the
	 * module's path may be anything: inject/elfmem.c); the file only for
	 * what is not exported (a static jemalloc's .symtab) */
	if (a->module[0] && inject_syms(pid, a->module, sym_names, v) > 0 && v[S_MALLOC])
		bias = 0;
	else if (inject_elf_syms(file, sym_names, v, NULL) == 0 || !v[S_MALLOC])
		return a->module[0] = 0;
	classify(a, v, bias);
	if (a->module[0])
		inject_module_text(pid, a->module, &a->text_lo, &a->text_hi);
	return 1;
}

/* The program's r_debug, from its DT_DEBUG entry; 0 if not found. */
static uint64_t r_debug_of(pid_t pid)
{
	char path[64], *aux;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	if (read_file(path, &aux, &len))
		return 0;
	uint64_t phdr = 0, phnum = 0, dyn = 0, rd = 0;
	for (size_t i = 0; i + 16 <= len; i += 16) {
		uint64_t k, val;
		memcpy(&k, aux + i, 8);
		memcpy(&val, aux + i + 8, 8);
		if (k == AT_PHDR)
			phdr = val;
		else if (k == AT_PHNUM)
			phnum = val;
	}
	free(aux);
	Elf64_Phdr ph[64];
	if (!phdr || !phnum || phnum > 64 || inject_peek(pid, phdr, ph, phnum * sizeof(ph[0])))
		return 0;
	uint64_t bias = 0, dsz = 0;
	for (uint64_t i = 0; i < phnum; i++)
		if (ph[i].p_type == PT_PHDR)
			bias = phdr - ph[i].p_vaddr;
	for (uint64_t i = 0; i < phnum; i++)
		if (ph[i].p_type == PT_DYNAMIC) {
			dyn = bias + ph[i].p_vaddr;
			dsz = ph[i].p_memsz;
		}
	Elf64_Dyn d[256];
	if (!dyn || !dsz || dsz > sizeof(d) || inject_peek(pid, dyn, d, dsz))
		return 0;
	for (size_t i = 0; i < dsz / sizeof(d[0]) && d[i].d_tag != DT_NULL; i++)
		if (d[i].d_tag == DT_DEBUG)
			rd = d[i].d_un.d_ptr;
	return rd;
}

/* Walk r_debug.r_map in order until a module defines malloc. */
static int walk_link_map(pid_t pid, struct alloc_remote *a)
{
	uint64_t rd = r_debug_of(pid), lm, w[5];
	if (!rd || inject_peek(pid, rd + 8, &lm, 8))
		return -ENOENT;
	for (int n = 0; lm && n < MAX_MODULES; n++, lm = w[3]) {
		char name[4096];
		/* struct link_map: l_addr, l_name, l_ld, l_next, l_prev */
		if (inject_peek(pid, lm, w, sizeof(w)))
			return -EFAULT;
		name[0] = 0;
		for (size_t off = 0; w[1] && off < sizeof(name) - 1; off += 64) {
			size_t k = sizeof(name) - 1 - off < 64 ? sizeof(name) - 1 - off : 64;
			if (inject_peek(pid, w[1] + off, name + off, k))
				break;	/* a read across the end of its mapping */
			name[off + k] = 0;
			if (memchr(name + off, 0, k))
				break;
		}
		name[sizeof(name) - 1] = 0;
		if (try_module(pid, name, w[0], a))
			return 0;
	}
	return -ENOENT;
}

int alloc_remote_detect(pid_t pid, struct alloc_remote *a)
{
	memset(a, 0, sizeof(*a));
	if (walk_link_map(pid, a) == 0)
		return 0;
	/* No list: an allocator library mapped that defines malloc, else glibc. */
	static const char *const libs[] = { "/libjemalloc.so.2", "/libtcmalloc_minimal.so.4",
					    "/libtcmalloc.so.4", "/libmimalloc.so.2", "/libc.so.6" };
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		char path[4096];
		uint64_t base;
		if (inject_module_base(pid, libs[i], path, sizeof(path), &base) == 0 &&
		    try_module(pid, path, base, a))
			return 0;
	}
	return -ENOENT;
}

/* ---- figures and release, in the held thread --------------------------------- */

/* fn(name, &out, &len, NULL, 0) for jemalloc's mallctl, or fn(name, &out)
 * for tcmalloc's GetNumericProperty: the size_t at out. */
static int remote_get(struct inject *ij, uint64_t fn, int je, const char *name, uint64_t *v)
{
	uint64_t zero[2] = { 0, 8 }, a_name, a_out, ret = 0;
	int err = inject_push(ij, name, strlen(name) + 1, &a_name);
	if (!err)
		err = inject_push(ij, zero, sizeof(zero), &a_out);	/* out, then its length */
	uint64_t args[5] = { a_name, a_out, a_out + 8, 0, 0 };
	if (!err)
		err = inject_call(ij, fn, args, je ? 5 : 2, &ret);
	if (!err && (je ? (int)ret != 0 : (ret & 0xff) == 0))
		err = -ENOENT;
	if (!err)
		err = inject_peek(inject_pid(ij), a_out, v, 8);
	return err;
}

static void figures_je(struct inject *ij, uint64_t fn, struct alloc_figs *f)
{
	uint64_t e[2] = { 1, 8 }, a_e, a_name, ret, pd, pm, page;
	/* epoch first: jemalloc refreshes its statistics only then */
	if (inject_push(ij, "epoch", 6, &a_name) || inject_push(ij, e, sizeof(e), &a_e))
		return;
	uint64_t args[5] = { a_name, a_e, a_e + 8, a_e, 8 };
	if (inject_call(ij, fn, args, 5, &ret))
		return;
	for (int i = 0; i < MFX_AF_NFIELDS; i++)
		if (mfx_je_stat[i] && remote_get(ij, fn, 1, mfx_je_stat[i], &f->v[i]) == 0)
			f->valid |= 1u << i;
	if (!remote_get(ij, fn, 1, MFX_JE_PDIRTY, &pd) && !remote_get(ij, fn, 1, MFX_JE_PMUZZY, &pm) &&
	    !remote_get(ij, fn, 1, "arenas.page", &page)) {
		f->v[MFX_AF_FREE] = (pd + pm) * page;
		f->valid |= 1u << MFX_AF_FREE;
	}
}

/* glibc: mallinfo2() returns its 10 words through a hidden pointer (rdi). */
static void figures_glibc(struct inject *ij, uint64_t fn, struct alloc_figs *f)
{
	uint64_t mi[10] = { 0 }, a_mi, ret;
	if (inject_push(ij, mi, sizeof(mi), &a_mi))
		return;
	uint64_t args[1] = { a_mi };
	if (inject_call(ij, fn, args, 1, &ret) || inject_peek(inject_pid(ij), a_mi, mi, sizeof(mi)))
		return;
	/* arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost */
	f->v[MFX_AF_IN_USE] = mi[7] + mi[4];
	f->v[MFX_AF_MAPPED] = mi[0] + mi[4];
	f->v[MFX_AF_FREE] = mi[8];
	f->valid = 1u << MFX_AF_IN_USE | 1u << MFX_AF_MAPPED | 1u << MFX_AF_FREE;
}

static void figures(struct inject *ij, const struct alloc_remote *a, struct alloc_figs *f)
{
	memset(f, 0, sizeof(*f));
	if (a->kind == MFX_ALLOC_JEMALLOC) {
		figures_je(ij, a->fn[AR_MALLCTL], f);
	} else if (a->kind == MFX_ALLOC_TCMALLOC) {
		for (int i = 0; i < MFX_AF_NFIELDS; i++)
			if (mfx_tc_prop[i] && remote_get(ij, a->fn[AR_TC_PROP], 0, mfx_tc_prop[i], &f->v[i]) == 0)
				f->valid |= 1u << i;
	} else if (a->kind == MFX_ALLOC_GLIBC && a->fn[AR_MALLINFO2]) {
		figures_glibc(ij, a->fn[AR_MALLINFO2], f);
	}
}

/* The release call itself: 0 or -errno; *ret its return. */
static int release(struct inject *ij, const struct alloc_remote *a, int64_t *ret, const char **call)
{
	uint64_t r = 0, args[5] = { 0, 0, 0, 0, 0 }, a_name;
	int err;
	*call = mfx_release_call[a->kind];
	switch (a->kind) {
	case MFX_ALLOC_GLIBC:
		if (!a->fn[AR_TRIM])
			return -MFX_E_NOSYM;
		err = inject_call(ij, a->fn[AR_TRIM], args, 1, &r);
		*ret = (int)(uint32_t)r;
		return err;
	case MFX_ALLOC_JEMALLOC:
		if ((err = inject_push(ij, MFX_JE_PURGE, sizeof(MFX_JE_PURGE), &a_name)))
			return err;
		args[0] = a_name;
		if ((err = inject_call(ij, a->fn[AR_MALLCTL], args, 5, &r)) || (int)r == 0) {
			*ret = (int)r;
			return err;
		}
		*call = "mallctl(\"" MFX_JE_DECAY "\")";	/* where purge is not there */
		if ((err = inject_push(ij, MFX_JE_DECAY, sizeof(MFX_JE_DECAY), &a_name)))
			return err;
		args[0] = a_name;
		err = inject_call(ij, a->fn[AR_MALLCTL], args, 5, &r);
		*ret = (int)r;
		return err ? err : *ret ? -(int)*ret : 0;
	case MFX_ALLOC_TCMALLOC:
		if (!a->fn[AR_TC_RELEASE])
			return -MFX_E_NOSYM;
		return inject_call(ij, a->fn[AR_TC_RELEASE], args, 0, &r);
	case MFX_ALLOC_MIMALLOC:
		if (!a->fn[AR_MI_COLLECT])
			return -MFX_E_NOSYM;
		args[0] = 1;	/* force */
		return inject_call(ij, a->fn[AR_MI_COLLECT], args, 1, &r);
	}
	return -MFX_E_NOSYM;
}

int alloc_remote_release(struct inject *ij, const struct alloc_remote *a, struct alloc_figs *before,
			 struct alloc_figs *after, int64_t *ret, const char **call,
			 uint64_t *release_ns)
{
	*ret = 0;
	figures(ij, a, before);
	uint64_t t0 = now_ns();
	int err = release(ij, a, ret, call);
	*release_ns = now_ns() - t0;
	if (!err)
		figures(ij, a, after);
	else
		memset(after, 0, sizeof(*after));
	return err;
}

int alloc_remote_hold_opts(pid_t pid, struct inject_opts *o, struct alloc_remote *a)
{
	struct alloc_remote own;
	if (!a)
		a = &own;
	int err = alloc_remote_detect(pid, a);
	/* glibc's malloc code is avoided already (inject/glibc.c); another
	 * allocator's library is avoided whole: its locks and thread caches
	 * are all in it. */
	if (a->kind != MFX_ALLOC_GLIBC && a->kind != MFX_ALLOC_UNKNOWN && a->text_hi) {
		o->avoid_lo = a->text_lo;
		o->avoid_hi = a->text_hi;
	}
	return err;
}
