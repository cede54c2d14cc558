/*
 * ehframe.c - the unwind rule of one PC (fastunwind.h), compiled from the
 * DWARF call frame information of the module that holds it: the
 * .eh_frame_hdr search table gives the FDE, the CIE's and FDE's CFI
 * programs run up to the PC give the row, and the row becomes a rule the
 * way libunwind 1.6 classifies it (src/x86_64/Gstash_frame.c: CFA = RSP or
 * RBP + offset, return address at CFA-8, RBP unchanged or saved at
 * CFA+offset; return address or RBP undefined = the outermost frame, as
 * unw_step says).  Everything else is FU_FALLBACK: signal frames ('S'),
 * DWARF expressions (PLT stubs, realigned stacks), registers kept in other
 * registers, registers above 16 (libunwind's own state ends there), CFI
 * opcodes libunwind misreads (DW_CFA_val_offset), a PC in no module or
 * outside every FDE (libunwind then guesses from RBP).
 *
 * The module's bytes are read inside dl_iterate_phdr's callback, which
 * holds the loader's lock (dlclose cannot unmap it meanwhile), and every
 * read is bounded by the PT_LOAD segment that holds it.  No allocation.
 */
#include <elf.h>
#include <link.h>
#include <string.h>

#include "preload/fastunwind.h"
#include "preload/internal.h"

/* ---- bounded reads of a module's unwind tables ------------------------------ */

struct rd {
	const uint8_t *p, *end;
	int bad;
};

static inline int rd_has(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		return 0;
	}
	return 1;
}

static uint64_t rd_fixed(struct rd *r, unsigned n)
{
	uint64_t v = 0;
	if (!rd_has(r, n))
		return 0;
	memcpy(&v, r->p, n);	/* little-endian */
	r->p += n;
	return v;
}

static uint64_t rd_uleb(struct rd *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; rd_has(r, 1); shift += 7) {
		uint8_t b = *r->p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
	return 0;
}

static int64_t rd_sleb(struct rd *r)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;
	do {
		if (!rd_has(r, 1))
			return 0;
		b = *r->p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	if (shift < 64 && (b & 0x40))
		v |= ~0ull << shift;
	return (int64_t)v;
}

/* A DW_EH_PE_* encoded pointer.  `data` is the base of datarel values (the
 * .eh_frame_hdr); textrel and funcrel never occur on x86-64 Linux. */
static uint64_t rd_enc(struct rd *r, uint8_t enc, uint64_t data)
{
	uint64_t here = (uint64_t)(uintptr_t)r->p, v;
	if (enc == 0xff)	/* DW_EH_PE_omit */
		return 0;
	switch (enc & 0x0f) {
	case 0x00: v = rd_fixed(r, 8); break;
	case 0x01: v = rd_uleb(r); break;
	case 0x02: v = rd_fixed(r, 2); break;
	case 0x03: v = rd_fixed(r, 4); break;
	case 0x04: v = rd_fixed(r, 8); break;
	case 0x09: v = (uint64_t)rd_sleb(r); break;
	case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_fixed(r, 2); break;
	case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_fixed(r, 4); break;
	case 0x0c: v = rd_fixed(r, 8); break;
	default: r->bad = 1; return 0;
	}
	switch (enc & 0x70) {
	case 0x00: return v;
	case 0x10: return v + here;	/* pcrel */
	case 0x30: return v + data;	/* datarel */
	default: r->bad = 1; return 0;
	}
}

/* ---- running the CFI program up to one PC ------------------------------------ */

enum { RS_SAME, RS_UNDEF, RS_OFF, RS_OTHER };
#define CFA_NONE 0xfe	/* no DW_CFA_def_cfa yet */
#define CFA_EXPR 0xff	/* DW_CFA_def_cfa_expression */
#define DW_RBP 6
#define DW_RSP 7
#define DW_RA  16
#define REMEMBER_MAX 8

struct rrule {
	uint8_t how;
	int64_t off;
};

struct row {
	uint8_t cfa_reg;
	int64_t cfa_off;
	struct rrule rbp, rsp, ra;
	uint32_t other;	/* bit r: register r has a rule libunwind must evaluate */
};

struct cie {
	uint64_t code_align;
	int64_t data_align;
	uint8_t fde_enc;
	int aug_z, signal;
	uint64_t ra_reg;
	const uint8_t *ins, *ins_end;	/* initial instructions */
};

struct cfi {
	struct row cur, init;
	struct row stack[REMEMBER_MAX];
	unsigned depth;
	const struct cie *cie;
	uint64_t loc, target;
};

static struct rrule *reg_of(struct row *w, uint64_t reg)
{
	return reg == DW_RBP ? &w->rbp : reg == DW_RSP ? &w->rsp : reg == DW_RA ? &w->ra : NULL;
}

/* Registers above 16 (vector registers) overrun libunwind's own state: we
 * never claim to know what it does with them. */
static int set_rule(struct cfi *c, uint64_t reg, uint8_t how, int64_t off)
{
	if (reg > 16)
		return -1;
	struct rrule *x = reg_of(&c->cur, reg);
	if (x) {
		x->how = how;
		x->off = off;
	} else if (how == RS_OTHER) {
		c->cur.other |= 1u << reg;
	} else {
		c->cur.other &= ~(1u << reg);
	}
	return 0;
}

static int restore_rule(struct cfi *c, uint64_t reg)
{
	if (reg > 16)
		return -1;
	struct rrule *x = reg_of(&c->cur, reg);
	if (x)
		*x = *reg_of(&c->init, reg);
	else
		c->cur.other = (c->cur.other & ~(1u << reg)) | (c->init.other & (1u << reg));
	return 0;
}

/* Skip a DWARF expression block (its value is libunwind's business). */
static void skip_block(struct rd *r)
{
	uint64_t len = rd_uleb(r);
	if (rd_has(r, len))
		r->p += len;
}

/* One DW_CFA_* instruction with a full opcode byte.  0 done, 1 past the
 * target (stop), -1 not something we follow. */
static int cfi_op(struct cfi *c, struct rd *r, uint8_t op)
{
	const struct cie *ci = c->cie;
	uint64_t reg, adv = 0;
	switch (op) {
	case 0x00: return 0;						/* nop */
	case 0x01: c->loc = rd_enc(r, ci->fde_enc, 0); return c->loc > c->target;	/* set_loc */
	case 0x02: adv = rd_fixed(r, 1); break;				/* advance_loc1 */
	case 0x03: adv = rd_fixed(r, 2); break;				/* advance_loc2 */
	case 0x04: adv = rd_fixed(r, 4); break;				/* advance_loc4 */
	case 0x05: reg = rd_uleb(r);					/* offset_extended */
		return set_rule(c, reg, RS_OFF, (int64_t)rd_uleb(r) * ci->data_align);
	case 0x06: return restore_rule(c, rd_uleb(r));			/* restore_extended */
	case 0x07: return set_rule(c, rd_uleb(r), RS_UNDEF, 0);		/* undefined */
	case 0x08: return set_rule(c, rd_uleb(r), RS_SAME, 0);		/* same_value */
	case 0x09: reg = rd_uleb(r); rd_uleb(r);			/* register */
		return set_rule(c, reg, RS_OTHER, 0);
	case 0x0a:							/* remember_state */
		if (c->depth >= REMEMBER_MAX)
			return -1;
		c->stack[c->depth++] = c->cur;
		return 0;
	case 0x0b:							/* restore_state */
		if (!c->depth)
			return -1;
		c->cur = c->stack[--c->depth];
		return 0;
	case 0x0c: reg = rd_uleb(r);					/* def_cfa */
		c->cur.cfa_reg = reg > 16 ? CFA_EXPR : (uint8_t)reg;
		c->cur.cfa_off = (int64_t)rd_uleb(r);
		return 0;
	case 0x0d: reg = rd_uleb(r);					/* def_cfa_register */
		c->cur.cfa_reg = reg > 16 ? CFA_EXPR : (uint8_t)reg;
		return 0;
	case 0x0e: c->cur.cfa_off = (int64_t)rd_uleb(r); return 0;	/* def_cfa_offset */
	case 0x0f: skip_block(r); c->cur.cfa_reg = CFA_EXPR; return 0;	/* def_cfa_expression */
	case 0x10: case 0x16: reg = rd_uleb(r); skip_block(r);		/* (val_)expression */
		return set_rule(c, reg, RS_OTHER, 0);
	case 0x11: reg = rd_uleb(r);					/* offset_extended_sf */
		return set_rule(c, reg, RS_OFF, rd_sleb(r) * ci->data_align);
	case 0x12: reg = rd_uleb(r);					/* def_cfa_sf */
		c->cur.cfa_reg = reg > 16 ? CFA_EXPR : (uint8_t)reg;
		c->cur.cfa_off = rd_sleb(r) * ci->data_align;
		return 0;
	case 0x13: c->cur.cfa_off = rd_sleb(r) * ci->data_align; return 0;	/* def_cfa_offset_sf */
	case 0x2e: rd_uleb(r); return 0;				/* GNU_args_size */
	case 0x2f: reg = rd_uleb(r);					/* GNU_negative_offset_extended */
		return set_rule(c, reg, RS_OFF, -((int64_t)rd_uleb(r) * ci->data_align));
	default: return -1;	/* val_offset (libunwind misreads it), window_save, user ops */
	}
	c->loc += adv * ci->code_align;
	return c->loc > c->target;
}

/* Run instructions [p, end) until the row covering c->target is complete.
 * 0, or -1 (an instruction we do not follow, or bad bytes). */
static int cfi_run(struct cfi *c, const uint8_t *p, const uint8_t *end)
{
	struct rd r = { p, end, 0 };
	while (r.p < r.end && !r.bad) {
		uint8_t op = *r.p++;
		int st;
		switch (op & 0xc0) {
		case 0x40:	/* advance_loc */
			c->loc += (uint64_t)(op & 0x3f) * c->cie->code_align;
			st = c->loc > c->target;
			break;
		case 0x80:	/* offset */
			st = set_rule(c, op & 0x3f, RS_OFF, (int64_t)rd_uleb(&r) * c->cie->data_align);
			break;
		case 0xc0:	/* restore */
			st = restore_rule(c, op & 0x3f);
			break;
		default:
			st = cfi_op(c, &r, op);
		}
		if (st < 0)
			return -1;
		if (st > 0)
			break;
	}
	return r.bad ? -1 : 0;
}

/* The rule of the finished row, as libunwind's fast trace would classify it
 * (x86_64/Gstash_frame.c: a "standard" frame; unw_step's end of stack). */
static uint64_t row_rule(const struct row *w)
{
	if (w->cfa_reg != DW_RSP && w->cfa_reg != DW_RBP)
		return FU_FALLBACK;
	if (w->cfa_off >= (1 << 28) || w->cfa_off <= -(1 << 28) || w->other)
		return FU_FALLBACK;
	if (w->rsp.how != RS_SAME)
		return FU_FALLBACK;
	if (w->ra.how == RS_UNDEF || w->rbp.how == RS_UNDEF)
		return FU_END;
	if (w->ra.how != RS_OFF || w->ra.off != -8)
		return FU_FALLBACK;
	if (w->rbp.how == RS_SAME)
		return fu_rule_make(w->cfa_reg == DW_RBP, w->cfa_off, 0, 0);
	if (w->rbp.how != RS_OFF || w->rbp.off >= (1 << 14) || w->rbp.off <= -(1 << 14) ||
	    w->rbp.off == -1)
		return FU_FALLBACK;
	return fu_rule_make(w->cfa_reg == DW_RBP, w->cfa_off, 1, w->rbp.off);
}

/* ---- finding and reading a PC's FDE ------------------------------------------- */

/* A module's readable bytes around its unwind tables: the PT_LOAD segment
 * holding them (every read is bounded by it). */
struct seg {
	const uint8_t *lo, *hi;
};

static int seg_of(const struct dl_phdr_info *info, uint64_t addr, struct seg *s)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_R) && addr >= lo &&
		    addr < lo + ph->p_filesz) {
			s->lo = (const uint8_t *)(uintptr_t)lo;
			s->hi = s->lo + ph->p_filesz;
			return 0;
		}
	}
	return -1;
}

/* Parse the CIE at p (bounded by s).  0 or -1. */
static int cie_parse(const uint8_t *p, const struct seg *s, struct cie *ci)
{
	struct rd r = { p, s->hi, 0 };
	if (p < s->lo)
		return -1;
	uint64_t len = rd_fixed(&r, 4);
	if (len == 0 || len == 0xffffffffu || !rd_has(&r, len))
		return -1;
	const uint8_t *end = r.p + len;
	r.end = end;
	if (rd_fixed(&r, 4) != 0)	/* CIE id in .eh_frame */
		return -1;
	uint64_t ver = rd_fixed(&r, 1);
	const char *aug = (const char *)r.p;
	size_t alen = strnlen(aug, (size_t)(end - r.p));
	if (ver != 1 && ver != 3)
		return -1;
	r.p += alen + 1;
	memset(ci, 0, sizeof(*ci));
	ci->code_align = rd_uleb(&r);
	ci->data_align = rd_sleb(&r);
	ci->ra_reg = ver == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
	ci->fde_enc = 0;	/* absptr */
	for (size_t i = 0; i < alen && !r.bad; i++) {
		switch (aug[i]) {
		case 'z': ci->aug_z = 1; rd_uleb(&r); break;
		case 'R': ci->fde_enc = (uint8_t)rd_fixed(&r, 1); break;
		case 'L': rd_fixed(&r, 1); break;
		case 'P': { uint8_t e = (uint8_t)rd_fixed(&r, 1); rd_enc(&r, e & 0x0f, 0); break; }
		case 'S': ci->signal = 1; break;
		default: return -1;	/* 'eh', or something newer than us */
		}
	}
	if (r.bad || (alen && aug[0] != 'z'))
		return -1;
	ci->ins = r.p;
	ci->ins_end = end;
	return 0;
}

/* The rule of pc from the FDE at fde (bounded by s): FU_FALLBACK when
 * anything is unusual, 0 when the FDE does not cover pc. */
static uint64_t fde_rule(const uint8_t *fde, const struct seg *s, uint64_t pc)
{
	struct rd r = { fde, s->hi, 0 };
	struct cie ci;
	if (fde < s->lo)
		return FU_FALLBACK;
	uint64_t len = rd_fixed(&r, 4);
	if (len == 0 || len == 0xffffffffu || !rd_has(&r, len))
		return FU_FALLBACK;
	const uint8_t *end = r.p + len, *idp = r.p;
	r.end = end;
	uint64_t cie_off = rd_fixed(&r, 4);
	if (!cie_off || cie_off > (uint64_t)(idp - s->lo) || cie_parse(idp - cie_off, s, &ci))
		return FU_FALLBACK;
	uint64_t start = rd_enc(&r, ci.fde_enc, 0);
	uint64_t range = rd_enc(&r, ci.fde_enc & 0x0f, 0);
	if (ci.aug_z) {
		uint64_t alen = rd_uleb(&r);
		if (rd_has(&r, alen))
			r.p += alen;
	}
	if (r.bad)
		return FU_FALLBACK;
	if (pc < start || pc - start >= range)
		return 0;
	if (ci.signal || ci.ra_reg != DW_RA)
		return FU_FALLBACK;
	struct cfi c;
	memset(&c, 0, sizeof(c));
	c.cie = &ci;
	c.cur.cfa_reg = CFA_NONE;
	c.target = ~0ull;
	if (cfi_run(&c, ci.ins, ci.ins_end))
		return FU_FALLBACK;
	c.init = c.cur;
	c.depth = 0;
	c.loc = start;
	c.target = pc;
	if (cfi_run(&c, r.p, end))
		return FU_FALLBACK;
	return row_rule(&c.cur);
}

/* Binary search of .eh_frame_hdr's table (DW_EH_PE_datarel|sdata4 pairs,
 * sorted by initial location, as every binutils/lld linker writes it). */
static uint64_t hdr_rule(const struct dl_phdr_info *info, const uint8_t *hdr, uint64_t pc)
{
	struct seg s;
	if (seg_of(info, (uint64_t)(uintptr_t)hdr, &s))
		return FU_FALLBACK;
	struct rd r = { hdr, s.hi, 0 };
	uint64_t ver = rd_fixed(&r, 1);
	uint8_t ptr_enc = (uint8_t)rd_fixed(&r, 1), cnt_enc = (uint8_t)rd_fixed(&r, 1);
	uint8_t tab_enc = (uint8_t)rd_fixed(&r, 1);
	uint64_t base = (uint64_t)(uintptr_t)hdr;
	rd_enc(&r, ptr_enc, base);
	uint64_t n = rd_enc(&r, cnt_enc, base);
	if (r.bad || ver != 1 || tab_enc != 0x3b || n == 0 || !rd_has(&r, n * 8))
		return FU_FALLBACK;
	const int32_t *t = (const int32_t *)(const void *)r.p;
	uint64_t lo = 0, hi = n;	/* last entry with start <= pc */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (base + (uint64_t)(int64_t)t[2 * mid] <= pc)
			lo = mid;
		else
			hi = mid;
	}
	if (base + (uint64_t)(int64_t)t[2 * lo] > pc)
		return FU_FALLBACK;	/* before the first FDE: libunwind guesses */
	const uint8_t *fde = hdr + t[2 * lo + 1];
	if (seg_of(info, (uint64_t)(uintptr_t)fde, &s))
		return FU_FALLBACK;
	uint64_t rule = fde_rule(fde, &s, pc);
	return rule ? rule : FU_FALLBACK;	/* in a gap between FDEs */
}

struct find {
	uint64_t pc, rule;
};

/* dl_iterate_phdr callback: the module holding pc, its rule.  Runs with
 * the loader's lock held, so the module stays mapped while we read it. */
static int find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct find *f = arg;
	const uint8_t *hdr = NULL;
	int in = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && f->pc >= lo && f->pc < lo + ph->p_memsz)
			in = 1;
		else if (ph->p_type == PT_GNU_EH_FRAME)
			hdr = (const uint8_t *)(uintptr_t)lo;
	}
	if (!in)
		return 0;
	f->rule = hdr ? hdr_rule(info, hdr, f->pc) : FU_FALLBACK;
	return 1;
}


uint64_t eh_rule_of(uint64_t pc)
{
	struct find f = { pc, FU_FALLBACK };
	agent_phdr(find_cb, &f);
	return f.rule;
}
