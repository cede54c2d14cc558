/* dlplugin.c - a library attach_target dlopen()s during a capture window:
 * its allocations must be recorded (the agent patches it on load). */
#include <stdlib.h>

static void *volatile keep[1000];
static unsigned n;

void *plugin_alloc(size_t size)
{
	void *p = malloc(size);
	keep[n++ % 1000] = p;
	return p;
}
