/*
 * deadline.c - the `--for` deadline thread (see deadline.h).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "attach/deadline.h"

struct deadline {
	pthread_t th;
	struct tfile *tf;
	uint64_t at_ns;
};

static void *deadline_main(void *arg)
{
	struct deadline *d = arg;
	struct timespec ts = { (time_t)(d->at_ns / 1000000000ull), (long)(d->at_ns % 1000000000ull) };
	/* EINTR cannot happen (every signal blocked here), but a restart is
	 * free: TIMER_ABSTIME sleeps to the same instant. */
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	tfile_request_stop(d->tf);
	return NULL;
}

int deadline_start(struct deadline **out, struct tfile *tf, uint64_t at_ns)
{
	struct deadline *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->tf = tf;
	d->at_ns = at_ns;
	/* The session's signals (SIGINT, SIGCHLD, ...) go to its own thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&d->th, NULL, deadline_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		free(d);
		return -err;
	}
	*out = d;
	return 0;
}

void deadline_end(struct deadline *d)
{
	if (!d)
		return;
	pthread_cancel(d->th);	/* clock_nanosleep is a cancellation point */
	pthread_join(d->th, NULL);
	free(d);
}
