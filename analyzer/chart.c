/*
 * chart.c - the chart library (see chart.h), drawn with our own rasterizer
 * (raster.h) onto an RGB canvas, text from the DejaVu Sans glyph atlas made
 * at build time (font.h).  No drawing library at run time: libpng (png.c)
 * is the only one, so commands that draw nothing load nothing more.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/chart.h"
#include "analyzer/raster.h"

#define MAX_LEGEND 12

struct legend_item {
	char label[96];
	uint32_t rgb;
	int dashed, bar;
};

struct chart {
	struct canvas cv;
	int w, h;
	double px0, py0, px1, py1;	/* plot area, device units */
	double x0, x1, y0, y1;		/* data ranges */
	double y20, y21;		/* second axis */
	int has_axis2;
	char label2[96];
	int categorical;		/* no x ticks: chart_bars labels the x axis */
	int has_subtitle;
	struct legend_item legend[MAX_LEGEND];
	int nlegend;
};

/* Text in colour col, its ink box's point (align_x, align_y) at (x, y). */
static void text(struct chart *c, uint32_t col, double x, double y, const char *s, double size,
		 int bold, double align_x, double align_y, double angle)
{
	canvas_text(&c->cv, x, y, s, size, bold, align_x, align_y, angle, col);
}

static void line1(struct chart *c, uint32_t col, double x0, double y0, double x1, double y1)
{
	struct stroke s = { col, 1, 1, { 0, 0 } };
	canvas_line(&c->cv, x0, y0, x1, y1, &s);
}

struct chart *chart_new(int width, int height, const char *title)
{
	struct chart *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->w = width;
	c->h = height;
	if (canvas_init(&c->cv, width, height, 0xffffff)) {
		free(c);
		return NULL;
	}
	text(c, 0x202020, width / 2.0, 18, title, 22, 1, 0.5, 0, 0);
	c->px0 = 100;
	c->px1 = width - 40;
	c->py0 = 70;
	c->py1 = height - 75;
	return c;
}

void chart_free(struct chart *c)
{
	if (!c)
		return;
	canvas_free(&c->cv);
	free(c);
}

void chart_subtitle(struct chart *c, const char *s)
{
	text(c, 0x606060, c->w / 2.0, 48, s, 13, 0, 0.5, 0, 0);
	c->py0 = 78;
}

/* 1, 2 or 5 times a power of ten, near range/target. */
static double nice_step(double range, int target)
{
	if (!(range > 0))
		return 1;
	double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
	double n = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
	return n * mag;
}

static void fmt_tick(char *buf, size_t n, double v, double step)
{
	if (fabs(v) < step / 1e6)
		v = 0;
	if (step >= 1 && fabs(v) < 1e15)
		snprintf(buf, n, "%.0f", v);
	else
		snprintf(buf, n, "%.*f", (int)ceil(-log10(step)), v);
}

static void draw_axis2(struct chart *c);

static double X(const struct chart *c, double x)
{
	return c->px0 + (x - c->x0) / (c->x1 - c->x0) * (c->px1 - c->px0);
}

static double Y(const struct chart *c, double y)
{
	return c->py1 - (y - c->y0) / (c->y1 - c->y0) * (c->py1 - c->py0);
}

static double Y2(const struct chart *c, double y)
{
	return c->py1 - (y - c->y20) / (c->y21 - c->y20) * (c->py1 - c->py0);
}

void chart_axes(struct chart *c, double x0, double x1, double y0, double y1, const char *xlabel,
		const char *ylabel)
{
	if (!(x1 > x0))
		x1 = x0 + 1;
	if (!(y1 > y0))
		y1 = y0 + 1;
	double ys = nice_step(y1 - y0, 6);
	c->x0 = x0;
	c->x1 = x1;
	c->y0 = floor(y0 / ys) * ys;
	c->y1 = ceil(y1 / ys) * ys;
	/* grid and y ticks */
	for (double v = c->y0; v <= c->y1 + ys / 2; v += ys) {
		double y = floor(Y(c, v)) + 0.5;
		line1(c, 0xe4e4e4, c->px0, y, c->px1, y);
		char b[32];
		fmt_tick(b, sizeof(b), v, ys);
		text(c, 0x303030, c->px0 - 8, y, b, 12, 0, 1, 0.5, 0);
	}
	double xs = nice_step(x1 - x0, 8);
	for (double v = ceil(x0 / xs) * xs; !c->categorical && v <= x1 + xs / 1000; v += xs) {
		double x = floor(X(c, v)) + 0.5;
		line1(c, 0xeeeeee, x, c->py0, x, c->py1);
		line1(c, 0x303030, x, c->py1, x, c->py1 + 5);
		char b[32];
		fmt_tick(b, sizeof(b), v, xs);
		text(c, 0x303030, x, c->py1 + 9, b, 12, 0, 0.5, 0, 0);
	}
	canvas_rect_line(&c->cv, c->px0 + 0.5, c->py0 + 0.5, c->px1 - c->px0, c->py1 - c->py0,
			 0x303030);
	text(c, 0x303030, (c->px0 + c->px1) / 2, c->h - 30, xlabel, 14, 0, 0.5, 0, 0);
	text(c, 0x303030, 28, (c->py0 + c->py1) / 2, ylabel, 14, 0, 0.5, 0.5, -M_PI / 2);
	if (c->has_axis2)
		draw_axis2(c);
}

static void draw_axis2(struct chart *c)
{
	double ys = nice_step(c->y21 - c->y20, 6);
	for (double v = c->y20; v <= c->y21 + ys / 2; v += ys) {
		double y = floor(Y2(c, v)) + 0.5;
		line1(c, 0x303030, c->px1, y, c->px1 + 5, y);
		char b[32];
		fmt_tick(b, sizeof(b), v, ys);
		text(c, 0x303030, c->px1 + 8, y, b, 12, 0, 0, 0.5, 0);
	}
	text(c, 0x303030, c->w - 22, (c->py0 + c->py1) / 2, c->label2, 14, 0, 0.5, 0.5, M_PI / 2);
}

void chart_axis2(struct chart *c, double y0, double y1, const char *label)
{
	if (!(y1 > y0))
		y1 = y0 + 1;
	double ys = nice_step(y1 - y0, 6);
	c->y20 = floor(y0 / ys) * ys;
	c->y21 = ceil(y1 / ys) * ys;
	c->has_axis2 = 1;
	c->px1 = c->w - 110;	/* room for the ticks and the title on the right */
	snprintf(c->label2, sizeof(c->label2), "%s", label);
}

void chart_categorical(struct chart *c)
{
	c->categorical = 1;
}

static void add_legend(struct chart *c, const char *label, uint32_t color, int dashed, int bar)
{
	if (!label || c->nlegend >= MAX_LEGEND)
		return;
	struct legend_item *l = &c->legend[c->nlegend++];
	snprintf(l->label, sizeof(l->label), "%s", label);
	l->rgb = color;
	l->dashed = dashed;
	l->bar = bar;
}

static void line(struct chart *c, const double *x, const double *y, size_t n, uint32_t color,
		 const char *label, int dashed, int second)
{
	double *xy = malloc((n ? n : 1) * 2 * sizeof(double));
	if (xy) {
		for (size_t i = 0; i < n; i++) {
			xy[2 * i] = X(c, x[i]);
			xy[2 * i + 1] = second ? Y2(c, y[i]) : Y(c, y[i]);
		}
		canvas_clip(&c->cv, c->px0, c->py0, c->px1 - c->px0, c->py1 - c->py0);
		struct stroke s = { color, 1, 2.2, { dashed ? 8 : 0, 5 } };
		if (n == 1)	/* a lone point: a dot */
			canvas_dot(&c->cv, xy[0], xy[1], 3, color, 1);
		else
			canvas_polyline(&c->cv, xy, n, &s);
		canvas_unclip(&c->cv);
		free(xy);
	}
	add_legend(c, label, color, dashed, 0);
}

void chart_line(struct chart *c, const double *x, const double *y, size_t n, uint32_t color,
		const char *label, int dashed)
{
	line(c, x, y, n, color, label, dashed, 0);
}

void chart_line2(struct chart *c, const double *x, const double *y, size_t n, uint32_t color,
		 const char *label, int dashed)
{
	line(c, x, y, n, color, label, dashed, c->has_axis2);
}

void chart_vline(struct chart *c, double x, uint32_t color, const char *label)
{
	double px = floor(X(c, x)) + 0.5;
	struct stroke s = { color, 0.9, 1.5, { 3, 3 } };
	canvas_line(&c->cv, px, c->py0, px, c->py1, &s);
	if (label)
		text(c, color, px + 4, c->py1 - 6, label, 11, 0, 0, 1, 0);
}

void chart_bars(struct chart *c, const char *const *cats, const double *v, size_t n,
		uint32_t color, const char *ylabel, int value_labels)
{
	double w = (c->px1 - c->px0) / (double)(n ? n : 1);
	for (size_t i = 0; i < n; i++) {
		double x = c->px0 + w * (double)i + w * 0.15, bw = w * 0.7;
		double y = Y(c, v[i] > c->y1 ? c->y1 : v[i]);
		canvas_rect(&c->cv, x, y, bw, c->py1 - y, color, 1);
		text(c, 0x303030, x + bw / 2, c->py1 + 9, cats[i], 12, 0, 0.5, 0, 0);
		if (value_labels) {
			char b[32];
			snprintf(b, sizeof(b), "%.0f", v[i]);
			text(c, 0x303030, x + bw / 2, y - 4, b, 12, 1, 0.5, 1, 0);
		}
	}
	(void)ylabel;
}

/* viridis, five stops, linear in between */
static uint32_t colormap(double t)
{
	static const double s[5][3] = {
		{ 0.267, 0.005, 0.329 }, { 0.230, 0.322, 0.546 }, { 0.128, 0.567, 0.551 },
		{ 0.369, 0.789, 0.383 }, { 0.993, 0.906, 0.144 },
	};
	if (!(t > 0))
		t = 0;
	if (t > 1)
		t = 1;
	double f = t * 4;
	int i = (int)f;
	if (i >= 4)
		i = 3;
	f -= i;
	uint32_t r = (uint32_t)(255 * (s[i][0] + (s[i + 1][0] - s[i][0]) * f));
	uint32_t g = (uint32_t)(255 * (s[i][1] + (s[i + 1][1] - s[i][1]) * f));
	uint32_t b = (uint32_t)(255 * (s[i][2] + (s[i + 1][2] - s[i][2]) * f));
	return r << 16 | g << 8 | b;
}

/* The heatmap's cells, each with its count when there is room. */
static void heat_cells(struct chart *c, const double *v, size_t rows, size_t cols, double lmax,
		       const char *const *row_labels)
{
	double cw = (c->px1 - c->px0) / (double)(cols ? cols : 1);
	double ch = (c->py1 - c->py0) / (double)(rows ? rows : 1);
	for (size_t r = 0; r < rows; r++) {
		for (size_t k = 0; k < cols; k++) {
			double val = v[r * cols + k], t = lmax > 0 ? log10(1 + val) / lmax : 0;
			double x = c->px0 + cw * (double)k, y = c->py0 + ch * (double)r;
			canvas_rect(&c->cv, x, y, cw - 1, ch - 1, val > 0 ? colormap(t) : 0xf4f4f4, 1);
			if (val > 0 && cw >= 38 && ch >= 16) {
				char b[32];
				if (val >= 1e6)
					snprintf(b, sizeof(b), "%.1fM", val / 1e6);
				else if (val >= 1e4)
					snprintf(b, sizeof(b), "%.0fk", val / 1e3);
				else
					snprintf(b, sizeof(b), "%.0f", val);
				text(c, t > 0.6 ? 0x202020 : 0xffffff, x + cw / 2, y + ch / 2, b,
				     ch < 22 ? 9 : 11, 0, 0.5, 0.5, 0);
			}
		}
		if (ch >= 9 || r % (size_t)(10 / (ch > 0 ? ch : 1) + 1) == 0)
			text(c, 0x303030, c->px0 - 6, c->py0 + ch * ((double)r + 0.5), row_labels[r],
			     ch < 14 ? 9 : 12, 0, 1, 0.5, 0);
	}
}

/* The colour scale right of the heatmap, ticks at powers of ten. */
static void heat_scale(struct chart *c, double max, double lmax, const char *scale_label)
{
	double bx = c->px1 + 40, bw = 22, ph = c->py1 - c->py0;
	for (int i = 0; i < 200; i++) {
		double t = i / 199.0, y = c->py1 - t * ph;
		canvas_rect(&c->cv, bx, y - ph / 199.0, bw, ph / 199.0 + 1, colormap(t), 1);
	}
	for (double d = 1; d <= max * 1.0001 && lmax > 0; d *= 10) {
		double y = c->py1 - log10(1 + d) / lmax * ph;
		line1(c, 0x303030, bx + bw, y, bx + bw + 4, y);
		char b[32];
		snprintf(b, sizeof(b), d >= 1e6 ? "%.0e" : "%.0f", d);
		text(c, 0x303030, bx + bw + 7, y, b, 11, 0, 0, 0.5, 0);
	}
	text(c, 0x303030, bx + bw / 2, c->py0 - 10, scale_label, 12, 0, 0.5, 1, 0);
}

void chart_heatmap(struct chart *c, const double *v, size_t rows, size_t cols,
		   const char *const *row_labels, const char *const *col_labels, const char *xlabel,
		   const char *ylabel, const char *scale_label)
{
	c->px0 = 150;
	c->px1 = c->w - 150;
	double max = 0;
	for (size_t i = 0; i < rows * cols; i++)
		if (v[i] > max)
			max = v[i];
	double lmax = log10(1 + max);
	heat_cells(c, v, rows, cols, lmax, row_labels);
	double cw = (c->px1 - c->px0) / (double)(cols ? cols : 1);
	for (size_t k = 0; k < cols; k++)
		text(c, 0x303030, c->px0 + cw * ((double)k + 0.5), c->py1 + 8, col_labels[k], 11, 0, 1,
		     0.5, -M_PI / 4);
	text(c, 0x303030, (c->px0 + c->px1) / 2, c->h - 22, xlabel, 14, 0, 0.5, 0, 0);
	text(c, 0x303030, 24, (c->py0 + c->py1) / 2, ylabel, 14, 0, 0.5, 0.5, -M_PI / 2);
	heat_scale(c, max, lmax, scale_label);
}

void chart_note(struct chart *c, const char *s)
{
	text(c, 0x808080, (c->px0 + c->px1) / 2, (c->py0 + c->py1) / 2, s, 16, 0, 0.5, 0.5, 0);
}

void chart_legend(struct chart *c)
{
	if (!c->nlegend)
		return;
	double wmax = 0;
	for (int i = 0; i < c->nlegend; i++)
		wmax = fmax(wmax, text_advance(c->legend[i].label, 13, 0));
	double bw = wmax + 56, bh = 22.0 * c->nlegend + 10;
	double x = c->px0 + 12, y = c->py0 + 10;
	canvas_rect(&c->cv, x, y, bw, bh, 0xffffff, 0.88);
	canvas_rect_line(&c->cv, x + 0.5, y + 0.5, bw, bh, 0xb0b0b0);
	for (int i = 0; i < c->nlegend; i++) {
		const struct legend_item *l = &c->legend[i];
		double ly = y + 16 + 22.0 * i;
		if (l->bar) {
			canvas_rect(&c->cv, x + 10, ly - 6, 26, 12, l->rgb, 1);
		} else {
			struct stroke s = { l->rgb, 1, 2.5, { l->dashed ? 6 : 0, 4 } };
			canvas_line(&c->cv, x + 8, ly, x + 38, ly, &s);
		}
		text(c, 0x202020, x + 46, ly, l->label, 13, 0, 0, 0.5, 0);
	}
}

int chart_save(struct chart *c, const char *path)
{
	return png_write_rgb(path, c->cv.px, c->w, c->h, c->w * 3);
}
