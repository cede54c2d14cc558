/*
 * exit.c - the EXITING mark: when the program begins to exit, before any
 * atexit handler or static destructor runs, the agent notes it
 * (agent_exiting), so the report can tell growth the program held for its
 * whole life, and freed only in its teardown, from a leak.
 *
 * launch: the agent interposes __libc_start_main (LD_PRELOAD) to run main
 *         through main_wrapper, which marks main's return; and exit(), for
 *         calls from the program.  (Inside libc, __libc_start_main calls
 *         exit directly, not through the PLT: the wrapper is the only way
 *         to see main return.)
 * attach: the program is past __libc_start_main; the agent registers an
 *         on_exit(3) handler when it is loaded.  exit() runs handlers in
 *         the reverse order of registration, so this late one runs before
 *         those registered at start-up (static destructors of the program
 *         and its libraries); on_exit gives it the status too.
 */
#include <dlfcn.h>
#include <stdlib.h>

#include "preload/agent.h"
#include "preload/internal.h"
#include "trace/format.h"

typedef int (*main_fn)(int, char **, char **);
typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void),
			void *);

static main_fn real_main;
static void (*real_exit)(int);

static int main_wrapper(int argc, char **argv, char **envp)
{
	int r = real_main(argc, argv, envp);
	agent_exiting(r, MFX_EXIT_MAIN_RETURN);
	return r;
}

MFX_EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
				 void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
	start_fn real = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
	if (!real_exit)
		real_exit = (void (*)(int))dlsym(RTLD_NEXT, "exit");
	if (main && agent_launched()) {
		real_main = main;
		main = main_wrapper;
	}
	return real(main, argc, argv, init, fini, rtld_fini, stack_end);
}

MFX_EXPORT void exit(int status)
{
	agent_exiting(status, MFX_EXIT_CALL);
	if (!real_exit)
		real_exit = (void (*)(int))dlsym(RTLD_NEXT, "exit");
	if (real_exit)
		real_exit(status);
	_Exit(status);	/* no libc exit found: cannot happen in a dynamic program */
}

static void on_exit_handler(int status, void *arg)
{
	(void)arg;
	agent_exiting(status, MFX_EXIT_HANDLER);
}

void exit_watch_attach(void)
{
	static int done;
	if (!done && on_exit(on_exit_handler, NULL) == 0)
		done = 1;
}
