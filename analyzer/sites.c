/*
 * sites.c - naming and folding allocation sites (see sites.h): which frame
 * of a stack is the program's own code, stacks merged by that frame, and
 * each site's callers as a tree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/sites.h"

/* Modules that are never the program's own code: the C library and the
 * loader, the C++ runtime, the allocators, mfx's agent. */
static const char *const system_modules[] = {
	"libc.so", "libc-", "ld-linux", "ld-musl", "libmfx.so", "libstdc++.so", "libc++.so",
	"libc++abi.so", "libgcc_s", "libjemalloc", "libtcmalloc", "libmimalloc", "libpthread",
};

/*
 * Functions that allocate for their caller: the malloc family as other
 * modules define it (a program's own malloc, jemalloc without a prefix),
 * operator new, and the wrappers of well-known programs and libraries.
 * Matched against the demangled name; "($|\()" ends a C name or starts a
 * C++ parameter list.
 */
static const char *const default_wrappers[] = {
	"^(malloc|calloc|realloc|reallocarray|free|posix_memalign|aligned_alloc|memalign|valloc|"
	"pvalloc|strdup|strndup)($|\\()",
	"^operator (new|delete)",
	/* gnulib, git, binutils, GNU tools */
	"^x(malloc|calloc|realloc|zalloc|mallocz|strdup|strndup|memdup|nmalloc|charalloc|"
	"2nrealloc|2realloc|reallocarray|icalloc|imalloc|irealloc)($|\\()",
	/* GLib */
	"^g_(malloc|malloc0|malloc_n|malloc0_n|realloc|realloc_n|try_malloc|try_malloc0|"
	"try_malloc_n|try_malloc0_n|try_realloc|try_realloc_n|slice_alloc|slice_alloc0|"
	"slice_copy|memdup|memdup2|strdup|strndup|strdup_printf|strdup_vprintf)($|\\()",
	/* CPython */
	"^_?PyMem_", "^_?PyObject_(Malloc|Calloc|Realloc)($|\\()", "^pymalloc_",
	"^_?PyObject_GC_(Malloc|Calloc|New|NewVar|Resize)($|\\()", "^gc_alloc($|\\()",
	/* PostgreSQL */
	"^(palloc|palloc0|palloc_extended|repalloc|repalloc_huge|MemoryContextAlloc[A-Za-z]*|"
	"AllocSet[A-Za-z]*|GenerationAlloc|SlabAlloc|pstrdup|pnstrdup|MemoryContextStrdup)($|\\()",
	/* Redis (zmalloc.c, and sds's s_malloc) */
	"^(zmalloc|zcalloc|zrealloc|ztrymalloc|ztrycalloc|ztryrealloc|zstrdup|zmalloc_usable|"
	"s_malloc|s_realloc|s_trymalloc)[A-Za-z_]*($|\\()",
	/* nginx */
	"^ngx_(alloc|calloc|memalign|palloc|pnalloc|pcalloc|pmemalign|palloc_small|palloc_large|"
	"palloc_block)($|\\()",
	/* the allocators' own prefixed names */
	"^(je|tc|mi)_[a-z_]+($|\\()",
	/* start-up code linked into every program (crt1.o, crti.o) */
	"^(_start|_init|_fini|__libc_csu_init|__libc_csu_fini)$",
};

#define NDEFAULT ((int)(sizeof(default_wrappers) / sizeof(default_wrappers[0])))

int site_rules_init(struct site_rules *r, const char *const *extra, int nextra, char *err,
		    size_t errn)
{
	memset(r, 0, sizeof(*r));
	int total = NDEFAULT + (nextra > 0 ? nextra : 0);
	r->re = calloc((size_t)total, sizeof(*r->re));
	r->src = calloc((size_t)total, sizeof(*r->src));
	if (!r->re || !r->src) {
		site_rules_free(r);
		return -ENOMEM;
	}
	for (int i = 0; i < total; i++) {
		const char *src = i < NDEFAULT ? default_wrappers[i] : extra[i - NDEFAULT];
		int e = regcomp(&r->re[i], src, REG_EXTENDED | REG_NOSUB);
		if (e) {
			if (err)
				regerror(e, &r->re[i], err, errn);
			site_rules_free(r);
			return -EINVAL;
		}
		r->src[i] = src;
		r->n = i + 1;
	}
	return 0;
}

void site_rules_free(struct site_rules *r)
{
	for (int i = 0; i < r->n; i++)
		regfree(&r->re[i]);
	free(r->re);
	free(r->src);
	memset(r, 0, sizeof(*r));
}

static int system_module(const char *path)
{
	const char *b = path ? sym_basename(path) : "";
	for (size_t i = 0; i < sizeof(system_modules) / sizeof(system_modules[0]); i++)
		if (!strncmp(b, system_modules[i], strlen(system_modules[i])))
			return 1;
	return 0;
}

/* The C++ standard library's headers: libstdc++'s /usr/include/c++/12/...,
 * libc++'s .../include/c++/v1/... */
static int cxx_header(const char *file)
{
	return file && strstr(file, "/include/c++/") != NULL;
}

int site_frame_skipped(const struct site_rules *r, const struct sym_frame *f)
{
	if (!f->module || system_module(f->module) || cxx_header(f->file))
		return 1;
	if (!f->named)
		return 0;
	for (int i = 0; i < r->n; i++)
		if (regexec(&r->re[i], f->function, 0, NULL, 0) == 0)
			return 1;
	return 0;
}

/*
 * The first frame that is not skipped.  In a stripped module a frame may
 * have no name although it is a wrapper's (PostgreSQL's static
 * AllocSetAlloc, CPython's pymalloc): when the first such frame is unnamed
 * and a named frame of the same module that is not skipped comes later,
 * that one names the site - a user knows it, and it is no worse a guess.
 */
int site_pick(const struct site_rules *r, const struct sym_frame *const *frames, int n)
{
	int first = -1;
	for (int i = 0; i < n; i++) {
		if (site_frame_skipped(r, frames[i]))
			continue;
		if (first < 0)
			first = i;
		if (frames[i]->module != frames[first]->module &&
		    (!frames[i]->module || !frames[first]->module ||
		     strcmp(frames[i]->module, frames[first]->module)))
			break;
		if (frames[i]->named)
			return i;
	}
	return first >= 0 ? first : 0;
}

static int same_str(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

int site_same_frame(const struct sym_frame *x, const struct sym_frame *y)
{
	return x == y || (x->line == y->line && same_str(x->function, y->function) &&
			  same_str(x->file, y->file) && same_str(x->module, y->module));
}

static uint64_t hash_frame(const struct sym_frame *f)
{
	uint64_t h = 1469598103934665603ull ^ f->line;
	const char *parts[3] = { f->function, f->file, f->module };
	for (int k = 0; k < 3; k++)
		for (const char *c = parts[k]; c && *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ull;
	return h;
}

/* Room for one more site. */
static int grow_sites(struct sites *S)
{
	if (S->n < S->cap)
		return 0;
	uint32_t nc = S->cap ? S->cap * 2 : 512;
	struct site_info *v = realloc(S->v, (size_t)nc * sizeof(*v));
	if (!v)
		return -ENOMEM;
	S->v = v;
	S->cap = nc;
	return 0;
}

/* The index of the site named by frame f (a new one if needed), or -1.
 * Sites of equal hashes are chained through site_info.next. */
static int64_t site_index(struct sites *S, const struct sym_frame *f)
{
	uint32_t *head = hmap_put(&S->byhash, hash_frame(f), NULL);
	if (!head || grow_sites(S))
		return -1;
	for (uint32_t i = *head; i; i = S->v[i - 1].next)
		if (site_same_frame(S->v[i - 1].frame, f))
			return i - 1;
	S->v[S->n] = (struct site_info){ f, 0, 0, *head };
	*head = ++S->n;
	return S->n - 1;
}

int sites_fold(struct sites *S, const struct site_rules *r, uint32_t nids, site_frames_fn fn,
	       void *ctx)
{
	static const struct sym_frame none = { "(no stack)", NULL, 0, NULL, 0, 0, 0, 0, -1 };
	memset(S, 0, sizeof(*S));
	hmap_init(&S->byhash, sizeof(uint32_t), 1024);
	S->frames = fn;
	S->ctx = ctx;
	S->nids = nids;
	S->site_of = calloc(nids + 1, sizeof(*S->site_of));
	S->at = calloc(nids + 1, sizeof(*S->at));
	const struct sym_frame **fr = malloc(SITE_MAX_FRAMES * sizeof(*fr));
	if (!S->site_of || !S->at || !fr || grow_sites(S)) {
		free(fr);
		return -ENOMEM;
	}
	S->v[0] = (struct site_info){ &none, 0, 0, 0 };	/* no stack */
	S->n = 1;
	for (uint32_t id = 1; id < nids; id++) {
		int n = fn(ctx, id, fr, SITE_MAX_FRAMES);
		if (n <= 0)
			continue;
		int k = site_pick(r, fr, n);
		int64_t s = site_index(S, fr[k]);
		if (s < 0) {
			free(fr);
			return -ENOMEM;
		}
		S->site_of[id] = (uint32_t)s;
		S->at[id] = (uint16_t)k;
		S->v[s].nstacks++;
	}
	free(fr);
	return 0;
}

/* Heavier: more live bytes at the peak, then more allocated bytes. */
static int heavier(const struct site_stat *x, const struct site_stat *y)
{
	if (x->live_at_peak != y->live_at_peak)
		return x->live_at_peak > y->live_at_peak;
	if (x->live_bytes != y->live_bytes)
		return x->live_bytes > y->live_bytes;
	return x->alloc_bytes > y->alloc_bytes;
}

void sites_finish(struct sites *S, const struct analysis *a)
{
	for (uint32_t id = 1; id < S->nids && id < a->nsites; id++) {
		struct site_info *v = &S->v[S->site_of[id]];
		if (!v->rep_stack || heavier(&a->sites[id], &a->sites[v->rep_stack]))
			v->rep_stack = id;
	}
}

void sites_free(struct sites *S)
{
	free(S->site_of);
	free(S->at);
	free(S->v);
	hmap_free(&S->byhash);
	memset(S, 0, sizeof(*S));
}

struct an_groups sites_groups(const struct sites *S)
{
	return (struct an_groups){ S->site_of, S->nids, S->n };
}

/* ---- call trees ---------------------------------------------------------------- */

static void add_stats(struct site_node *n, const struct site_stat *k)
{
	n->allocs += k->allocs;
	n->alloc_bytes += k->alloc_bytes;
	n->live_bytes += k->live_bytes;
	n->live_at_peak += k->live_at_peak;
	n->live_at_exit += k->live_at_exit;
}

/* Child of node p for frame f, made if needed; 0 when the tree is full. */
static uint32_t child(struct site_tree *t, uint32_t p, const struct sym_frame *f)
{
	for (uint32_t c = t->n[p].child; c; c = t->n[c].next)
		if (site_same_frame(t->n[c].frame, f))
			return c;
	if (t->count >= SITE_TREE_MAX)
		return 0;
	if (t->count == t->cap) {
		uint32_t nc = t->cap ? t->cap * 2 : 64;
		struct site_node *n = realloc(t->n, nc * sizeof(*n));
		if (!n)
			return 0;
		t->n = n;
		t->cap = nc;
	}
	uint32_t c = t->count++;
	t->n[c] = (struct site_node){ .frame = f, .next = t->n[p].child, .depth = t->n[p].depth + 1 };
	t->n[p].child = c;
	return c;
}

int sites_tree(const struct sites *S, const struct analysis *a, uint32_t site, struct site_tree *t)
{
	memset(t, 0, sizeof(*t));
	const struct sym_frame **fr = malloc(SITE_MAX_FRAMES * sizeof(*fr));
	t->cap = 64;
	t->n = calloc(t->cap, sizeof(*t->n));
	if (!fr || !t->n) {
		free(fr);
		site_tree_free(t);
		return -ENOMEM;
	}
	t->n[0].frame = S->v[site].frame;
	t->count = 1;
	for (uint32_t id = 1; id < S->nids && id < a->nsites; id++) {
		if (S->site_of[id] != site)
			continue;
		const struct site_stat *k = &a->sites[id];
		add_stats(&t->n[0], k);
		int n = S->frames(S->ctx, id, fr, SITE_MAX_FRAMES);
		uint32_t p = 0;
		for (int i = S->at[id] + 1; i < n; i++) {
			uint32_t c = child(t, p, fr[i]);
			if (!c) {
				t->dropped++;
				break;
			}
			add_stats(&t->n[c], k);
			p = c;
		}
	}
	free(fr);
	return 0;
}

void site_tree_free(struct site_tree *t)
{
	free(t->n);
	memset(t, 0, sizeof(*t));
}

static int node_heavier(const struct site_node *x, const struct site_node *y)
{
	if (x->live_at_peak != y->live_at_peak)
		return x->live_at_peak > y->live_at_peak;
	if (x->live_bytes != y->live_bytes)
		return x->live_bytes > y->live_bytes;
	return x->alloc_bytes > y->alloc_bytes;
}

int site_tree_children(const struct site_tree *t, uint32_t i, uint32_t *out, int max)
{
	int n = 0;
	for (uint32_t c = t->n[i].child; c; c = t->n[c].next) {
		/* insertion into the sorted prefix, keeping the heaviest max */
		int j = n < max ? n++ : max;
		while (j > 0 && node_heavier(&t->n[c], &t->n[out[j - 1]])) {
			if (j < max)
				out[j] = out[j - 1];
			j--;
		}
		if (j < max)
			out[j] = c;
	}
	return n;
}
