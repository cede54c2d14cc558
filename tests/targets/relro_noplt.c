/* relro_noplt.c - attach_target built with -fno-plt and full RELRO (-z now):
 * its malloc calls go through read-only GOT slots (GLOB_DAT, no PLT). */
#include "attach_target.c"
