/*
 * symbolize.c - return addresses to source frames with libdwfl (see
 * symbolize.h).  Modules are reported from the trace's module map at their
 * recorded load bias; a module whose file changed since (build-id mismatch)
 * or vanished is left out, and its addresses show as "module+0xoffset"
 * rather than with wrong names.
 */
#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyzer/symbolize.h"
#include "trace/reader.h"
#include "common/hmap.h"
#include "common/util.h"

struct entry {
	uint64_t addr;
	const struct sym_frame *first;
	uint32_t n;
};

/* An interned string, chained under its hash. */
struct istr {
	struct istr *next;
	char s[];
};

/* Frames live in blocks that never move: sym_lookup() hands out pointers
 * into them that callers keep while looking up more addresses.  One
 * address's frames are contiguous in one block. */
#define FRAME_BLOCK 4096

struct symbolizer {
	Dwfl *dwfl;
	Dwfl_Callbacks cb;
	char *debuginfo_path;
	const struct trace *trace;
	struct hmap tab;	/* address -> struct entry */
	struct sym_frame **blocks;
	size_t nblocks, capblocks;
	size_t inblock;		/* frames used in the last block */
	size_t start;		/* where the address being resolved began in it */
	struct hmap strs;	/* interned strings: hash -> struct istr * chain */
	char *(*demangle)(const char *, char *, size_t *, int *);
	void *cxxlib;
	struct sym_module *mods;	/* one per trace module, same order */
	Dwfl_Module **dmods;		/* its libdwfl module, NULL = not symbolized */
	int *probed;			/* has_dwarf/has_symtab known */
	size_t nmods;
};

const char *sym_basename(const char *path)
{
	if (!path)
		return "?";
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

const char *sym_intern(struct symbolizer *s, const char *str)
{
	if (!str)
		return NULL;
	struct istr **head = hmap_put(&s->strs, hash_str(str), NULL), *i;
	if (!head)
		return "??";
	for (i = *head; i; i = i->next)
		if (!strcmp(i->s, str))
			return i->s;
	size_t l = strlen(str);
	if (!(i = malloc(sizeof(*i) + l + 1)))
		return "??";
	memcpy(i->s, str, l + 1);
	i->next = *head;
	*head = i;
	return i->s;
}

/* C++ names: __cxa_demangle from libstdc++ when it is installed (looked up
 * at run time: mfx itself is C and does not link it). */
static const char *demangled(struct symbolizer *s, const char *name)
{
	if (!name || strncmp(name, "_Z", 2) || !s->demangle)
		return sym_intern(s, name);
	int status = -1;
	char *d = s->demangle(name, NULL, NULL, &status);
	const char *r = sym_intern(s, status == 0 && d ? d : name);
	free(d);
	return r;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n && i < 64; i++) {
		*out++ = d[b[i] >> 4];
		*out++ = d[b[i] & 15];
	}
	*out = 0;
}

/* A regular file, opened without blocking: a FIFO someone put at the path
 * (a user's own mount namespace can) would block open() forever.  Its fd,
 * which libdwfl takes over, or -1. */
static int open_regular(const char *p)
{
	struct stat st;
	int fd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode) || fcntl(fd, F_SETFL, 0))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Where module m's file is now: under root first (another mount namespace).
 * Its fd (a regular file), or -ENOENT. */
static int module_file(const char *root, const char *path, char *out, size_t n)
{
	int fd;
	if (root && snprintf(out, n, "%s%s", root, path) < (int)n && (fd = open_regular(out)) >= 0)
		return fd;
	snprintf(out, n, "%s", path);
	return (fd = open_regular(out)) >= 0 ? fd : -ENOENT;
}

/* Report module i to libdwfl, unless its file is gone or changed. */
static void report_one(struct symbolizer *s, size_t i, const char *root)
{
	const struct trace_module *m;
	trace_modules(s->trace, &m);
	m += i;
	struct sym_module *sm = &s->mods[i];
	char path[PATH_MAX];
	int fd = module_file(root, m->path, path, sizeof(path));
	if (fd < 0) {
		sm->missing = 1;
		return;
	}
	Dwfl_Module *mod = dwfl_report_elf(s->dwfl, sym_basename(m->path), path, fd, m->base, true);
	if (!mod)
		return;
	const unsigned char *bid;
	GElf_Addr vaddr;
	int bl = dwfl_module_build_id(mod, &bid, &vaddr);
	if (bl > 0)
		hex(sm->disk_build_id, bid, (size_t)bl);
	/* The file on disk is not the one that was loaded (upgraded since):
	 * its symbols would lie. */
	if (m->build_id_len && bl > 0 &&
	    ((uint32_t)bl != m->build_id_len || memcmp(bid, m->build_id, (size_t)bl)))
		sm->stale = 1;
	else
		s->dmods[i] = mod;
}

/* Report the trace's modules to libdwfl. */
static int report_modules(struct symbolizer *s, const char *root)
{
	const struct trace_module *mods;
	size_t n = trace_modules(s->trace, &mods);
	s->mods = calloc(n + 1, sizeof(*s->mods));
	s->dmods = calloc(n + 1, sizeof(*s->dmods));
	s->probed = calloc(n + 1, sizeof(*s->probed));
	if (!s->mods || !s->dmods || !s->probed)
		return -ENOMEM;
	s->nmods = n;
	dwfl_report_begin(s->dwfl);
	for (size_t i = 0; i < n; i++) {
		const struct trace_module *m = &mods[i];
		s->mods[i].path = sym_intern(s, m->path ? m->path : "?");
		hex(s->mods[i].build_id, m->build_id, m->build_id_len);
		if (!m->path || m->path[0] != '/' || !strncmp(m->path, "/proc/", 6))
			continue;	/* the vdso, anonymous code, the attached agent's memfd */
		report_one(s, i, root);
	}
	dwfl_report_end(s->dwfl, NULL, NULL);
	return 0;
}

int sym_open(const struct trace *t, const char *root, struct symbolizer **out)
{
	struct symbolizer *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	hmap_init(&s->tab, sizeof(struct entry), 4096);
	hmap_init(&s->strs, sizeof(struct istr *), 1024);
	s->trace = t;
	s->cb.find_elf = dwfl_build_id_find_elf;
	s->cb.find_debuginfo = dwfl_standard_find_debuginfo;
	s->cb.section_address = dwfl_offline_section_address;
	s->cb.debuginfo_path = &s->debuginfo_path;	/* NULL: the default search path */
	s->dwfl = dwfl_begin(&s->cb);
	if (!s->dwfl) {
		free(s);
		return -ENOMEM;
	}
	s->cxxlib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
	if (s->cxxlib)
		*(void **)&s->demangle = dlsym(s->cxxlib, "__cxa_demangle");
	if (report_modules(s, root)) {
		sym_close(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void sym_close(struct symbolizer *s)
{
	if (!s)
		return;
	dwfl_end(s->dwfl);
	uint64_t h;
	struct istr **head;
	for (size_t i = 0; (i = hmap_next(&s->strs, i, &h, (void **)&head));)
		for (struct istr *x = *head, *nx; x; x = nx) {
			nx = x->next;
			free(x);
		}
	hmap_free(&s->strs);
	hmap_free(&s->tab);
	for (size_t i = 0; i < s->nblocks; i++)
		free(s->blocks[i]);
	free(s->blocks);
	free(s->mods);
	free(s->dmods);
	free(s->probed);
	if (s->cxxlib)
		dlclose(s->cxxlib);
	free(s);
}

size_t sym_modules(const struct symbolizer *s, const struct sym_module **mods)
{
	*mods = s->mods;
	return s->nmods;
}

/* ---- frame storage ------------------------------------------------------------- */

/* A new last block; the frames of the address being resolved move along. */
static int new_block(struct symbolizer *s)
{
	struct sym_frame *b = malloc(FRAME_BLOCK * sizeof(*b));
	if (!b || grow_array(&s->blocks, &s->capblocks, s->nblocks, sizeof(*s->blocks))) {
		free(b);
		return -ENOMEM;
	}
	size_t moving = s->nblocks ? s->inblock - s->start : 0;
	if (moving)
		memcpy(b, s->blocks[s->nblocks - 1] + s->start, moving * sizeof(*b));
	s->blocks[s->nblocks++] = b;
	s->start = 0;
	s->inblock = moving;
	return 0;
}

static int push_frame(struct symbolizer *s, const struct sym_frame *f)
{
	if ((!s->nblocks || s->inblock == FRAME_BLOCK) &&
	    (s->inblock - s->start == FRAME_BLOCK || new_block(s)))
		return -ENOMEM;
	s->blocks[s->nblocks - 1][s->inblock++] = *f;
	return 0;
}

/* ---- DWARF --------------------------------------------------------------------- */

/* Name of a subprogram or inlined-subroutine DIE (following abstract
 * origins and specifications): the linkage name demangled when there is
 * one (C++, or C with an asm label), else DW_AT_name - what binutils'
 * addr2line -C prints.  *linkage: it was a linkage name. */
static const char *die_name(struct symbolizer *s, Dwarf_Die *die, int *linkage)
{
	Dwarf_Attribute a;
	const char *n = NULL;
	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &a) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a))
		n = dwarf_formstring(&a);
	*linkage = n != NULL;
	if (!n && dwarf_attr_integrate(die, DW_AT_name, &a))
		n = dwarf_formstring(&a);
	return n ? demangled(s, n) : NULL;
}

/* Languages whose DW_AT_name is the symbol's name (binutils: non_mangled). */
static int plain_names(Dwarf_Die *cu)
{
	switch (dwarf_srclang(cu)) {
	case DW_LANG_C89: case DW_LANG_C: case DW_LANG_C99: case DW_LANG_C11:
	case DW_LANG_Ada83: case DW_LANG_Ada95: case DW_LANG_Cobol74: case DW_LANG_PLI:
	case DW_LANG_UPC: case DW_LANG_Mips_Assembler:
		return 1;
	default:
		return 0;
	}
}

/* A source path as binutils prints it: a relative one joined to the unit's
 * DW_AT_comp_dir (glibc's "./libio" + "./libio/genops.c" included). */
static const char *full_path(struct symbolizer *s, Dwarf_Die *cu, const char *file)
{
	Dwarf_Attribute a;
	const char *dir;
	if (!file || file[0] == '/' || !cu || !(dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &a))))
		return sym_intern(s, file);
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s/%s", dir, file);
	return sym_intern(s, buf);
}

/* The call site of an inlined subroutine: the place in its caller. */
static const char *call_site(struct symbolizer *s, Dwarf_Die *inl, unsigned *line)
{
	Dwarf_Attribute a;
	Dwarf_Word f = 0, l = 0;
	Dwarf_Files *files;
	Dwarf_Die cu;
	size_t nfiles;
	*line = 0;
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_line, &a), &l) == 0)
		*line = (unsigned)l;
	/* The file index is the line table's of the unit holding this DIE
	 * (with LTO, not necessarily the unit of the address's lines). */
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_file, &a), &f) != 0 ||
	    !dwarf_diecu(inl, &cu, NULL, NULL) || dwarf_getsrcfiles(&cu, &files, &nfiles) != 0 ||
	    f >= nfiles)
		return NULL;
	return full_path(s, &cu, dwarf_filesrc(files, f, NULL, NULL));
}

static int code_tag(int tag)
{
	return tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine ||
	       tag == DW_TAG_lexical_block || tag == DW_TAG_entry_point ||
	       tag == DW_TAG_try_block || tag == DW_TAG_catch_block;
}

static int container_tag(int tag)
{
	return tag == DW_TAG_namespace || tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
	       tag == DW_TAG_union_type || tag == DW_TAG_module;
}

/*
 * The DIEs holding pc under parent, outermost first, into path[depth..]:
 * the scopes dwarf_getscopes() would give, found by walking the unit
 * ourselves.  libdw 0.188 gives up on GCC's LTO units ("no address value":
 * their functions sit in namespaces that point to the early-debug unit
 * with DW_AT_abstract_origin), so this walk is the fallback.  Returns the
 * new depth.
 */
static int find_path(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *path, int depth, int max)
{
	Dwarf_Die child;
	if (depth >= max || dwarf_child(parent, &child) != 0)
		return depth;
	do {
		int tag = dwarf_tag(&child);
		if (code_tag(tag) && dwarf_haspc(&child, pc) > 0) {
			path[depth] = child;
			return find_path(&path[depth], pc, path, depth + 1, max);
		}
		if (container_tag(tag)) {
			int d = find_path(&child, pc, path, depth, max);
			if (d > depth)
				return d;
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	return depth;
}

#define MAX_SCOPES 256

/* A unit of GCC's link-time optimisation ("GNU GIMPLE ..."): libdw's
 * dwarf_getscopes fails on it (and leaks a little each time). */
static int lto_unit(Dwarf_Die *cu)
{
	Dwarf_Attribute a;
	const char *p = dwarf_formstring(dwarf_attr(cu, DW_AT_producer, &a));
	return p && !strncmp(p, "GNU GIMPLE", 10);
}

/* The concrete scopes holding pc, innermost first (free()d by the caller). */
static int scopes_at(Dwarf_Die *cu, Dwarf_Addr pc, Dwarf_Die **out)
{
	Dwarf_Die *scopes = NULL;
	int n = lto_unit(cu) ? 0 : dwarf_getscopes(cu, pc, &scopes);
	if (n > 0) {
		/* above an inlined subroutine, dwarf_getscopes() goes on with
		 * its abstract definition's scopes; the concrete ones - every
		 * inlined subroutine up to the function holding them - come
		 * from dwarf_getscopes_die() on the innermost (eu-addr2line -i) */
		Dwarf_Die inner = scopes[0];
		free(scopes);
		return dwarf_getscopes_die(&inner, out);
	}
	free(scopes);
	Dwarf_Die *path = malloc(MAX_SCOPES * sizeof(*path));
	if (!path)
		return 0;
	int d = find_path(cu, pc, path, 0, MAX_SCOPES);
	for (int i = 0; i < d / 2; i++) {
		Dwarf_Die t = path[i];
		path[i] = path[d - 1 - i];
		path[d - 1 - i] = t;
	}
	*out = path;
	return d;
}

/*
 * The inline chain at pc (module-relative, DWARF addresses): frame k's
 * file:line is the line table's for k = 0 and the call site of inlined
 * subroutine k - 1 above that.  The innermost frame's name, when it has no
 * linkage name in a language that mangles (C++), is the ELF symbol's
 * (`symbol`), as binutils does.  Returns the frames pushed (0: no DWARF
 * scope holds pc).
 */
static int inline_chain(struct symbolizer *s, Dwarf_Die *cu, Dwarf_Addr pc, struct sym_frame f,
			const char *symbol)
{
	Dwarf_Die *chain = NULL;
	int m = scopes_at(cu, pc, &chain), pushed = 0;
	f.file = full_path(s, cu, f.file);
	for (int i = 0; i < m; i++) {
		int tag = dwarf_tag(&chain[i]), linkage;
		if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
			continue;
		const char *fn = die_name(s, &chain[i], &linkage);
		if (!pushed && !linkage && symbol && !plain_names(cu))
			fn = symbol;
		struct sym_frame g = f;
		if (fn) {
			g.function = fn;
			g.named = 1;
		}
		g.inlined = tag == DW_TAG_inlined_subroutine;
		if (push_frame(s, &g))
			break;
		pushed++;
		if (!g.inlined)
			break;
		f.file = call_site(s, &chain[i], &f.line);
	}
	free(chain);
	return pushed;
}

/* has_dwarf / has_symtab of module i, found once. */
static void probe_module(struct symbolizer *s, size_t i, Dwfl_Module *mod)
{
	if (s->probed[i])
		return;
	s->probed[i] = 1;
	Dwarf_Addr bias;
	s->mods[i].has_dwarf = dwfl_module_getdwarf(mod, &bias) != NULL;
	/* A full symbol table: the main file's or the debug file's .symtab,
	 * or MiniDebugInfo (.gnu_debugdata, which holds a .symtab). */
	const char *files[2] = { NULL, NULL };
	dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, &files[0], &files[1]);
	Elf *e = dwfl_module_getelf(mod, &bias);
	size_t shstr;
	for (Elf_Scn *scn = NULL; e && !elf_getshdrstrndx(e, &shstr) && (scn = elf_nextscn(e, scn));) {
		GElf_Shdr sh;
		const char *name = gelf_getshdr(scn, &sh) ? elf_strptr(e, shstr, sh.sh_name) : NULL;
		if (sh.sh_type == SHT_SYMTAB || (name && !strcmp(name, ".gnu_debugdata")))
			s->mods[i].has_symtab = 1;
	}
	if (files[1] || s->mods[i].has_dwarf)
		s->mods[i].has_symtab = 1;	/* a separate debug file has one */
}

/* Resolve return address ra into frames appended to the last block. */
static int resolve(struct symbolizer *s, uint64_t ra)
{
	uint64_t pc = ra - 1;
	struct sym_frame f = { "??", NULL, 0, NULL, ra, 0, 0, 0, -1 };
	const struct trace_module *tm = trace_module_at(s->trace, pc), *all;
	Dwfl_Module *mod = NULL;
	if (tm) {	/* no symbol: "module+0xoffset", usable with addr2line -e */
		trace_modules(s->trace, &all);
		size_t i = (size_t)(tm - all);
		char unk[300];
		f.pc = pc - tm->base;
		f.module = s->mods[i].path;
		f.module_index = (int)i;
		snprintf(unk, sizeof(unk), "%s+0x%llx", sym_basename(tm->path), (unsigned long long)f.pc);
		f.function = sym_intern(s, unk);
		mod = s->dmods[i];
		s->mods[i].addrs++;
		if (mod)
			probe_module(s, i, mod);
	}
	const char *name = NULL;
	if (mod) {
		GElf_Off off;
		GElf_Sym sym;
		name = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
		Dwfl_Line *line = dwfl_module_getsrc(mod, pc);
		int ln = 0;
		const char *file = line ? dwfl_lineinfo(line, NULL, &ln, NULL, NULL, NULL) : NULL;
		f.file = sym_intern(s, file);
		f.line = ln > 0 ? (unsigned)ln : 0;
	}
	int pushed = 0;
	Dwarf_Addr bias = 0;
	Dwarf_Die *cu = mod ? dwfl_module_addrdie(mod, pc, &bias) : NULL;
	if (cu)
		pushed = inline_chain(s, cu, pc - bias, f, name ? demangled(s, name) : NULL);
	if (!pushed) {
		if (name) {
			f.function = demangled(s, name);
			f.named = 1;
		}
		pushed = push_frame(s, &f) ? 0 : 1;
	}
	if (tm) {
		const struct sym_frame *last = &s->blocks[s->nblocks - 1][s->inblock - 1];
		s->mods[f.module_index].unnamed += pushed && !last->named;
		s->mods[f.module_index].no_line += pushed && !last->file;
	}
	return pushed ? 0 : -ENOMEM;
}

int sym_lookup(struct symbolizer *s, uint64_t ra, const struct sym_frame **frames)
{
	static const struct sym_frame unknown = { "??", NULL, 0, NULL, 0, 0, 0, 0, -1 };
	struct entry *e = hmap_get(&s->tab, ra);
	if (!e) {
		s->start = s->inblock;
		if (resolve(s, ra) || s->inblock == s->start || !(e = hmap_put(&s->tab, ra, NULL))) {
			*frames = &unknown;	/* out of memory */
			return 1;
		}
		*e = (struct entry){ ra, s->blocks[s->nblocks - 1] + s->start,
				     (uint32_t)(s->inblock - s->start) };
	}
	*frames = e->first;
	return (int)e->n;
}
