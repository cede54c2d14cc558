/*
 * trim.c - `mfx trim PID` (Approach A): call malloc_trim(0) inside a live
 * process and measure what came back.
 *
 * If an earlier attach left the agent in the process, its own thread runs
 * malloc_trim(0) (asked through the doorbell, agentctl.c): no thread of the
 * program stops, pause_ns is 0, method "agent".  Otherwise one thread is
 * held at a safe point (inject/ptrace.c) and made to call malloc_trim(0),
 * method "ptrace"; pause_ns is how long it was held: the cost the process
 * paid.  Nothing is loaded into the process by trim.  RSS and heap RSS
 * (smaps) are read just before and just after.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	printf("usage: mfx trim [--json] PID\n\n"
	       "Call malloc_trim(0) inside the running process PID and measure what it\n"
	       "gives back to the system: RSS and heap RSS before and after, and how\n"
	       "long one of its threads was held for the call.  If an earlier 'mfx attach'\n"
	       "left the agent in PID, the agent's own thread makes the call and no thread\n"
	       "of the program stops; otherwise one thread is held at a safe point.\n"
	       "Nothing is loaded into the process.  Needs ptrace rights over PID.\n\n"
	       "Options:\n"
	       "        --json        print the result as one JSON object\n"
	       "    -h, --help        this text\n\n"
	       "Examples:\n"
	       "    mfx trim 4242\n"
	       "    mfx trim --json 4242 | jq .released_bytes\n"
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

int trim_process(pid_t pid, struct trim_result *r)
{
	memset(r, 0, sizeof(*r));
	r->pid = pid;
	snprintf(r->method, sizeof(r->method), "ptrace");
	int err = heap_rss(pid, &r->rss_before, &r->heap_before);
	if (err)
		return err == -ENOENT ? -ESRCH : err;
	uint64_t ret = 0;
	int chan;
	if (agent_ring(pid, &chan) == 0) {
		/* the agent's own thread trims: no thread of the program stops */
		snprintf(r->method, sizeof(r->method), "agent");
		err = agent_trim(chan, &ret, &r->trim_ns);
		close(chan);
	} else {
		struct inject ij;
		struct inject_opts io = { .verbose = env_flag("MFX_DEBUG"),
					  .no_boost = env_flag("MFX_NO_BOOST") };
		if ((err = inject_open(pid, &io, &ij)))
			return err;
		err = inject_trim(&ij, &ret, &r->trim_ns);
		inject_close(&ij);
		r->pause_ns = ij.held_ns;
		r->attempts = ij.attempts;
	}
	r->ret = (int)(uint32_t)ret;
	if (err)
		return err;
	if ((err = heap_rss(pid, &r->rss_after, &r->heap_after)))
		return err == -ENOENT ? -MFX_E_EXITED : err;
	r->released = r->rss_before > r->rss_after ? r->rss_before - r->rss_after : 0;
	return 0;
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
	json_uint(&j, "trim_ns", r->trim_ns);
	json_int(&j, "malloc_trim_returned", r->ret);
	json_uint(&j, "safe_point_attempts", r->attempts);
	json_end(&j);
	fputc('\n', stdout);
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
	pid_t pid = (pid_t)v, tracer;
	int err = inject_check(pid, &tracer);
	if (err)
		return attach_refusal("trim", pid, err, tracer);
	struct trim_result r;
	if ((err = trim_process(pid, &r)))
		return attach_refusal("trim", pid, err, 0);
	if (json) {
		print_json(&r);
		return EXIT_OK;
	}
	char a[32], b[32], d[32], e[32], f[32], g[32], h[32];
	printf("pid %d: malloc_trim(0) released %s\n", (int)pid, fmt_bytes(r.released, a, sizeof(a)));
	printf("  RSS       %10s -> %s\n", fmt_bytes(r.rss_before, b, sizeof(b)),
	       fmt_bytes(r.rss_after, d, sizeof(d)));
	printf("  heap RSS  %10s -> %s\n", fmt_bytes(r.heap_before, e, sizeof(e)),
	       fmt_bytes(r.heap_after, f, sizeof(f)));
	if (!strcmp(r.method, "agent"))
		printf("  called on the mfx agent's thread, no thread of the program stopped "
		       "(malloc_trim itself %s)\n", fmt_duration(r.trim_ns, h, sizeof(h)));
	else
		printf("  one thread held %s (malloc_trim itself %s)\n",
		       fmt_duration(r.pause_ns, g, sizeof(g)), fmt_duration(r.trim_ns, h, sizeof(h)));
	if (r.released < (1u << 20))
		printf("  little came back: the heap's free memory is not where trim can return it,\n"
		       "  or there was little free memory (see 'mfx attach' for why memory grows)\n");
	return EXIT_OK;
}
