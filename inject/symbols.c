/*
 * symbols.c - where things are in the target: its modules from
 * /proc/PID/maps, and exported symbols from the ELF files it mapped (read
 * through /proc/PID/root, so a target in a container is looked up in its own
 * file system).  Never from our own process: the target's libc may be another
 * build than ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/elffile.h"
#include "common/error.h"
#include "common/procfs.h"
#include "inject/inject.h"

int inject_find_module(pid_t pid, const char *suffix, struct inject_module *m)
{
	struct maps_iter it;
	struct maps_entry e;
	int err = procfs_maps_open(pid, &it);
	if (err)
		return err;
	memset(m, 0, sizeof(*m));
	size_t sl = strlen(suffix);
	int found = 0;
	while (procfs_maps_next(&it, &e) > 0) {
		uint64_t lo = e.lo, hi = e.hi, off = e.offset;
		const char *p = e.path, *perms = e.perms;
		size_t pl = strlen(p);
		if (pl < sl || strcmp(p + pl - sl, suffix) || p[0] != '/')
			continue;
		if (found && strcmp(p, m->path))
			continue;	/* another file with the same suffix */
		if (!found) {
			snprintf(m->path, sizeof(m->path), "%.4000s", p);
			m->lo = lo;
			found = 1;
		}
		if (off == 0 && (!m->base || lo < m->base))
			m->base = lo;	/* ET_DYN: first segment at vaddr 0 */
		if (hi > m->hi)
			m->hi = hi;
		if (perms[2] == 'x' && !m->text_lo) {
			m->text_lo = lo;
			m->text_hi = hi;
		}
	}
	procfs_maps_close(&it);
	return found ? 0 : -ENOENT;
}

int inject_elf_syms(const char *path, const char *const *names, uint64_t *vals, uint64_t *sizes)
{
	size_t want = 0, found = 0;
	while (names[want])
		vals[want++] = 0;
	struct elf_file ef;
	if (elf_file_open(path, &ef))
		return 0;
	Elf *e = ef.e;
	/* .dynsym first: what the loader resolves; .symtab if there is one. */
	for (int pass = 0; pass < 2 && found < want; pass++) {
		Elf_Scn *scn = NULL;
		GElf_Shdr sh;
		while (found < want &&
		       (scn = elf_file_section(&ef, scn, pass ? SHT_SYMTAB : SHT_DYNSYM, NULL, &sh))) {
			if (!sh.sh_entsize)
				continue;
			Elf_Data *d = elf_getdata(scn, NULL);
			size_t n = d ? sh.sh_size / sh.sh_entsize : 0;
			for (size_t i = 0; i < n && found < want; i++) {
				GElf_Sym s;
				/* no IFUNCs: calling one runs its resolver */
				if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF ||
				    !s.st_value || (GELF_ST_TYPE(s.st_info) != STT_FUNC &&
						    GELF_ST_TYPE(s.st_info) != STT_OBJECT))
					continue;
				const char *nm = elf_strptr(e, sh.sh_link, s.st_name);
				for (size_t k = 0; nm && k < want; k++)
					if (!vals[k] && !strcmp(nm, names[k])) {
						vals[k] = s.st_value;
						if (sizes)
							sizes[k] = s.st_size;
						found++;
					}
			}
		}
	}
	elf_file_close(&ef);
	return (int)found;
}

static void root_path(pid_t pid, const char *p, char *out, size_t n)
{
	snprintf(out, n, "/proc/%d/root%s", (int)pid, p);
	if (access(out, R_OK))
		snprintf(out, n, "%s", p);
}

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
	"dlopen", "dlsym", "dlerror", "memfd_create", "socketpair", "close", "malloc_trim",
	"__errno_location", "pthread_create", "pause",
};

/* They take the thread-stack lock that pthread_create needs (the set*id
 * calls hold it while every thread runs their SIGSETXID handler). */
static const char *const busy_names[] = {
	"pthread_create", "pthread_detach", "pthread_join", "pthread_timedjoin_np",
	"pthread_clockjoin_np", "pthread_tryjoin_np", "pthread_exit", "setuid", "setgid",
	"seteuid", "setegid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
};
#define NBUSY (sizeof(busy_names) / sizeof(busy_names[0]))

/* glibc's signal return trampoline, __restore_rt (not exported): its code,
 * `mov $15,%rax; syscall`, in libc's executable segment.  A word on a
 * stack equal to it marks a signal frame. */
static uint64_t find_restore_rt(const char *file, uint64_t base)
{
	static const uint8_t code[] = { 0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05 };
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t at = 0;
	Elf *e = elf_begin(fd, ELF_C_READ, NULL);
	size_t nph = 0;
	if (e && elf_getphdrnum(e, &nph) == 0)
		for (size_t i = 0; i < nph && !at; i++) {
			GElf_Phdr ph;
			if (!gelf_getphdr(e, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X) ||
			    ph.p_filesz > (64u << 20))
				continue;
			uint8_t *buf = malloc(ph.p_filesz);
			if (buf && pread(fd, buf, ph.p_filesz, (off_t)ph.p_offset) == (ssize_t)ph.p_filesz) {
				uint8_t *hit = memmem(buf, ph.p_filesz, code, sizeof(code));
				if (hit)
					at = base + ph.p_vaddr + (uint64_t)(hit - buf);
			}
			free(buf);
		}
	if (e)
		elf_end(e);
	close(fd);
	return at;
}

int inject_load_libc(pid_t pid, struct inject_libc *lc)
{
	memset(lc, 0, sizeof(*lc));
	if (inject_find_module(pid, "/libc.so.6", &lc->libc))
		return -MFX_E_NOGLIBC;
	lc->have_ld = inject_find_module(pid, "/ld-linux-x86-64.so.2", &lc->ld) == 0;
	char file[4200];
	root_path(pid, lc->libc.path, file, sizeof(file));
	/* one pass over libc's symbols, before any thread is held */
	enum { NB = NMALLOC + INJ_NFN, TID = NB + NBUSY, NALL = TID + 1 };
	const char *names[NALL + 1];
	uint64_t vals[NALL], sizes[NALL];
	memset(sizes, 0, sizeof(sizes));
	for (size_t i = 0; i < NMALLOC; i++)
		names[i] = malloc_names[i];
	for (size_t i = 0; i < INJ_NFN; i++)
		names[NMALLOC + i] = fn_names[i];
	for (size_t i = 0; i < NBUSY; i++)
		names[NB + i] = busy_names[i];
	names[TID] = "_thread_db_pthread_tid";	/* { bits, count, offset } */
	names[NALL] = NULL;
	inject_elf_syms(file, names, vals, sizes);
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < NMALLOC; i++) {
		if (!vals[i])
			continue;
		if (vals[i] < lo)
			lo = vals[i];
		if (vals[i] + sizes[i] > hi)
			hi = vals[i] + sizes[i];
	}
	if (!hi)
		return -MFX_E_NOSYM;
	lc->malloc_lo = lc->libc.base + lo;
	lc->malloc_hi = lc->libc.base + hi;
	for (size_t i = 0; i < INJ_NFN; i++)
		lc->fn[i] = vals[NMALLOC + i] ? lc->libc.base + vals[NMALLOC + i] : 0;
	for (size_t i = 0; i < NBUSY && lc->nbusy < INJ_MAX_BUSY; i++)
		if (vals[NB + i] && sizes[NB + i])
			lc->busy[lc->nbusy++] = (struct inject_range){
				lc->libc.base + vals[NB + i], lc->libc.base + vals[NB + i] + sizes[NB + i]
			};
	uint32_t td[3];
	if (vals[TID] && inject_peek(pid, lc->libc.base + vals[TID], td, sizeof(td)) == 0 &&
	    td[0] == 32 && td[1] == 1 && td[2] >= 64 && td[2] < 4096)
		lc->tid_off = td[2];
	lc->restore_rt = find_restore_rt(file, lc->libc.base);
	return 0;
}
