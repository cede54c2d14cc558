/*
 * snapshot.c - `mfx snapshot`: copy /proc/PID/smaps to a file and print what
 * it says about memory: RSS by kind (allocator heap, stacks, file-backed,
 * shared), the allocator's mappings, and the statistics of the allocator
 * that serves malloc (glibc, jemalloc, tcmalloc, mimalloc) when the agent
 * is loaded in the process: asked of the agent's own thread through its
 * doorbell (alloc_info.c), and its own text saved beside the smaps copy.
 * The process is never stopped.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "attach/agentctl.h"
#include "attach/alloc_info.h"
#include "attach/cmdline.h"
#include "attach/commands.h"
#include "common/procfs.h"
#include "common/util.h"

static void snapshot_help(void)
{
	printf("usage: mfx snapshot PID [-o FILE] [--json] [--top N]\n\n"
	       "Copy /proc/PID/smaps to FILE and print a summary: RSS by kind (the\n"
	       "allocator's heap, thread stacks, file-backed, shared memory), the\n"
	       "allocator's largest mappings, and which allocator serves malloc (glibc,\n"
	       "jemalloc, tcmalloc, mimalloc).  When the mfx agent is loaded in PID (an\n"
	       "earlier 'mfx attach' leaves it there), also that allocator's own figures\n"
	       "and statistics, asked of the agent's own thread and saved beside FILE:\n"
	       "glibc's malloc_info XML (FILE.malloc_info.xml), jemalloc's\n"
	       "malloc_stats_print (FILE.malloc_stats.txt), tcmalloc's and mimalloc's\n"
	       "(FILE.tcmalloc_stats.txt, FILE.mimalloc_stats.txt).  The process is not\n"
	       "stopped.\n\n"
	       "Options (before or after PID):\n"
	       "    -o, --out FILE    where the smaps copy goes (default smaps-<pid>-<date>)\n"
	       "        --json        print the summary as JSON\n"
	       "        --top N       allocator mappings to list (default 8)\n\n"
	       "Examples:\n"
	       "    mfx snapshot 4242\n"
	       "    mfx snapshot 4242 --json -o before.smaps | jq .allocator_figures\n");
}

static int cmp_rss(const void *a, const void *b)
{
	const struct smaps_map *x = *(struct smaps_map *const *)a, *y = *(struct smaps_map *const *)b;
	return x->rss < y->rss ? 1 : x->rss > y->rss ? -1 : 0;
}

/* The allocator that serves malloc, and its own figures when the agent gave them. */
static void print_allocator(const struct alloc_info *ai, const char *xmlfile)
{
	static const unsigned order[] = { MFX_AF_RESIDENT, MFX_AF_IN_USE, MFX_AF_ACTIVE, MFX_AF_FREE,
					  MFX_AF_MAPPED, MFX_AF_RETAINED, MFX_AF_METADATA };
	static const char *const name[MFX_AF_NFIELDS] = {
		"in use", "resident", "mapped", "free (releasable)", "retained (unmapped)",
		"metadata", "active pages",
	};
	char a[32], b[32], c[32], d[32];
	printf("allocator: %s%s%s%s%s\n", ai->name, ai->module[0] ? " (" : "", ai->module,
	       ai->module[0] ? ")" : "", ai->from_agent ? ", asked of the mfx agent" : "");
	if (!ai->from_agent) {
		printf("  its own figures: not available (the mfx agent is not running in the process;\n"
		       "  an earlier 'mfx attach' leaves it there)\n");
		return;
	}
	if (ai->glibc_ok) {
		printf("  %-22s %10u\n", "arenas", ai->arenas);
		printf("  %-22s %10s  (%s of it the main arena's top chunk)\n",
		       "free in bins and tops", fmt_bytes(ai->free_bytes, a, sizeof(a)),
		       fmt_bytes(ai->top_bytes, b, sizeof(b)));
		printf("  %-22s %10s\n", "in use", fmt_bytes(ai->in_use_bytes, c, sizeof(c)));
		printf("  %-22s %10s\n", "mmapped chunks", fmt_bytes(ai->mmap_bytes, d, sizeof(d)));
		printf("  %-22s %10s\n", "from the system", fmt_bytes(ai->system_bytes, a, sizeof(a)));
	} else {
		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
			if (ai->figs.valid & (1u << order[i]))
				printf("  %-22s %10s\n", !strcmp(ai->name, "mimalloc") &&
				       order[i] == MFX_AF_MAPPED ? "committed" : name[order[i]],
				       fmt_bytes(ai->figs.v[order[i]], a, sizeof(a)));
	}
	if (ai->narenas)
		printf("  %-8s %8s %12s %12s %12s %12s\n", "arena", "threads", "active", "dirty",
		       "muzzy", "resident");
	for (unsigned i = 0; i < ai->narenas; i++) {
		const struct alloc_arena *r = &ai->arena[i];
		char e[32];
		printf("  %-8u %8u %12s %12s %12s %12s\n", r->id, r->threads,
		       fmt_bytes(r->active, a, sizeof(a)), fmt_bytes(r->dirty, b, sizeof(b)),
		       fmt_bytes(r->muzzy, c, sizeof(c)), fmt_bytes(r->resident, e, sizeof(e)));
	}
	printf("  give free memory back with: mfx trim (%s)%s%s\n", ai->call,
	       *xmlfile ? "; its own statistics: " : "", xmlfile);
}

static void print_text(pid_t pid, const char *comm, const struct smaps *s,
		       const struct smaps_totals *t, struct smaps_map **top, size_t ntop,
		       size_t nthreads, const struct alloc_info *ai, const char *file,
		       const char *xmlfile)
{
	char a[32], b[32], c[32];
	printf("pid %d (%s)  RSS %s  PSS %s  swap %s\n", (int)pid, comm,
	       fmt_bytes(t->rss, a, sizeof(a)), fmt_bytes(t->pss, b, sizeof(b)),
	       fmt_bytes(t->swap, c, sizeof(c)));
	printf("  %-22s %10s  ([heap] %s + %llu anonymous mappings)\n", "allocator heap",
	       fmt_bytes(t->heap_rss, a, sizeof(a)), fmt_bytes(t->brk_rss, b, sizeof(b)),
	       (unsigned long long)(t->allocator_mappings - (t->brk_rss ? 1 : 0)));
	printf("  %-22s %10s  (%zu thread%s)\n", "thread stacks",
	       fmt_bytes(t->kind_rss[MK_STACK], a, sizeof(a)), nthreads, nthreads == 1 ? "" : "s");
	printf("  %-22s %10s\n", "file-backed", fmt_bytes(t->kind_rss[MK_FILE], a, sizeof(a)));
	printf("  %-22s %10s\n", "shared memory", fmt_bytes(t->kind_rss[MK_SHMEM], a, sizeof(a)));
	if (t->kind_rss[MK_MFX])
		printf("  %-22s %10s\n", "mfx's own", fmt_bytes(t->kind_rss[MK_MFX], a, sizeof(a)));
	printf("  %-22s %10s\n", "other", fmt_bytes(t->kind_rss[MK_OTHER], a, sizeof(a)));
	if (ntop) {
		printf("allocator mappings, largest resident first:\n");
		for (size_t i = 0; i < ntop; i++)
			printf("  %012llx-%012llx %s %10s mapped %10s resident  %s\n",
			       (unsigned long long)top[i]->lo, (unsigned long long)top[i]->hi,
			       top[i]->perms, fmt_bytes(top[i]->hi - top[i]->lo, a, sizeof(a)),
			       fmt_bytes(top[i]->rss, b, sizeof(b)),
			       *top[i]->path ? top[i]->path : "[anonymous]");
	}
	print_allocator(ai, xmlfile);
	(void)s;
	fprintf(stderr, "mfx: smaps copied to %s%s%s\n", file, *xmlfile ? ", allocator statistics to " : "",
		xmlfile);
}

static void print_json(pid_t pid, const char *comm, const struct smaps_totals *t,
		       struct smaps_map **top, size_t ntop, size_t nthreads,
		       const struct alloc_info *ai, const char *file, const char *xmlfile)
{
	struct json j;
	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_int(&j, "pid", pid);
	json_str(&j, "comm", comm);
	json_str(&j, "smaps_file", file);
	json_uint(&j, "rss_bytes", t->rss);
	json_uint(&j, "pss_bytes", t->pss);
	json_uint(&j, "swap_bytes", t->swap);
	json_uint(&j, "heap_rss_bytes", t->heap_rss);
	json_uint(&j, "brk_heap_rss_bytes", t->brk_rss);
	json_uint(&j, "stack_rss_bytes", t->kind_rss[MK_STACK]);
	json_uint(&j, "file_rss_bytes", t->kind_rss[MK_FILE]);
	json_uint(&j, "shmem_rss_bytes", t->kind_rss[MK_SHMEM]);
	json_uint(&j, "mfx_rss_bytes", t->kind_rss[MK_MFX]);
	json_uint(&j, "other_rss_bytes", t->kind_rss[MK_OTHER]);
	json_uint(&j, "threads", nthreads);
	json_arr(&j, "allocator_mappings");
	for (size_t i = 0; i < ntop; i++) {
		char lo[24], hi[24];
		snprintf(lo, sizeof(lo), "0x%llx", (unsigned long long)top[i]->lo);
		snprintf(hi, sizeof(hi), "0x%llx", (unsigned long long)top[i]->hi);
		json_obj(&j, NULL);
		json_str(&j, "start", lo);
		json_str(&j, "end", hi);
		json_str(&j, "perms", top[i]->perms);
		json_str(&j, "path", top[i]->path);
		json_uint(&j, "size_bytes", top[i]->hi - top[i]->lo);
		json_uint(&j, "rss_bytes", top[i]->rss);
		json_end(&j);
	}
	json_end(&j);
	json_str(&j, "allocator", ai->name);
	json_str(&j, "allocator_module", ai->module[0] ? ai->module : NULL);
	json_str(&j, "allocator_call", ai->call);
	if (ai->from_agent) {
		static const char *const k[MFX_AF_NFIELDS] = {
			"in_use_bytes", "resident_bytes", "mapped_bytes", "free_bytes",
			"retained_bytes", "metadata_bytes", "active_bytes",
		};
		json_obj(&j, "allocator_figures");
		for (int i = 0; i < MFX_AF_NFIELDS; i++)
			if (ai->figs.valid & (1u << i))
				json_uint(&j, k[i], ai->figs.v[i]);
		json_end(&j);
	} else {
		json_null(&j, "allocator_figures");
	}
	json_str(&j, "allocator_stats_file", *xmlfile ? xmlfile : NULL);
	if (ai->narenas) {
		json_arr(&j, "jemalloc_arenas");
		for (unsigned i = 0; i < ai->narenas; i++) {
			json_obj(&j, NULL);
			json_uint(&j, "arena", ai->arena[i].id);
			json_uint(&j, "threads", ai->arena[i].threads);
			json_uint(&j, "active_bytes", ai->arena[i].active);
			json_uint(&j, "dirty_bytes", ai->arena[i].dirty);
			json_uint(&j, "muzzy_bytes", ai->arena[i].muzzy);
			json_uint(&j, "resident_bytes", ai->arena[i].resident);
			json_end(&j);
		}
		json_end(&j);
	}
	if (ai->glibc_ok) {
		json_obj(&j, "malloc_info");
		json_uint(&j, "arenas", ai->arenas);
		json_uint(&j, "free_bytes", ai->free_bytes);
		json_uint(&j, "top_bytes", ai->top_bytes);
		json_uint(&j, "mmap_bytes", ai->mmap_bytes);
		json_uint(&j, "system_bytes", ai->system_bytes);
		json_uint(&j, "in_use_bytes", ai->in_use_bytes);
		json_str(&j, "file", xmlfile);
		json_end(&j);
	} else {
		json_null(&j, "malloc_info");
	}
	json_end(&j);
}

/* The command line of `mfx snapshot`, every option's default in one place. */
struct snapshot_opts {
	const char *out;	/* -o, --out FILE; NULL = smaps-<pid>-<date> */
	int json;		/* --json */
	uint64_t topn;		/* --top N: allocator mappings listed (8) */
	pid_t pid;		/* the operand */
	char deffile[96];	/* the default FILE, once named */
};

/* -1 to go on, else the exit status (after --help or a usage error). */
static int snapshot_parse(int argc, char **argv, struct snapshot_opts *o)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "top", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	uint64_t v;
	struct cmdline cl = { 0 };
	while ((c = cmdline_next(&cl, argc, argv, ":o:h", longopts)) != -1) {
		switch (c) {
		case 'o': o->out = optarg; break;
		case 'j': o->json = 1; break;
		case 't':
			if (parse_uint(optarg, 1000, &v))
				return mfx_usage("snapshot", "invalid --top '%s'", optarg);
			o->topn = v;
			break;
		case 'h': snapshot_help(); return EXIT_OK;
		case ':': return mfx_usage("snapshot", "option '%s' needs a value", argv[optind - 1]);
		default: return mfx_usage("snapshot", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (cl.nops != 1)
		return mfx_usage("snapshot", cl.nops == 0 ? "no PID given" : "one PID only ('%s' is extra)",
				 cl.ops[1]);
	if (parse_uint(cl.ops[0], 0x7fffffff, &v) || v == 0)
		return mfx_usage("snapshot", "'%s' is not a process id", cl.ops[0]);
	o->pid = (pid_t)v;
	return -1;
}

/* The process's name and its smaps: EXIT_OK, or EXIT_FAIL said in one line. */
static int read_target(pid_t pid, char *comm, size_t n, struct smaps *s)
{
	int st = procfs_state(pid);
	if (st == -ESRCH) {
		mfx_err("no process %d", (int)pid);
		return EXIT_FAIL;
	}
	if (st == 'Z') {
		mfx_err("process %d is a zombie: it has no memory left to look at", (int)pid);
		return EXIT_FAIL;
	}
	procfs_comm(pid, comm, n);
	int err = procfs_smaps_read(pid, s);
	if (err) {
		mfx_err("cannot read /proc/%d/smaps: %s%s", (int)pid, mfx_strerror(-err),
			err == -EACCES || err == -EPERM ? " (run as root or as the process's user)" : "");
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Without -o: smaps-<pid>-<date> in the current directory. */
static void default_out(struct snapshot_opts *o)
{
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	if (o->out)
		return;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(o->deffile, sizeof(o->deffile), "smaps-%d-%s", (int)o->pid, stamp);
	o->out = o->deffile;
}

/* The allocator's mappings, largest resident first, at most topn of them
 * (*ntop); NULL (and *ntop 0) when out of memory. */
static struct smaps_map **top_mappings(struct smaps *s, uint64_t topn, size_t *ntop)
{
	struct smaps_map **top = calloc(s->n + 1, sizeof(*top));
	*ntop = 0;
	if (!top)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->maps[i].allocator)
			top[(*ntop)++] = &s->maps[i];
	qsort(top, *ntop, sizeof(*top), cmp_rss);
	if (*ntop > topn)
		*ntop = (size_t)topn;
	return top;
}

/* The allocator's own statistics text (from the agent) beside the smaps
 * copy, as FILE<suffix>; file gets its name, or "" when there is none. */
static void save_alloc_text(const char *out, const struct alloc_info *ai, char *file, size_t n)
{
	int err;
	file[0] = 0;
	if (!ai->text || !*ai->text_suffix)
		return;
	snprintf(file, n, "%s%s", out, ai->text_suffix);
	if ((err = write_file(file, ai->text, strlen(ai->text)))) {
		mfx_note("cannot write '%s': %s", file, mfx_strerror(-err));
		file[0] = 0;
	}
}

int cmd_snapshot(int argc, char **argv)
{
	struct snapshot_opts o = { .topn = 8 };
	int rc = snapshot_parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	char comm[64] = "?", xmlfile[4200];
	struct smaps s;
	if ((rc = read_target(o.pid, comm, sizeof(comm), &s)))
		return rc;
	struct smaps_map **top = NULL;
	default_out(&o);
	int err = write_file(o.out, s.text, s.len);
	if (err) {
		mfx_err("cannot write '%s': %s", o.out, mfx_strerror(-err));
		rc = EXIT_FAIL;
		goto out;
	}
	struct smaps_totals t;
	procfs_smaps_totals(&s, &t);
	size_t ntop, nthreads = 0;
	top = top_mappings(&s, o.topn, &ntop);
	pid_t *tids;
	if (procfs_tids(o.pid, &tids, &nthreads) == 0)
		free(tids);
	struct alloc_info ai;
	alloc_info_get(o.pid, &ai);
	save_alloc_text(o.out, &ai, xmlfile, sizeof(xmlfile));
	if (o.json)
		print_json(o.pid, comm, &t, top, ntop, nthreads, &ai, o.out, xmlfile);
	else
		print_text(o.pid, comm, &s, &t, top, ntop, nthreads, &ai, o.out, xmlfile);
	alloc_info_free(&ai);
out:
	free(top);
	procfs_smaps_free(&s);
	return rc;
}
