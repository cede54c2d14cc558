/*
 * html.c - report.html: one self-contained page (style, script, data and
 * charts inline; nothing fetched; opens from file://).  The verdict and
 * summary, then what people explore: a flame graph (icicle) of the
 * allocation call tree by live bytes at the peak, at the end, bytes
 * allocated or calls, with zoom and search; a functions table; live bytes
 * of the top sites over time under RSS and heap RSS; then the charts, the
 * site tables (sortable) and the replays (mfx replay, the sweep's
 * recommendation).  The script is analyzer/report.js (assets.c); the data
 * it draws is one JSON object in a <script type="application/json">.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/assets.h"
#include "analyzer/flame.h"
#include "analyzer/model.h"
#include "analyzer/sitetime.h"
#include "common/hmap.h"
#include "common/util.h"

static void esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default: fputc(*s, f);
		}
	}
}

static void base64(FILE *f, const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		fputc(tab[v >> 18 & 63], f);
		fputc(tab[v >> 12 & 63], f);
		fputc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
		fputc(i + 2 < n ? tab[v & 63] : '=', f);
	}
}

static void image(FILE *f, const struct model *m, const char *stem, const char *alt)
{
	char path[PATH_MAX], *data;
	size_t len;
	if (read_file(model_file(m, m->run_dir, stem, ".png", path, sizeof(path)), &data, &len))
		return;
	const char *name = sym_basename(path);
	fprintf(f, "<figure><img alt=\"");
	esc(f, alt);
	fprintf(f, "\" src=\"data:image/png;base64,");
	base64(f, (const unsigned char *)data, len);
	fprintf(f, "\"><figcaption>%s</figcaption></figure>\n", name);
	free(data);
}

static void row(FILE *f, const char *k, const char *v)
{
	fputs("<tr><th>", f);
	esc(f, k);
	fputs("</th><td>", f);
	esc(f, v);
	fputs("</td></tr>\n", f);
}

/* ---- the site tables ----------------------------------------------------------------- */

static void stack_list(FILE *f, const struct model *m, const struct rsite *r)
{
	fputs("<ol class=stack>", f);
	for (uint32_t k = 0; r->frames && k < r->depth; k++) {
		const struct sym_frame *fr;
		int nf = m->sym ? sym_lookup(m->sym, r->frames[k], &fr) : 0;
		for (int j = 0; j < nf; j++) {
			fputs("<li><code>", f);
			esc(f, fr[j].function);
			fputs("</code>", f);
			if (fr[j].inlined)
				fputs(" <i>(inlined)</i>", f);
			if (fr[j].file) {
				fputs(" ", f);
				esc(f, fr[j].file);
				fprintf(f, ":%u", fr[j].line);
			}
			fputs(" <span class=mod>", f);
			esc(f, sym_basename(fr[j].module));
			fprintf(f, " 0x%llx</span></li>", (unsigned long long)fr[j].addr);
		}
	}
	fputs("</ol>", f);
}

/* A number cell: shown formatted, sorted by data-v. */
static void num_cell(FILE *f, uint64_t v, const char *shown, const char *extra)
{
	fprintf(f, "<td class=n data-v=\"%llu\">%s%s</td>", (unsigned long long)v, shown, extra);
}

static void sites(FILE *f, const struct model *m, const char *title, const char *note,
		  const struct rsite *v, int n, int mode)
{
	if (!n)
		return;
	fprintf(f, "<h2>%s</h2>\n<p class=note>%s</p>\n<table class=\"sites sortable\"><thead><tr><th>#</th>",
		title, note);
	fprintf(f, "<th>%s</th><th>blocks live</th><th>calls</th><th>allocated</th><th>site</th></tr>"
		   "</thead><tbody>\n", mode == 2 ? "live at the peak" : "live at end");
	for (int i = 0; i < n && i < m->top; i++) {
		const struct rsite *r = &v[i];
		char a[32], b[32], c[32], d[32];
		int64_t lv = mode == 2 ? r->s->live_at_peak : r->s->live_bytes;
		uint64_t l = (uint64_t)(lv > 0 ? lv : 0);
		fprintf(f, "<tr><td class=n data-v=\"%d\">%d</td>", i + 1, i + 1);
		num_cell(f, l, fmt_bytes(l, a, sizeof(a)), r->growing ? " <span class=grow>growing</span>" :
			 r->freed_at_exit ? " <span class=mod>freed at exit</span>" : "");
		num_cell(f, r->s->live_blocks, fmt_count(r->s->live_blocks, b, sizeof(b)), "");
		num_cell(f, r->s->allocs, fmt_count(r->s->allocs, c, sizeof(c)), "");
		num_cell(f, r->s->alloc_bytes, fmt_bytes(r->s->alloc_bytes, d, sizeof(d)), "");
		fputs("<td><details><summary><code>", f);
		esc(f, r->site->function);
		fputs("</code>", f);
		if (r->site->file)
			fprintf(f, " %s:%u", sym_basename(r->site->file), r->site->line);
		fputs(" <span class=mod>", f);
		esc(f, sym_basename(r->site->module));
		fputs("</span></summary>", f);
		stack_list(f, m, r);
		fputs("</details></td></tr>\n", f);
	}
	fputs("</tbody></table>\n", f);
}

/* ---- the replays ------------------------------------------------------------------------ */

static unsigned long long jnum(const char *s, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\": ", key);
	const char *p = strstr(s, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

static void jstr(const char *s, const char *key, char *out, size_t n)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\": \"", key);
	const char *p = strstr(s, k);
	out[0] = 0;
	if (p)
		snprintf(out, n, "%.*s", (int)strcspn(p + strlen(k), "\""), p + strlen(k));
}

/* One run of replay.json (a line of its own: that is how replay writes it). */
static void replay_row(FILE *f, const char *line, int rank, int best)
{
	char alloc[96], tun[256], rep[16], a[32], b[32], c[32], d[32], e[32];
	jstr(line, "allocator", alloc, sizeof(alloc));
	jstr(line, "tunables", tun, sizeof(tun));
	if (!tun[0])
		snprintf(tun, sizeof(tun), "(defaults)");
	jstr(line, "replayer", rep, sizeof(rep));
	if (!strcmp(rep, "replay.c"))
		strcat(alloc, " (replay.c)");
	unsigned long long ops = jnum(line, "ops"), peak = jnum(line, "peak_live_bytes");
	unsigned long long rss = jnum(line, "rss_peak_bytes"), end = jnum(line, "rss_end_bytes");
	unsigned long long wall = jnum(line, "wall_ns");
	fprintf(f, "<tr%s>", best ? " class=best" : "");
	if (rank)
		fprintf(f, "<td class=n data-v=\"%d\">%d</td>", rank, rank);
	fputs("<td>", f);
	esc(f, alloc);
	fputs("</td><td>", f);
	esc(f, tun);
	fputs("</td>", f);
	num_cell(f, ops, fmt_count(ops, a, sizeof(a)), "");
	num_cell(f, peak, fmt_bytes(peak, b, sizeof(b)), "");
	num_cell(f, rss, fmt_bytes(rss, c, sizeof(c)), "");
	num_cell(f, end, fmt_bytes(end, d, sizeof(d)), "");
	num_cell(f, wall, fmt_duration(wall, e, sizeof(e)), "");
	fputs("</tr>\n", f);
}

/* The sweep's recommendation (or why there is none), from replay.json. */
static int sweep_head(FILE *f, const char *text, int *pick)
{
	const char *sw = strstr(text, "\"sweep\": {");
	char buf[2048];
	*pick = -1;
	if (!sw)
		return 0;
	const char *rec = strstr(sw, "\"recommendation\": {");
	if (rec) {
		*pick = (int)jnum(rec, "run");
		jstr(rec, "text", buf, sizeof(buf));
		fputs("<p class=recommend>Recommended: <code>", f);
		esc(f, buf);
		fprintf(f, "</code><br><span class=note>Medians of %llu alternating replays against glibc's "
			   "defaults; applied to the program, it is the line before the colon.</span></p>\n",
			jnum(sw, "confirm_runs"));
	} else {
		jstr(sw, "why", buf, sizeof(buf));
		fputs("<p class=recommend>No recommendation: ", f);
		esc(f, buf);
		fputs("</p>\n", f);
	}
	const char *lt = strstr(sw, "\"live_trim\": {");
	if (lt && strstr(lt, "\"measured\": true")) {
		char a[32], b[32], c[32];
		fprintf(f, "<p class=note>Beside it, a live <code>mfx trim</code> released %s (RSS %s &rarr; %s).</p>\n",
			fmt_bytes(jnum(lt, "released_bytes"), a, sizeof(a)),
			fmt_bytes(jnum(lt, "rss_before_bytes"), b, sizeof(b)),
			fmt_bytes(jnum(lt, "rss_after_bytes"), c, sizeof(c)));
	}
	return 1;
}

/* The replays, from replay.json (mfx replay): a sortable table, ranked
 * with the recommendation first when it was a sweep. */
static void replay_table(FILE *f, const char *dir)
{
	char path[PATH_MAX], *text;
	if (read_file(path_join(path, sizeof(path), dir, "replay.json"), &text, NULL))
		return;
	fputs("<h2 id=replays>Approach B: replays</h2>\n<p class=note>The captured window replayed without "
	      "the program, under each allocator and setting (mfx replay); RSS sampled from outside.</p>\n", f);
	int pick, sweep = sweep_head(f, text, &pick);
	fprintf(f, "<table class=\"sites sortable\"%s><thead><tr>%s<th>allocator</th><th>tunables</th><th>calls"
		   "</th><th>peak live</th><th>RSS peak</th><th>RSS at end</th><th>time</th></tr></thead>"
		   "<tbody>\n", sweep ? " data-sort=0" : "", sweep ? "<th>rank</th>" : "");
	/* the ranking: run index -> rank */
	int rank_of[512] = { 0 }, k = 0;
	const char *rk = sweep ? strstr(text, "\"ranking\": [") : NULL;
	for (const char *p = rk ? rk + 12 : NULL; p && *p && *p != ']' && k < 512; k++) {
		long v = strtol(p, (char **)&p, 10);
		if (v >= 0 && v < 512)
			rank_of[v] = k + 1;
		p += strspn(p, ", ");
	}
	int i = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		if (strstr(line, "\"allocator\"")) {
			replay_row(f, line, sweep ? (i < 512 && rank_of[i] ? rank_of[i] : 999) : 0, i == pick);
			i++;
		}
	fputs("</tbody></table>\n", f);
	free(text);
}

/* ---- the data the script draws -------------------------------------------------------- */

/* A JSON string safe inside <script>: no "</" can close the element. */
static void js_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&')
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* Strings by pointer (interned by the symbolizer): index in "strings". */
struct strtab {
	struct hmap idx;	/* pointer -> uint32_t index */
	const char **list;
	size_t lcap, n;
};

static uint32_t str_idx(struct strtab *t, const char *s)
{
	if (!s)
		return 0;	/* "strings"[0] is "" */
	int added;
	uint32_t *v = hmap_put(&t->idx, (uint64_t)(uintptr_t)s, &added);
	if (!v)
		return 0;
	if (added) {
		if (grow_array(&t->list, &t->lcap, t->n + 1, sizeof(*t->list))) {
			hmap_del(&t->idx, (uint64_t)(uintptr_t)s, NULL);
			return 0;
		}
		*v = (uint32_t)++t->n;
		t->list[t->n] = s;
	}
	return *v;
}

static void data_flame(FILE *f, const struct flame *fl, struct strtab *st)
{
	fprintf(f, "\"metrics\":[\"live at the peak\",\"live at the end\",\"allocated\",\"calls\"],"
		   "\"units\":[\"bytes\",\"bytes\",\"bytes\",\"calls\"],\"folded\":{\"before\":%u,\"kept\":%u},"
		   "\"nodes\":[", fl->before, fl->count);
	for (uint32_t i = 0; i < fl->count; i++) {
		const struct flame_node *n = &fl->n[i];
		fprintf(f, "%s%u,%u,%u,%u,%u,%u,%llu,%llu,%llu,%llu", i ? "," : "", n->parent,
			str_idx(st, n->name), str_idx(st, n->file), n->line, str_idx(st, n->module), n->more,
			(unsigned long long)n->v[0], (unsigned long long)n->v[1], (unsigned long long)n->v[2],
			(unsigned long long)n->v[3]);
	}
	fputs("]", f);
}

/* The timeline: buckets' times and live bytes, RSS and heap RSS samples,
 * the top sites' series (seconds from the same zero as the charts). */
static void data_time(FILE *f, const struct model *m, const struct site_series *ss, struct strtab *st)
{
	const struct analysis *a = &m->a;
	const struct trace_sample *s;
	size_t ns = trace_samples(m->t, &s);
	uint64_t t0 = m->info->window_start_ns ? m->info->window_start_ns : a->first_ts;
	if (a->ntl && a->tl_t0 < t0)
		t0 = a->tl_t0;
	if (ns && s[0].ts_ns < t0)
		t0 = s[0].ts_ns;
	fputs(",\"time\":{\"t\":[", f);
	for (uint32_t i = 0; i < a->ntl; i++)
		fprintf(f, "%s%.6f", i ? "," : "", (double)(a->tl[i].ts_ns - t0) / 1e9);
	fputs("],\"live\":[", f);
	for (uint32_t i = 0; i < a->ntl; i++)
		fprintf(f, "%s%lld", i ? "," : "", (long long)(a->tl[i].live_max > 0 ? a->tl[i].live_max : 0));
	fputs("],\"rss\":[", f);
	for (size_t i = 0, k = 0; i < ns; i++) {
		uint64_t own = s[i].v[MFX_SF_MFX_RSS] < s[i].v[MFX_SF_RSS] ? s[i].v[MFX_SF_MFX_RSS] : 0;
		fprintf(f, "%s[%.6f,%llu,%llu]", k++ ? "," : "",
			(double)(s[i].ts_ns > t0 ? s[i].ts_ns - t0 : 0) / 1e9,
			(unsigned long long)(s[i].v[MFX_SF_RSS] - own), (unsigned long long)s[i].v[MFX_SF_HEAP_RSS]);
	}
	fputs("],\"sites\":[", f);
	for (int k = 0; k < ss->n; k++) {
		fprintf(f, "%s{\"name\":%u,\"file\":%u,\"line\":%u,\"peak\":%lld,\"v\":[", k ? "," : "",
			str_idx(st, ss->site[k]->function), str_idx(st, ss->site[k]->file), ss->site[k]->line,
			(long long)ss->peak[k]);
		for (uint32_t i = 0; i < ss->ntl; i++)
			fprintf(f, "%s%lld", i ? "," : "", (long long)(ss->v[k][i] > 0 ? ss->v[k][i] : 0));
		fputs("]}", f);
	}
	fputs("]}", f);
}

static void data(FILE *f, const struct model *m, const struct flame *fl, const struct site_series *ss)
{
	struct strtab st = { 0 };
	hmap_init(&st.idx, sizeof(uint32_t), 1024);
	fputs("<script type=\"application/json\" id=\"mfx-data\">{", f);
	fprintf(f, "\"pid\":%u,\"command\":", m->info->pid);
	js_str(f, m->info->command);
	fputc(',', f);
	data_flame(f, fl, &st);
	data_time(f, m, ss, &st);
	fputs(",\"strings\":[\"\"", f);
	for (size_t i = 1; i <= st.n; i++) {
		fputc(',', f);
		js_str(f, st.list[i]);
	}
	fputs("]}</script>\n", f);
	hmap_free(&st.idx);
	free(st.list);
}

/* ---- the page ----------------------------------------------------------------------------- */

static void summary(FILE *f, const struct model *m)
{
	const struct analysis *a = &m->a;
	char b[64], b2[64];
	fputs("<h2>Summary</h2>\n<table class=kv>\n", f);
	row(f, "mode", m->attach ? "attach (a live process, for a window)" : "launch (from the start)");
	row(f, "window", fmt_duration(m->duration_ns, b, sizeof(b)));
	snprintf(b, sizeof(b), "%llu malloc, %llu calloc, %llu realloc, %llu free, %llu memalign",
		 (unsigned long long)a->counts[TC_MALLOC], (unsigned long long)a->counts[TC_CALLOC],
		 (unsigned long long)a->counts[TC_REALLOC], (unsigned long long)a->counts[TC_FREE],
		 (unsigned long long)a->counts[TC_MEMALIGN]);
	row(f, "calls", b);
	row(f, "allocated in all", fmt_bytes(a->total_bytes_allocated, b, sizeof(b)));
	row(f, "live at the peak", fmt_bytes((uint64_t)(a->peak_live_bytes > 0 ? a->peak_live_bytes : 0), b, sizeof(b)));
	snprintf(b2, sizeof(b2), "%s in %llu blocks",
		 fmt_bytes((uint64_t)(a->live_bytes_end > 0 ? a->live_bytes_end : 0), b, sizeof(b)),
		 (unsigned long long)a->live_blocks_end);
	row(f, "live at the end", b2);
	snprintf(b, sizeof(b), "%u", a->nthreads);
	row(f, "threads", b);
	row(f, "RSS peak", fmt_bytes(m->rss_peak, b, sizeof(b)));
	row(f, "allocator", m->heap.allocator);
	row(f, "heap RSS at the peak", fmt_bytes(m->heap_rss, b, sizeof(b)));
	if (m->heap.measured)
		snprintf(b, sizeof(b), "%.3f", m->frag);
	else
		snprintf(b, sizeof(b), "not measured");
	row(f, "fragmentation ratio", b);
	snprintf(b2, sizeof(b2), "%s could return (estimate)", heap_release_call(&m->heap));
	row(f, b2, fmt_bytes(m->trim_estimate, b, sizeof(b)));
	if (m->have_trim) {
		snprintf(b2, sizeof(b2), "RSS %s -> ", fmt_bytes(m->trim_vals[0], b, sizeof(b)));
		strncat(b2, fmt_bytes(m->trim_vals[1], b, sizeof(b)), sizeof(b2) - strlen(b2) - 1);
		row(f, m->trim_call, b2);
	}
	if (a->unknown_frees) {
		snprintf(b, sizeof(b), "%llu", (unsigned long long)a->unknown_frees);
		row(f, "frees of blocks from before the window", b);
	}
	fputs("</table>\n", f);
}

/* The interactive parts: drawn by the script from the data. */
static void explore(FILE *f, const struct flame *fl)
{
	fputs("<h2 id=flamegraph>Where the memory is: allocation call tree</h2>\n<p class=note>Each box is a "
	      "function; its width, its share of the figure chosen; below it, the functions it called, "
	      "down to the frame that names the allocation site.  Click a box to zoom into it (the "
	      "boxes above it zoom back out), type in the search box to highlight functions.", f);
	if (fl->count < fl->before)
		fprintf(f, " This run's call tree has %u boxes: the smallest are folded, per caller, into "
			   "grey \"more\" boxes (%u kept).", fl->before, fl->count);
	fputs("</p>\n<div class=controls id=flame-controls><span>show:</span>"
	      "<label><input type=radio name=metric value=0 checked> live at the peak</label>"
	      "<label><input type=radio name=metric value=1> live at the end</label>"
	      "<label><input type=radio name=metric value=2> allocated</label>"
	      "<label><input type=radio name=metric value=3> calls</label>"
	      "<input type=search id=search placeholder=\"search a function (regex)\" autocomplete=off>"
	      "<button id=reset type=button>reset zoom</button></div>\n"
	      "<div id=flame-info></div><div id=flame><noscript><p class=note>The flame graph needs "
	      "JavaScript; the tables below have the same sites.</p></noscript></div>\n"
	      "<h2 id=overtime>Memory over time, by site</h2>\n<p class=note>Live bytes of the sites with "
	      "the highest peaks (the highest value in each time step), under the process's RSS and heap RSS "
	      "and all live bytes.  Click a legend entry to hide it.</p>\n"
	      "<div class=controls><label><input type=radio name=stmode value=lines checked> lines</label>"
	      "<label><input type=radio name=stmode value=stacked> stacked areas</label></div>"
	      "<div id=sitetime-legend class=legend></div><div id=sitetime></div><div id=sitetime-info></div>\n"
	      "<h2 id=functions-h>Functions</h2>\n<p class=note>Every function of the call tree: its own "
	      "figure (as the allocation site) and its total (with what it called), for the figure chosen "
	      "above; the search box filters.  Click a column to sort.</p>\n<div id=functions></div>\n", f);
}

int model_write_html(const struct model *m, const char *path)
{
	char tmp[PATH_MAX + 8];
	struct flame fl;
	struct site_series ss;
	int err = flame_build(m, &fl);
	if (!err && (err = site_series_build(m, 1, &ss)))
		flame_free(&fl);
	if (err)
		return err;
	int e2 = chart_sites_over_time(m, &ss, m->run_dir);
	FILE *f = fopen_replace(path, tmp, sizeof(tmp));
	if (!f) {
		err = -errno;
		goto out;
	}
	fprintf(f, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n<title>mfx report: pid %u"
		   "</title>\n<style>%s</style></head><body>\n", m->info->pid, mfx_report_css);
	fprintf(f, "<h1>mfx report: pid %u</h1>\n<p class=note><code>", m->info->pid);
	esc(f, m->info->command);
	fprintf(f, "</code></p>\n<p class=\"verdict%s\">", m->verdict == V_STEADY ? " steady" : "");
	esc(f, m->verdict_line);
	fputs("</p>\n", f);
	summary(f, m);
	explore(f, &fl);
	fputs("<h2>Charts</h2>\n", f);
	image(f, m, "impact_memory_usage", "memory over time");
	if (!e2)
		image(f, m, "sites_over_time", "live bytes of the top sites over time");
	image(f, m, "heatmap_allocations", "allocations by thread and size");
	image(f, m, "page_occupancy", "heap pages by live data");
	image(f, m, "rss_comparison", "Approach A against Approach B");
	sites(f, m, "Leak suspects", "Sites whose live bytes only grew during the window.", m->leaks,
	      m->n_leaks, 0);
	sites(f, m, "Top sites by live bytes", "Live at the end of the window: leak suspects first.",
	      m->by_live, m->n_live, 0);
	sites(f, m, "Top sites by allocations", "The busiest call sites (churn).", m->by_allocs,
	      m->n_allocs, 1);
	sites(f, m, "Top sites by peak contribution", "Live bytes of each site at the moment total "
	      "live bytes peaked.", m->by_peak, m->n_peak, 2);
	replay_table(f, m->run_dir);
	fprintf(f, "<h2>Files</h2>\n<p class=note>In <code>");
	esc(f, m->run_dir);
	fputs("</code>: trace.mfx, smaps, summary.json, the PNG charts; mftrace_log.csv, stacks.folded "
	      "and profile.pb.gz (pprof) with <code>mfx export</code>.</p>\n", f);
	data(f, m, &fl, &ss);
	fprintf(f, "<script>\n%s</script>\n</body></html>\n", mfx_report_js);
	err = fclose_replace(f, tmp, path, 0);
out:
	flame_free(&fl);
	site_series_free(&ss);
	return err ? err : e2;
}
