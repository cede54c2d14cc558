/*
 * sites.c - unit tests of site naming and folding (analyzer/sites.c): which
 * frame names a site (the allocator, the C and C++ libraries, the C++
 * headers and known wrappers skipped; --wrapper adds more; in a stripped
 * module, the first named frame of the program's own), stacks merged by
 * that frame (recursion, other callers), and the callers' tree with bytes
 * and counts.  Frames are built by hand: no trace, no symbolizer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "analyzer/sites.h"
#include "tests/unit/check.h"


static const char APP[] = "/usr/bin/app", LIBC[] = "/lib/x86_64-linux-gnu/libc.so.6",
		  CXX[] = "/lib/x86_64-linux-gnu/libstdc++.so.6", PG[] = "/usr/lib/postgresql/15/bin/postgres";

static struct sym_frame F(const char *fn, const char *file, unsigned line, const char *mod)
{
	struct sym_frame f = { fn, file, line, mod, 0, 0, 0, 1, 0 };
	f.named = strchr(fn, '+') == NULL;
	return f;
}

static int pick(const struct site_rules *r, const struct sym_frame *v, int n)
{
	const struct sym_frame *p[32];
	for (int i = 0; i < n; i++)
		p[i] = &v[i];
	return site_pick(r, p, n);
}

static void test_pick(void)
{
	struct site_rules r;
	CHECK(site_rules_init(&r, NULL, 0, NULL, 0) == 0, "default rules");
	struct sym_frame cxx[] = {
		F("operator new(unsigned long)", NULL, 0, CXX),
		F("std::__new_allocator<char>::allocate(unsigned long, void const*)",
		  "/usr/include/c++/12/bits/new_allocator.h", 137, APP),
		F("std::vector<char, std::allocator<char> >::resize(unsigned long)",
		  "/usr/include/c++/12/bits/stl_vector.h", 1011, APP),
		F("remember(int)", "/src/leak.cpp", 8, APP),
		F("main", "/src/leak.cpp", 13, APP),
	};
	CHECK(pick(&r, cxx, 5) == 3, "C++: the first frame past operator new and the headers: %d",
	      pick(&r, cxx, 5));
	struct sym_frame wrap[] = {
		F("xmalloc", "/src/util.c", 10, APP),
		F("g_malloc0", NULL, 0, "/usr/lib/libglib-2.0.so.0"),
		F("zmalloc_usable", "/src/zmalloc.c", 90, APP),
		F("PyObject_Malloc", NULL, 0, APP),
		F("ngx_palloc", "/src/ngx_palloc.c", 12, APP),
		F("je_malloc", NULL, 0, APP),
		F("MemoryContextAllocZeroAligned", NULL, 0, PG),
		F("build_index", "/src/index.c", 44, APP),
	};
	CHECK(pick(&r, wrap, 8) == 7, "known wrappers skipped: %d", pick(&r, wrap, 8));
	/* stripped PostgreSQL: AllocSetAlloc is static, so unnamed */
	struct sym_frame pg[] = {
		F("postgres+0x5c785f", NULL, 0, PG),
		F("MemoryContextAllocZeroAligned", NULL, 0, PG),
		F("postgres+0x2f7bbe", NULL, 0, PG),
		F("repeat", NULL, 0, PG),
		F("evaluate_expr", NULL, 0, PG),
	};
	CHECK(pick(&r, pg, 5) == 3, "stripped: the first named frame of the program's own: %d",
	      pick(&r, pg, 5));
	/* stripped memcached: no named frame of its own before libevent's */
	struct sym_frame mc[] = {
		F("memcached+0x1f2a3", NULL, 0, "/usr/bin/memcached"),
		F("memcached+0x20000", NULL, 0, "/usr/bin/memcached"),
		F("event_base_loop", NULL, 0, "/usr/lib/libevent-2.1.so.7"),
	};
	CHECK(pick(&r, mc, 3) == 0, "a library's frame never names the program's site: %d",
	      pick(&r, mc, 3));
	struct sym_frame all[] = { F("malloc", NULL, 0, LIBC), F("_dl_init", NULL, 0, LIBC) };
	CHECK(pick(&r, all, 2) == 0, "every frame skipped: the innermost");
	struct sym_frame start[] = { F("malloc", NULL, 0, LIBC), F("_start", NULL, 0, APP),
				     F("helper", "/src/a.c", 3, APP) };
	CHECK(pick(&r, start, 3) == 2, "start-up code is not the program's own");
	site_rules_free(&r);

	const char *extra[] = { "^checked_alloc$" };
	CHECK(site_rules_init(&r, extra, 1, NULL, 0) == 0, "--wrapper");
	struct sym_frame inl[] = { F("checked_alloc", "/src/util.h", 9, APP), F("tree_branch", "/src/t.c", 32, APP) };
	CHECK(pick(&r, inl, 2) == 1, "--wrapper skips checked_alloc");
	site_rules_free(&r);
	char err[128] = "";
	const char *bad[] = { "x(" };
	CHECK(site_rules_init(&r, bad, 1, err, sizeof(err)) < 0 && err[0], "a bad --wrapper is refused");
}

/* Synthetic stacks for sites_fold: stack id -> frames. */
static struct sym_frame fr_alloc, fr_leaf, fr_branch33, fr_branch34, fr_main, fr_other, fr_new;
static const struct sym_frame *stacks[8][8];
static int depth[8];

static int frames_fn(void *ctx, uint32_t id, const struct sym_frame **out, int max)
{
	(void)ctx;
	int n = id < 8 ? depth[id] : 0;
	for (int i = 0; i < n && i < max; i++)
		out[i] = stacks[id][i];
	return n;
}

static void set_stack(int id, int n, ...)
{
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		stacks[id][i] = va_arg(ap, const struct sym_frame *);
	depth[id] = n;
	va_end(ap);
}

static void test_fold(void)
{
	struct site_rules r;
	site_rules_init(&r, NULL, 0, NULL, 0);
	fr_alloc = F("malloc", NULL, 0, LIBC);
	fr_new = F("operator new(unsigned long)", NULL, 0, CXX);
	fr_leaf = F("alloc_leaf", "/src/churn.c", 9, APP);
	fr_branch33 = F("branch", "/src/churn.c", 33, APP);
	fr_branch34 = F("branch", "/src/churn.c", 34, APP);
	fr_main = F("main", "/src/churn.c", 50, APP);
	fr_other = F("other", "/src/churn.c", 60, APP);
	/* the same site at three recursion depths, through two callers */
	set_stack(1, 4, &fr_alloc, &fr_leaf, &fr_branch33, &fr_main);
	set_stack(2, 5, &fr_alloc, &fr_leaf, &fr_branch33, &fr_branch34, &fr_main);
	set_stack(3, 6, &fr_alloc, &fr_leaf, &fr_branch34, &fr_branch33, &fr_branch34, &fr_main);
	set_stack(4, 3, &fr_new, &fr_leaf, &fr_other);
	set_stack(5, 3, &fr_alloc, &fr_other, &fr_main);
	/* an equal frame that is another object (another address, same line) */
	static struct sym_frame leaf2;
	leaf2 = fr_leaf;
	set_stack(6, 3, &fr_alloc, &leaf2, &fr_main);
	struct sites S;
	CHECK(sites_fold(&S, &r, 7, frames_fn, NULL) == 0, "fold");
	CHECK(S.n == 3, "sites: (no stack), alloc_leaf, other: %u", S.n);
	uint32_t leaf = S.site_of[1];
	CHECK(S.site_of[2] == leaf && S.site_of[3] == leaf && S.site_of[4] == leaf && S.site_of[6] == leaf,
	      "every alloc_leaf stack is one site");
	CHECK(S.site_of[5] != leaf && S.site_of[0] == 0, "other is another site, no stack is site 0");
	CHECK(S.v[leaf].nstacks == 5, "alloc_leaf folds 5 stacks: %u", S.v[leaf].nstacks);

	/* figures per stack, as the analysis gives them */
	struct analysis a;
	memset(&a, 0, sizeof(a));
	struct site_stat st[7];
	memset(st, 0, sizeof(st));
	for (int i = 1; i < 7; i++) {
		st[i].allocs = (uint64_t)i;
		st[i].alloc_bytes = 100u * (uint64_t)i;
		st[i].live_bytes = 10 * i;
		st[i].live_at_peak = 1000 * i;
	}
	a.sites = st;
	a.nsites = 7;
	sites_finish(&S, &a);
	CHECK(S.v[leaf].rep_stack == 6, "heaviest stack: %u", S.v[leaf].rep_stack);
	struct site_tree t;
	CHECK(sites_tree(&S, &a, leaf, &t) == 0, "tree");
	CHECK(t.n[0].allocs == 1 + 2 + 3 + 4 + 6, "root: every stack's allocations: %llu",
	      (unsigned long long)t.n[0].allocs);
	uint32_t kids[8];
	int nk = site_tree_children(&t, 0, kids, 8);
	CHECK(nk == 4, "callers of alloc_leaf: branch:33, branch:34, other, main: %d", nk);
	CHECK(nk > 0 && t.n[kids[0]].frame == &fr_main && t.n[kids[0]].live_at_peak == 6000,
	      "heaviest caller first (main, via stack 6)");
	int64_t sum = 0;
	for (int i = 0; i < nk; i++)
		sum += t.n[kids[i]].live_at_peak;
	CHECK(sum == t.n[0].live_at_peak, "callers add up to the site: %lld",
	      (long long)sum);
	/* stack 3's path keeps the recursion: branch:34 < branch:33 < branch:34 < main */
	uint32_t c = 0;
	for (int i = 0; i < nk; i++)
		if (t.n[kids[i]].frame == &fr_branch34)
			c = kids[i];
	CHECK(c && t.n[c].allocs == 3, "branch:34 directly above: stack 3 only");
	int deep = 0;
	for (uint32_t x = c; x; x = t.n[x].child)
		deep++;
	CHECK(deep == 4, "recursion kept as a path: %d levels", deep);
	site_tree_free(&t);
	sites_free(&S);
	site_rules_free(&r);
}

int main(void)
{
	test_pick();
	test_fold();
	return check_done("sites");
}
