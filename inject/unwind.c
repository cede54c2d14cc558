/*
 * unwind.c - walk a held thread's frames quickly (unwind.h), for the safe
 * point test in ptrace.c.
 *
 * libunwind-ptrace's own accessors are slow for this: every memory word is a
 * PTRACE_PEEKDATA, and every frame in another module than the last re-reads
 * /proc/PID/maps and maps that module's file to find its .eh_frame_hdr
 * (2 ms for a small program, 17 ms for bash).  Here the costly part happens
 * before any thread is stopped: each module's .eh_frame_hdr search table is
 * located in the target's memory (ELF header -> PT_GNU_EH_FRAME), once.
 * During the hold libunwind's DWARF engine is kept, fed by:
 *   find_proc_info  our table for the module holding ip, searched with
 *                   dwarf_search_unwind_table (remote table format); a
 *                   module we could not prepare falls back to _UPT's lookup
 *   access_mem      the thread's stack (read once by the caller, for its
 *                   stack scan), and a small page cache for the unwind tables
 *   registers       _UPT's (PTRACE_PEEKUSER)
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <libunwind-ptrace.h>

#include "common/procfs.h"
#include "inject/inject.h"
#include "inject/unwind.h"

/* Exported by libunwind-x86_64 (the remote-capable build; libunwind.so's
 * _ULx86_64_ twin is local-only) but not declared in its headers. */
extern int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t as, unw_word_t ip,
					       unw_dyn_info_t *di, unw_proc_info_t *pi,
					       int need_unwind_info, void *arg);

struct table {
	uint64_t lo, hi;	/* the module's code */
	unw_dyn_info_t di;
};

#define NPAGES 256	/* unwind table pages, kept from before the hold into it */

struct inject_unwind {
	pid_t pid;
	struct table *t;
	size_t n;
	unw_addr_space_t as;	/* created before the hold (libunwind's first-use set-up) */
	/* a walk before the hold (a thread blocked in a system call): only
	 * its rip and rsp are known, from /proc/PID/task/TID/syscall */
	int pre;
	uint64_t pre_rip, pre_rsp;
	/* during a walk */
	const uint8_t *stack;
	uint64_t stack_lo, stack_hi;
	uint64_t page_addr[NPAGES];
	uint8_t page[NPAGES][4096];
	void *upt;
};


static unw_accessors_t accessors;
static int walk(struct inject_unwind *u, pid_t tid, uint64_t sp, uint64_t stack_hi,
		const uint8_t *stack, int (*visit)(uint64_t ip, int n, void *arg), void *arg,
		int *nframes);

/* Decode a 4-byte eh_frame_hdr field: 1 = done. */
static int field4(uint8_t enc, uint64_t at, const uint8_t *p, uint64_t *v)
{
	int32_t s;
	uint32_t u;
	memcpy(&s, p, 4);
	memcpy(&u, p, 4);
	switch (enc) {
	case 0x03: *v = u; return 1;			/* udata4 */
	case 0x0b: *v = (uint64_t)(int64_t)s; return 1;	/* sdata4 */
	case 0x1b: *v = at + (uint64_t)(int64_t)s; return 1;	/* pcrel sdata4 */
	default: return 0;
	}
}

/* One module: its ELF header at `start` (the mapping of file offset 0). */
static void add_module(struct inject_unwind *u, uint64_t start, uint64_t text_lo,
		       uint64_t text_hi, const char *name)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph[64];
	if (inject_peek(u->pid, start, &eh, sizeof(eh)) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || !eh.e_phnum || eh.e_phnum > 64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    inject_peek(u->pid, start + eh.e_phoff, ph, eh.e_phnum * sizeof(Elf64_Phdr)))
		return;
	uint64_t first_load = UINT64_MAX, ehf = 0;
	for (int i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first_load)
			first_load = ph[i].p_vaddr & ~0xfffull;
		if (ph[i].p_type == PT_GNU_EH_FRAME)
			ehf = ph[i].p_vaddr;
	}
	if (!ehf || first_load == UINT64_MAX)
		return;
	uint64_t bias = start - first_load, hdr = bias + ehf, ptr, count;
	uint8_t h[12];
	if (inject_peek(u->pid, hdr, h, sizeof(h)) || h[0] != 1 || h[3] != 0x3b ||	/* datarel sdata4 */
	    !field4(h[1], hdr + 4, h + 4, &ptr) || !field4(h[2], hdr + 8, h + 8, &count) || !count)
		return;
	struct table *nt = realloc(u->t, (u->n + 1) * sizeof(*nt));
	if (!nt)
		return;
	u->t = nt;
	struct table *t = &u->t[u->n++];
	memset(t, 0, sizeof(*t));
	t->lo = text_lo;
	t->hi = text_hi;
	t->di.start_ip = text_lo;
	t->di.end_ip = text_hi;
	t->di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
	t->di.u.rti.name_ptr = 0;
	t->di.u.rti.segbase = hdr;
	t->di.u.rti.table_data = hdr + 12;
	t->di.u.rti.table_len = count * 8 / sizeof(unw_word_t);	/* (ip, fde) pairs of 4 bytes */
	(void)name;
}

static int no_reg(unw_addr_space_t as, unw_regnum_t r, unw_word_t *v, int w, void *arg)
{
	(void)as, (void)r, (void)v, (void)w, (void)arg;
	return -UNW_EUNSPEC;
}

static int no_mem(unw_addr_space_t as, unw_word_t a, unw_word_t *v, int w, void *arg)
{
	(void)as, (void)a, (void)v, (void)w, (void)arg;
	return -UNW_EUNSPEC;
}

/* libunwind sets itself up on the first unw_init_remote (a quarter of a
 * millisecond: its tables, a pipe, its memory pools).  Done here, on a
 * cursor that fails at once, not in the hold. */
static void warm_up(void)
{
	static int done;
	if (done++)
		return;
	unw_accessors_t a = { .access_mem = no_mem, .access_reg = no_reg };
	unw_addr_space_t as = unw_create_addr_space(&a, 0);
	unw_cursor_t c;
	if (as) {
		unw_init_remote(&c, as, NULL);
		unw_destroy_addr_space(as);
	}
}

int inject_unwind_prepare(pid_t pid, struct inject_unwind **out)
{
	*out = NULL;
	/* its page cache is written during the hold: the pages are ours now */
	struct inject_unwind *u = mmap(NULL, sizeof(*u), PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (u == MAP_FAILED)
		return -ENOMEM;
	u->pid = pid;
	u->as = unw_create_addr_space(&accessors, 0);
	warm_up();
	char cur[4096] = "";
	struct maps_iter it;
	struct maps_entry m;
	int err = procfs_maps_open(pid, &it);
	if (err) {
		inject_unwind_free(u);
		return err;
	}
	uint64_t start = 0, tlo = 0, thi = 0;
	while (procfs_maps_next(&it, &m) > 0) {
		uint64_t a = m.lo, b = m.hi, off = m.offset;
		const char *nm = m.path, *perms = m.perms;
		if (!*nm || (nm[0] == '[' && strcmp(nm, "[vdso]")))
			continue;	/* anonymous, heap, stack, vvar */
		if (strcmp(nm, cur)) {	/* a new module */
			if (start && thi)
				add_module(u, start, tlo, thi, cur);
			snprintf(cur, sizeof(cur), "%s", nm);
			start = off == 0 ? a : 0;
			tlo = thi = 0;
		}
		if (perms[2] == 'x') {
			if (!tlo)
				tlo = a;
			thi = b;
		}
	}
	if (start && thi)
		add_module(u, start, tlo, thi, cur);
	procfs_maps_close(&it);
	*out = u;
	return 0;
}

void inject_unwind_free(struct inject_unwind *u)
{
	if (!u)
		return;
	if (u->as)
		unw_destroy_addr_space(u->as);
	free(u->t);
	munmap(u, sizeof(*u));
}

/* ---- the accessors ------------------------------------------------------------------ */

static struct inject_unwind *cur;	/* the walk in progress (mfx is single-threaded here) */

static int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t *pi, int need,
			  void *arg)
{
	for (size_t i = 0; i < cur->n; i++)
		if (ip >= cur->t[i].lo && ip < cur->t[i].hi)
			return _Ux86_64_dwarf_search_unwind_table(as, ip, &cur->t[i].di, pi, need, arg);
	return _UPT_find_proc_info(as, ip, pi, need, arg);
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
	if (write)
		return _UPT_access_mem(as, addr, val, write, arg);
	if (addr >= cur->stack_lo && addr + 8 <= cur->stack_hi) {
		memcpy(val, cur->stack + (addr - cur->stack_lo), 8);
		return 0;
	}
	uint64_t pg = addr & ~0xfffull, off = addr & 0xfff;
	if (off > 4096 - 8)
		return _UPT_access_mem(as, addr, val, write, arg);	/* straddles two pages */
	unsigned k = (unsigned)((pg >> 12) % NPAGES);
	if (cur->page_addr[k] != pg + 1) {
		if (inject_peek(cur->pid, pg, cur->page[k], 4096))
			return _UPT_access_mem(as, addr, val, write, arg);
		cur->page_addr[k] = pg + 1;	/* +1: address 0 is never a valid tag */
	}
	memcpy(val, cur->page[k] + off, 8);
	return 0;
}

static int access_reg(unw_addr_space_t as, unw_regnum_t reg, unw_word_t *val, int write,
		      void *arg)
{
	if (!cur->pre)
		return _UPT_access_reg(as, reg, val, write, arg);
	if (write)
		return -UNW_EREADONLYREG;
	if (reg == UNW_X86_64_RIP)
		*val = cur->pre_rip;
	else if (reg == UNW_X86_64_RSP)
		*val = cur->pre_rsp;
	else
		return -UNW_EBADREG;	/* the walk needs more than we know: it fails */
	return 0;
}

static int access_fpreg(unw_addr_space_t as, unw_regnum_t reg, unw_fpreg_t *val, int write,
			void *arg)
{
	if (cur->pre)
		return -UNW_EBADREG;
	return _UPT_access_fpreg(as, reg, val, write, arg);
}

static unw_accessors_t accessors = {
	.find_proc_info = find_proc_info,
	.put_unwind_info = _UPT_put_unwind_info,
	.get_dyn_info_list_addr = _UPT_get_dyn_info_list_addr,
	.access_mem = access_mem,
	.access_reg = access_reg,
	.access_fpreg = access_fpreg,
	.resume = _UPT_resume,
	.get_proc_name = _UPT_get_proc_name,
};

int inject_unwind_walk(struct inject_unwind *u, pid_t tid, uint64_t sp, uint64_t stack_hi,
		       const uint8_t *stack, int (*visit)(uint64_t ip, int n, void *arg), void *arg,
		       int *nframes)
{
	u->pre = 0;
	return walk(u, tid, sp, stack_hi, stack, visit, arg, nframes);
}

/* Before the hold: every word of a copy of the stack that points into a
 * module's code is looked up in that module's unwind table, as the walk
 * would, so the table and FDE pages the walk needs are in the page cache
 * already (they never change: read-only file mappings).  In a big program
 * that is most of a walk's time (31 pages, 0.5 ms, for a PostgreSQL
 * backend's 12 frames). */
void inject_unwind_warm(struct inject_unwind *u, pid_t tid, const uint8_t *stack, size_t len)
{
	const uint64_t *w = (const uint64_t *)stack;
	void *ui = u->as ? _UPT_create(tid) : NULL;
	if (!ui)
		return;
	cur = u;
	for (size_t i = 0; i < len / 8; i++)
		for (size_t k = 0; k < u->n; k++)
			if (w[i] > u->t[k].lo && w[i] <= u->t[k].hi) {
				unw_proc_info_t pi;
				memset(&pi, 0, sizeof(pi));
				/* (without the unwind info: nothing to free, same pages) */
				_Ux86_64_dwarf_search_unwind_table(u->as, w[i] - 1, &u->t[k].di, &pi, 0,
								   ui);
				break;
			}
	cur = NULL;
	_UPT_destroy(ui);
}

int inject_unwind_walk_blocked(struct inject_unwind *u, pid_t tid, uint64_t pc, uint64_t sp,
			       uint64_t stack_hi, const uint8_t *stack,
			       int (*visit)(uint64_t ip, int n, void *arg), void *arg, int *nframes)
{
	u->pre = 1;
	u->pre_rip = pc;
	u->pre_rsp = sp;
	int r = walk(u, tid, sp, stack_hi, stack, visit, arg, nframes);
	u->pre = 0;
	return r;
}

static int walk(struct inject_unwind *u, pid_t tid, uint64_t sp, uint64_t stack_hi,
		const uint8_t *stack, int (*visit)(uint64_t ip, int n, void *arg), void *arg,
		int *nframes)
{
	int n = 0, step = 1, stop = 0;
	*nframes = 0;
	u->stack = stack;	/* [sp & ~7, stack_hi), read by the caller; or none */
	u->stack_lo = stack ? sp & ~7ull : 0;
	u->stack_hi = stack ? stack_hi : 0;
	unw_addr_space_t as = u->as;
	void *ui = as ? _UPT_create(tid) : NULL;
	unw_cursor_t c;
	cur = u;
	if (ui && unw_init_remote(&c, as, ui) == 0) {
		do {
			unw_word_t ip = 0;
			if (unw_get_reg(&c, UNW_REG_IP, &ip) < 0)
				break;
			stop = visit(ip, n++, arg);
		} while (!stop && n < 256 && (step = unw_step(&c)) > 0);
	}
	cur = NULL;
	if (ui)
		_UPT_destroy(ui);
	u->stack = NULL;
	*nframes = n;
	return stop ? 1 : step < 0 ? step : 0;
}
