/*
 * agent.c - the agent's life: starting and ending a recording, fork
 * children, process exit, launch mode's run directory and constructor.
 * The configuration, the real functions and the header are config.c's.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mfx/control.h"
#include "preload/fastunwind.h"
#include "preload/internal.h"
#include "preload/record.h"
#include "preload/sample.h"

struct agent_real agent_real;

/* Launch mode remembers where traces go, for fork and exec children. */
static char run_dir[4096];
/* The run directory as mfx created it (MFX_DIR_FD, inherited): files are
 * made relative to it, so a directory swapped in under its name by a user
 * who can write its parent gets nothing.  Used while it is still ours
 * (agent_fd_is); a program that closed it falls back to the path. */
static int run_dir_fd = -1;
static uint64_t run_dir_ino;

/* Create `name` in the run directory: O_EXCL|O_NOFOLLOW, 0600 (a trace or
 * smaps shows the address layout /proc denies others). */
static int run_create(const char *name, int flags)
{
	flags |= O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	if (agent_fd_is(run_dir_fd, run_dir_ino, S_IFDIR))
		return openat(run_dir_fd, name, flags, 0600);
	if (!run_dir[0])	/* attach: the directory fd or nothing */
		return (errno = EBADF, -1);
	char path[4200];
	size_t l = strnlen(run_dir, sizeof(run_dir));
	if (l + 2 + strlen(name) > sizeof(path))
		return (errno = ENAMETOOLONG, -1);
	memcpy(path, run_dir, l);
	path[l] = '/';
	strcpy(path + l + 1, name);
	return open(path, flags, 0600);
}
static pid_t root_pid;
static int launch_mode;
static volatile int end_lock;
static int exiting;		/* the EXITING mark was written (agent_exiting) */
static int exit_smaps_saved;
static int armed;	/* agent_begin succeeded, agent_end not run yet */

/* Launch mode: "trace.mfx" for the process mfx started, else
 * "trace-<pid>.mfx", then "trace-<pid>.<n>.mfx" when the same pid exec'ed
 * already.  O_EXCL: never append to someone else's trace. */
static int create_trace(const char *dir, int is_root, char *path, size_t n)
{
	char pid[24], name[64];
	agent_u64_to_dec(pid, (uint64_t)getpid());
	for (int i = is_root ? -1 : 0; i < 100; i++) {
		if (i < 0) {
			strcpy(name, "trace.mfx");
		} else {
			strcpy(name, "trace-");
			strcat(name, pid);
			if (i > 0) {
				char num[24];
				agent_u64_to_dec(num, (uint64_t)i);
				strcat(name, ".");
				strcat(name, num);
			}
			strcat(name, ".mfx");
		}
		int fd = run_create(name, O_RDWR);
		if (fd >= 0 || errno != EEXIST) {
			size_t l = strnlen(dir, n - 64);	/* for the record only */
			memcpy(path, dir, l);
			path[l] = '/';
			strcpy(path + l + 1, name);
			return fd >= 0 ? fd : -errno;
		}
	}
	return -EEXIST;
}

static void atfork_prepare(void);
static void save_exit_smaps(void);
static void atfork_parent(void);
static void atfork_child(void);

/* ---- begin / end ----------------------------------------------------------------- */

/* Stacks wanted: libunwind and the stack table, or why not (0 = fine). */
static int stacks_setup(void)
{
	int err = stack_init();
	return err ? err : stack_reset();
}

static void note_stacks_off(int err)
{
	agent_note(MFX_DG_NO_STACKS, -err, err == -ENOENT ?
		   "no stacks: libunwind.so.8 could not be loaded in the process" :
		   "no stacks: the stack table could not be mapped (address space or memory "
		   "limit)");
}

/* The trace file (c's fd, or its path), its header's blocks reserved and
 * mapped, and the thread table: 0 or -errno (the fd is closed). */
static int open_trace(const struct agent_config *c)
{
	int fd = c->trace_fd, err = 0;
	if (fd < 0) {
		fd = c->trace_path[0] ? open(c->trace_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
					     0600) : -1;
		if (fd < 0)
			return -errno;
	}
	/* Blocks for the first chunk now: a full disk is ENOSPC here.  Only a
	 * file system without fallocate gets the sparse ftruncate (a sparse
	 * page of a full tmpfs is a SIGBUS in the program when first touched). */
	if (fallocate(fd, 0, 0, MFX_FIRST_CHUNK) &&
	    ((errno != EOPNOTSUPP && errno != ENOSYS) || ftruncate(fd, MFX_FIRST_CHUNK)))
		err = -errno;
	if (!err)
		err = rec_pool_init();
	if (!err)
		err = rec_map_file(fd);
	if (err)
		close(fd);
	return err;
}

/*
 * Every mapping made here can fail (RLIMIT_AS, a full address space, a
 * full disk): what is not essential degrades with a note in the trace --
 * no spool (file chunks), no stacks -- and what is (the trace header)
 * fails the start with -errno.
 */
int agent_begin(const struct agent_config *c)
{
	static int tsc_checked, atfork_done;
	int busy = tls_busy, err = 0;
	tls_busy = 1;
	if (rec.active || armed) {
		err = -EBUSY;
		goto out;
	}
	if (!tsc_checked) {
		rec.use_tsc = agent_tsc_usable();
		rec.tsc_shift = rec.use_tsc ? AGENT_TSC_SHIFT : 0;
		tsc_checked = 1;
	}
	/* --sample without its tables cannot work: refuse before the file */
	err = sample_begin(c->sample_bytes);
	if (err)
		goto out;
	if ((err = open_trace(c)))
		goto out;
	rec_thread_key_init();
	modules_init();
	int spool_err = c->spool_fd >= 0 ? rec_spool_attach(c->spool_fd) : 0;
	if (!atfork_done) {
		pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
		atfork_done = 1;
	}
	struct agent_config eff = *c;
	int stack_err = c->stack_depth ? stacks_setup() : 0;
	if (stack_err)
		eff.stack_depth = 0;	/* the header says: no stack ids */
	rec.stacks = eff.stack_depth > 0;
	rec.depth = eff.stack_depth;
	modules_reset();
	agent_fill_header(rec.hdr, &eff);
	rec.file_ok = 1;
	armed = 1;
	if (stack_err)
		note_stacks_off(stack_err);
	if (spool_err)
		agent_note(MFX_DG_NO_SPOOL, -spool_err, "the spool could not be mapped: chunks "
			   "are mapped from the trace file instead (slower)");
	modules_check();
	agent_mark(MFX_MARK_WINDOW_START, NULL, 0, c->attach ? "attach" : "launch");
	if (!rec.file_ok) {	/* not even the first records could be written */
		err = -(rec.hdr->fail_errno ? rec.hdr->fail_errno : EIO);
		tls_busy = busy;
		agent_end("failed");
		return err;
	}
	rec.hdr->window_start_ns = agent_now_ns();
	__atomic_store_n(&rec.hdr->state, MFX_ST_RECORDING, __ATOMIC_RELEASE);
	__atomic_fetch_add(&rec.gen, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&rec.active, 1, __ATOMIC_SEQ_CST);
out:
	if (err && err != -EBUSY)
		sample_begin(0);	/* not recording: no countdown */
	tls_busy = busy;
	return err;
}

/* Ends a recording that agent_begin armed, also one agent_fail stopped
 * (its chunks are still to be given back, its file to be closed). */
int agent_end(const char *why)
{
	if (!armed || __atomic_exchange_n(&end_lock, 1, __ATOMIC_ACQUIRE))
		return 0;
	int busy = tls_busy;
	tls_busy = 1;
	if (armed) {
		if (rec.file_ok) {
			modules_check();	/* libraries loaded since the last look */
			if (sample_mean && sample_lost)
				agent_mark(MFX_MARK_DROPPED, &sample_lost, 1,
					   "--sample: too many live sampled blocks to follow");
			agent_mark(MFX_MARK_WINDOW_END, NULL, 0, why);
		}
		agent_disarm();
		sample_begin(0);
		rec_end_threads();
		if (rec_mfx_orphan())	/* slots given back just now, and stragglers' */
			rec_spool_drain_exit();
		__atomic_fetch_add(&rec.gen, 1, __ATOMIC_SEQ_CST);
		rec.file_ok = 0;
		struct mfx_file_header *h = rec.hdr;
		if (h) {
			h->end_tsc = agent_tsc();
			h->end_ns = agent_now_ns();
			h->flags |= MFX_HF_ENDED;
			__atomic_store_n(&h->state, MFX_ST_STOPPED, __ATOMIC_RELEASE);
		}
		rec_detach_header();
		armed = 0;
	}
	tls_busy = busy;
	__atomic_store_n(&end_lock, 0, __ATOMIC_RELEASE);
	return 0;
}

/* The hooks stop recording now (the window's end, in the header); the
 * rest of agent_end (waiting for threads in a record, giving chunks back)
 * may take longer on a busy machine and is not part of the window. */
void agent_window_started(void)
{
	if (rec.hdr && rec.active)
		rec.hdr->window_start_ns = agent_now_ns();
}

void agent_disarm(void)
{
	if (!__atomic_exchange_n(&rec.active, 0, __ATOMIC_SEQ_CST) || !rec.hdr)
		return;
	rec.hdr->window_end_ns = agent_now_ns();
}

int agent_recording(void)
{
	return rec.active;
}

struct mfx_file_header *agent_header(void)
{
	return rec.hdr;
}

/* Called with locks possibly held (a chunk's or rec_lock): only flags and
 * the header's words, no record.  mfx sees state STOPPED with fail_errno
 * and ends the window; agent_end gives the chunks back. */
void agent_fail(int err, const char *what)
{
	rec.file_ok = 0;
	__atomic_store_n(&rec.active, 0, __ATOMIC_SEQ_CST);
	struct mfx_file_header *h = rec.hdr;
	if (h) {
		if (!h->fail_errno) {
			size_t n = what ? strnlen(what, sizeof(h->fail_what) - 1) : 0;
			memcpy(h->fail_what, what, n);
			h->fail_what[n] = 0;
			h->fail_errno = err ? err : EIO;
		}
		__atomic_fetch_or(&h->flags, MFX_HF_DROPPED, __ATOMIC_RELAXED);
		__atomic_fetch_or(&h->degraded, MFX_DG_STOPPED, __ATOMIC_RELAXED);
		__atomic_store_n(&h->state, MFX_ST_STOPPED, __ATOMIC_RELEASE);
	}
}

/* Not with rec_lock held (the MARK takes it). */
void agent_note(uint32_t flag, int err, const char *what)
{
	if (!rec.hdr)
		return;
	__atomic_fetch_or(&rec.hdr->degraded, flag, __ATOMIC_RELAXED);
	uint64_t v[2] = { flag, (uint64_t)(err < 0 ? -err : err) };
	if (rec.file_ok)
		agent_mark(MFX_MARK_AGENT_NOTE, v, 2, what);
}

/* ---- fork, exit, launch ------------------------------------------------------------- */

/* got_lock, then the module-walk gate (agentmem.c), then rec_lock: the
 * patching pass never takes rec_lock; a walk may hold got_lock. */
static void atfork_prepare(void)
{
	got_fork_prepare();
	agent_phdr_fork_prepare(armed);
	spin_lock(&rec_lock);
}

static void atfork_parent(void)
{
	spin_unlock(&rec_lock);
	agent_phdr_fork_done(0);
	got_fork_parent();
}

/* attach: a child of a window records itself into RUN/trace-<pid>.mfx,
 * made relative to the run directory's fd mfx gave with START, and starts
 * its watcher (forkchild.c), which owns parent_fd.  If any of it fails the
 * child is left as one of a dormant agent: slots back, nothing recorded. */
static void attach_child_begin(int parent_fd, uint64_t sampled)
{
	struct agent_config c;
	agent_parse_config("", &c);
	c.stack_depth = rec.depth;
	c.sample_bytes = sampled;
	c.child = 1;
	c.attach = 1;
	run_dir_fd = fork_watch_dir(&run_dir_ino);
	c.trace_fd = create_trace(run_dir, 0, c.trace_path, sizeof(c.trace_path));
	int made = c.trace_fd >= 0;
	int err = made ? agent_begin(&c) : c.trace_fd;
	int begun = made && !err;
	if (begun && fork_child_watch(parent_fd) == 0) {
		run_dir_fd = -1;	/* the watch's fd: closed with it */
		return;
	}
	if (made && !begun)	/* no header in it: not left behind ("/trace-<pid>.mfx") */
		unlinkat(run_dir_fd, c.trace_path + 1, 0);
	run_dir_fd = -1;
	if (parent_fd >= 0)
		close(parent_fd);
	fork_child_end("failed");
}

/* The child of a traced process writes its own trace: launch mode; attach
 * mode when forked during a window and mfx gave the run directory
 * (forkchild.c: it then unhooks itself when the window is over).  Any
 * other child of an attached process, forked while the agent is dormant
 * or by an older mfx, is left as its parent is after a window: GOT slots
 * back (got.c), no spool or trace mapping, no fd of ours, no thread. */
static void atfork_child(void)
{
	end_lock = 0;
	uint64_t dir_ino;
	int rec_child = !launch_mode && armed && rec.active && fork_watch_dir(&dir_ino) >= 0 &&
			agent_loader_lock_free();
	agent_phdr_fork_done(1);
	got_fork_child(!launch_mode && !rec_child);
	exiting = exit_smaps_saved = 0;
	control_after_fork();
	rec_after_fork_child();
	modules_after_fork();
	fu_after_fork();
	int parent_fd = rec_child ? rec_trace_dup() : -1;	/* before the header goes */
	if (!launch_mode)
		rec_spool_detach();	/* the parent's; unmapped here */
	if (!launch_mode && !rec_child) {
		fork_watch_clear();	/* the parent's window's fds, copied */
		agent_memfd_release();	/* its mappings stay (agentmem.c) */
	}
	if (!armed)
		return;
	int was_active = rec.active;
	int busy = tls_busy;
	tls_busy = 1;
	uint64_t sampled = sample_mean;	/* the child samples as its parent did */
	rec.active = 0;
	rec.file_ok = 0;
	sample_begin(0);
	armed = 0;
	__atomic_fetch_add(&rec.gen, 1, __ATOMIC_SEQ_CST);
	rec_detach_header();
	if (!was_active) {
		tls_busy = busy;
		return;
	}
	if (launch_mode) {
		struct agent_config c;
		agent_parse_config("", &c);
		c.stack_depth = rec.depth;
		c.sample_bytes = sampled;
		c.child = 1;
		c.trace_fd = create_trace(run_dir, 0, c.trace_path, sizeof(c.trace_path));
		if (c.trace_fd >= 0)
			agent_begin(&c);
	} else if (rec_child) {
		attach_child_begin(parent_fd, sampled);
	}
	tls_busy = busy;
}

/* Launch mode, at exit: copy /proc/self/smaps to RUN/.smaps-exit-<pid>, so
 * a program too short-lived for mfx to sample still has one (mfx keeps
 * whichever of it and its own samples saw the higher RSS). */
static void save_exit_smaps(void)
{
	static char buf[65536];
	char name[64], pid[24];
	agent_u64_to_dec(pid, (uint64_t)getpid());
	strcpy(name, ".smaps-exit-");
	strcat(name, pid);
	int in = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	int out = in < 0 ? -1 : run_create(name, O_WRONLY);
	ssize_t r;
	while (out >= 0 && (r = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)r) != r)
			break;
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
}

int agent_launched(void)
{
	return launch_mode;
}


void agent_exiting(int status, unsigned how)
{
	if (!rec.active || !rec.file_ok || __atomic_exchange_n(&exiting, 1, __ATOMIC_ACQ_REL))
		return;
	int busy = tls_busy;
	tls_busy = 1;
	uint64_t vals[3] = { (uint64_t)(int64_t)status, how, agent_vm_hwm() };
	agent_mark(MFX_MARK_EXITING, vals, 3, "");
	/* The heap as the program leaves it, before the teardown frees it:
	 * the smaps that fragmentation is measured on. */
	if (launch_mode && rec.hdr && !(rec.hdr->flags & MFX_HF_ATTACH) && getpid() == root_pid) {
		save_exit_smaps();
		exit_smaps_saved = 1;
	}
	alloc_mark(MFX_AP_EXIT);	/* the allocator's figures of the same moment */
	tls_busy = busy;
}

__attribute__((destructor)) static void agent_exit(void)
{
	struct mfx_file_header *h = rec.hdr;
	if (!rec.active || !h)
		return;
	/* Keep recording: other libraries' destructors still free memory.
	 * Only note that the process reached exit cleanly. */
	int busy = tls_busy;
	tls_busy = 1;
	modules_check();
	rec_publish_self();
	/* Only the process mfx started: mfx reads that one copy and removes
	 * it (a shell script's children would leave one file each).  Taken
	 * already when the exit began (agent_exiting), unless it did not. */
	if (launch_mode && !(h->flags & MFX_HF_ATTACH) && getpid() == root_pid && !exit_smaps_saved)
		save_exit_smaps();
	alloc_mark(MFX_AP_EXIT);
	/* mfx was killed: nobody drains the spool; write our slots, the
	 * chunks the other threads still fill too, into the trace now. */
	if (launch_mode && rec_mfx_gone_check())
		rec_spool_drain_exit();
	tls_busy = busy;
	h->end_tsc = agent_tsc();
	h->end_ns = agent_now_ns();
	h->flags |= MFX_HF_ENDED;
}

/*
 * attach: mfx dlopen()ed us from the memfd it filled (the library's name is
 * //proc/self/fd/N), in a thread it holds: open the doorbell and start our
 * thread, so the hold ends with this dlopen and mfx rings.  Nothing is
 * recorded until mfx asks (START), whatever the environment says: a
 * program that happens to have MFX_OUT set (a child of an earlier launch,
 * a user's variable) is not a launch.
 *
 * launch (LD_PRELOAD): MFX_OUT (run directory), MFX_DIR_FD (it, open),
 * MFX_ROOT_PID, MFX_DEPTH, MFX_SPOOL_FD, MFX_ALIVE_FD (the read end of a
 * pipe only mfx writes: it says when mfx is gone).
 */
__attribute__((constructor)) static void agent_init(void)
{
	Dl_info self;
	if (dladdr((void *)agent_init, &self) && self.dli_fname &&
	    !strncmp(self.dli_fname, MFX_AGENT_DLNAME, strlen(MFX_AGENT_DLNAME))) {
		control_autostart();
		exit_watch_attach();
		return;
	}
	const char *out = getenv("MFX_OUT");
	if (!out || !*out || strlen(out) >= sizeof(run_dir) - 64)
		return;
	int busy = tls_busy;
	tls_busy = 1;
	launch_mode = 1;
	strcpy(run_dir, out);
	uint64_t v;
	root_pid = agent_parse_u64(getenv("MFX_ROOT_PID"), &v) == 0 ? (pid_t)v : -1;
	struct agent_config c;
	agent_parse_config("", &c);
	if (agent_parse_u64(getenv("MFX_DEPTH"), &v) == 0)
		c.stack_depth = v > MFX_MAX_DEPTH ? MFX_MAX_DEPTH : (unsigned)v;
	if (agent_parse_u64(getenv("MFX_SPOOL_FD"), &v) == 0 && v < 1u << 30)
		c.spool_fd = (int)v;
	if (agent_parse_u64(getenv("MFX_SAMPLE"), &v) == 0)
		c.sample_bytes = v;
	if (agent_parse_u64(getenv("MFX_ALIVE_FD"), &v) == 0 && v < 1u << 30)
		rec_watch_mfx((int)v);
	if (agent_parse_u64(getenv("MFX_DIR_FD"), &v) == 0 && v < 1u << 30 &&
	    (run_dir_ino = agent_fd_ino((int)v, S_IFDIR)))
		run_dir_fd = (int)v;
	char stop[4200];
	strcpy(stop, run_dir);
	strcat(stop, "/.stop");
	struct stat st;
	/* mfx ended the run (--for): later exec'ed programs are not traced. */
	int stopped = agent_fd_is(run_dir_fd, run_dir_ino, S_IFDIR) ?
			      fstatat(run_dir_fd, ".stop", &st, AT_SYMLINK_NOFOLLOW) == 0 :
			      stat(stop, &st) == 0;
	if (stopped || agent_resolve(0))
		goto out;
	c.child = getpid() != root_pid;
	c.trace_fd = create_trace(run_dir, !c.child, c.trace_path, sizeof(c.trace_path));
	if (c.trace_fd < 0)
		goto out;
	if (agent_begin(&c) == 0) {
		alloc_launch_sampling();
		alloc_mark(MFX_AP_START);
	}
out:
	tls_busy = busy;
}
