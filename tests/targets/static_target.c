/* static_target.c - statically linked: attach and launch must refuse it
 * with one clear line.  Sleeps until killed. */
#include <unistd.h>

int main(void)
{
	for (;;)
		pause();
}
