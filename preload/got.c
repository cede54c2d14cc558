/*
 * got.c - attach mode: point the GOT slots of every loaded module at the
 * hooks, and put them back at the end of the window.
 *
 * For each module but the agent, ld.so and the vdso, the relocations in its
 * in-memory dynamic section (DT_JMPREL and DT_RELA) are walked; a slot is
 * patched when its symbol is a hooked name and it is
 *   - R_X86_64_JUMP_SLOT, GLOB_DAT or 64 (addend 0) holding the address the
 *     global lookup gives for that name (what the program calls today), or
 *   - a JUMP_SLOT of an undefined symbol not bound yet (lazy binding: it
 *     still points into the module's own PLT).
 * Slots in RELRO pages are written with the page made writable for the
 * store.  Every store is one aligned 8-byte write: a thread jumping through
 * the slot sees the old or the new target, both valid.  Restoring writes the
 * old value back where the slot still holds our hook.
 *
 * "dlopen" slots are patched too: a library loaded during the window is
 * patched before dlopen returns (and a periodic rescan catches the rest).
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload/agent.h"
#include "preload/internal.h"

struct patch {
	uint64_t *slot;
	uint64_t orig, hook;
	uint8_t relro;
};

#define MAX_MODULES 4096
static struct patch *patches;
static size_t npatch, cap_patch;
static uint64_t done_base[MAX_MODULES];	/* modules already patched (by load bias + name hash) */
static size_t ndone;
static volatile int got_lock;
static uint64_t self_base, vdso_base;
static unsigned long long last_adds;

#define NHOOK 12
static const char *hook_name[NHOOK];
static uint64_t hook_addr[NHOOK], real_addr[NHOOK], canon_addr[NHOOK];
static void *(*real_dlopen)(const char *, int);

/*
 * fork.  The child of an attached process forked while the agent is
 * dormant, or by an mfx that gave no run directory, is not recorded, so
 * its hooks go at once: it calls the allocator through its GOT again,
 * exactly as its parent will when the window ends.  A child forked during
 * a window that records itself (forkchild.c) keeps them until its own end,
 * then puts them back the same way (got_restore_list).  The prepare handler takes got_lock
 * (the agent's thread may be half-way through a patching pass: the child
 * gets a copy of a consistent patch list); the parent's handler gives it
 * back; in the child, which has only the forking thread, the copied lock
 * is released and every patched slot written back.
 */
void got_fork_prepare(void)
{
	spin_lock(&got_lock);
}

void got_fork_parent(void)
{
	spin_unlock(&got_lock);
}

static int write_slot(uint64_t *slot, uint64_t val, int relro);

/*
 * In the child of fork(): the slots put back from the patch list alone.
 * dl_iterate_phdr() is out: it takes the loader's write lock, which the
 * fork copied in whatever state another thread of the parent had it (a
 * dlopen, the agent's module scan, libunwind: held for ever in the child;
 * glibc resets dl_load_lock in a fork child, not dl_load_write_lock).  The
 * child hung there and its parent's waitpid() with it (t500, 1 try in 200).
 * Without the loader's list a slot may belong to a module the parent
 * dlclose()d, its page gone: each slot is read through a pipe (write()
 * says EFAULT, where a load would kill the child) and written back only if
 * it still holds our hook.  pipe2/write/read, not process_vm_readv: a
 * service's seccomp filter (systemd's @system-service) allows the first.
 */
static void restore_from_list(void)
{
	int fd[2];
	if (pipe2(fd, O_CLOEXEC | O_NONBLOCK))
		fd[0] = fd[1] = -1;	/* no pipe: the hooks stay, passing through */
	for (size_t i = 0; fd[0] >= 0 && i < npatch; i++) {
		struct patch *p = &patches[i];
		uint64_t now = 0;
		if (p->slot && write(fd[1], p->slot, sizeof(now)) == (ssize_t)sizeof(now) &&
		    read(fd[0], &now, sizeof(now)) == (ssize_t)sizeof(now) && now == p->hook)
			write_slot(p->slot, p->orig, p->relro);
		p->slot = NULL;
	}
	if (fd[0] >= 0) {
		close(fd[0]);
		close(fd[1]);
	}
	npatch = 0;
	ndone = 0;
}

void got_fork_child(int restore)
{
	got_lock = 0;
	if (restore)
		restore_from_list();
}

/* A fork child of a window ends its own recording (forkchild.c): the same
 * walk of the list, for the same reason (the loader's lists may be as the
 * fork left them), under got_lock (a dlopen in the child patches). */
void got_restore_list(void)
{
	spin_lock(&got_lock);
	restore_from_list();
	spin_unlock(&got_lock);
}

static void *hook_dlopen(const char *file, int flags);
static void hooks_init(void);

static int grow_patches(void)
{
	size_t ncap = cap_patch ? cap_patch * 2 : 1024;
	struct patch *np = agent_mmap_anon(ncap * sizeof(*np));
	if (!np)
		return -1;
	if (patches)
		memcpy(np, patches, npatch * sizeof(*np));
	/* the old array is leaked on purpose: agent memory is never unmapped */
	patches = np;
	cap_patch = ncap;
	return 0;
}

static int write_slot(uint64_t *slot, uint64_t val, int relro)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *page = (void *)((uintptr_t)slot & ~(uintptr_t)(pg - 1));
	size_t len = ((uintptr_t)slot + 8 > (uintptr_t)page + (uintptr_t)pg) ? 2 * (size_t)pg
									     : (size_t)pg;
	if (relro && mprotect(page, len, PROT_READ | PROT_WRITE))
		return -1;
	__atomic_store_n(slot, val, __ATOMIC_SEQ_CST);
	if (relro)
		mprotect(page, len, PROT_READ);
	return 0;
}

/* A loaded module as both walks (patching, lookups) see it: its ranges
 * from the program headers and its in-memory dynamic section. */
struct modview {
	uint64_t base, lo, hi, relro_lo, relro_hi;
	const Elf64_Sym *symtab;
	const char *strtab;
	const Elf64_Rela *jmprel, *rela;
	size_t njmprel, nrela;
	const uint32_t *gnu_hash, *sysv_hash;
};

static uint64_t dptr(uint64_t v, uint64_t base)
{
	/* glibc relocates these entries in place; others leave them relative */
	return v < base ? v + base : v;
}

/* 0 when the module has a dynamic symbol table, else -1. */
static int modview_of(const struct dl_phdr_info *info, struct modview *m)
{
	memset(m, 0, sizeof(*m));
	m->base = info->dlpi_addr;
	m->lo = UINT64_MAX;
	const Elf64_Dyn *dyn = NULL;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *p = &info->dlpi_phdr[i];
		uint64_t a = m->base + p->p_vaddr;
		if (p->p_type == PT_DYNAMIC) {
			dyn = (const Elf64_Dyn *)a;
		} else if (p->p_type == PT_GNU_RELRO) {
			m->relro_lo = a;
			m->relro_hi = a + p->p_memsz;
		} else if (p->p_type == PT_LOAD) {
			if (a < m->lo)
				m->lo = a;
			if (a + p->p_memsz > m->hi)
				m->hi = a + p->p_memsz;
		}
	}
	for (; dyn && dyn->d_tag != DT_NULL; dyn++) {
		uint64_t v = dyn->d_un.d_val;
		switch (dyn->d_tag) {
		case DT_SYMTAB: m->symtab = (const Elf64_Sym *)dptr(v, m->base); break;
		case DT_STRTAB: m->strtab = (const char *)dptr(v, m->base); break;
		case DT_JMPREL: m->jmprel = (const Elf64_Rela *)dptr(v, m->base); break;
		case DT_PLTRELSZ: m->njmprel = v / sizeof(Elf64_Rela); break;
		case DT_RELA: m->rela = (const Elf64_Rela *)dptr(v, m->base); break;
		case DT_RELASZ: m->nrela = v / sizeof(Elf64_Rela); break;
		case DT_GNU_HASH: m->gnu_hash = (const uint32_t *)dptr(v, m->base); break;
		case DT_HASH: m->sysv_hash = (const uint32_t *)dptr(v, m->base); break;
		}
	}
	return m->symtab && m->strtab ? 0 : -1;
}

/* The agent itself and the vdso are never patched nor looked in. */
static int not_ours(const struct dl_phdr_info *info)
{
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	return info->dlpi_addr == self_base || (vdso_base && info->dlpi_addr == vdso_base) ||
	       strstr(name, "linux-vdso");
}

static int hook_index(const char *name)
{
	for (int i = 0; i < NHOOK && hook_name[i]; i++)
		if (!strcmp(hook_name[i], name))
			return i;
	return -1;
}

static void patch_relocs(const Elf64_Rela *r, size_t n, const struct modview *d, unsigned *count)
{
	for (size_t i = 0; i < n; i++) {
		unsigned type = ELF64_R_TYPE(r[i].r_info);
		if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT && type != R_X86_64_64)
			continue;
		if (type == R_X86_64_64 && r[i].r_addend)
			continue;
		const Elf64_Sym *s = &d->symtab[ELF64_R_SYM(r[i].r_info)];
		if (!s->st_name)
			continue;
		int h = hook_index(d->strtab + s->st_name);
		if (h < 0 || !real_addr[h])
			continue;
		uint64_t *slot = (uint64_t *)(d->base + r[i].r_offset);
		uint64_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
		int lazy = type == R_X86_64_JUMP_SLOT && s->st_shndx == SHN_UNDEF && cur >= d->lo &&
			   cur < d->hi;
		if (cur != real_addr[h] && (cur != canon_addr[h] || !cur) && !lazy)
			continue;
		if (npatch == cap_patch && grow_patches())
			return;
		int relro = (uint64_t)slot >= d->relro_lo && (uint64_t)slot < d->relro_hi;
		if (write_slot(slot, hook_addr[h], relro))
			continue;
		patches[npatch++] = (struct patch){ slot, cur, hook_addr[h], (uint8_t)relro };
		(*count)++;
	}
}

struct scan {
	unsigned slots, modules;
};

static int is_done(uint64_t key)
{
	for (size_t i = 0; i < ndone; i++)
		if (done_base[i] == key)
			return 1;
	return 0;
}

static int patch_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct scan *sc = arg;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	uint64_t key = info->dlpi_addr ^ (uint64_t)info->dlpi_phnum << 56;
	if (not_ours(info) || strstr(name, "/ld-linux") || is_done(key))
		return 0;
	if (ndone < MAX_MODULES)
		done_base[ndone++] = key;
	struct modview d;
	if (modview_of(info, &d))
		return 0;
	unsigned before = sc->slots;
	if (d.jmprel)
		patch_relocs(d.jmprel, d.njmprel, &d, &sc->slots);
	if (d.rela)
		patch_relocs(d.rela, d.nrela, &d, &sc->slots);
	if (sc->slots != before)
		sc->modules++;
	return 0;
}

static void hooks_init(void)
{
	static int done;
	if (done)
		return;
	int n = 0;
	for (const struct agent_hook *h = agent_hooks; h->name && n < NHOOK - 1; h++, n++) {
		hook_name[n] = h->name;
		hook_addr[n] = (uint64_t)(uintptr_t)h->hook;
	}
	hook_name[n] = "dlopen";
	hook_addr[n] = (uint64_t)(uintptr_t)hook_dlopen;
	Dl_info di;
	if (dladdr((void *)hooks_init, &di))
		self_base = (uint64_t)(uintptr_t)di.dli_fbase;
	vdso_base = getauxval(AT_SYSINFO_EHDR);
	done = 1;
}

/* ---- where a name really binds -------------------------------------------------------
 *
 * dlsym(RTLD_DEFAULT, "malloc") is not it: when a non-PIE executable takes
 * malloc's address, the executable's PLT entry becomes the "canonical"
 * address dlsym returns, and calling it from a hook would jump back through
 * the patched slot into the hook.  The loader binds a name to the first
 * module in load order that defines it; so does got_find_defined(), with the
 * modules' own hash tables. */

static uint32_t gnu_hash(const char *s)
{
	uint32_t h = 5381;
	for (; *s; s++)
		h = h * 33 + (uint8_t)*s;
	return h;
}

static uint32_t sysv_hash(const char *s)
{
	uint32_t h = 0, g;
	for (; *s; s++) {
		h = (h << 4) + (uint8_t)*s;
		g = h & 0xf0000000u;
		if (g)
			h ^= g >> 24;
		h &= ~g;
	}
	return h;
}

static const Elf64_Sym *defined(const Elf64_Sym *s)
{
	return s && s->st_shndx != SHN_UNDEF && s->st_value &&
	       (ELF64_ST_TYPE(s->st_info) == STT_FUNC) &&
	       ELF64_ST_BIND(s->st_info) != STB_LOCAL ? s : NULL;
}

static const Elf64_Sym *hash_lookup(const uint32_t *gnu, const uint32_t *sysv, const Elf64_Sym *sym,
				    const char *str, const char *name)
{
	if (gnu) {
		uint32_t nb = gnu[0], off = gnu[1], bsz = gnu[2], shift = gnu[3];
		const uint64_t *bloom = (const uint64_t *)&gnu[4];
		const uint32_t *bucket = (const uint32_t *)&bloom[bsz], *chain = &bucket[nb];
		uint32_t h = gnu_hash(name);
		uint64_t w = bloom[(h / 64) % bsz];
		uint64_t mask = (1ull << (h % 64)) | (1ull << ((h >> shift) % 64));
		if (!nb || (w & mask) != mask)
			return NULL;
		uint32_t i = bucket[h % nb];
		if (i < off)
			return NULL;
		for (;; i++) {
			uint32_t h2 = chain[i - off];
			if ((h | 1) == (h2 | 1) && !strcmp(name, str + sym[i].st_name) && defined(&sym[i]))
				return &sym[i];
			if (h2 & 1)
				return NULL;
		}
	}
	if (sysv) {
		uint32_t nb = sysv[0];
		const uint32_t *bucket = &sysv[2], *chain = &bucket[nb];
		for (uint32_t i = nb ? bucket[sysv_hash(name) % nb] : 0; i; i = chain[i])
			if (!strcmp(name, str + sym[i].st_name) && defined(&sym[i]))
				return &sym[i];
	}
	return NULL;
}

struct find {
	const char *name;
	uint64_t addr;
};

static int find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct find *f = arg;
	struct modview m;
	if (f->addr || not_ours(info) || modview_of(info, &m))
		return f->addr != 0;
	const Elf64_Sym *s = hash_lookup(m.gnu_hash, m.sysv_hash, m.symtab, m.strtab, f->name);
	if (s)
		f->addr = m.base + s->st_value;
	return f->addr != 0;
}

/* The symbol `name` defined by the module mapping address `in`. */
struct insym {
	uint64_t in;
	const char *name;
	uint64_t addr;
};

static int insym_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct insym *f = arg;
	struct modview m;
	if (not_ours(info) || modview_of(info, &m) || f->in < m.lo || f->in >= m.hi)
		return 0;
	const Elf64_Sym *s = hash_lookup(m.gnu_hash, m.sysv_hash, m.symtab, m.strtab, f->name);
	f->addr = s ? m.base + s->st_value : 0;
	return 1;
}

void *got_module_sym(const void *in, const char *name)
{
	hooks_init();
	struct insym f = { (uint64_t)(uintptr_t)in, name, 0 };
	agent_phdr(insym_cb, &f);
	return (void *)(uintptr_t)f.addr;
}

void *got_find_defined(const char *name)
{
	hooks_init();
	struct find f = { name, 0 };
	agent_phdr(find_cb, &f);
	return (void *)(uintptr_t)f.addr;
}

/* What the program's slots hold today: the real definitions, or the
 * canonical (PLT) address a non-PIE executable gave the name. */

static void resolve_real(void)
{
	for (int i = 0; i < NHOOK && hook_name[i]; i++) {
		real_addr[i] = (uint64_t)(uintptr_t)got_find_defined(hook_name[i]);
		canon_addr[i] = (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, hook_name[i]);
	}
	*(void **)&real_dlopen = (void *)(uintptr_t)real_addr[NHOOK - 1];
}

static int adds_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	*(unsigned long long *)arg = info->dlpi_adds;
	return 1;
}

int got_patch_all(unsigned *slots, unsigned *modules)
{
	spin_lock(&got_lock);
	hooks_init();
	resolve_real();
	ndone = 0;
	npatch = 0;
	struct scan sc = { 0, 0 };
	agent_phdr(adds_cb, &last_adds);
	agent_phdr(patch_module, &sc);
	spin_unlock(&got_lock);
	*slots = sc.slots;
	*modules = sc.modules;
	return 0;
}

/* Patch modules loaded since the last scan; cheap when none was. */
void got_patch_new(void)
{
	unsigned long long adds = 0;
	agent_phdr(adds_cb, &adds);
	if (adds == __atomic_load_n(&last_adds, __ATOMIC_RELAXED) || !agent_recording())
		return;
	spin_lock(&got_lock);
	struct scan sc = { 0, 0 };
	last_adds = adds;
	agent_phdr(patch_module, &sc);
	spin_unlock(&got_lock);
	if (sc.modules)
		agent_modules_changed();
}

/*
 * The slots of one loaded module, put back.  Only the modules still loaded
 * are seen: a library the program dlclose()d during the window took its GOT
 * with it, and reading that slot killed the process at the window's end
 * (t208).  dl_iterate_phdr() holds the loader's write lock while it calls
 * us, and dlclose() unlinks a library under that lock before it unmaps it:
 * no module goes away while its slots are written.
 */
static int restore_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	for (int k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		uint64_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		for (size_t i = npatch; ph->p_type == PT_LOAD && i-- > 0;) {
			struct patch *p = &patches[i];
			uint64_t at = (uint64_t)(uintptr_t)p->slot;
			if (!p->slot || at < lo || at + sizeof(*p->slot) > hi)
				continue;
			if (__atomic_load_n(p->slot, __ATOMIC_RELAXED) == p->hook)
				write_slot(p->slot, p->orig, p->relro);
			p->slot = NULL;
		}
	}
	return 0;
}

void got_restore_all(void)
{
	spin_lock(&got_lock);
	agent_phdr(restore_module, NULL);
	npatch = 0;
	ndone = 0;
	spin_unlock(&got_lock);
}

static void *hook_dlopen(const char *file, int flags)
{
	void *(*fn)(const char *, int) = real_dlopen;
	if (!fn)
		*(void **)&fn = dlsym(RTLD_DEFAULT, "dlopen");
	void *h = fn(file, flags);
	if (h && agent_recording())
		got_patch_new();
	return h;
}
