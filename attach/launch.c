/*
 * launch.c - `mfx launch`: run a program with the agent preloaded and capture
 * it from its first call to its exit (or --for).
 *
 * mfx forks; the child waits on a pipe until the run directory (named after
 * the child's pid) exists, then execs the program with LD_PRELOAD and the
 * MFX_* variables.  A second, close-on-exec pipe reports an exec failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach/capture.h"
#include "attach/commands.h"
#include "attach/rundir.h"
#include "trace/spool.h"
#include "attach/trim.h"
#include "trace/format.h"
#include "common/elffile.h"
#include "common/util.h"

static void launch_help(void)
{
	printf("usage: mfx launch [OPTIONS] [--] PROGRAM [ARGS...]\n\n"
	       "Run PROGRAM with the mfx agent preloaded (LD_PRELOAD) and record every\n"
	       "malloc, calloc, realloc, free and memalign-family call with its time,\n"
	       "thread and call stack, plus the RSS timeline.  Children it forks or execs\n"
	       "are traced too, each into its own trace-<pid>.mfx.  The program's\n"
	       "stdin, stdout and stderr are its own: mfx writes everything of its own,\n"
	       "the report included, on stderr (with -q, only errors), and exits with the\n"
	       "program's status (128+N when it died of signal N).  When PROGRAM execs\n"
	       "(a shim, env, sh -c 'exec ...'), the report is of its last image.\n\n"
	       "Options (before PROGRAM only: what follows it is the program's own):\n%s\n"
	       "Examples:\n"
	       "    mfx launch -- ./server --port 8080\n"
	       "    mfx launch -o results/py --no-stacks -- python3 script.py\n"
	       "    mfx launch --for 30s -- ./long-running   (trace the first 30 s only)\n",
	       capture_options_help);
}

/* Find `prog` the way execvp does. */
static int resolve_program(const char *prog, char *out, size_t n)
{
	if (strchr(prog, '/')) {
		snprintf(out, n, "%s", prog);
		return access(out, F_OK) ? -errno : 0;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	int err = -ENOENT;
	for (const char *p = path; *p;) {
		const char *c = strchr(p, ':');
		size_t l = c ? (size_t)(c - p) : strlen(p);
		snprintf(out, n, "%.*s/%s", (int)l, l ? p : ".", prog);
		if (access(out, X_OK) == 0) {
			struct stat st;
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
				return 0;
		} else if (errno == EACCES) {
			err = -EACCES;
		}
		p = c ? c + 1 : p + l;
	}
	return err;
}

/* 1 if the ELF file at path has no PT_INTERP (statically linked), 0 if it
 * is dynamic, < 0 if it is not an ELF file we can read. */
static int elf_is_static(const char *path)
{
	struct elf_file ef;
	int ret = elf_file_open(path, &ef);
	if (ret)
		return ret;
	ret = 1;
	GElf_Phdr ph;
	for (size_t i = 0; elf_file_phdr(&ef, i, &ph); i++)
		if (ph.p_type == PT_INTERP)
			ret = 0;
	elf_file_close(&ef);
	return ret;
}

/*
 * Can the agent be preloaded into `path`?  Follows one "#!" line (and
 * "#!/usr/bin/env prog").  0, or -MFX_E_STATIC / -MFX_E_SETUID /
 * -MFX_E_NOEXEC / -errno; *what names the file that is the problem.
 */
static int check_program(const char *path, char *what, size_t n)
{
	snprintf(what, n, "%s", path);
	struct stat st;
	if (stat(path, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -MFX_E_NOEXEC;
	if (access(path, X_OK))
		return -errno;
	/* The loader runs set-user-ID programs in secure mode and ignores
	 * LD_PRELOAD (ld.so(8)). */
	if (((st.st_mode & S_ISUID) && st.st_uid != getuid()) ||
	    ((st.st_mode & S_ISGID) && st.st_gid != getgid()))
		return -MFX_E_SETUID;
	char head[512] = { 0 };
	ssize_t r = read_small(path, head, sizeof(head));
	if (r < 0)
		return (int)r;
	if (r >= 2 && head[0] == '#' && head[1] == '!') {
		char *interp = head + 2, *nl = strchr(interp, '\n');
		if (nl)
			*nl = 0;
		interp += strspn(interp, " \t");
		char *arg = interp + strcspn(interp, " \t");
		if (*arg) {
			*arg++ = 0;
			arg += strspn(arg, " \t");
			arg[strcspn(arg, " \t")] = 0;
		}
		char resolved[PATH_MAX];
		const char *base = strrchr(interp, '/');
		if (base && !strcmp(base, "/env") && *arg && resolve_program(arg, resolved, sizeof(resolved)) == 0)
			interp = resolved;
		snprintf(what, n, "%s", interp);
		int s = elf_is_static(interp);
		return s < 0 ? s : s ? -MFX_E_STATIC : 0;
	}
	int s = elf_is_static(path);
	if (s == -MFX_E_NOEXEC && r >= 0)
		return 0;	/* not ELF, no "#!": the shell would run it; let exec decide */
	return s < 0 ? s : s ? -MFX_E_STATIC : 0;
}

static int program_error(const char *prog, const char *what, int err)
{
	switch (-err) {
	case MFX_E_STATIC:
		mfx_err("'%s' is statically linked: the agent can only be preloaded into dynamically "
			"linked programs", what);
		break;
	case MFX_E_SETUID:
		mfx_err("'%s' is set-user-ID: the loader ignores LD_PRELOAD for it (run mfx as its "
			"owner, or copy it without the bit)", what);
		break;
	case MFX_E_NOEXEC:
		mfx_err("cannot run '%s': not an executable file", prog);
		break;
	default:
		mfx_err("cannot run '%s': %s", prog, mfx_strerror(-err));
	}
	return EXIT_USAGE;
}

/* The child: wait for the run directory's path, then exec. */
static void child_exec(int go_fd, int err_fd, const char *path, char **argv, const char *agent,
		       unsigned depth, int spool, uint64_t sample, int alive)
{
	char dir[PATH_MAX + 64];
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(dir) - 1 && (r = read(go_fd, dir + len, sizeof(dir) - 1 - len)) > 0)
		len += (size_t)r;
	dir[len] = 0;
	close(go_fd);
	if (!len)
		_exit(127);	/* mfx gave up before starting us */
	/* "PATH\0DEV INO": the directory mfx created, opened here (inherited
	 * by the program, MFX_DIR_FD) and checked to be that one, not one
	 * swapped in under its name meanwhile. */
	unsigned long long dev = 0, ino = 0;
	size_t pl = strlen(dir);
	struct stat st;
	int dfd = pl < len ? open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) : -1;
	if (dfd < 0 || sscanf(dir + pl + 1, "%llu %llu", &dev, &ino) != 2 || fstat(dfd, &st) ||
	    (unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino) {
		int e = MFX_E_UNSAFE;
		ssize_t w = write(err_fd, &e, sizeof(e));
		(void)w;
		_exit(127);
	}
	char pid[24], dep[24], *pre;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(dep, sizeof(dep), "%u", depth);
	const char *old = getenv("LD_PRELOAD");
	if (old && *old) {
		if (asprintf(&pre, "%s:%s", agent, old) < 0)
			_exit(127);
	} else {
		pre = (char *)agent;
	}
	setenv("LD_PRELOAD", pre, 1);
	setenv("MFX_OUT", dir, 1);
	char dfds[24];
	snprintf(dfds, sizeof(dfds), "%d", dfd);
	setenv("MFX_DIR_FD", dfds, 1);
	setenv("MFX_ROOT_PID", pid, 1);
	setenv("MFX_DEPTH", dep, 1);
	if (sample) {
		char sb[24];
		snprintf(sb, sizeof(sb), "%llu", (unsigned long long)sample);
		setenv("MFX_SAMPLE", sb, 1);
	} else {
		unsetenv("MFX_SAMPLE");
	}
	if (spool >= 0 && fcntl(spool, F_SETFD, 0) == 0) {	/* inherited by exec */
		char sfd[24];
		snprintf(sfd, sizeof(sfd), "%d", spool);
		setenv("MFX_SPOOL_FD", sfd, 1);
	}
	/* The read end of a pipe only mfx writes to: it reads EOF once mfx is
	 * gone, and the agent then drains the spool itself (preload/drain.c). */
	if (alive >= 0 && fcntl(alive, F_SETFD, 0) == 0) {
		char afd[24];
		snprintf(afd, sizeof(afd), "%d", alive);
		setenv("MFX_ALIVE_FD", afd, 1);
	}
	execv(path, argv);
	int e = errno;
	ssize_t w = write(err_fd, &e, sizeof(e));
	(void)w;
	_exit(127);
}

static int exit_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return EXIT_FAIL;
}

/* One `mfx launch`: its options, then what each phase made, undone by the
 * one cleanup path at the end of cmd_launch(). */
struct launch_run {
	struct capture_opts o;
	int idx;			/* argv[idx]: the program, then its arguments */
	const char *prog;
	char path[PATH_MAX], what[PATH_MAX], agent[PATH_MAX];
	struct spool *sp;		/* until the session owns it */
	int go[2], ep[2], alive[2];	/* see child_exec(); -1 once closed */
	pid_t child;
	int kill_child, reap;		/* on the way out: SIGKILL it, wait for it */
	char *dir, absdir[PATH_MAX];
	struct session *s;
};

/* The command line: -1 to go on, else the exit status. */
static int launch_parse(int argc, char **argv, struct launch_run *r)
{
	r->idx = capture_parse("launch", argc, argv, &r->o, launch_help, NULL);
	if (r->idx == -2)
		return EXIT_OK;
	if (r->idx < 0)
		return EXIT_USAGE;
	if (r->idx >= argc)
		return mfx_usage("launch", "no program given");
	r->prog = argv[r->idx];
	return -1;
}

/* What can be checked before the fork: the program (can the agent be
 * preloaded into it?), the agent, -o's directory; then the spool.  -1 to go
 * on, else the exit status (said in one line). */
static int launch_prepare(struct launch_run *r)
{
	int err = resolve_program(r->prog, r->path, sizeof(r->path));
	if (!err)
		err = check_program(r->path, r->what, sizeof(r->what));
	if (err)
		return program_error(r->prog, r->what, err);
	if ((err = agent_path(r->agent, sizeof(r->agent)))) {
		mfx_err("%s", mfx_strerror(-err));
		return EXIT_FAIL;
	}
	if (r->o.out && (err = run_dir_create(r->o.out, r->o.force))) {
		mfx_err("cannot use '%s' as run directory: %s", r->o.out, mfx_strerror(-err));
		return err == -MFX_E_NOTEMPTY ? EXIT_USAGE : EXIT_FAIL;
	}
	/* Without it the agent maps file chunks: slower.  MFX_NO_SPOOL=1 asks
	 * for that (tests of the path a full spool takes). */
	if (!env_flag("MFX_NO_SPOOL") && (err = spool_create(&r->sp)))
		mfx_note("no shared-memory spool (%s); tracing will be slower", strerror(-err));
	return -1;
}

/* The child, waiting on `go` for its run directory (named after its pid).
 * -1 to go on, else the exit status. */
static int launch_fork(struct launch_run *r, char **argv)
{
	if (pipe2(r->go, O_CLOEXEC) || pipe2(r->ep, O_CLOEXEC) || pipe2(r->alive, O_CLOEXEC)) {
		mfx_err("cannot create a pipe: %s", strerror(errno));
		return EXIT_FAIL;
	}
	fflush(NULL);
	r->child = fork();
	if (r->child < 0) {
		mfx_err("cannot fork: %s", strerror(errno));
		return EXIT_FAIL;
	}
	if (r->child == 0) {
		close(r->go[1]);
		close(r->ep[0]);
		close(r->alive[1]);
		child_exec(r->go[0], r->ep[1], r->path, argv + r->idx, r->agent,
			   r->o.no_stacks ? 0 : r->o.stack_depth, r->sp ? spool_fd(r->sp) : -1,
			   r->o.sample_bytes, r->alive[0]);
	}
	close(r->go[0]);
	close(r->ep[1]);
	close(r->alive[0]);	/* alive[1] stays open (close-on-exec) until mfx exits */
	r->go[0] = r->ep[1] = r->alive[0] = -1;
	return -1;
}

/* The run directory (the child is waiting for it) and the session.  -1 to
 * go on, else the exit status; on failure the child is not left behind. */
static int launch_session(struct launch_run *r)
{
	int err = 0;
	r->dir = r->o.out ? strdup(r->o.out) : run_dir_default(r->prog, r->child);
	if (!r->dir || (!r->o.out && (err = run_dir_create(r->dir, r->o.force))) ||
	    !realpath(r->dir, r->absdir)) {
		mfx_err("cannot create run directory '%s': %s", r->dir ? r->dir : "?",
			err ? mfx_strerror(-err) : strerror(errno));
		r->reap = 1;	/* closing go, the child sees EOF and exits */
		return EXIT_FAIL;
	}
	if ((err = session_new(&r->o, r->dir, r->child, SESSION_LAUNCH, &r->s))) {
		r->s = NULL;
		mfx_err("%s", mfx_strerror(-err));
		r->kill_child = r->reap = 1;
		return EXIT_FAIL;
	}
	session_set_child(r->s, r->child);
	if (r->sp && (err = session_set_spool(r->s, r->sp)))
		mfx_note("cannot drain the spool: %s", strerror(-err));
	r->sp = NULL;	/* the session's now */
	return -1;
}

/* Tell the child its run directory: "PATH\0DEV INO" (child_exec checks
 * it), then read whether its exec failed.  -1 to go on, else the exit
 * status. */
static int launch_go(struct launch_run *r)
{
	struct stat dst;
	char msg[PATH_MAX + 64];
	int ml = fstat(dir_bound_fd(r->dir), &dst) ? -1 :
		 snprintf(msg, sizeof(msg), "%s%c%llu %llu", r->absdir, 0,
			  (unsigned long long)dst.st_dev, (unsigned long long)dst.st_ino);
	ssize_t w = ml > 0 && ml < (int)sizeof(msg) ? write(r->go[1], msg, (size_t)ml) : -1;
	close(r->go[1]);
	r->go[1] = -1;
	int e = 0;
	if (w < 0 || read(r->ep[0], &e, sizeof(e)) == sizeof(e)) {
		r->reap = 1;
		return program_error(r->prog, r->prog, -(e ? e : EPIPE));
	}
	close(r->ep[0]);
	r->ep[0] = -1;
	mfx_note("tracing pid %d (%s) into %s", (int)r->child, r->prog, r->dir);
	return -1;
}

/* --trim-at-end: the allocator's release in the child, through ptrace
 * (trim.c), with the RSS before and after in a TRIM mark. */
static void launch_trim(struct launch_run *r)
{
	if (session_child_status(r->s) >= 0) {
		mfx_note("--trim-at-end: pid %d exited before the end of the window; nothing to trim",
			 (int)r->child);
		return;
	}
	struct trim_result tr;
	int terr = trim_process(r->child, &tr, NULL);
	if (terr) {
		mfx_err("--trim-at-end: %s in pid %d failed: %s", tr.call[0] ? tr.call : "the release",
			(int)r->child, mfx_strerror(-terr));
		return;
	}
	uint64_t vals[7] = { tr.rss_before, tr.rss_after, tr.heap_before, tr.heap_after,
			     tr.pause_ns, tr.trim_ns, tr.released };
	char text[96];
	snprintf(text, sizeof(text), "ptrace %s", tr.call);
	session_mark(r->s, MFX_MARK_TRIM, vals, 7, text);
	char a[32], b[32], c[32];
	mfx_note("%s (%s): RSS %s -> %s, one thread held %s", tr.call, tr.allocator,
		 fmt_bytes(tr.rss_before, a, sizeof(a)), fmt_bytes(tr.rss_after, b, sizeof(b)),
		 fmt_duration(tr.pause_ns, c, sizeof(c)));
}

/* The window, finalise and report, then the program's end.  The exit
 * status: the program's, or 1 when the recording failed. */
static int launch_window(struct launch_run *r)
{
	int why = session_loop(r->s);
	if (r->o.trim_at_end)
		launch_trim(r);
	session_finish(r->s, why);
	int ferr = session_failed(r->s);
	int st = session_child_status(r->s);
	session_free(r->s);	/* its signal handlers gone before the wait below */
	r->s = NULL;
	if (st < 0) {
		/* --for ended the window: the program runs on; its status is ours.
		 * Ctrl-C is the program's now (like time(1)); a SIGTERM too. */
		mfx_note("tracing stopped; pid %d runs on, waiting for it to exit", (int)r->child);
		struct sigaction ign = { .sa_handler = SIG_IGN }, old;
		sigemptyset(&ign.sa_mask);
		sigaction(SIGINT, &ign, &old);
		while (waitpid(r->child, &st, 0) < 0 && errno == EINTR)
			;
		sigaction(SIGINT, &old, NULL);
	}
	/* The recording failed (a full disk, said in one line): 1, not the
	 * program's status -- the run is not what was asked for. */
	return ferr ? EXIT_FAIL : exit_status(st);
}

int cmd_launch(int argc, char **argv)
{
	struct launch_run r = { .go = { -1, -1 }, .ep = { -1, -1 }, .alive = { -1, -1 } };
	capture_defaults(&r.o);
	int rc = launch_parse(argc, argv, &r);
	if (rc >= 0)
		return rc;
	if ((rc = launch_prepare(&r)) >= 0 || (rc = launch_fork(&r, argv)) >= 0 ||
	    (rc = launch_session(&r)) >= 0 || (rc = launch_go(&r)) >= 0)
		goto out;
	rc = launch_window(&r);
out:
	if (r.kill_child)
		kill(r.child, SIGKILL);
	if (r.go[1] >= 0)
		close(r.go[1]);
	if (r.ep[0] >= 0)
		close(r.ep[0]);
	if (r.reap)
		waitpid(r.child, NULL, 0);
	session_free(r.s);
	spool_free(r.sp);
	free(r.dir);
	return rc;
}
