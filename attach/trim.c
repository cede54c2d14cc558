/*
 * trim.c - `mfx trim PID` (Approach A): make the allocator that serves a
 * live process's malloc give its free memory back, and measure what came
 * back.
 *
 * The allocator is named first (alloc_remote.c: which module's malloc the
 * program calls); each has its own call: glibc malloc_trim(0), jemalloc
 * mallctl("arena.4096.purge") (decay where purge is missing), tcmalloc
 * MallocExtension_ReleaseFreeMemory(), mimalloc mi_collect(true).  If an
 * earlier attach left the agent in the process, its own thread makes the
 * call (asked through the doorbell, agentctl.c): no thread of the program
 * stops, pause_ns is 0, method "agent".  Otherwise one thread is held at a
 * safe point (inject/ptrace.c; not inside the allocator's own code either)
 * and makes the call, method "ptrace"; pause_ns is how long it was held: the
 * cost the process paid.  Nothing is loaded into the process by trim.  The
 * allocator's own figures are read just before and after the call, RSS and
 * heap RSS (smaps) just before and after the whole.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/json.h"
#include "attach/agentctl.h"
#include "attach/attach.h"
#include "attach/cmdline.h"
#include "attach/commands.h"
#include "common/procfs.h"
#include "attach/trim.h"
#include "common/util.h"
#include "inject/inject.h"
#include "inject/load.h"

static void trim_help(void)
{
	printf("usage: mfx trim PID [--json]\n\n"
	       "Make the allocator that serves the running process PID's malloc give its\n"
	       "free memory back to the system, its own way, and measure what came back:\n"
	       "glibc malloc_trim(0), jemalloc mallctl(\"arena.4096.purge\") (every arena),\n"
	       "tcmalloc MallocExtension_ReleaseFreeMemory(), mimalloc mi_collect(true).\n"
	       "Prints RSS and heap RSS before and after, the allocator's own figures\n"
	       "before and after, and how long one of its threads was held for the call.\n"
	       "If an earlier 'mfx attach' left the agent in PID, the agent's own thread\n"
	       "makes the call and no thread of the program stops; otherwise one thread\n"
	       "is held at a safe point (not inside the allocator).  Nothing is loaded\n"
	       "into the process.  Needs ptrace rights over PID.\n\n"
	       "Options (before or after PID):\n"
	       "        --json        print the result as one JSON object\n"
	       "    -h, --help        this text\n\n"
	       "Examples:\n"
	       "    mfx trim 4242\n"
	       "    mfx trim 4242 --json | jq .released_bytes\n"
	       "    scripts/trim-experiment.sh postgres     (every postgres process, in turn)\n");
}

static int heap_rss(pid_t pid, uint64_t *rss, uint64_t *heap)
{
	struct smaps s;
	int err = procfs_smaps_read(pid, &s);
	if (err)
		return err;
	struct smaps_totals t;
	procfs_smaps_totals(&s, &t);
	*rss = t.rss;
	*heap = t.heap_rss;
	procfs_smaps_free(&s);
	return 0;
}

/* "before VALID V0 V1 ..." as the agent writes it (preload/control.c). */
static void parse_figs(const char *line, struct alloc_figs *f)
{
	char *end;
	memset(f, 0, sizeof(*f));
	f->valid = (uint32_t)strtoul(line, &end, 10);
	for (int i = 0; i < MFX_AF_NFIELDS; i++)
		f->v[i] = strtoull(end, &end, 10);
}

/* The agent's answer file (do_trim in preload/control.c), line by line. */
static void parse_trim_text(char *text, struct trim_result *r)
{
	for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
		if (!strncmp(l, "before ", 7))
			parse_figs(l + 7, &r->before);
		else if (!strncmp(l, "after ", 6))
			parse_figs(l + 6, &r->after);
		else if (!strncmp(l, "allocator ", 10))
			snprintf(r->allocator, sizeof(r->allocator), "%s", l + 10);
		else if (!strncmp(l, "call ", 5))
			snprintf(r->call, sizeof(r->call), "%s", l + 5);
		else if (!strncmp(l, "returned ", 9))
			r->ret = strtoll(l + 9, NULL, 10);
	}
}

int trim_via_agent(int chan, struct trim_result *r)
{
	struct mfx_ctl m;
	int fd = memfd_create("mfx-trim", MFD_CLOEXEC), err = fd < 0 ? -errno : 0;
	if (!err)
		err = agent_send(chan, MFX_CTL_TRIM, NULL, &fd, 1);
	if (!err)
		err = agent_recv(chan, MFX_CTL_TRIMMED, &m, 60000);
	if (!err) {	/* the figures and the name, even when the call failed */
		r->trim_ns = m.t_ns;
		r->ret = (int64_t)m.value;
		char buf[2048];
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = 0;
		parse_trim_text(buf, r);
		err = m.status;
	}
	if (fd >= 0)
		close(fd);
	return err;
}

/* No agent: hold one thread (not inside the allocator's code either) and
 * make the allocator's call in it. */
static int trim_ptrace(pid_t pid, struct trim_result *r, struct inject_err *why)
{
	struct alloc_remote ar;
	struct inject_opts io = { .verbose = env_flag("MFX_DEBUG"),
				  .no_boost = env_flag("MFX_NO_BOOST"),
				  .only_tid = getenv("MFX_HOLD_TID") ? atoi(getenv("MFX_HOLD_TID")) : 0 };
	alloc_remote_hold_opts(pid, &io, &ar);
	snprintf(r->allocator, sizeof(r->allocator), "%s", mfx_allocator_names[ar.kind]);
	if (ar.kind == MFX_ALLOC_UNKNOWN)
		return -MFX_E_NOSYM;
	struct inject *h;
	struct inject_stats st;
	int err = inject_open(pid, &io, &h, why);
	if (err)
		return err;
	const char *call = "";
	err = alloc_remote_release(h, &ar, &r->before, &r->after, &r->ret, &call, &r->trim_ns);
	snprintf(r->call, sizeof(r->call), "%s", call);
	inject_close(h, &st);
	r->pause_ns = st.held_ns;
	r->attempts = st.attempts;
	return err;
}

int trim_process(pid_t pid, struct trim_result *r, struct inject_err *why)
{
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	snprintf(r->method, sizeof(r->method), "ptrace");
	int err = heap_rss(pid, &r->rss_before, &r->heap_before);
	if (err)
		return err == -ENOENT ? -ESRCH : err;
	int chan;
	if (agent_ring(pid, &chan) == 0) {
		/* the agent's own thread trims: no thread of the program stops */
		snprintf(r->method, sizeof(r->method), "agent");
		err = trim_via_agent(chan, r);
		close(chan);
	} else {
		err = trim_ptrace(pid, r, why);
	}
	if (err)
		return err;
	if ((err = heap_rss(pid, &r->rss_after, &r->heap_after)))
		return err == -ENOENT ? -MFX_E_EXITED : err;
	r->released = r->rss_before > r->rss_after ? r->rss_before - r->rss_after : 0;
	return 0;
}

static void json_figs(struct json *j, const char *key, const struct alloc_figs *f)
{
	static const char *const k[MFX_AF_NFIELDS] = {
		"in_use_bytes", "resident_bytes", "mapped_bytes", "free_bytes", "retained_bytes",
		"metadata_bytes", "active_bytes",
	};
	json_obj(j, key);
	for (int i = 0; i < MFX_AF_NFIELDS; i++)
		if (f->valid & (1u << i))
			json_uint(j, k[i], f->v[i]);
	json_end(j);
}

static void print_json(const struct trim_result *r)
{
	struct json j;
	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_int(&j, "pid", r->pid);
	json_uint(&j, "rss_before_bytes", r->rss_before);
	json_uint(&j, "rss_after_bytes", r->rss_after);
	json_uint(&j, "released_bytes", r->released);
	json_uint(&j, "heap_rss_before_bytes", r->heap_before);
	json_uint(&j, "heap_rss_after_bytes", r->heap_after);
	json_uint(&j, "pause_ns", r->pause_ns);
	json_str(&j, "method", r->method);
	json_str(&j, "allocator", r->allocator);
	json_str(&j, "call", r->call);
	json_int(&j, "returned", r->ret);
	json_figs(&j, "allocator_before", &r->before);
	json_figs(&j, "allocator_after", &r->after);
	json_uint(&j, "trim_ns", r->trim_ns);
	if (!strcmp(r->allocator, "glibc"))
		json_int(&j, "malloc_trim_returned", r->ret);
	json_uint(&j, "safe_point_attempts", r->attempts);
	json_end(&j);
	fputc('\n', stdout);
}

/* "resident 120 MiB -> 80 MiB, in use 60 MiB -> 60 MiB" from its figures. */
static void print_figs(const struct trim_result *r)
{
	static const unsigned order[] = { MFX_AF_RESIDENT, MFX_AF_IN_USE, MFX_AF_FREE,
					  MFX_AF_MAPPED, MFX_AF_RETAINED };
	static const char *const name[MFX_AF_NFIELDS] = {
		"in use", "resident", "mapped", "free", "retained", "metadata", "active",
	};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		unsigned f = order[i];
		if (!(r->before.valid & r->after.valid & (1u << f)))
			continue;
		char a[32], b[32], lbl[48];
		snprintf(lbl, sizeof(lbl), "%s %s", r->allocator, name[f]);
		printf("  %-18s %10s -> %s\n", lbl, fmt_bytes(r->before.v[f], a, sizeof(a)),
		       fmt_bytes(r->after.v[f], b, sizeof(b)));
	}
}

static void print_text(pid_t pid, const struct trim_result *r)
{
	char a[32], b[32], d[32], e[32], f[32], g[32], h[32];
	printf("pid %d (%s): %s released %s\n", (int)pid, r->allocator, r->call,
	       fmt_bytes(r->released, a, sizeof(a)));
	printf("  RSS       %10s -> %s\n", fmt_bytes(r->rss_before, b, sizeof(b)),
	       fmt_bytes(r->rss_after, d, sizeof(d)));
	printf("  heap RSS  %10s -> %s\n", fmt_bytes(r->heap_before, e, sizeof(e)),
	       fmt_bytes(r->heap_after, f, sizeof(f)));
	print_figs(r);
	if (!strcmp(r->method, "agent"))
		printf("  called on the mfx agent's thread, no thread of the program stopped "
		       "(the call itself %s)\n", fmt_duration(r->trim_ns, h, sizeof(h)));
	else
		printf("  one thread held %s (the call itself %s)\n",
		       fmt_duration(r->pause_ns, g, sizeof(g)), fmt_duration(r->trim_ns, h, sizeof(h)));
	if (!strcmp(r->allocator, "mimalloc"))
		printf("  (mi_collect runs on one thread: memory cached by the program's own threads\n"
		       "  stays until they collect it themselves)\n");
	if (r->released < (1u << 20))
		printf("  little came back: the heap's free memory is not where %s can return it,\n"
		       "  or there was little free memory (see 'mfx attach' for why memory grows)\n",
		       r->call);
}

int cmd_trim(int argc, char **argv)
{
	int json = 0;
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmdline cl = { 0 };
	int c;
	while ((c = cmdline_next(&cl, argc, argv, "h", opts)) != -1) {
		switch (c) {
		case 'j':
			json = 1;
			break;
		case 'h':
			trim_help();
			return EXIT_OK;
		default:
			return mfx_usage("trim", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (cl.nops == 0)
		return mfx_usage("trim", "no PID given");
	if (cl.nops > 1)
		return mfx_usage("trim", "one PID only ('%s' is extra)", cl.ops[1]);
	uint64_t v;
	if (parse_uint(cl.ops[0], INT_MAX, &v) || v == 0)
		return mfx_usage("trim", "'%s' is not a process id", cl.ops[0]);
	pid_t pid = (pid_t)v;
	struct inject_err why;
	int err = inject_check(pid, NULL, &why);
	if (err)
		return attach_refusal("trim", pid, err, &why);
	struct trim_result r;
	if ((err = trim_process(pid, &r, &why))) {
		if (!strcmp(r.allocator, "unknown")) {
			mfx_err("cannot trim %d: the allocator that serves its malloc is not one mfx "
				"knows how to trim (glibc, jemalloc, tcmalloc, mimalloc)", (int)pid);
			return EXIT_FAIL;
		}
		return attach_refusal("trim", pid, err, &why);
	}
	if (json)
		print_json(&r);
	else
		print_text(pid, &r);
	return EXIT_OK;
}
