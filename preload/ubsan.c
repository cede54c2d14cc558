/*
 * ubsan.c - the UBSan runtime's options, in the agent built for the tests
 * under -fsanitize=undefined only (build/ubsan/libmfx.so, -DMFX_UBSAN; the
 * agent mfx installs has nothing here).
 *
 * The runtime (libubsan, loaded with the agent) would otherwise put its own
 * SIGSEGV, SIGBUS, SIGFPE and SIGILL handlers in place of the program's at
 * its start, and that would change the traced program.  It asks for
 * __ubsan_default_options() by symbol lookup: the definition here wins
 * both when the agent is preloaded (global scope before libubsan) and when
 * it is dlopen()ed by mfx attach (libubsan's lookup then finds the agent
 * first in the dlopen group), so it is exported (libmfx.map).  The first
 * report ends the program (halt_on_error; the build also has
 * -fno-sanitize-recover): a test sees it as a dead target and the report on
 * the target's stderr.
 */
#ifdef MFX_UBSAN
__attribute__((visibility("default"))) const char *__ubsan_default_options(void);

const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1:handle_segv=0:handle_sigbus=0:"
	       "handle_sigfpe=0:handle_sigill=0:handle_abort=0:handle_sigtrap=0";
}

/* The test's proof that UBSan is live in the traced program: with
 * MFX_UBSAN_SELFTEST=1 in the program's environment (read in the program
 * at the agent's load, launch or attach alike), one signed overflow here. */
#include <limits.h>
#include <stdlib.h>

__attribute__((constructor)) static void ubsan_selftest(void)
{
	const char *v = getenv("MFX_UBSAN_SELFTEST");
	if (v && v[0] == '1') {
		volatile int big = INT_MAX;
		volatile int sum = big + 1;
		(void)sum;
	}
}
#else
typedef int mfx_no_ubsan;	/* ISO C: a translation unit is not empty */
#endif
