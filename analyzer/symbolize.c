/*
 * symbolize.c - return addresses to source frames with libdwfl (see
 * symbolize.h).  Modules are reported from the trace's module map at their
 * recorded load bias; a module whose file changed since (build-id mismatch)
 * or vanished is left out, and its addresses show as "??" with the module's
 * name rather than with wrong names.
 */
#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	Dwfl_Module *stale[64];	/* modules whose file changed since the run */
	size_t nstale;
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

/* A stable copy of s, shared by equal strings. */
static const char *intern(struct symbolizer *s, const char *str)
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
		return intern(s, name);
	int status = -1;
	char *d = s->demangle(name, NULL, NULL, &status);
	const char *r = intern(s, status == 0 && d ? d : name);
	free(d);
	return r;
}

static int file_exists(const char *p)
{
	return access(p, R_OK) == 0;
}

/* Report the trace's modules to libdwfl. */
static void report_modules(struct symbolizer *s, const char *root)
{
	const struct trace_module *mods;
	size_t n = trace_modules(s->trace, &mods);
	dwfl_report_begin(s->dwfl);
	for (size_t i = 0; i < n; i++) {
		const struct trace_module *m = &mods[i];
		if (!m->path || m->path[0] != '/' || !strncmp(m->path, "/proc/", 6))
			continue;	/* the vdso, anonymous code, the attached agent's memfd */
		char path[PATH_MAX];
		if (root && snprintf(path, sizeof(path), "%s%s", root, m->path) < (int)sizeof(path) &&
		    file_exists(path))
			;
		else if (file_exists(m->path))
			snprintf(path, sizeof(path), "%s", m->path);
		else
			continue;
		Dwfl_Module *mod = dwfl_report_elf(s->dwfl, sym_basename(m->path), path, -1, m->base,
						   true);
		if (!mod || !m->build_id_len)
			continue;
		const unsigned char *bid;
		GElf_Addr vaddr;
		int bl = dwfl_module_build_id(mod, &bid, &vaddr);
		if (bl > 0 && ((uint32_t)bl != m->build_id_len || memcmp(bid, m->build_id, (size_t)bl)) &&
		    s->nstale < sizeof(s->stale) / sizeof(s->stale[0]))
			/* The file on disk is not the one that was loaded (upgraded
			 * since): its symbols would lie. */
			s->stale[s->nstale++] = mod;
	}
	dwfl_report_end(s->dwfl, NULL, NULL);
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
	report_modules(s, root);
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
	if (s->cxxlib)
		dlclose(s->cxxlib);
	free(s);
}

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

/* Name of a subprogram or inlined-subroutine DIE (following abstract
 * origins and specifications), linkage name preferred for C++. */
static const char *die_name(struct symbolizer *s, Dwarf_Die *die)
{
	Dwarf_Attribute a;
	const char *n = NULL;
	if (dwarf_attr_integrate(die, DW_AT_linkage_name, &a) ||
	    dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a))
		n = dwarf_formstring(&a);
	if (!n && dwarf_attr_integrate(die, DW_AT_name, &a))
		n = dwarf_formstring(&a);
	return n ? demangled(s, n) : NULL;
}

static const char *call_file(Dwarf_Die *cu, Dwarf_Die *inl, unsigned *line)
{
	Dwarf_Attribute a;
	Dwarf_Word f = 0, l = 0;
	Dwarf_Files *files;
	size_t nfiles;
	*line = 0;
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_line, &a), &l) == 0)
		*line = (unsigned)l;
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_file, &a), &f) != 0 ||
	    dwarf_getsrcfiles(cu, &files, &nfiles) != 0 || f >= nfiles)
		return NULL;
	return dwarf_filesrc(files, f, NULL, NULL);
}

/* Resolve pc (= ra - 1) into frames appended to the last block. */
static int resolve(struct symbolizer *s, uint64_t ra)
{
	uint64_t pc = ra - 1;
	struct sym_frame f = { "??", NULL, 0, NULL, ra, 0, 0 };
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, pc);
	const struct trace_module *tm = trace_module_at(s->trace, pc);
	f.module = tm ? intern(s, tm->path) : NULL;
	char unk[300];
	if (tm) {	/* no symbol: "module+0xoffset", usable with addr2line -e */
		snprintf(unk, sizeof(unk), "%s+0x%llx", sym_basename(tm->path),
			 (unsigned long long)(pc - tm->base));
		f.function = intern(s, unk);
	}
	for (size_t i = 0; mod && i < s->nstale; i++)
		if (s->stale[i] == mod)
			mod = NULL;
	if (!mod)
		return push_frame(s, &f);
	GElf_Off off;
	GElf_Sym sym;
	const char *name = dwfl_module_addrinfo(mod, pc, &off, &sym, NULL, NULL, NULL);
	if (name)
		f.function = demangled(s, name);
	f.named = name != NULL;
	Dwfl_Line *line = dwfl_module_getsrc(mod, pc);
	if (line) {
		int ln = 0;
		const char *file = dwfl_lineinfo(line, NULL, &ln, NULL, NULL, NULL);
		f.file = intern(s, file);
		f.line = ln > 0 ? (unsigned)ln : 0;
	}
	/* Inlined frames: innermost scope first.  Each inlined subroutine's
	 * call site is the position in the function it was inlined into. */
	Dwarf_Addr bias = 0;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, pc, &bias);
	Dwarf_Die *scopes = NULL;
	int n = cu ? dwarf_getscopes(cu, pc - bias, &scopes) : 0;
	int pushed = 0;
	for (int i = 0; i < n; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram)
			continue;
		const char *fn = die_name(s, &scopes[i]);
		struct sym_frame g = f;
		g.function = fn ? fn : f.function;
		g.named |= fn != NULL;
		if (tag == DW_TAG_subprogram) {
			g.inlined = 0;
			push_frame(s, &g);
			pushed++;
			break;
		}
		g.inlined = 1;
		push_frame(s, &g);
		pushed++;
		/* The next (outer) frame is at this inline's call site. */
		unsigned cl;
		const char *cf = call_file(cu, &scopes[i], &cl);
		f.file = intern(s, cf);
		f.line = cl;
	}
	free(scopes);
	if (!pushed)
		return push_frame(s, &f);
	return 0;
}

int sym_lookup(struct symbolizer *s, uint64_t ra, const struct sym_frame **frames)
{
	static const struct sym_frame unknown = { "??", NULL, 0, NULL, 0, 0, 0 };
	struct entry *e = hmap_get(&s->tab, ra);
	if (!e) {
		s->start = s->inblock;
		resolve(s, ra);
		if (s->inblock == s->start || !(e = hmap_put(&s->tab, ra, NULL))) {
			*frames = &unknown;	/* out of memory */
			return 1;
		}
		*e = (struct entry){ ra, s->blocks[s->nblocks - 1] + s->start,
				     (uint32_t)(s->inblock - s->start) };
	}
	*frames = e->first;
	return (int)e->n;
}
