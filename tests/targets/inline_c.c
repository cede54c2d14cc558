/*
 * inline_c.c - a C program built -O2 -g whose allocations sit under static
 * inline functions from a header (inline_util.h), recursion through two
 * functions, and an allocation wrapper of its own (xmalloc, which the
 * report skips).  Its stacks are checked frame by frame against
 * addr2line -i -f -C (t150).  It keeps (and reports) what it holds:
 *   tree_build: a binary tree of depth 12 (8191 nodes of 64 bytes),
 *   make_name:  4000 names of 40 bytes, freed at the end,
 *   table:      a 4 MiB table from xmalloc.
 * Prints "held BYTES" (what it still holds at exit).
 */
#include <stdio.h>
#include <stdlib.h>

#include "inline_util.h"

struct node {
	struct node *left, *right;
	char pad[48];
};

__attribute__((noinline)) static void *xmalloc(size_t n)
{
	return checked_alloc(n);
}

static struct node *tree_build(int depth);

/* Recursion through two functions: one site, many call paths. */
__attribute__((noinline)) static struct node *tree_branch(int depth)
{
	struct node *n = zero_block(sizeof(*n));
	n->left = tree_build(depth - 1);
	n->right = tree_build(depth - 1);
	return n;
}

__attribute__((noinline)) static struct node *tree_build(int depth)
{
	return depth > 0 ? tree_branch(depth) : NULL;
}

__attribute__((noinline)) static char *make_name(int i)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "name-%08d-abcdefghijklmnopqrstuv", i);
	return dup_bytes(buf, (size_t)n);
}

int main(int argc, char **argv)
{
	int depth = argc > 1 ? atoi(argv[1]) : 12;
	struct node *root = tree_build(depth);
	char **names = xmalloc(4000 * sizeof(*names));
	for (int i = 0; i < 4000; i++)
		names[i] = make_name(i);
	char *table = xmalloc(4 << 20);
	table[0] = 1;
	for (int i = 0; i < 4000; i++)
		free(names[i]);
	free(names);
	printf("held %zu\n", (size_t)((1u << depth) - 1) * sizeof(struct node) + (4u << 20));
	(void)root;
	return table[0] - 1;
}
