/*
 * fault_target.c - a process that notices when it is disturbed, for the
 * fault matrix (tests/e2e/t5*): one thread per blocking system call, each
 * checking its own return value and errno every cycle, plus its signal
 * mask and scheduling; a main thread that checks signal handlers, its
 * sigaltstack and that every thread keeps cycling (heartbeat).
 *
 *   fault_target [NAME...]     only the named calls (default: all)
 *   fault_target --list        their names
 *
 * It prints "ready PID", then "tid NAME TID" for each thread, then "go".  Any
 * disturbance prints one line starting "DISTURBED" (and the process goes
 * on); a thread that stops cycling for 20 s prints "STUCK NAME".  Commands
 * on stdin: "check" prints "status ok CYCLES THREADS" once every thread
 * cycled since (or "status bad ..." after 20 s), "quit" exits 0.
 *
 * Every call has a 100 ms timeout or is woken every 100 ms by the main
 * thread, so a correct run never sees EINTR, an early return, a changed
 * errno after success, a changed mask, handler, altstack or priority.
 */
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sem.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/aio_abi.h>
#include <linux/futex.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#define T_MS 100
#define MAXW 48

struct worker {
	const struct call *c;
	pthread_t t;
	volatile pid_t tid;
	int fd[3];
	long id;
	int sig;	/* the signal it waits for (blocked in it), 0: none */
	volatile uint64_t cycles, last_ns;
	volatile int stuck;
	sigset_t mask;
	int policy, nice;
};

struct call {
	const char *name;
	int (*setup)(struct worker *w);
	int (*once)(struct worker *w, char *why, size_t n);	/* 0 = as expected */
	void (*wake)(struct worker *w);
	int sig;	/* 1..3: SIGW1..3 blocked in this thread and waited for */
};

static struct worker workers[MAXW];
static int nworkers;
static volatile int quitting;
static pthread_mutex_t cond_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond_cv;
static char lockpath[64];

static uint64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct timespec rel(void)
{
	return (struct timespec){ 0, T_MS * 1000000L };
}

static struct timespec abs_in(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	ts.tv_nsec += T_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* "r == want", and errno untouched by a success (or == werr on failure) */
static int expect(long r, long want, int werr, char *why, size_t n)
{
	int e = errno;
	if (r == want && (want != -1 ? e == 7777 : e == werr))
		return 0;
	snprintf(why, n, "returned %ld errno %d (%s), expected %ld%s%s", r, e, strerror(e), want,
		 want == -1 ? " with " : "", want == -1 ? strerror(werr) : "");
	return 1;
}

static int timed(uint64_t t0, int r, char *why, size_t n)
{
	if (r)
		return r;
	if (mono() - t0 >= T_MS * 1000000ull - 1000000)
		return 0;
	snprintf(why, n, "returned after %llu us, before its %d ms timeout",
		 (unsigned long long)(mono() - t0) / 1000, T_MS);
	return 1;
}

/* ---- setups --------------------------------------------------------------------- */

static int s_pipe(struct worker *w) { return pipe(w->fd); }

static int s_pipe_full(struct worker *w)
{
	char b[4096] = { 0 };
	if (pipe2(w->fd, O_NONBLOCK))
		return -1;
	while (write(w->fd[1], b, sizeof(b)) > 0)
		;
	return fcntl(w->fd[1], F_SETFL, 0);
}

static int timeo(int fd, int opt)
{
	struct timeval tv = { 0, T_MS * 1000 };
	return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

static int s_stream(struct worker *w)
{
	return socketpair(AF_UNIX, SOCK_STREAM, 0, w->fd) || timeo(w->fd[0], SO_RCVTIMEO);
}

static int s_dgram(struct worker *w)
{
	return socketpair(AF_UNIX, SOCK_DGRAM, 0, w->fd) || timeo(w->fd[0], SO_RCVTIMEO);
}

static int s_sendfull(struct worker *w)
{
	char b[4096] = { 0 };
	int sz = 4096;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, w->fd) || timeo(w->fd[0], SO_SNDTIMEO) ||
	    setsockopt(w->fd[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)))
		return -1;
	while (send(w->fd[0], b, sizeof(b), MSG_DONTWAIT) > 0)
		;
	return 0;
}

static int s_udp(struct worker *w)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	w->fd[0] = socket(AF_INET, SOCK_DGRAM, 0);
	return w->fd[0] < 0 || bind(w->fd[0], (struct sockaddr *)&a, sizeof(a)) ||
	       timeo(w->fd[0], SO_RCVTIMEO);
}

static int s_listen(struct worker *w)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	w->fd[0] = socket(AF_INET, SOCK_STREAM, 0);
	return w->fd[0] < 0 || bind(w->fd[0], (struct sockaddr *)&a, sizeof(a)) || listen(w->fd[0], 4) ||
	       timeo(w->fd[0], SO_RCVTIMEO);
}

static int s_epoll(struct worker *w)
{
	struct epoll_event ev = { .events = EPOLLIN };
	w->fd[0] = epoll_create1(0);
	return w->fd[0] < 0 || pipe(w->fd + 1) || epoll_ctl(w->fd[0], EPOLL_CTL_ADD, w->fd[1], &ev);
}

static int s_sem(struct worker *w)
{
	return (w->fd[0] = semget(IPC_PRIVATE, 1, 0600)) < 0;
}

static int s_msg(struct worker *w)
{
	return (w->fd[0] = msgget(IPC_PRIVATE, 0600)) < 0;
}

static int s_mq(struct worker *w)
{
	char name[64];
	struct mq_attr a = { .mq_maxmsg = 4, .mq_msgsize = 64 };
	snprintf(name, sizeof(name), "/mfx-fault-%d", (int)getpid());
	w->fd[0] = (int)mq_open(name, O_CREAT | O_RDWR, 0600, &a);
	mq_unlink(name);
	return w->fd[0] < 0;
}

static int s_aio(struct worker *w)
{
	aio_context_t ctx = 0;
	int r = (int)syscall(SYS_io_setup, 4, &ctx);
	w->id = (long)ctx;
	return r;
}

static int s_eventfd(struct worker *w) { return (w->fd[0] = eventfd(0, 0)) < 0; }

static int s_timerfd(struct worker *w)
{
	struct itimerspec it = { rel(), rel() };
	w->fd[0] = timerfd_create(CLOCK_MONOTONIC, 0);
	return w->fd[0] < 0 || timerfd_settime(w->fd[0], 0, &it, NULL);
}

static int s_signalfd(struct worker *w)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, w->sig);
	return (w->fd[0] = signalfd(-1, &s, 0)) < 0;
}

/* the main thread holds the lock; a cycle takes it when main lets go */
static int s_lock(struct worker *w)
{
	w->fd[0] = open(lockpath, O_RDWR | O_CREAT, 0600);
	w->fd[1] = open(lockpath, O_RDWR);
	return w->fd[0] < 0 || w->fd[1] < 0 || flock(w->fd[1], LOCK_EX);
}

static int s_ofd(struct worker *w)
{
	struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	w->fd[0] = open(lockpath, O_RDWR | O_CREAT, 0600);
	w->fd[1] = open(lockpath, O_RDWR);
	return w->fd[0] < 0 || w->fd[1] < 0 || fcntl(w->fd[1], F_OFD_SETLKW, &l);
}

/* ---- one blocking call each --------------------------------------------------- */

#define ONCE(n) static int n(struct worker *w, char *why, size_t len)

ONCE(o_read) { char b; return expect(read(w->fd[0], &b, 1), 1, 0, why, len); }
ONCE(o_readv)
{
	char b;
	struct iovec v = { &b, 1 };
	return expect(readv(w->fd[0], &v, 1), 1, 0, why, len);
}
ONCE(o_write) { char b[4096] = { 0 }; return expect(write(w->fd[1], b, sizeof(b)), 4096, 0, why, len); }
ONCE(o_recv) { char b[8]; return expect(recv(w->fd[0], b, 8, 0), -1, EAGAIN, why, len); }
ONCE(o_recvfrom) { char b[8]; return expect(recvfrom(w->fd[0], b, 8, 0, NULL, NULL), -1, EAGAIN, why, len); }
ONCE(o_recvmsg)
{
	char b[8];
	struct iovec v = { b, 8 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
	return expect(recvmsg(w->fd[0], &m, 0), -1, EAGAIN, why, len);
}
ONCE(o_sendto) { char b[4096] = { 0 }; return expect(sendto(w->fd[0], b, 4096, 0, NULL, 0), -1, EAGAIN, why, len); }
ONCE(o_accept) { return expect(accept(w->fd[0], NULL, NULL), -1, EAGAIN, why, len); }
ONCE(o_accept4) { return expect(accept4(w->fd[0], NULL, NULL, SOCK_CLOEXEC), -1, EAGAIN, why, len); }
ONCE(o_epoll_wait)
{
	struct epoll_event ev;
	uint64_t t0 = mono();
	return timed(t0, expect(epoll_wait(w->fd[0], &ev, 1, T_MS), 0, 0, why, len), why, len);
}
ONCE(o_epoll_pwait)
{
	struct epoll_event ev;
	uint64_t t0 = mono();
	return timed(t0, expect(epoll_pwait(w->fd[0], &ev, 1, T_MS, NULL), 0, 0, why, len), why, len);
}
ONCE(o_epoll_pwait2)
{
	struct epoll_event ev;
	struct timespec ts = rel();
	uint64_t t0 = mono();
	long r = syscall(441, w->fd[0], &ev, 1, &ts, NULL, 8);
	if (r < 0 && errno == ENOSYS)
		return 0;
	return timed(t0, expect(r, 0, 0, why, len), why, len);
}
ONCE(o_poll)
{
	struct pollfd p = { w->fd[0], POLLIN, 0 };
	uint64_t t0 = mono();
	return timed(t0, expect(poll(&p, 1, T_MS), 0, 0, why, len), why, len);
}
ONCE(o_ppoll)
{
	struct pollfd p = { w->fd[0], POLLIN, 0 };
	struct timespec ts = rel();
	uint64_t t0 = mono();
	return timed(t0, expect(ppoll(&p, 1, &ts, NULL), 0, 0, why, len), why, len);
}
ONCE(o_select)
{
	fd_set s;
	FD_ZERO(&s);
	FD_SET(w->fd[0], &s);
	struct timeval tv = { 0, T_MS * 1000 };
	uint64_t t0 = mono();
	return timed(t0, expect(select(w->fd[0] + 1, &s, NULL, NULL, &tv), 0, 0, why, len), why, len);
}
ONCE(o_pselect)
{
	fd_set s;
	FD_ZERO(&s);
	FD_SET(w->fd[0], &s);
	struct timespec ts = rel();
	uint64_t t0 = mono();
	return timed(t0, expect(pselect(w->fd[0] + 1, &s, NULL, NULL, &ts, NULL), 0, 0, why, len), why, len);
}
ONCE(o_nanosleep)
{
	struct timespec ts = rel();
	uint64_t t0 = mono();
	(void)w;
	return timed(t0, expect(nanosleep(&ts, NULL), 0, 0, why, len), why, len);
}
ONCE(o_clock_rel)
{
	struct timespec ts = rel();
	uint64_t t0 = mono();
	(void)w;
	return timed(t0, expect(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0, 0, why, len), why, len);
}
ONCE(o_clock_abs)
{
	struct timespec ts = abs_in(CLOCK_MONOTONIC);
	uint64_t t0 = mono();
	(void)w;
	int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	errno = r ? r : errno;
	return timed(t0, expect(r ? -1 : 0, 0, 0, why, len), why, len);
}
ONCE(o_futex)
{
	static int word;
	struct timespec ts = rel();
	(void)w;
	return expect(syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0), -1, ETIMEDOUT, why, len);
}
ONCE(o_cond)
{
	struct timespec ts = abs_in(CLOCK_REALTIME);
	(void)w;
	pthread_mutex_lock(&cond_mu);
	int r = pthread_cond_timedwait(&cond_cv, &cond_mu, &ts);
	pthread_mutex_unlock(&cond_mu);
	if (r == ETIMEDOUT)
		return 0;
	snprintf(why, len, "returned %d, expected ETIMEDOUT", r);
	return 1;
}
ONCE(o_sem_timedwait)
{
	static sem_t s;
	static int init;
	if (!init++)
		sem_init(&s, 0, 0);
	struct timespec ts = abs_in(CLOCK_REALTIME);
	(void)w;
	return expect(sem_timedwait(&s, &ts), -1, ETIMEDOUT, why, len);
}
ONCE(o_semtimedop)
{
	struct sembuf op = { 0, -1, 0 };
	struct timespec ts = rel();
	return expect(semtimedop(w->fd[0], &op, 1, &ts), -1, EAGAIN, why, len);
}
ONCE(o_sigtimedwait)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, w->sig);
	struct timespec ts = rel();
	return expect(sigtimedwait(&s, NULL, &ts), -1, EAGAIN, why, len);
}
ONCE(o_sigwaitinfo)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, w->sig);
	return expect(sigwaitinfo(&s, NULL), w->sig, 0, why, len);
}
ONCE(o_msgrcv)
{
	struct { long type; char b[8]; } m;
	return expect(msgrcv(w->fd[0], &m, sizeof(m.b), 0, 0), 8, 0, why, len);
}
ONCE(o_mq)
{
	char b[64];
	struct timespec ts = abs_in(CLOCK_REALTIME);
	return expect(mq_timedreceive(w->fd[0], b, sizeof(b), NULL, &ts), -1, ETIMEDOUT, why, len);
}
ONCE(o_io_getevents)
{
	struct io_event ev;
	struct timespec ts = rel();
	uint64_t t0 = mono();
	return timed(t0, expect(syscall(SYS_io_getevents, (aio_context_t)w->id, 1, 1, &ev, &ts), 0, 0, why,
				len), why, len);
}
ONCE(o_waitpid)
{
	pid_t c = fork();
	if (c == 0) {
		struct timespec ts = { 0, T_MS * 500000L };
		nanosleep(&ts, NULL);
		_exit(0);
	}
	(void)w;
	return expect(waitpid(c, NULL, 0), c, 0, why, len);
}
ONCE(o_flock)
{
	struct timespec gap = { 0, 2000000 };	/* let the main thread take it back */
	if (expect(flock(w->fd[0], LOCK_EX), 0, 0, why, len))
		return 1;
	flock(w->fd[0], LOCK_UN);
	return expect(nanosleep(&gap, NULL), 0, 0, why, len);
}
ONCE(o_ofd)
{
	struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct timespec gap = { 0, 2000000 };
	if (expect(fcntl(w->fd[0], F_OFD_SETLKW, &l), 0, 0, why, len))
		return 1;
	l.l_type = F_UNLCK;
	fcntl(w->fd[0], F_OFD_SETLK, &l);
	return expect(nanosleep(&gap, NULL), 0, 0, why, len);
}
ONCE(o_read8) { uint64_t v; return expect(read(w->fd[0], &v, 8), 8, 0, why, len); }
ONCE(o_signalfd)
{
	struct signalfd_siginfo si;
	return expect(read(w->fd[0], &si, sizeof(si)), sizeof(si), 0, why, len);
}

/* ---- the main thread's wake-ups ----------------------------------------------- */

static void w_byte(struct worker *w) { if (write(w->fd[1], "x", 1) < 0) perror("wake"); }
static void w_drain(struct worker *w)
{
	char b[4096];
	if (read(w->fd[0], b, sizeof(b)) < 0)
		perror("drain");
}
static void w_kill(struct worker *w) { if (w->tid) pthread_kill(w->t, w->sig); }
static void w_msg(struct worker *w)
{
	struct { long type; char b[8]; } m = { 1, "1234567" };
	msgsnd(w->fd[0], &m, sizeof(m.b), IPC_NOWAIT);
}
static void w_eventfd(struct worker *w) { uint64_t one = 1; if (write(w->fd[0], &one, 8) < 0) perror("eventfd"); }
static void w_unlock(struct worker *w)
{
	flock(w->fd[1], LOCK_UN);
	sched_yield();
	flock(w->fd[1], LOCK_EX);
}
static void w_ofd(struct worker *w)
{
	struct flock l = { .l_type = F_UNLCK, .l_whence = SEEK_SET };
	fcntl(w->fd[1], F_OFD_SETLK, &l);
	sched_yield();
	l.l_type = F_WRLCK;
	fcntl(w->fd[1], F_OFD_SETLKW, &l);
}

#define SIGW1 (SIGRTMIN + 5)
#define SIGW2 (SIGRTMIN + 6)
#define SIGW3 (SIGRTMIN + 7)

static const struct call calls[] = {
	{ "read", s_pipe, o_read, w_byte, 0 },
	{ "readv", s_pipe, o_readv, w_byte, 0 },
	{ "write", s_pipe_full, o_write, w_drain, 0 },
	{ "recv_timeo", s_stream, o_recv, NULL, 0 },
	{ "recvfrom_udp", s_udp, o_recvfrom, NULL, 0 },
	{ "recvmsg_timeo", s_dgram, o_recvmsg, NULL, 0 },
	{ "sendto_timeo", s_sendfull, o_sendto, NULL, 0 },
	{ "accept_timeo", s_listen, o_accept, NULL, 0 },
	{ "accept4_timeo", s_listen, o_accept4, NULL, 0 },
	{ "epoll_wait", s_epoll, o_epoll_wait, NULL, 0 },
	{ "epoll_pwait", s_epoll, o_epoll_pwait, NULL, 0 },
	{ "epoll_pwait2", s_epoll, o_epoll_pwait2, NULL, 0 },
	{ "poll", s_pipe, o_poll, NULL, 0 },
	{ "ppoll", s_pipe, o_ppoll, NULL, 0 },
	{ "select", s_pipe, o_select, NULL, 0 },
	{ "pselect", s_pipe, o_pselect, NULL, 0 },
	{ "nanosleep", NULL, o_nanosleep, NULL, 0 },
	{ "clock_nanosleep", NULL, o_clock_rel, NULL, 0 },
	{ "clock_nanosleep_abs", NULL, o_clock_abs, NULL, 0 },
	{ "futex_wait", NULL, o_futex, NULL, 0 },
	{ "cond_timedwait", NULL, o_cond, NULL, 0 },
	{ "sem_timedwait", NULL, o_sem_timedwait, NULL, 0 },
	{ "semtimedop", s_sem, o_semtimedop, NULL, 0 },
	{ "sigtimedwait", NULL, o_sigtimedwait, NULL, 1 },
	{ "sigwaitinfo", NULL, o_sigwaitinfo, w_kill, 2 },
	{ "msgrcv", s_msg, o_msgrcv, w_msg, 0 },
	{ "mq_timedreceive", s_mq, o_mq, NULL, 0 },
	{ "io_getevents", s_aio, o_io_getevents, NULL, 0 },
	{ "waitpid", NULL, o_waitpid, NULL, 0 },
	{ "flock", s_lock, o_flock, w_unlock, 0 },
	{ "ofd_setlkw", s_ofd, o_ofd, w_ofd, 0 },
	{ "eventfd_read", s_eventfd, o_read8, w_eventfd, 0 },
	{ "timerfd_read", s_timerfd, o_read8, NULL, 0 },
	{ "signalfd_read", s_signalfd, o_signalfd, w_kill, 3 },
};
#define NCALLS (sizeof(calls) / sizeof(calls[0]))

static int sig_of(int k) { return k == 1 ? SIGW1 : k == 2 ? SIGW2 : k == 3 ? SIGW3 : 0; }

static void sched_now(int *policy, int *nice)
{
	*policy = sched_getscheduler(0);
	errno = 0;
	*nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char why[256];
	w->tid = (pid_t)syscall(SYS_gettid);
	pthread_sigmask(SIG_SETMASK, NULL, &w->mask);
	sched_now(&w->policy, &w->nice);
	while (!quitting) {
		errno = 7777;
		if (w->c->once(w, why, sizeof(why)))
			printf("DISTURBED %s: %s\n", w->c->name, why);
		sigset_t m;
		int policy, nice;
		pthread_sigmask(SIG_SETMASK, NULL, &m);
		sched_now(&policy, &nice);
		for (int s = 1; s < NSIG; s++)
			if (sigismember(&m, s) != sigismember(&w->mask, s)) {
				printf("DISTURBED %s: signal mask changed (signal %d)\n", w->c->name, s);
				w->mask = m;
				break;
			}
		if (policy != w->policy || nice != w->nice) {
			printf("DISTURBED %s: scheduling changed (policy %d nice %d, was %d %d)\n", w->c->name,
			       policy, nice, w->policy, w->nice);
			w->policy = policy, w->nice = nice;
		}
		w->cycles++;
		w->last_ns = mono();
	}
	return NULL;
}

/* ---- the main thread ---------------------------------------------------------- */

static void on_usr2(int sig, siginfo_t *si, void *uc) { (void)sig, (void)si, (void)uc; }
static void on_segv(int sig) { signal(sig, SIG_DFL); }
static char altstack[65536];

static int start_worker(const struct call *c)
{
	struct worker *w = &workers[nworkers];
	w->c = c;
	w->sig = sig_of(c->sig);
	w->fd[0] = w->fd[1] = w->fd[2] = -1;
	if (c->setup && c->setup(w)) {
		printf("DISTURBED %s: setup failed: %s\n", c->name, strerror(errno));
		return -1;
	}
	sigset_t s, old;
	sigemptyset(&s);
	if (w->sig)
		sigaddset(&s, w->sig);
	pthread_sigmask(SIG_BLOCK, &s, &old);	/* the new thread inherits it */
	int r = pthread_create(&w->t, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -1;
	nworkers++;
	return 0;
}

/* handlers, altstack, main's mask and scheduling, everyone's heartbeat */
static void check_all(const sigset_t *mask0, int policy0, int nice0)
{
	static int said;
	struct sigaction a, b;
	stack_t st;
	sigset_t m;
	int policy, nice;
	sigaction(SIGUSR2, NULL, &a);
	sigaction(SIGSEGV, NULL, &b);
	sigaltstack(NULL, &st);
	pthread_sigmask(SIG_SETMASK, NULL, &m);
	sched_now(&policy, &nice);
	if (!(said & 1) && (a.sa_sigaction != on_usr2 || b.sa_handler != on_segv))
		said |= 1, printf("DISTURBED main: a signal handler changed\n");
	if (!(said & 2) && (st.ss_sp != altstack || st.ss_size != sizeof(altstack) || st.ss_flags))
		said |= 2, printf("DISTURBED main: sigaltstack changed (%p %zu %d)\n", st.ss_sp, st.ss_size,
				  st.ss_flags);
	if (!(said & 4) && memcmp(&m, mask0, sizeof(m)))
		said |= 4, printf("DISTURBED main: signal mask changed\n");
	if (!(said & 8) && (policy != policy0 || nice != nice0))
		said |= 8, printf("DISTURBED main: scheduling changed\n");
	uint64_t now = mono();
	for (int i = 0; i < nworkers; i++) {
		uint64_t last = workers[i].last_ns;	/* (it may cycle meanwhile: last > now) */
		if (!workers[i].stuck && last && last < now && now - last > 20000000000ull) {
			workers[i].stuck = 1;
			printf("STUCK %s (%llu ms without a cycle, tid %d)\n", workers[i].c->name,
			       (unsigned long long)(now - last) / 1000000, (int)workers[i].tid);
		}
	}
}

static int count_tasks(void)
{
	char buf[4096], *p;
	FILE *f = fopen("/proc/self/status", "r");
	int n = 0;
	while (f && fgets(buf, sizeof(buf), f))
		if ((p = strstr(buf, "Threads:")) == buf)
			n = atoi(p + 8);
	if (f)
		fclose(f);
	return n;
}

/* "check": answered once every thread has cycled since (each blocks at
 * most ~100 ms), or "status bad" with the laggards after 20 s - long
 * enough that a loaded machine is not mistaken for a stuck thread. */
static uint64_t check_since, check_cycles[MAXW];

static void command(const char *line)
{
	if (!strcmp(line, "quit")) {
		quitting = 1;
		exit(0);
	}
	if (!strcmp(line, "check") && !check_since) {
		for (int i = 0; i < nworkers; i++)
			check_cycles[i] = workers[i].cycles;
		check_since = mono();
	}
	if (!strcmp(line, "cycles"))
		for (int i = 0; i < nworkers; i++)
			printf("cycles %s %llu\n", workers[i].c->name, (unsigned long long)workers[i].cycles);
}

static void check_answer(void)
{
	uint64_t total = 0;
	int lag = 0;
	char names[1024] = "";
	if (!check_since)
		return;
	for (int i = 0; i < nworkers; i++) {
		total += workers[i].cycles;
		if (workers[i].cycles <= check_cycles[i] && ++lag < 8)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), " %s",
				 workers[i].c->name);
	}
	if (!lag)
		printf("status ok %llu %d\n", (unsigned long long)total, count_tasks());
	else if (mono() - check_since > 20000000000ull)
		printf("status bad: no cycle in 20 s:%s\n", names);
	else
		return;
	check_since = 0;
}

static void setup_main(void)
{
	struct sigaction a = { .sa_sigaction = on_usr2, .sa_flags = SA_SIGINFO };
	sigemptyset(&a.sa_mask);
	sigaction(SIGUSR2, &a, NULL);
	signal(SIGSEGV, on_segv);
	stack_t st = { .ss_sp = altstack, .ss_size = sizeof(altstack) };
	sigaltstack(&st, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_cond_init(&cond_cv, &ca);
	snprintf(lockpath, sizeof(lockpath), "/tmp/mfx-fault-lock.%d", (int)getpid());
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < NCALLS; i++)
			printf("%s\n", calls[i].name);
		return 0;
	}
	setup_main();
	for (size_t i = 0; i < NCALLS; i++) {
		int want = argc < 2;
		for (int k = 1; k < argc; k++)
			want |= !strcmp(argv[k], calls[i].name);
		if (want && nworkers < MAXW)
			start_worker(&calls[i]);
	}
	unlink(lockpath);
	printf("ready %d\n", (int)getpid());
	for (int i = 0; i < nworkers; i++) {
		while (!workers[i].tid)
			sched_yield();
		printf("tid %s %d\n", workers[i].c->name, (int)workers[i].tid);
	}
	printf("go\n");
	sigset_t mask0;
	int policy0, nice0;
	pthread_sigmask(SIG_SETMASK, NULL, &mask0);
	sched_now(&policy0, &nice0);
	char line[256];
	size_t len = 0;
	uint64_t next_wake = mono();
	for (;;) {
		struct pollfd p = { 0, POLLIN, 0 };
		int r = poll(&p, 1, 10);
		if (r < 0 && errno == EINTR)
			printf("DISTURBED main: poll EINTR\n");
		if (r > 0) {
			ssize_t n = read(0, line + len, sizeof(line) - 1 - len);
			if (n <= 0)
				return 0;
			len += (size_t)n;
			line[len] = 0;
			for (char *nl; (nl = strchr(line, '\n'));) {
				*nl = 0;
				command(line);
				memmove(line, nl + 1, strlen(nl + 1) + 1);
				len = strlen(line);
			}
		}
		if (mono() >= next_wake) {
			next_wake = mono() + T_MS * 1000000ull;
			for (int i = 0; i < nworkers; i++)
				if (workers[i].c->wake)
					workers[i].c->wake(&workers[i]);
		}
		check_all(&mask0, policy0, nice0);
		check_answer();
	}
}
