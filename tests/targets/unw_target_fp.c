/* unw_target_fp.c - unw_target.c built with -fno-omit-frame-pointer. */
#include "unw_target.c"
