/*
 * check.h - the unit tests' one assertion: CHECK(cond, fmt, ...) counts,
 * prints "FAIL file:line: message" and carries on; check_done() prints the
 * tally and is main's exit status (0 only when every check held).
 */
#ifndef MFX_TESTS_CHECK_H
#define MFX_TESTS_CHECK_H

#include <stdio.h>

static int check_failures, check_count;

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		check_count++;                                            \
		if (!(cond)) {                                            \
			check_failures++;                                 \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);       \
			printf(__VA_ARGS__);                              \
			printf("\n");                                     \
		}                                                         \
	} while (0)

static inline int check_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
	return check_failures ? 1 : 0;
}

#endif
