/*
 * deadline.h - `--for`: the window's end, kept by a thread of its own.
 *
 * The session loop also reads smaps and scans the run directory; under a
 * storm (hundreds of threads of the target in malloc on two cores) one
 * such pass can take seconds, and the window grew with it (6.8 s for
 * `--for 2s`).  This thread only sleeps until the deadline and then raises
 * the trace header's stop word, which every hook of the agent reads on its
 * next call: the recording ends on time whatever the loop is doing.  The
 * loop then ends the window as usual.
 */
#ifndef MFX_DEADLINE_H
#define MFX_DEADLINE_H

#include <stdint.h>

#include "trace/tracefile.h"

struct deadline;

/* At CLOCK_MONOTONIC time `at_ns`, tfile_request_stop(tf).  0 or -errno. */
int deadline_start(struct deadline **out, struct tfile *tf, uint64_t at_ns);
/* Cancel it if it has not fired, and wait for its thread (NULL: nothing). */
void deadline_end(struct deadline *d);

#endif
