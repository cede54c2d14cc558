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

int cmd_launch(int argc, char **argv)
{
	struct capture_opts o;
	capture_defaults(&o);
	int idx = capture_parse("launch", argc, argv, &o, launch_help, NULL);
	if (idx == -2)
		return EXIT_OK;
	if (idx < 0)
		return EXIT_USAGE;
	if (idx >= argc)
		return mfx_usage("launch", "no program given");

	const char *prog = argv[idx];
	char path[PATH_MAX], what[PATH_MAX], agent[PATH_MAX];
	int err = resolve_program(prog, path, sizeof(path));
	if (!err)
		err = check_program(path, what, sizeof(what));
	if (err)
		return program_error(prog, what, err);
	if ((err = agent_path(agent, sizeof(agent)))) {
		mfx_err("%s", mfx_strerror(-err));
		return EXIT_FAIL;
	}
	if (o.out && (err = run_dir_create(o.out, o.force))) {
		mfx_err("cannot use '%s' as run directory: %s", o.out, mfx_strerror(-err));
		return err == -MFX_E_NOTEMPTY ? EXIT_USAGE : EXIT_FAIL;
	}

	struct spool *sp = NULL;
	/* Without it the agent maps file chunks: slower.  MFX_NO_SPOOL=1 asks
	 * for that (tests of the path a full spool takes). */
	if (!env_flag("MFX_NO_SPOOL") && (err = spool_create(&sp)))
		mfx_note("no shared-memory spool (%s); tracing will be slower", strerror(-err));
	int go[2], ep[2], alive[2];
	if (pipe2(go, O_CLOEXEC) || pipe2(ep, O_CLOEXEC) || pipe2(alive, O_CLOEXEC)) {
		mfx_err("cannot create a pipe: %s", strerror(errno));
		spool_free(sp);
		return EXIT_FAIL;
	}
	fflush(NULL);
	pid_t child = fork();
	if (child < 0) {
		mfx_err("cannot fork: %s", strerror(errno));
		spool_free(sp);
		return EXIT_FAIL;
	}
	if (child == 0) {
		close(go[1]);
		close(ep[0]);
		close(alive[1]);
		child_exec(go[0], ep[1], path, argv + idx, agent, o.no_stacks ? 0 : o.stack_depth,
			   sp ? spool_fd(sp) : -1, o.sample_bytes, alive[0]);
	}
	close(go[0]);
	close(ep[1]);
	close(alive[0]);	/* alive[1] stays open (close-on-exec) until mfx exits */

	char *dir = o.out ? strdup(o.out) : run_dir_default(prog, child);
	char absdir[PATH_MAX];
	if (!dir || (!o.out && (err = run_dir_create(dir, o.force))) || !realpath(dir, absdir)) {
		mfx_err("cannot create run directory '%s': %s", dir ? dir : "?",
			err ? mfx_strerror(-err) : strerror(errno));
		close(go[1]);	/* the child sees EOF and exits */
		waitpid(child, NULL, 0);
		spool_free(sp);
		free(dir);
		return EXIT_FAIL;
	}
	struct session *s;
	if ((err = session_new(&o, dir, child, SESSION_LAUNCH, &s))) {
		mfx_err("%s", mfx_strerror(-err));
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		spool_free(sp);
		free(dir);
		return EXIT_FAIL;
	}
	session_set_child(s, child);
	if (sp && (err = session_set_spool(s, sp)))
		mfx_note("cannot drain the spool: %s", strerror(-err));
	struct stat dst;
	char msg[PATH_MAX + 64];
	int ml = fstat(dir_bound_fd(dir), &dst) ? -1 :
		 snprintf(msg, sizeof(msg), "%s%c%llu %llu", absdir, 0, (unsigned long long)dst.st_dev,
			  (unsigned long long)dst.st_ino);
	ssize_t w = ml > 0 && ml < (int)sizeof(msg) ? write(go[1], msg, (size_t)ml) : -1;
	close(go[1]);
	int e = 0;
	if (w < 0 || read(ep[0], &e, sizeof(e)) == sizeof(e)) {
		close(ep[0]);
		waitpid(child, NULL, 0);
		session_free(s);
		free(dir);
		return program_error(prog, prog, -(e ? e : EPIPE));
	}
	close(ep[0]);
	mfx_note("tracing pid %d (%s) into %s", (int)child, prog, dir);

	int why = session_loop(s);
	if (o.trim_at_end) {
		if (session_child_status(s) >= 0) {
			mfx_note("--trim-at-end: pid %d exited before the end of the window; nothing to trim",
				 (int)child);
		} else {
			struct trim_result tr;
			int terr = trim_process(child, &tr, NULL);
			if (terr) {
				mfx_err("--trim-at-end: %s in pid %d failed: %s",
					tr.call[0] ? tr.call : "the release", (int)child,
					mfx_strerror(-terr));
			} else {
				uint64_t vals[7] = { tr.rss_before, tr.rss_after, tr.heap_before,
						     tr.heap_after, tr.pause_ns, tr.trim_ns, tr.released };
				char text[96];
				snprintf(text, sizeof(text), "ptrace %s", tr.call);
				session_mark(s, MFX_MARK_TRIM, vals, 7, text);
				char a[32], b[32], c[32];
				mfx_note("%s (%s): RSS %s -> %s, one thread held %s", tr.call, tr.allocator,
					 fmt_bytes(tr.rss_before, a, sizeof(a)),
					 fmt_bytes(tr.rss_after, b, sizeof(b)),
					 fmt_duration(tr.pause_ns, c, sizeof(c)));
			}
		}
	}
	session_finish(s, why);
	int ferr = session_failed(s);
	int st = session_child_status(s);
	session_free(s);
	if (st < 0) {
		/* --for ended the window: the program runs on; its status is ours.
		 * Ctrl-C is the program's now (like time(1)); a SIGTERM too. */
		mfx_note("tracing stopped; pid %d runs on, waiting for it to exit", (int)child);
		struct sigaction ign = { .sa_handler = SIG_IGN }, old;
		sigemptyset(&ign.sa_mask);
		sigaction(SIGINT, &ign, &old);
		while (waitpid(child, &st, 0) < 0 && errno == EINTR)
			;
		sigaction(SIGINT, &old, NULL);
	}
	free(dir);
	/* The recording failed (a full disk, said in one line): 1, not the
	 * program's status -- the run is not what was asked for. */
	return ferr ? EXIT_FAIL : exit_status(st);
}
