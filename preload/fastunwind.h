/*
 * fastunwind.h - the agent's fast unwinder (fastunwind.c) and the compiler
 * of its per-PC rules from .eh_frame (ehframe.c).
 *
 * A rule says how to go from a frame to its caller's on x86-64, in 64 bits
 * (never 0, which means "no rule"):
 *   bits 0-1   type: FU_STD, FU_END (the outermost frame) or FU_FALLBACK
 *              (libunwind must unwind this stack)
 *   bit 2      the CFA is RBP + offset (else RSP + offset)
 *   bit 3      RBP is saved at CFA + its offset (else unchanged)
 *   bit 4      the CFA is RSP + a multiple of 8 in (0, 16 MiB): always a
 *              plausible frame, no check needed
 *   bits 16-31 RBP's offset from the CFA (int16)
 *   bits 32-63 the CFA's offset (int32)
 * The return address is always at CFA - 8 and the caller's RSP is the CFA.
 */
#ifndef MFX_PRELOAD_FASTUNWIND_H
#define MFX_PRELOAD_FASTUNWIND_H

#include <stdint.h>

enum { FU_STD = 1, FU_END = 2, FU_FALLBACK = 3 };
#define FU_CFA_BP   4u
#define FU_BP_SAVED 8u
#define FU_SP_SAFE  16u
#define FU_MAX_FRAME (1u << 24)	/* a plausible frame: CFA - SP below 16 MiB */

static inline uint64_t fu_rule_make(int bp, int64_t cfa_off, int saved, int64_t bp_off)
{
	int safe = !bp && cfa_off > 0 && cfa_off < FU_MAX_FRAME && !(cfa_off & 7);
	return FU_STD | (bp ? FU_CFA_BP : 0) | (saved ? FU_BP_SAVED : 0) | (safe ? FU_SP_SAFE : 0) |
	       (uint64_t)(uint16_t)(int16_t)bp_off << 16 | (uint64_t)(uint32_t)(int32_t)cfa_off << 32;
}

/* ehframe.c: the rule of the instruction at pc (a return address - 1),
 * from the CFI of the module holding it; FU_FALLBACK when it has none we
 * follow.  Calls dl_iterate_phdr (the loader's lock; no allocation). */
uint64_t eh_rule_of(uint64_t pc);

/* fastunwind.c */
int fu_init(void);
/* The stack above the caller: buf[0] = the return address into the
 * caller, then its callers', at most max; as unw_backtrace(buf, max) would
 * fill it.  -1: ask libunwind (a frame the rules cannot express).  *same
 * = 1 when these are exactly the frames of the thread's previous call. */
int fu_backtrace(void **buf, int max, int *same);
/* Around the real dlclose: no fast walk while one runs, none with rules
 * from before it once it returned. */
void fu_dlclose_begin(void);
void fu_dlclose_end(void);
/* At most once a millisecond: notice a dlclose the hooks did not see
 * (1: one happened). */
int fu_loader_check(void);
/* 1 once any library was unloaded while we watched. */
int fu_modules_gone(void);
void fu_after_fork(void);
/* MFX_UNWIND_CHECK=FILE (launch): every stack unwound both ways. */
extern int fu_check_on;
void fu_check_init(void);
void fu_check_record(const uint64_t *ours, int nours, const uint64_t *ref, int nref, int fell);
void fu_check_report(void);

#endif
