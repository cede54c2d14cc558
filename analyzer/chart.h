/*
 * chart.h - a small chart library: a plot with titled axes, nice ticks and
 * a legend; line series (one or two y axes), bars and a heatmap with a
 * colour scale.  Drawn by our own rasterizer (raster.h) with text from a
 * glyph atlas made at build time (font.h); written as PNG by png.c.
 *
 *	struct chart *c = chart_new(1200, 700, "Memory over time");
 *	chart_axes(c, 0, 30, 0, 512, "time (s)", "MiB");
 *	chart_line(c, xs, ys, n, CHART_BLUE, "live", 0);
 *	chart_legend(c);
 *	chart_save(c, "impact.png");
 *	chart_free(c);
 */
#ifndef MFX_ANALYZER_CHART_H
#define MFX_ANALYZER_CHART_H

#include <stddef.h>
#include <stdint.h>

#define CHART_BLUE   0x1f77b4u
#define CHART_ORANGE 0xff7f0eu
#define CHART_GREEN  0x2ca02cu
#define CHART_RED    0xd62728u
#define CHART_PURPLE 0x9467bdu
#define CHART_BROWN  0x8c564bu
#define CHART_GREY   0x7f7f7fu
#define CHART_TEAL   0x17becfu

struct chart;

struct chart *chart_new(int width, int height, const char *title);
void chart_free(struct chart *c);
/* A line under the title (small, grey). */
void chart_subtitle(struct chart *c, const char *text);
/* The plot's ranges and axis titles (the y range is widened to nice ticks). */
void chart_axes(struct chart *c, double x0, double x1, double y0, double y1, const char *xlabel,
		const char *ylabel);
/* A second y axis on the right, for series drawn with chart_line2().
 * Call before chart_axes (it reserves the right margin). */
void chart_axis2(struct chart *c, double y0, double y1, const char *label);
void chart_line(struct chart *c, const double *x, const double *y, size_t n, uint32_t rgb,
		const char *label, int dashed);
void chart_line2(struct chart *c, const double *x, const double *y, size_t n, uint32_t rgb,
		 const char *label, int dashed);
/* Step markers: a vertical line at x with a short label. */
void chart_vline(struct chart *c, double x, uint32_t rgb, const char *label);
/* The x axis has categories (chart_bars), not numbers: call before chart_axes. */
void chart_categorical(struct chart *c);
/* Bars over categories; values on the y axis set by chart_axes (x ignored). */
void chart_bars(struct chart *c, const char *const *cats, const double *v, size_t n, uint32_t rgb,
		const char *ylabel, int value_labels);
/* rows x cols cells, values >= 0; colour by log scale; row/col labels. */
void chart_heatmap(struct chart *c, const double *v, size_t rows, size_t cols,
		   const char *const *row_labels, const char *const *col_labels, const char *xlabel,
		   const char *ylabel, const char *scale_label);
/* A note in the plot's top-left corner (e.g. "no data"). */
void chart_note(struct chart *c, const char *text);
void chart_legend(struct chart *c);
int chart_save(struct chart *c, const char *path);

/* png.c */
int png_write_rgb(const char *path, const uint8_t *rgb, int w, int h, int stride);

#endif
