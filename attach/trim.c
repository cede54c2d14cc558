/* trim.c - placeholder until its owner lands the real command. */
#include "attach/commands.h"
#include "attach/util.h"

int cmd_trim(int argc, char **argv)
{
	(void)argc;
	mfx_err("'%s' is not implemented yet", argv[0]);
	return EXIT_FAIL;
}
