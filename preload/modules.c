/*
 * modules.c - the module map in the trace: every loaded ELF object's path,
 * load bias, mapped range and build-id, recorded at the start and again as
 * libraries come and go, so the analyzer can symbolize return addresses long
 * after the process is gone.
 *
 * Changes are noticed through the loader's dlpi_adds/dlpi_subs counters,
 * checked when a new stack is interned (only a new stack can hold an
 * address in a new library; at most once a millisecond, stack.c), after a
 * dlopen() that brought libraries to patch in attach mode (got.c), at the
 * window's start and end, and at exit.  dlclose() is not watched: a library
 * loaded and unloaded within one such millisecond is not in the map.
 */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "preload/internal.h"
#include "preload/record.h"

#define MAX_MODS 8192

struct mod {
	uint64_t base, lo, hi;
	uint64_t name_hash;
	int seen;
};

static struct mod *mods;
static unsigned nmods;
static unsigned long long last_adds = ~0ull, last_subs = ~0ull;
static volatile int mod_lock;
static char exe_path[512];

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* The module table, mapped at the start of a recording before the
 * optional spool and stack table: it is small, and without it no stack
 * can be symbolized. */
void modules_init(void)
{
	spin_lock(&mod_lock);
	if (!mods)
		mods = agent_mmap_anon(MAX_MODS * sizeof(*mods));
	spin_unlock(&mod_lock);
}

void modules_reset(void)
{
	spin_lock(&mod_lock);
	nmods = 0;
	last_adds = last_subs = ~0ull;
	spin_unlock(&mod_lock);
}

void modules_after_fork(void)
{
	mod_lock = 0;
}

static const char *module_path(const struct dl_phdr_info *info)
{
	if (info->dlpi_name && info->dlpi_name[0])
		return info->dlpi_name;
	if (!exe_path[0]) {
		ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
		exe_path[n > 0 ? n : 0] = 0;
	}
	return exe_path;
}

/* NT_GNU_BUILD_ID from the mapped PT_NOTE segments. */
static unsigned build_id(const struct dl_phdr_info *info, const uint8_t **id)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		const uint8_t *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			const uint8_t *name = p + sizeof(*n);
			const uint8_t *desc = name + ((n->n_namesz + 3) & ~3u);
			if (desc + n->n_descsz > end)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
			    !memcmp(name, "GNU", 4) && n->n_descsz <= 64) {
				*id = desc;
				return n->n_descsz;
			}
			p = desc + ((n->n_descsz + 3) & ~3u);
		}
	}
	return 0;
}

static void record_module(unsigned op, const struct mod *m, const char *path,
			  const uint8_t *bid, unsigned bidlen)
{
	uint8_t body[600], out[620];
	size_t pl = strnlen(path, 512);
	uint8_t *p = body;
	p = put_varint(p, agent_now_ns());
	p = put_varint(p, op);
	p = put_varint(p, m->base);
	p = put_varint(p, m->lo);
	p = put_varint(p, m->hi);
	p = put_varint(p, bidlen);
	if (bidlen)	/* bid is NULL without one: memcpy(p, NULL, 0) is undefined */
		memcpy(p, bid, bidlen);
	p += bidlen;
	p = put_varint(p, pl);
	memcpy(p, path, pl);
	p += pl;
	meta_append(out, ext_wrap(out, MFX_EXT_MODULE, body, (size_t)(p - body)));
}

static int scan_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	struct mod m = { .base = info->dlpi_addr, .lo = ~0ull, .hi = 0 };
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;
		if (lo < m.lo)
			m.lo = lo;
		if (lo + ph->p_memsz > m.hi)
			m.hi = lo + ph->p_memsz;
	}
	if (m.hi == 0)
		return 0;
	const char *path = module_path(info);
	m.name_hash = hash_str(path);
	for (unsigned i = 0; i < nmods; i++)
		if (mods[i].base == m.base && mods[i].lo == m.lo && mods[i].name_hash == m.name_hash) {
			mods[i].seen = 1;
			return 0;
		}
	if (nmods >= MAX_MODS)
		return 0;
	const uint8_t *bid = NULL;
	unsigned bidlen = build_id(info, &bid);
	record_module(1, &m, path, bid, bidlen);
	m.seen = 1;
	mods[nmods++] = m;
	return 0;
}

static int count_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	unsigned long long *c = arg;
	if (size < offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
		return 1;
	c[0] = info->dlpi_adds;
	c[1] = info->dlpi_subs;
	return 1;	/* the counters are the same in every entry: stop */
}

void modules_check(void)
{
	if (!rec.hdr)
		return;
	/* trylock: the thread holding it may be waiting for the loader lock
	 * that our caller's caller holds (a malloc inside dlopen). */
	if (__atomic_exchange_n(&mod_lock, 1, __ATOMIC_ACQUIRE))
		return;
	if (!mods && !(mods = agent_mmap_anon(MAX_MODS * sizeof(*mods))) && rec.hdr &&
	    !(rec.hdr->degraded & MFX_DG_NO_MODULES))
		agent_note(MFX_DG_NO_MODULES, ENOMEM, "no module map: its table could not be "
			   "mapped (stacks cannot be symbolized)");
	unsigned long long c[2] = { 0, 0 };
	agent_phdr(count_cb, c);
	if (mods && (c[0] != last_adds || c[1] != last_subs)) {
		for (unsigned i = 0; i < nmods; i++)
			mods[i].seen = 0;
		agent_phdr(scan_cb, NULL);
		for (unsigned i = 0; i < nmods;) {
			if (mods[i].seen) {
				i++;
				continue;
			}
			record_module(2, &mods[i], "", NULL, 0);
			mods[i] = mods[--nmods];
		}
		last_adds = c[0];
		last_subs = c[1];
	}
	spin_unlock(&mod_lock);
}

void agent_modules_changed(void)
{
	modules_check();
}
