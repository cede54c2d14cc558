/*
 * print.c - the terminal summary.  The first screen answers "what holds
 * the memory": the verdict, the sites holding the most at the peak of live
 * bytes (and what each still held at the end), the leak suspects, the
 * busiest sites; then counts, modules without debug info, the other traces.
 * Names are shortened and lines cut to the terminal (term.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "analyzer/debuginfo.h"
#include "analyzer/model.h"
#include "analyzer/recording.h"
#include "analyzer/term.h"
#include "common/util.h"

struct out {
	FILE *f;
	int width;
	const char *ell;
};

static void say(const struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct out *o, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	term_cut(line, sizeof(line), o->width, o->ell);
	fprintf(o->f, "%s\n", line);
}

static uint64_t pos(int64_t v)
{
	return v > 0 ? (uint64_t)v : 0;
}

/* "name file.c:12" (short name), or "name [module]" without a line. */
static char *where(const struct out *o, const struct sym_frame *f, char *buf, size_t n)
{
	char name[512];
	term_short_name(f->function, o->ell, name, sizeof(name));
	if (f->file)
		snprintf(buf, n, "%s %s:%u", name, sym_basename(f->file), f->line);
	else
		snprintf(buf, n, "%s [%s]", name, f->module ? sym_basename(f->module) : "?");
	return buf;
}

/* The heaviest call path above a site, up to three callers of the
 * program's own (the C library's start-up frames are left out). */
static void callers_line(const struct out *o, const struct model *m, const struct rsite *r)
{
	struct site_tree t;
	if (model_site_tree(m, r, &t))
		return;
	char line[1024] = "", w[600];
	size_t len = 0;
	uint32_t i = 0, kid, paths = 0;
	for (uint32_t c = t.n[0].child; c; c = t.n[c].next)
		paths++;
	const struct sym_frame *last = t.n[0].frame;
	int repeat = 0;
	for (int shown = 0; shown < 3 && site_tree_children(&t, i, &kid, 1) == 1; i = kid) {
		const struct sym_frame *f = t.n[kid].frame;
		if (site_frame_skipped(&m->rules, f))
			continue;
		if (site_same_frame(f, last)) {	/* recursion: once, with a count */
			repeat++;
			continue;
		}
		/* "< f (recursive) < g"; "(recursive) < g" when the site calls itself */
		int k = snprintf(line + len, sizeof(line) - len, "%s%s< %s",
				 repeat ? (len ? " (recursive)" : "(recursive)") : "",
				 len || repeat ? " " : "", where(o, f, w, sizeof(w)));
		if (k < 0 || (size_t)k >= sizeof(line) - len)
			break;
		len += (size_t)k;
		shown++;
		last = f;
		repeat = 0;
	}
	if (repeat && len + 20 < sizeof(line))
		len += (size_t)snprintf(line + len, sizeof(line) - len, " (recursive)");
	if (paths > 1 && len + 40 < sizeof(line))
		snprintf(line + len, sizeof(line) - len, "  (called from %u places)", paths);
	if (line[0])
		say(o, "        %s", line);
	site_tree_free(&t);
}

enum what { AT_PEAK, AT_END, CALLS };

static void print_site(const struct out *o, const struct model *m, const struct rsite *r, int i,
		       enum what what)
{
	char a[32], b[32], w[600], note[64] = "", err[48] = "";
	if (m->a.sample_mean)	/* --sample: an estimate, with its error */
		snprintf(err, sizeof(err), " +-%s", fmt_bytes(model_sample_error(r->s->live_var), b,
							       sizeof(b)));
	if (r->growing)
		snprintf(note, sizeof(note), "  (growing)");
	else if (r->freed_at_exit)
		snprintf(note, sizeof(note), "  (freed at exit)");
	if (what == AT_PEAK)
		say(o, "  %2d. %9s at the peak, %9s%s at the end  %s%s", i + 1,
		    fmt_bytes(pos(r->s->live_at_peak), a, sizeof(a)),
		    fmt_bytes(pos(r->s->live_bytes), b, sizeof(b)), err, where(o, r->site, w, sizeof(w)),
		    note);
	else if (what == AT_END)
		say(o, "  %2d. %9s%s in %s blocks at the end  %s%s", i + 1,
		    fmt_bytes(pos(r->s->live_bytes), a, sizeof(a)), err,
		    fmt_count(r->s->live_blocks, b, sizeof(b)), where(o, r->site, w, sizeof(w)), note);
	else
		say(o, "  %2d. %9s calls, %s allocated  %s", i + 1, fmt_count(r->s->allocs, a, sizeof(a)),
		    fmt_bytes(r->s->alloc_bytes, b, sizeof(b)), where(o, r->site, w, sizeof(w)));
	callers_line(o, m, r);
}

/* "; exited with status 3", "; killed by signal 9", or "". */
static void end_words(const struct model *m, char *buf, size_t n)
{
	buf[0] = 0;
	const char *who = m->attach ? "the process exited during the window" : "exited";
	if (!m->exited)
		return;
	if (!m->have_exit_status)
		snprintf(buf, n, "; %s (status unknown)", who);
	else if (WIFSIGNALED(m->exit_wait_status))
		snprintf(buf, n, "; %s: killed by signal %d", m->attach ? who : "ended",
			 WTERMSIG(m->exit_wait_status));
	else
		snprintf(buf, n, "; %s with status %d", who, WEXITSTATUS(m->exit_wait_status));
}

/* heap.c's line (the allocator and where the heap figures came from),
 * through say(): cut like the others. */
static void heap_line(const struct out *o, const struct model *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return;
	heap_print(f, &m->heap);
	fclose(f);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		say(o, "%s", line);
	free(buf);
}

/* What the recording lacks (analyzer/recording.c), under the verdict. */
static void note_line(const char *text, void *o)
{
	say(o, "note: %s", text);
}

static void header(const struct out *o, const struct model *m)
{
	const struct analysis *a = &m->a;
	char b1[32], b2[32], b3[32], end[128];
	end_words(m, end, sizeof(end));
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s", m->info->command[0] ? m->info->command : m->info->exe);
	for (char *c = cmd; *c; c++)
		if ((unsigned char)*c < ' ')
			*c = ' ';	/* python3 -c "..." with newlines: one line */
	for (size_t l = strlen(cmd); l && cmd[l - 1] == ' '; l--)
		cmd[l - 1] = 0;		/* a process title padded with spaces */
	say(o, "pid %u  %s", m->info->pid, cmd);
	say(o, "%s %s, %s calls in %u thread%s%s", m->attach ? "attached for" : "traced for",
	    fmt_duration(m->duration_ns, b1, sizeof(b1)), fmt_count(a->nevents, b2, sizeof(b2)),
	    a->nthreads, a->nthreads == 1 ? "" : "s", end);
	say(o, "%s", "");
	say(o, "verdict: %s", m->verdict_line);
	recording_notes(m, note_line, (void *)o);
	heap_line(o, m);
	char b4[32];
	if (m->heap_rss && m->heap.measured && m->have_smaps && m->smaps_rss * 10 < m->rss_peak * 9)
		/* the peak fell between two reads of smaps: say so, and when */
		say(o, "  RSS peak %s (the kernel's); smaps read at RSS %s: heap RSS %s, live blocks %s, "
		    "fragmentation %.0f%%", fmt_bytes(m->rss_peak, b1, sizeof(b1)),
		    fmt_bytes(m->smaps_rss, b4, sizeof(b4)), fmt_bytes(m->heap_rss, b2, sizeof(b2)),
		    fmt_bytes(pos(m->live_at_rss_peak), b3, sizeof(b3)), m->frag * 100);
	else if (m->heap_rss && m->heap.measured)
		say(o, "  at the RSS peak (%s): heap RSS %s, live blocks %s, fragmentation %.0f%%",
		    fmt_bytes(m->rss_peak, b1, sizeof(b1)), fmt_bytes(m->heap_rss, b2, sizeof(b2)),
		    fmt_bytes(pos(m->live_at_rss_peak), b3, sizeof(b3)), m->frag * 100);
	if (a->have_exit)
		say(o, "  the program began to exit at %s (%s %lld); its teardown freed %s",
		    fmt_duration(a->exit_ts > a->first_ts ? a->exit_ts - a->first_ts : 0, b1, sizeof(b1)),
		    a->exit_how == MFX_EXIT_MAIN_RETURN ? "main returned" : "exit", (long long)a->exit_status,
		    fmt_bytes(pos(a->live_at_exit - a->live_bytes_end), b2, sizeof(b2)));
}

static void sites(const struct out *o, const struct model *m)
{
	char b1[32], b2[32];
	const struct analysis *a = &m->a;
	if (m->n_peak) {
		say(o, "%s", "");
		say(o, "at the peak of live bytes (%s, %s in):",
		    fmt_bytes(pos(a->peak_live_bytes), b1, sizeof(b1)),
		    fmt_duration(a->peak_live_ts > a->first_ts ? a->peak_live_ts - a->first_ts : 0, b2,
				 sizeof(b2)));
		for (int i = 0; i < m->n_peak && i < m->top; i++)
			print_site(o, m, &m->by_peak[i], i, AT_PEAK);
	}
	if (m->n_leaks) {
		say(o, "%s", "");
		say(o, "leak suspects (live bytes only grew, still held at the end):");
		for (int i = 0; i < m->n_leaks && i < m->top; i++)
			print_site(o, m, &m->leaks[i], i, AT_END);
	}
	if (m->n_allocs) {
		say(o, "%s", "");
		say(o, "most allocation calls:");
		for (int i = 0; i < m->n_allocs && i < 5 && i < m->top; i++)
			print_site(o, m, &m->by_allocs[i], i, CALLS);
	}
}

static void counts(const struct out *o, const struct model *m)
{
	const struct analysis *a = &m->a;
	char b1[32], b2[32], b3[32], b4[32];
	say(o, "%s", "");
	say(o, "counts: malloc %llu  calloc %llu  realloc %llu  free %llu  memalign %llu",
	    (unsigned long long)a->counts[TC_MALLOC], (unsigned long long)a->counts[TC_CALLOC],
	    (unsigned long long)a->counts[TC_REALLOC], (unsigned long long)a->counts[TC_FREE],
	    (unsigned long long)a->counts[TC_MEMALIGN]);
	say(o, "live:   peak %s, end %s in %s blocks; %s allocated in all",
	    fmt_bytes(pos(a->peak_live_bytes), b1, sizeof(b1)),
	    fmt_bytes(pos(a->live_bytes_end), b2, sizeof(b2)), fmt_count(a->live_blocks_end, b3, sizeof(b3)),
	    fmt_bytes(a->total_bytes_allocated, b4, sizeof(b4)));
	if (a->sample_mean)
		say(o, "sampled: one call per %s allocated on average (%s calls recorded): bytes "
		    "and counts are estimates; live at the end +-%s (%d sigma)",
		    fmt_bytes(a->sample_mean, b1, sizeof(b1)), fmt_count(a->nevents, b2, sizeof(b2)),
		    fmt_bytes(model_sample_error(a->live_var_end), b3, sizeof(b3)), MODEL_SAMPLE_SIGMAS);
	if (a->sample_mean && m->heap_rss && m->heap.measured)
		say(o, "heap:   page occupancy and the trim estimate: not measured on a sampled run "
		    "(they need every live block)");
	else if (m->trim_estimate && m->heap_rss && m->heap.measured)
		say(o, "heap:   %s could return about %s (resident heap pages holding no live block)",
		    heap_release_call(&m->heap), fmt_bytes(m->trim_estimate, b1, sizeof(b1)));
	if (m->have_trim)
		say(o, "  %s measured (%s): RSS %s -> %s, heap RSS %s -> %s", m->trim_call, m->trim_method,
		    fmt_bytes(m->trim_vals[0], b1, sizeof(b1)), fmt_bytes(m->trim_vals[1], b2, sizeof(b2)),
		    fmt_bytes(m->trim_vals[2], b3, sizeof(b3)), fmt_bytes(m->trim_vals[3], b4, sizeof(b4)));
	if (m->attach)
		say(o, "  (attach: blocks allocated before the window are not known; their %s frees "
		    "were counted, not subtracted)", fmt_count(a->unknown_frees, b1, sizeof(b1)));
}

/* Modules without names or lines (and what would give them), changed ones. */
static void modules(const struct out *o, const struct model *m)
{
	const struct sym_module *mods;
	size_t n = m->sym ? sym_modules(m->sym, &mods) : 0;
	int first = 1;
	for (size_t i = 0; i < n; i++) {
		const struct sym_module *d = &mods[i];
		if (d->addrs && (d->stale || d->missing)) {
			if (first)
				say(o, "%s", "");
			say(o, "%s %s since the run (build-id %.12s): its frames are shown as addresses",
			    d->path, d->missing ? "is gone" : "changed", d->build_id);
			first = 0;
		}
	}
	for (size_t i = 0; i < n && i < m->nhints; i++) {
		const struct sym_module *d = &mods[i];
		if (!m->hints[i] || !d->unnamed)
			continue;	/* named, only no file:line: summary.json says it */
		if (first)
			say(o, "%s", "");
		say(o, "no %s for %s (%llu of %llu addresses unnamed): %s",
		    d->has_symtab ? "debug info" : "symbols", sym_basename(d->path),
		    (unsigned long long)d->unnamed, (unsigned long long)d->addrs, m->hints[i]);
		first = 0;
	}
}

static void others(const struct out *o, const struct model *m)
{
	char b[32];
	int images = 0, children = 0;
	for (int i = 0; i < m->nothers; i++) {
		const struct other_trace *t = &m->others[i];
		if (!t->exec_image)
			continue;
		if (!images++)
			say(o, "%s", "");
		if (images == 1)
			say(o, "pid %u ran %s last; before it, it exec'ed:", m->info->pid, m->info->exe);
		say(o, "  %s  %s calls  %s", t->exe ? t->exe : "?", fmt_count(t->events, b, sizeof(b)),
		    t->name);
	}
	for (int i = 0; i < m->nothers; i++)
		children += !m->others[i].exec_image;
	if (!children)
		return;
	say(o, "%s", "");
	say(o, "also traced in this run (%d other process%s):", children, children == 1 ? "" : "es");
	for (int i = 0, shown = 0; i < m->nothers && shown < 5; i++) {
		const struct other_trace *t = &m->others[i];
		if (t->exec_image)
			continue;
		say(o, "  %s  pid %u %s  %s calls", t->name, t->pid, t->exe ? t->exe : "?",
		    fmt_count(t->events, b, sizeof(b)));
		shown++;
	}
	for (int i = 0; i < m->nothers; i++)
		if (!m->others[i].exec_image) {
			say(o, "  report one with: mfx report --trace %s %s", m->others[i].name, m->run_dir);
			break;
		}
}

void model_print(const struct model *m, FILE *f, int width)
{
	struct out o = { f, width, term_ellipsis() };
	header(&o, m);
	sites(&o, m);
	counts(&o, m);
	modules(&o, m);
	others(&o, m);
}
