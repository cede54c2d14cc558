/*
 * fastunwind.c - the agent's fast unwinder: a call stack for the price of a
 * hash probe and two loads per frame, identical to what libunwind's
 * unw_backtrace() returns, or the answer "ask libunwind" for that stack.
 *
 * Each frame is a return address `ra`; its *rule* (fastunwind.h) says how to
 * get from the frame's registers to its caller's, and is the CFI row of
 * `ra - 1` (the call instruction: a call can be the last instruction of a
 * function), compiled once by ehframe.c.  Rules live in a lock-free
 * open-addressing table keyed by (PC, generation) in mmap'ed memory; a
 * frame costs one probe (a multiply, one or two loads of a hot line) and
 * the loads of the return address and, when saved, RBP.  Nothing here
 * allocates, takes a lock, or uses TLS.
 *
 * Exactly libunwind's answer: the walk mirrors libunwind 1.6's own cached
 * trace (src/x86_64/Gtrace.c, tdep_trace): the same frames are "standard",
 * the same end (return address or RBP undefined: _start, clone3), the same
 * cut-off (a return address below 0x4000), the same depth limit.  Any frame
 * that is not, and any implausible one (a CFA not above RSP, or 16 MiB
 * away), sends the whole stack to libunwind.  MFX_UNWIND_CHECK=FILE
 * unwinds every stack both ways and appends the counts and the mismatches
 * to FILE when the process exits (test t181).
 *
 * Stale rules: the table is keyed by the generation `fu_gen` too.  dlclose
 * (hooked: LD_PRELOAD in launch mode, a GOT slot in attach mode) bumps it
 * once the library is gone; a walk that starts while a dlclose is in flight,
 * or sees `fu_gen` move before it ends, asks libunwind, so a library mapped
 * where an unloaded one was never meets the old one's rules.  So does every
 * walk once `fu_gen` has used its 16 bits.  A dlclose the hooks cannot see
 * (glibc's own, of iconv modules) is caught by the loader's dlpi_subs
 * counter, read at most once a millisecond (fu_loader_check).
 */
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload/internal.h"
#include "preload/fastunwind.h"
#include "preload/record.h"

/* ---- rules and their table -------------------------------------------------- */

#define FU_BITS   17			/* 128K rules, 2 MiB of address space */
#define FU_SIZE   (1u << FU_BITS)
#define FU_LIMIT  (FU_SIZE / 4 * 3)	/* stop caching past 75% load */
#define FU_PROBE  32
#define FU_BUSY   (1ull << 47)		/* key bit: being written (user PCs < 2^47) */
#define FU_GEN_MAX 0xffffu		/* gen lives in the key's top 16 bits */

struct fu_ent {
	uint64_t key;	/* pc | gen << 48, published last; FU_BUSY while written */
	uint64_t val;
};

static struct fu_ent *tab;
static uint32_t tab_used;
static volatile uint32_t fu_gen;	/* bumped after every dlclose */
static volatile int fu_closing;		/* dlcloses in flight */
static int fu_off;			/* MFX_FAST_UNWIND=0 */

/* ---- the table ---------------------------------------------------------------- */

static inline uint64_t slot_of(uint64_t pc)
{
	return (pc * 0x9E3779B97F4A7C15ull) >> (64 - FU_BITS);
}

/* Compile pc's rule (a miss) and publish it: claim an empty slot with a
 * CAS of its key to pc|BUSY, write the rule, then release-store the key.
 * Readers never see a key without its rule; a slot is never reused (the
 * table is only wiped with the process's address space: fork keeps it). */
static __attribute__((noinline)) uint64_t rule_miss(uint64_t pc, uint64_t key)
{
	uint64_t rule = eh_rule_of(pc);
	if (__atomic_load_n(&tab_used, __ATOMIC_RELAXED) >= FU_LIMIT)
		return rule;
	uint64_t i = slot_of(pc);
	for (unsigned probe = 0; probe < FU_PROBE; probe++, i = (i + 1) & (FU_SIZE - 1)) {
		struct fu_ent *e = &tab[i];
		uint64_t k = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
		if ((k & ~FU_BUSY) == key)
			break;	/* someone else has it */
		if (k)
			continue;
		if (!__atomic_compare_exchange_n(&e->key, &k, key | FU_BUSY, 0, __ATOMIC_ACQUIRE,
						 __ATOMIC_RELAXED))
			continue;
		e->val = rule;
		__atomic_store_n(&e->key, key, __ATOMIC_RELEASE);
		__atomic_fetch_add(&tab_used, 1, __ATOMIC_RELAXED);
		break;
	}
	return rule;
}

static inline uint64_t rule_of(uint64_t pc, uint64_t genkey)
{
	uint64_t key = pc | genkey, i = slot_of(pc);
	for (unsigned probe = 0; probe < FU_PROBE; probe++, i = (i + 1) & (FU_SIZE - 1)) {
		uint64_t k = __atomic_load_n(&tab[i].key, __ATOMIC_ACQUIRE);
		if (likely(k == key))
			return tab[i].val;
		if (!k)
			break;
	}
	return rule_miss(pc, key);
}

/* ---- the walk ------------------------------------------------------------------ */

/*
 * fu_backtrace(buf, max, same) is this stub: it hands its caller's registers
 * (the return address, the stack pointer after the return, RBP) to
 * fu_walk, which returns for them.  So buf[0] is the return address into
 * the caller, like unw_backtrace's.  Written in assembly so that no
 * compiler choice (frame pointer or not) changes what the walk starts from.
 */
__asm__(".text\n"
	".globl fu_backtrace\n"
	".hidden fu_backtrace\n"
	".type fu_backtrace, @function\n"
	".p2align 4\n"
	"fu_backtrace:\n"
	"\t.cfi_startproc\n"
	"\tmovq %rdx, %r9\n"
	"\tmovq (%rsp), %rdx\n"
	"\tleaq 8(%rsp), %rcx\n"
	"\tmovq %rbp, %r8\n"
	"\tjmp fu_walk\n"
	"\t.cfi_endproc\n"
	".size fu_backtrace, .-fu_backtrace\n");

/*
 * The thread's memo: the rules its last walks met, by depth.  A thread's
 * stacks share most frames with its previous ones (the same callers, the
 * same loop), so frame k usually has the return address it had last time:
 * then its rule comes from the memo, whose load does not wait for the
 * return address (the table probe does: hash, then load).  Each memo entry
 * is a (return address, rule) pair of the memo's generation, right for any
 * depth; only its own thread reads or writes it.  Memos come from mmap'ed
 * chunks and go back to a free list at thread exit (a pthread key).
 */
#define MEMO_FRAMES (MFX_MAX_DEPTH + 8)
#define MEMO_CHUNK 64
#define MEMO_DEAD ((struct fu_memo *)1)	/* after the thread's key destructor */

struct fu_memo {
	uint32_t gen;
	/* the last walk: its depth, its outermost frame, whether it ended
	 * (not handed to libunwind) */
	uint32_t last_n, last_ok;
	uint64_t last_tail;
	struct fu_memo *next_free;
	struct {
		uint64_t rip, rule;
	} f[MEMO_FRAMES];
};

static __thread struct fu_memo *tls_memo __attribute__((tls_model("initial-exec")));
static struct fu_memo *memo_free, *memo_chunk;
static unsigned memo_chunk_used = MEMO_CHUNK;
static volatile int memo_lock;
static pthread_key_t memo_key;
static int memo_key_ok;

static void memo_release(void *arg)
{
	struct fu_memo *m = arg;
	tls_memo = MEMO_DEAD;
	spin_lock(&memo_lock);
	m->next_free = memo_free;
	memo_free = m;
	spin_unlock(&memo_lock);
}

/* A memo for this thread, or NULL (no memory: the walk probes the table). */
static __attribute__((noinline)) struct fu_memo *memo_get(void)
{
	struct fu_memo *m = NULL;
	if (tls_memo == MEMO_DEAD || !memo_key_ok)
		return NULL;
	spin_lock(&memo_lock);
	if (memo_free) {
		m = memo_free;
		memo_free = m->next_free;
	} else {
		if (memo_chunk_used == MEMO_CHUNK) {
			memo_chunk = agent_mmap_anon(MEMO_CHUNK * sizeof(struct fu_memo));
			memo_chunk_used = 0;
		}
		if (memo_chunk)
			m = &memo_chunk[memo_chunk_used++];
		else
			memo_chunk_used = MEMO_CHUNK;
	}
	spin_unlock(&memo_lock);
	if (m) {
		m->gen = ~0u;	/* cleared by the walk */
		/* glibc callocs for keys past the first 32: the hook's
		 * tls_busy sends that call to the real allocator */
		pthread_setspecific(memo_key, m);
		tls_memo = m;
	}
	return m;
}

static inline uint64_t memo_rule(struct fu_memo *m, unsigned k, uint64_t rip, uint64_t genkey,
				 int *miss)
{
	if (likely(m != NULL)) {
		if (likely(m->f[k].rip == rip))
			return m->f[k].rule;
		*miss = 1;
		uint64_t r = rule_of(rip - 1, genkey);
		m->f[k].rip = rip;
		m->f[k].rule = r;
		return r;
	}
	*miss = 1;
	return rule_of(rip - 1, genkey);
}

/* After a walk of n frames (-1: handed to libunwind): 1 when it is the
 * thread's previous walk again, frame for frame (every frame met the memo
 * at its depth, which holds exactly the previous walk's first frames). */
static int memo_close(struct fu_memo *m, int n, int miss, uint64_t tail)
{
	if (!m)
		return 0;
	int same = n > 0 && !miss && m->last_ok && (uint32_t)n == m->last_n && tail == m->last_tail;
	m->last_ok = n > 0;
	m->last_n = n > 0 ? (uint32_t)n : 0;
	m->last_tail = tail;
	return same;
}

static int walk_fail(struct fu_memo *m)
{
	memo_close(m, -1, 1, 0);
	return -1;
}

int fu_walk(void **buf, int max, uint64_t rip, uint64_t rsp, uint64_t rbp, int *same)
	__attribute__((used));

int fu_walk(void **buf, int max, uint64_t rip, uint64_t rsp, uint64_t rbp, int *same)
{
	*same = 0;
	uint32_t gen = __atomic_load_n(&fu_gen, __ATOMIC_ACQUIRE);
	if (unlikely(!tab || fu_off || gen >= FU_GEN_MAX ||
		     __atomic_load_n(&fu_closing, __ATOMIC_ACQUIRE)))
		return -1;
	struct fu_memo *m = tls_memo;
	if (unlikely(m <= MEMO_DEAD))
		m = memo_get();
	if (m && unlikely(m->gen != gen)) {
		/* rules of an older generation; a return address is never 0 */
		memset(m->f, 0, sizeof(m->f));
		m->last_ok = 0;
		m->gen = gen;
	}
	uint64_t genkey = (uint64_t)gen << 48;
	int n = 0, miss = 0;
	if (max <= 0)
		return 0;
	if (unlikely(rip - 1 >= FU_BUSY))
		return walk_fail(m);
	buf[n++] = (void *)rip;
	while (n < max) {
		uint64_t r = memo_rule(m, (unsigned)n - 1, rip, genkey, &miss);
		if (unlikely((r & 3) != FU_STD)) {
			if ((r & 3) == FU_END)
				break;
			return walk_fail(m);
		}
		uint64_t cfa = ((r & FU_CFA_BP) ? rbp : rsp) + (uint64_t)(int64_t)(int32_t)(r >> 32);
		/* libunwind would read whatever the rule says; we only read a
		 * plausible frame of the same stack, and ask libunwind otherwise
		 * (an RSP + small positive multiple of 8 always is one). */
		if (!(r & FU_SP_SAFE) && unlikely(cfa <= rsp || cfa - rsp > FU_MAX_FRAME || (cfa & 7)))
			return walk_fail(m);
		rip = *(const uint64_t *)(cfa - 8);
		if (r & FU_BP_SAVED)
			rbp = *(const uint64_t *)(cfa + (uint64_t)(int64_t)(int16_t)(r >> 16));
		rsp = cfa;
		/* below 0x4000: the end, as libunwind says; not a user PC: ask it */
		if (unlikely(rip - 0x4000 >= FU_BUSY - 0x4000)) {
			if (rip < 0x4000)
				break;
			return walk_fail(m);
		}
		buf[n++] = (void *)rip;
	}
	/* a dlclose began or ended meanwhile: a rule may have been stale */
	if (unlikely(__atomic_load_n(&fu_gen, __ATOMIC_ACQUIRE) != gen ||
		     __atomic_load_n(&fu_closing, __ATOMIC_ACQUIRE)))
		return walk_fail(m);
	*same = memo_close(m, n, miss, (uint64_t)buf[n - 1]);
	return n;
}

/* ---- modules that go away ------------------------------------------------------ */

void fu_dlclose_begin(void)
{
	__atomic_fetch_add(&fu_closing, 1, __ATOMIC_SEQ_CST);
}

void fu_dlclose_end(void)
{
	__atomic_fetch_add(&fu_gen, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_sub(&fu_closing, 1, __ATOMIC_SEQ_CST);
}

static int subs_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
		*(unsigned long long *)arg = info->dlpi_subs;
	return 1;
}

/* glibc's own dlclose (iconv modules, NSS) bypasses the hooks: notice it by
 * the loader's unload counter, at most once a millisecond (dl_iterate_phdr
 * takes the loader's lock, a recursive one: safe from inside dlopen). */
int fu_loader_check(void)
{
	static uint64_t last_tsc;
	static unsigned long long last_subs = ~0ull;
	uint64_t now = agent_tsc();
	if (now - __atomic_load_n(&last_tsc, __ATOMIC_RELAXED) < (1ull << 21))
		return 0;
	__atomic_store_n(&last_tsc, now, __ATOMIC_RELAXED);
	unsigned long long subs = 0;
	agent_phdr(subs_cb, &subs);
	unsigned long long was = __atomic_exchange_n(&last_subs, subs, __ATOMIC_ACQ_REL);
	if (was == subs || was == ~0ull)
		return 0;
	__atomic_fetch_add(&fu_gen, 1, __ATOMIC_SEQ_CST);
	return 1;
}

int fu_modules_gone(void)
{
	return __atomic_load_n(&fu_gen, __ATOMIC_RELAXED) != 0;
}

static uint64_t ck_stacks, ck_fast, ck_fallback, ck_mismatch;

/* fork child: only the forking thread runs (not inside dlclose); a new
 * process counts its own stacks. */
void fu_after_fork(void)
{
	fu_closing = 0;
	/* the memo lock may have been held by a thread that is gone: the free
	 * list it guarded is dropped (a few memos leak) */
	memo_lock = 0;
	memo_free = NULL;
	ck_stacks = ck_fast = ck_fallback = ck_mismatch = 0;
}

int fu_init(void)
{
	if (tab)
		return 0;
	const char *e = getenv("MFX_FAST_UNWIND");
	fu_off = e && !strcmp(e, "0");
	if (!memo_key_ok && pthread_key_create(&memo_key, memo_release) == 0)
		memo_key_ok = 1;
	tab = agent_mmap_anon(FU_SIZE * sizeof(struct fu_ent));
	return tab ? 0 : -1;
}

/* ---- MFX_UNWIND_CHECK=FILE: both unwinders, compared ---------------------------- */

#define CK_KEEP 8	/* mismatching stacks kept for the report */
#define CK_FRAMES 24
int fu_check_on;
static char ck_path[512];
static struct {
	int na, nb, fell;
	uint64_t a[CK_FRAMES], b[CK_FRAMES];
} ck_keep[CK_KEEP];

void fu_check_init(void)
{
	const char *p = getenv("MFX_UNWIND_CHECK");
	if (p && *p && strlen(p) < sizeof(ck_path)) {
		strcpy(ck_path, p);
		fu_check_on = 1;
	}
}

/* One stack: the frames a[0..na) we would record (from the fast walk, or
 * from the fallback when `fell`) against the reference's b[0..nb). */
void fu_check_record(const uint64_t *a, int na, const uint64_t *b, int nb, int fell)
{
	__atomic_fetch_add(&ck_stacks, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(fell ? &ck_fallback : &ck_fast, 1, __ATOMIC_RELAXED);
	if (na == nb && !memcmp(a, b, (size_t)na * 8))
		return;
	uint64_t k = __atomic_fetch_add(&ck_mismatch, 1, __ATOMIC_RELAXED);
	if (k >= CK_KEEP)
		return;
	ck_keep[k].fell = fell;
	ck_keep[k].na = na;
	ck_keep[k].nb = nb;
	memcpy(ck_keep[k].a, a, (size_t)(na < CK_FRAMES ? na : CK_FRAMES) * 8);
	if (nb > 0)
		memcpy(ck_keep[k].b, b, (size_t)(nb < CK_FRAMES ? nb : CK_FRAMES) * 8);
}

static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *put_num(char *p, uint64_t v, unsigned base)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *put_frames(char *p, const char *name, const uint64_t *f, int n)
{
	p = put_str(p, name);
	for (int i = 0; i < n && i < CK_FRAMES; i++) {
		p = put_str(p, i ? " 0x" : "0x");
		p = put_num(p, f[i], 16);
	}
	return put_str(p, "]");
}

/* Append "unwind-check pid=.. stacks=.. fast=.. fallback=.. mismatches=.."
 * and the kept mismatches to the file (O_APPEND: one write per line). */
void fu_check_report(void)
{
	static char line[2048];
	if (!fu_check_on || !ck_stacks)
		return;
	int fd = open(ck_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	char *p = put_str(line, "unwind-check pid=");
	p = put_num(p, (uint64_t)getpid(), 10);
	p = put_num(put_str(p, " stacks="), ck_stacks, 10);
	p = put_num(put_str(p, " fast="), ck_fast, 10);
	p = put_num(put_str(p, " fallback="), ck_fallback, 10);
	p = put_num(put_str(p, " mismatches="), ck_mismatch, 10);
	*p++ = '\n';
	if (write(fd, line, (size_t)(p - line)) < 0)
		goto out;
	for (uint64_t k = 0; k < ck_mismatch && k < CK_KEEP; k++) {
		p = put_str(line, ck_keep[k].fell ? "mismatch fallback " : "mismatch ");
		p = put_frames(p, "ours=[", ck_keep[k].a, ck_keep[k].na);
		p = put_frames(p, " libunwind=[", ck_keep[k].b, ck_keep[k].nb);
		*p++ = '\n';
		if (write(fd, line, (size_t)(p - line)) < 0)
			break;
	}
out:
	close(fd);
}

__attribute__((destructor)) static void fu_exit(void)
{
	fu_check_report();
}
