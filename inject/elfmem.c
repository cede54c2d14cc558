/*
 * elfmem.c - where things are in the target, read only from what the
 * kernel says is mapped: its modules from /proc/PID/maps, and their
 * exported symbols from the ELF dynamic section *in the target's memory*
 * (process_vm_readv), never from a file opened by path.
 *
 * Why not the file: the path in /proc/PID/maps is the target's view, and
 * in the target's own mount namespace a user can put anything there - a
 * FIFO bind-mounted over libc.so.6 makes open() block forever (root's mfx
 * hung in open("/proc/PID/root/.../libc.so.6")), another ELF feeds mfx any
 * symbol offsets.  The dynamic symbol table the loader itself uses is in
 * memory; every read is bounded, every pointer checked to lie inside the
 * module, and a function's address must lie in one of the module's own
 * executable mappings before mfx calls it.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/elffile.h"
#include "common/error.h"
#include "common/procfs.h"
#include "inject/internal.h"

#define MAX_PHDRS 64
#define MAX_DYN 512
#define MAX_TABLE (32u << 20)		/* symbol or string table, at most */

static void module_add_map(struct inject_module *m, const struct maps_entry *e)
{
	if (!m->lo) {
		snprintf(m->path, sizeof(m->path), "%.4000s", e->path);
		m->lo = e->lo;
		m->dev_major = e->dev_major;
		m->dev_minor = e->dev_minor;
		m->inode = e->inode;
	}
	if (e->offset == 0 && (!m->base || e->lo < m->base))
		m->base = e->lo;	/* the first segment: file offset 0 */
	if (e->hi > m->hi)
		m->hi = e->hi;
	if (e->perms[2] == 'x' && m->ntext < INJ_MAX_TEXT) {
		m->text[m->ntext].lo = e->lo;
		m->text[m->ntext++].hi = e->hi;
	}
}

int inject_find_modules(pid_t pid, const char *suffix, struct inject_module *m, int max)
{
	struct maps_iter it;
	struct maps_entry e;
	int err = procfs_maps_open(pid, &it), n = 0;
	if (err)
		return err;
	size_t sl = strlen(suffix);
	memset(m, 0, sizeof(*m) * (size_t)max);
	while (procfs_maps_next(&it, &e) > 0) {
		size_t pl = strlen(e.path);
		if (pl < sl || strcmp(e.path + pl - sl, suffix) || e.path[0] != '/' || !e.inode)
			continue;
		int k;	/* the same file (device and inode) is one module */
		for (k = 0; k < n; k++)
			if (m[k].inode == e.inode && m[k].dev_major == e.dev_major &&
			    m[k].dev_minor == e.dev_minor && e.lo >= m[k].lo && e.lo - m[k].hi < (1ull << 32))
				break;
		if (k == n) {
			if (n == max)
				continue;
			n++;
		}
		module_add_map(&m[k], &e);
	}
	procfs_maps_close(&it);
	return n ? n : -ENOENT;
}

int inject_find_module(pid_t pid, const char *suffix, struct inject_module *m)
{
	int n = inject_find_modules(pid, suffix, m, 1);
	return n < 0 ? n : 0;
}

int inject_in_text(const struct inject_module *m, uint64_t a)
{
	for (int i = 0; i < m->ntext; i++)
		if (a >= m->text[i].lo && a < m->text[i].hi)
			return 1;
	return 0;
}

/* The dynamic section's tables, as addresses in the target. */
struct dyn_tables {
	uint64_t bias, symtab, strtab, strsz, hash, gnu_hash, versym, verdef, verdefnum;
};

static int in_module(const struct inject_module *m, uint64_t a, uint64_t len)
{
	return a >= m->lo && len <= m->hi - m->lo && a - m->lo <= m->hi - m->lo - len;
}

/* ld.so rewrites most d_ptr values in place to absolute addresses
 * (glibc's ADJUST_DYN_INFO), some stay file-relative: take either. */
static uint64_t dyn_addr(const struct inject_module *m, uint64_t bias, uint64_t v)
{
	return v >= m->lo && v < m->hi ? v : bias + v;
}

static int read_dynamic(pid_t pid, const struct inject_module *m, struct dyn_tables *t)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[MAX_PHDRS];
	memset(t, 0, sizeof(*t));
	int err = m->base ? inject_peek(pid, m->base, &eh, sizeof(eh)) : -EFAULT;
	if (err == -EPERM || err == -ESRCH)
		return err;
	if (err ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || !eh.e_phnum || eh.e_phnum > MAX_PHDRS ||
	    inject_peek(pid, m->base + eh.e_phoff, ph, eh.e_phnum * sizeof(Elf64_Phdr)))
		return -MFX_E_NOSYM;
	uint64_t dyn = 0, dynsz = 0, first = UINT64_MAX;
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first)
			first = ph[i].p_vaddr & ~0xfffull;
		if (ph[i].p_type == PT_DYNAMIC) {
			dyn = ph[i].p_vaddr;
			dynsz = ph[i].p_memsz;
		}
	}
	if (first == UINT64_MAX || !dyn || !dynsz)
		return -MFX_E_NOSYM;
	t->bias = m->base - first;
	Elf64_Dyn d[MAX_DYN];
	size_t nd = dynsz / sizeof(Elf64_Dyn) < MAX_DYN ? dynsz / sizeof(Elf64_Dyn) : MAX_DYN;
	if (!in_module(m, t->bias + dyn, nd * sizeof(Elf64_Dyn)) ||
	    inject_peek(pid, t->bias + dyn, d, nd * sizeof(Elf64_Dyn)))
		return -MFX_E_NOSYM;
	for (size_t i = 0; i < nd && d[i].d_tag != DT_NULL; i++) {
		uint64_t v = d[i].d_un.d_val;
		switch (d[i].d_tag) {
		case DT_SYMTAB: t->symtab = dyn_addr(m, t->bias, v); break;
		case DT_STRTAB: t->strtab = dyn_addr(m, t->bias, v); break;
		case DT_STRSZ: t->strsz = v; break;
		case DT_HASH: t->hash = dyn_addr(m, t->bias, v); break;
		case DT_GNU_HASH: t->gnu_hash = dyn_addr(m, t->bias, v); break;
		case DT_VERSYM: t->versym = dyn_addr(m, t->bias, v); break;
		case DT_VERDEF: t->verdef = dyn_addr(m, t->bias, v); break;
		case DT_VERDEFNUM: t->verdefnum = v; break;
		}
	}
	if (!t->symtab || !t->strtab || !t->strsz || t->strsz > MAX_TABLE ||
	    !in_module(m, t->strtab, t->strsz))
		return -MFX_E_NOSYM;
	return 0;
}

/* How many symbols: DT_HASH's nchain, or the end of the GNU hash chains. */
static int count_symbols(pid_t pid, const struct inject_module *m, const struct dyn_tables *t,
			 uint32_t *n)
{
	uint32_t h[4];
	if (t->hash)
		return in_module(m, t->hash, 8) && !inject_peek(pid, t->hash, h, 8) ? (*n = h[1], 0) :
										  -MFX_E_NOSYM;
	if (!t->gnu_hash || !in_module(m, t->gnu_hash, 16) || inject_peek(pid, t->gnu_hash, h, 16) ||
	    !h[0] || h[0] > (1u << 20) || h[2] > (1u << 20))
		return -MFX_E_NOSYM;
	uint64_t buckets = t->gnu_hash + 16 + (uint64_t)h[2] * 8, chains = buckets + (uint64_t)h[0] * 4;
	uint32_t *b = malloc((size_t)h[0] * 4), top = 0;
	if (!b)
		return -ENOMEM;
	int err = in_module(m, buckets, (uint64_t)h[0] * 4) && !inject_peek(pid, buckets, b, (size_t)h[0] * 4) ?
			  0 : -MFX_E_NOSYM;
	for (uint32_t i = 0; !err && i < h[0]; i++)
		if (b[i] > top)
			top = b[i];
	free(b);
	if (err || top < h[1]) {
		*n = h[1];
		return err;
	}
	for (uint32_t c = 0, guard = 0; guard < (1u << 20); guard++, top++) {	/* the last chain */
		if (!in_module(m, chains + (uint64_t)(top - h[1]) * 4, 4) ||
		    inject_peek(pid, chains + (uint64_t)(top - h[1]) * 4, &c, 4))
			return -MFX_E_NOSYM;
		if (c & 1)
			break;
	}
	*n = top + 1;
	return 0;
}

struct dynsyms {
	struct dyn_tables t;
	Elf64_Sym *sym;
	uint16_t *versym;
	char *str;
	uint32_t n;
};

static void dynsyms_free(struct dynsyms *d)
{
	free(d->sym);
	free(d->versym);
	free(d->str);
}

static int dynsyms_read(pid_t pid, const struct inject_module *m, struct dynsyms *d)
{
	memset(d, 0, sizeof(*d));
	int err = read_dynamic(pid, m, &d->t);
	if (!err)
		err = count_symbols(pid, m, &d->t, &d->n);
	if (err)
		return err;
	size_t ssz = (size_t)d->n * sizeof(Elf64_Sym);
	if (!d->n || ssz > MAX_TABLE || !in_module(m, d->t.symtab, ssz))
		return -MFX_E_NOSYM;
	d->sym = malloc(ssz);
	d->str = malloc(d->t.strsz + 1);
	d->versym = d->t.versym && in_module(m, d->t.versym, (uint64_t)d->n * 2) ? malloc((size_t)d->n * 2) : NULL;
	if (!d->sym || !d->str)
		err = -ENOMEM;
	else if (inject_peek(pid, d->t.symtab, d->sym, ssz) ||
		 inject_peek(pid, d->t.strtab, d->str, d->t.strsz))
		err = -MFX_E_NOSYM;
	if (!err && d->versym && inject_peek(pid, d->t.versym, d->versym, (size_t)d->n * 2)) {
		free(d->versym);
		d->versym = NULL;
	}
	if (err) {
		dynsyms_free(d);
		return err;
	}
	d->str[d->t.strsz] = 0;
	return 0;
}

/* Is symbol i a usable definition: a function in the module's code, or a
 * data object inside it (never an IFUNC: calling one runs its resolver)? */
static int sym_ok(const struct inject_module *m, const struct dynsyms *d, uint32_t i, uint64_t *addr)
{
	const Elf64_Sym *s = &d->sym[i];
	int type = ELF64_ST_TYPE(s->st_info);
	if (s->st_shndx == SHN_UNDEF || !s->st_value || s->st_name >= d->t.strsz ||
	    (type != STT_FUNC && type != STT_OBJECT))
		return 0;
	*addr = d->t.bias + s->st_value;
	return type == STT_FUNC ? inject_in_text(m, *addr) : in_module(m, *addr, s->st_size ? s->st_size : 1);
}

int inject_module_syms(pid_t pid, const struct inject_module *m, const char *const *names,
		       uint64_t *vals, uint64_t *sizes)
{
	size_t want = 0;
	int found = 0;
	while (names[want]) {
		vals[want] = 0;
		if (sizes)
			sizes[want] = 0;
		want++;
	}
	struct dynsyms d;
	int err = dynsyms_read(pid, m, &d);
	if (err)
		return err;
	for (uint32_t i = 1; i < d.n; i++) {
		uint64_t a;
		if (!sym_ok(m, &d, i, &a))
			continue;
		const char *nm = d.str + d.sym[i].st_name;
		int hidden = d.versym && (d.versym[i] & 0x8000);	/* a non-default version */
		for (size_t k = 0; k < want; k++)
			if (!strcmp(nm, names[k]) && (!vals[k] || !hidden)) {
				found += !vals[k];
				vals[k] = a;
				if (sizes)
					sizes[k] = d.sym[i].st_size;
			}
	}
	dynsyms_free(&d);
	return found;
}

int inject_module_version(pid_t pid, const struct inject_module *m, const char *prefix, int *best)
{
	struct dyn_tables t;
	int err = read_dynamic(pid, m, &t);
	*best = 0;
	if (err || !t.verdef)
		return err ? err : -ENOENT;
	size_t pl = strlen(prefix);
	uint64_t at = t.verdef;
	for (uint64_t i = 0; i < t.verdefnum && i < 256; i++) {
		Elf64_Verdef vd;
		Elf64_Verdaux va;
		char name[32];
		if (!in_module(m, at, sizeof(vd)) || inject_peek(pid, at, &vd, sizeof(vd)) ||
		    !in_module(m, at + vd.vd_aux, sizeof(va)) || inject_peek(pid, at + vd.vd_aux, &va, sizeof(va)) ||
		    va.vda_name >= t.strsz || inject_peek(pid, t.strtab + va.vda_name, name, sizeof(name)))
			break;
		name[sizeof(name) - 1] = 0;
		int major, minor;
		if (!strncmp(name, prefix, pl) && sscanf(name + pl, "%d.%d", &major, &minor) == 2 &&
		    major * 100 + minor > *best)
			*best = major * 100 + minor;
		if (!vd.vd_next)
			break;
		at += vd.vd_next;
	}
	return *best ? 0 : -ENOENT;
}

int inject_module_base(pid_t pid, const char *suffix, char *path, size_t n, uint64_t *base)
{
	struct inject_module m;
	int err = inject_find_module(pid, suffix, &m);
	if (err)
		return err;
	snprintf(path, n, "%s", m.path);
	*base = m.base;
	return 0;
}

int inject_module_text(pid_t pid, const char *suffix, uint64_t *lo, uint64_t *hi)
{
	struct inject_module m;
	int err = inject_find_module(pid, suffix, &m);
	if (!err && !m.ntext)
		err = -ENOENT;
	if (err)
		return err;
	*lo = m.text[0].lo;
	*hi = m.text[0].hi;
	return 0;
}

int inject_elf_syms(const char *path, const char *const *names, uint64_t *vals, uint64_t *sizes)
{
	size_t want = 0, found = 0;
	while (names[want])
		vals[want++] = 0;
	struct elf_file ef;
	if (elf_file_open(path, &ef))
		return 0;
	for (int pass = 0; pass < 2 && found < want; pass++) {	/* .dynsym, then .symtab */
		Elf_Scn *scn = NULL;
		GElf_Shdr sh;
		while (found < want &&
		       (scn = elf_file_section(&ef, scn, pass ? SHT_SYMTAB : SHT_DYNSYM, NULL, &sh))) {
			Elf_Data *d = sh.sh_entsize ? elf_getdata(scn, NULL) : NULL;
			size_t n = d ? sh.sh_size / sh.sh_entsize : 0;
			for (size_t i = 0; i < n && found < want; i++) {
				GElf_Sym sy;
				const char *nm;
				if (!gelf_getsym(d, (int)i, &sy) || sy.st_shndx == SHN_UNDEF || !sy.st_value ||
				    (GELF_ST_TYPE(sy.st_info) != STT_FUNC && GELF_ST_TYPE(sy.st_info) != STT_OBJECT) ||
				    !(nm = elf_strptr(ef.e, sh.sh_link, sy.st_name)))
					continue;
				for (size_t k = 0; k < want; k++)
					if (!vals[k] && !strcmp(nm, names[k])) {
						vals[k] = sy.st_value;
						if (sizes)
							sizes[k] = sy.st_size;
						found++;
					}
			}
		}
	}
	elf_file_close(&ef);
	return (int)found;
}

int inject_syms(pid_t pid, const char *suffix, const char *const *names, uint64_t *vals)
{
	struct inject_module m;
	int err = inject_find_module(pid, suffix, &m);
	return err ? err : inject_module_syms(pid, &m, names, vals, NULL);
}
