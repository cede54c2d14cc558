/*
 * html.c - report.html: one self-contained page (styles inline, charts
 * embedded as data: URIs, no script, nothing fetched) with the verdict, the
 * summary table, the charts, the top sites with their stacks, and the replay
 * results when `mfx replay` has run.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/model.h"
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

static void image(FILE *f, const char *dir, const char *name, const char *alt)
{
	char path[PATH_MAX], *data;
	size_t len;
	if (read_file(path_join(path, sizeof(path), dir, name), &data, &len))
		return;
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

static void sites(FILE *f, const struct model *m, const char *title, const char *note,
		  const struct rsite *v, int n, int mode)
{
	if (!n)
		return;
	fprintf(f, "<h2>%s</h2>\n<p class=note>%s</p>\n<table class=sites><tr><th>#</th>", title, note);
	fprintf(f, "<th>%s</th><th>blocks live</th><th>calls</th><th>allocated</th><th>site</th></tr>\n",
		mode == 2 ? "live at the peak" : "live at end");
	for (int i = 0; i < n && i < m->top; i++) {
		const struct rsite *r = &v[i];
		char a[32], b[32], c[32], d[32];
		int64_t lv = mode == 2 ? r->s->live_at_peak : r->s->live_bytes;
		fprintf(f, "<tr><td>%d</td><td>%s%s</td><td>%s</td><td>%s</td><td>%s</td><td>", i + 1,
			fmt_bytes((uint64_t)(lv > 0 ? lv : 0), a, sizeof(a)),
			r->growing ? " <span class=grow>growing</span>" : "",
			fmt_count(r->s->live_blocks, b, sizeof(b)), fmt_count(r->s->allocs, c, sizeof(c)),
			fmt_bytes(r->s->alloc_bytes, d, sizeof(d)));
		fputs("<details><summary><code>", f);
		esc(f, r->site->function);
		fputs("</code>", f);
		if (r->site->file)
			fprintf(f, " %s:%u", sym_basename(r->site->file), r->site->line);
		fputs(" <span class=mod>", f);
		esc(f, sym_basename(r->site->module));
		fputs("</span></summary><ol class=stack>", f);
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
		fputs("</ol></details></td></tr>\n", f);
	}
	fputs("</table>\n", f);
}

/* The replay table, from replay.json written by `mfx replay` (a flat
 * format this page reads line by line: one run object per line). */
static void replay_table(FILE *f, const char *dir)
{
	char path[PATH_MAX], *text;
	if (read_file(path_join(path, sizeof(path), dir, "replay.json"), &text, NULL))
		return;
	fputs("<h2>Approach B: replays</h2>\n<p class=note>The captured window replayed without the "
	      "program, under each allocator (mfx replay).</p>\n<table class=sites><tr><th>allocator"
	      "</th><th>tunables</th><th>ops</th><th>peak live</th><th>RSS peak</th><th>RSS at end"
	      "</th><th>wall</th></tr>\n", f);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *al = strstr(line, "\"allocator\"");
		if (!al)
			continue;
		char alloc[64] = "", tun[128] = "";
		unsigned long long ops = 0, peak = 0, rss = 0, end = 0, wall = 0;
		sscanf(al, "\"allocator\": \"%63[^\"]\"", alloc);
		char *p;
		if (strstr(line, "\"replayer\": \"replay.c\""))
			snprintf(alloc + strlen(alloc), sizeof(alloc) - strlen(alloc), " (replay.c)");
		if ((p = strstr(line, "\"tunables\": \"")))
			sscanf(p, "\"tunables\": \"%127[^\"]\"", tun);
		if ((p = strstr(line, "\"ops\":")))
			sscanf(p, "\"ops\": %llu", &ops);
		if ((p = strstr(line, "\"peak_live_bytes\":")))
			sscanf(p, "\"peak_live_bytes\": %llu", &peak);
		if ((p = strstr(line, "\"rss_peak_bytes\":")))
			sscanf(p, "\"rss_peak_bytes\": %llu", &rss);
		if ((p = strstr(line, "\"rss_end_bytes\":")))
			sscanf(p, "\"rss_end_bytes\": %llu", &end);
		if ((p = strstr(line, "\"wall_ns\":")))
			sscanf(p, "\"wall_ns\": %llu", &wall);
		char a[32], b[32], c[32], d[32], e[32];
		fputs("<tr><td>", f);
		esc(f, alloc);
		fputs("</td><td>", f);
		esc(f, tun);
		fprintf(f, "</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			fmt_count(ops, a, sizeof(a)), fmt_bytes(peak, b, sizeof(b)),
			fmt_bytes(rss, c, sizeof(c)), fmt_bytes(end, d, sizeof(d)),
			fmt_duration(wall, e, sizeof(e)));
	}
	fputs("</table>\n", f);
	free(text);
}

static const char style[] =
	"body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1240px;"
	"color:#202020}h1{font-size:24px;margin-bottom:4px}h2{font-size:19px;margin-top:32px;"
	"border-bottom:1px solid #ddd}.verdict{font-size:18px;padding:12px 16px;border-radius:6px;"
	"background:#fff4e5;border:1px solid #f0b060}.verdict.steady{background:#eef7ee;"
	"border-color:#8c8}table{border-collapse:collapse;margin:8px 0}th,td{padding:4px 10px;"
	"text-align:left;vertical-align:top;border-bottom:1px solid #eee}table.kv th{color:#555;"
	"font-weight:normal}table.sites td:nth-child(-n+5){white-space:nowrap;text-align:right}"
	"code{font-size:13px}.mod{color:#888;font-size:12px}.grow{color:#b00;font-weight:bold}"
	".note{color:#666;font-size:14px}figure{margin:16px 0}img{max-width:100%;border:1px solid #ddd}"
	"figcaption{color:#888;font-size:12px}ol.stack{margin:6px 0;font-size:13px}";

int model_write_html(const struct model *m, const char *path)
{
	char tmp[PATH_MAX + 8];
	FILE *f = fopen_replace(path, tmp, sizeof(tmp));
	if (!f)
		return -errno;
	const struct analysis *a = &m->a;
	char b[64], b2[64];
	fprintf(f, "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n<title>mfx report: pid %u"
		   "</title>\n<style>%s</style></head><body>\n", m->info->pid, style);
	fprintf(f, "<h1>mfx report: pid %u</h1>\n<p class=note><code>", m->info->pid);
	esc(f, m->info->command);
	fprintf(f, "</code></p>\n<p class=\"verdict%s\">", m->verdict == V_STEADY ? " steady" : "");
	esc(f, m->verdict_line);
	fputs("</p>\n<h2>Summary</h2>\n<table class=kv>\n", f);
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
	fputs("</table>\n<h2>Charts</h2>\n", f);
	image(f, m->run_dir, "impact_memory_usage.png", "memory over time");
	image(f, m->run_dir, "heatmap_allocations.png", "allocations by thread and size");
	image(f, m->run_dir, "page_occupancy.png", "heap pages by live data");
	image(f, m->run_dir, "rss_comparison.png", "Approach A against Approach B");
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
	fputs("</code>: trace.mfx, smaps, summary.json, the PNG charts; mftrace_log.csv and "
	      "stacks.folded with <code>mfx export</code>.</p>\n</body></html>\n", f);
	return fclose_replace(f, tmp, path, 0);
}
