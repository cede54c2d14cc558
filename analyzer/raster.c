/*
 * raster.c - the charts' rasterizer (raster.h): fills, strokes and the
 * blending of coverage into an opaque RGB canvas.
 *
 * Coverage is a box filter: a pixel is covered by the share of its square
 * that the shape covers.  Rectangles get it exactly.  Strokes get it from
 * the distance of the pixel's centre to each segment (the exact box-filter
 * value across a straight edge), kept as the largest per pixel in a mask and
 * blended once: round joins and overlapping segments of one polyline are a
 * union, never blended twice.  Polygons accumulate signed area per cell
 * along each edge and take a running sum per row (the accumulation-buffer
 * technique of font rasterizers); |sum| clamped to 1 is the non-zero rule.
 * Blending is source-over in sRGB values, as cairo's image surface does.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/raster.h"

#define MAX_SIDE 16384	/* pixels: a chart is never larger */

static double clampd(double v, double lo, double hi)
{
	return v > lo ? (v < hi ? v : hi) : lo;	/* NaN -> lo */
}

int canvas_init(struct canvas *c, int w, int h, uint32_t bg)
{
	memset(c, 0, sizeof(*c));
	if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE)
		return -EINVAL;
	c->px = malloc((size_t)w * h * 3);
	c->mask = calloc((size_t)w * h, 1);
	if (!c->px || !c->mask) {
		canvas_free(c);
		return -ENOMEM;
	}
	c->w = w;
	c->h = h;
	for (size_t i = 0; i < (size_t)w * h; i++) {
		c->px[3 * i] = (uint8_t)(bg >> 16);
		c->px[3 * i + 1] = (uint8_t)(bg >> 8);
		c->px[3 * i + 2] = (uint8_t)bg;
	}
	canvas_unclip(c);
	c->mx0 = w;
	c->my0 = h;
	return 0;
}

void canvas_free(struct canvas *c)
{
	free(c->px);
	free(c->mask);
	c->px = c->mask = NULL;
}

void canvas_clip(struct canvas *c, double x, double y, double w, double h)
{
	c->cx0 = (int)clampd(round(x), 0, c->w);
	c->cy0 = (int)clampd(round(y), 0, c->h);
	c->cx1 = (int)clampd(round(x + w), c->cx0, c->w);
	c->cy1 = (int)clampd(round(y + h), c->cy0, c->h);
}

void canvas_unclip(struct canvas *c)
{
	c->cx0 = c->cy0 = 0;
	c->cx1 = c->w;
	c->cy1 = c->h;
}

/* a: 0..255, the share of the colour. */
static inline void blend(uint8_t *p, uint32_t rgb, unsigned a)
{
	unsigned na = 255 - a;
	p[0] = (uint8_t)((((rgb >> 16) & 255) * a + p[0] * na + 127) / 255);
	p[1] = (uint8_t)((((rgb >> 8) & 255) * a + p[1] * na + 127) / 255);
	p[2] = (uint8_t)(((rgb & 255) * a + p[2] * na + 127) / 255);
}

static unsigned alpha8(double cov, double alpha)
{
	return (unsigned)(clampd(cov, 0, 1) * clampd(alpha, 0, 1) * 255 + 0.5);
}

void canvas__mask_mark(struct canvas *c, int x0, int y0, int x1, int y1)
{
	if (x0 < c->mx0)
		c->mx0 = x0;
	if (y0 < c->my0)
		c->my0 = y0;
	if (x1 > c->mx1)
		c->mx1 = x1;
	if (y1 > c->my1)
		c->my1 = y1;
}

void canvas__mask_paint(struct canvas *c, uint32_t rgb, double alpha)
{
	for (int y = c->my0; y < c->my1; y++) {
		uint8_t *m = c->mask + (size_t)y * c->w;
		for (int x = c->mx0; x < c->mx1; x++) {
			if (!m[x])
				continue;
			blend(c->px + ((size_t)y * c->w + x) * 3, rgb, alpha8(m[x] / 255.0, alpha));
			m[x] = 0;
		}
	}
	c->mx0 = c->w;
	c->my0 = c->h;
	c->mx1 = c->my1 = 0;
}

/* The share of pixel span [p, p+1) that [a, b) covers. */
static double span(double p, double a, double b)
{
	double lo = a > p ? a : p, hi = b < p + 1 ? b : p + 1;
	return hi > lo ? hi - lo : 0;
}

void canvas_rect(struct canvas *c, double x, double y, double w, double h, uint32_t rgb,
		 double alpha)
{
	if (!(w > 0 && h > 0))
		return;
	double x0 = clampd(x, c->cx0, c->cx1), x1 = clampd(x + w, c->cx0, c->cx1);
	double y0 = clampd(y, c->cy0, c->cy1), y1 = clampd(y + h, c->cy0, c->cy1);
	if (!(x1 > x0 && y1 > y0))
		return;
	int ix0 = (int)floor(x0), ix1 = (int)ceil(x1), iy0 = (int)floor(y0), iy1 = (int)ceil(y1);
	for (int py = iy0; py < iy1; py++) {
		double cy = span(py, y0, y1);
		uint8_t *row = c->px + (size_t)py * c->w * 3;
		for (int px = ix0; px < ix1; px++) {
			unsigned a = alpha8(cy * span(px, x0, x1), alpha);
			if (a)
				blend(row + px * 3, rgb, a);
		}
	}
}

/* ---- strokes ------------------------------------------------------------ */

struct seg {
	double ax, ay, bx, by;
	double hw;		/* half the width */
	int butt_a, butt_b;	/* flat end at a / b; else round */
};

/* Cut segment s to the box [x0,x1]x[y0,y1] (Liang-Barsky); its parameters
 * of entry and exit in *t0, *t1.  0 when nothing is left. */
static int cut(double ax, double ay, double bx, double by, double x0, double y0, double x1,
	       double y1, double *t0, double *t1)
{
	double dx = bx - ax, dy = by - ay;
	double p[4] = { -dx, dx, -dy, dy }, q[4] = { ax - x0, x1 - ax, ay - y0, y1 - ay };
	*t0 = 0;
	*t1 = 1;
	for (int i = 0; i < 4; i++) {
		if (p[i] == 0) {
			if (q[i] < 0)
				return 0;
			continue;
		}
		double r = q[i] / p[i];
		if (p[i] < 0 && r > *t0)
			*t0 = r;
		else if (p[i] > 0 && r < *t1)
			*t1 = r;
	}
	return *t0 <= *t1;
}

/* Coverage of a pixel whose centre is d from the stroke's middle line. */
static double across(double d, double hw)
{
	double lo = d - 0.5 > -hw ? d - 0.5 : -hw, hi = d + 0.5 < hw ? d + 0.5 : hw;
	return hi > lo ? hi - lo : 0;
}

/* One pixel of segment s (unit direction ux, uy, length len). */
static double seg_cover(const struct seg *s, double ux, double uy, double len, double px,
			double py)
{
	double rx = px - s->ax, ry = py - s->ay;
	if (len < 1e-9)
		return across(hypot(rx, ry), s->hw);
	double along = rx * ux + ry * uy, d = fabs(rx * uy - ry * ux), ends = 1;
	if (s->butt_a || s->butt_b)
		ends = span(along - 0.5, s->butt_a ? 0 : -INFINITY, s->butt_b ? len : INFINITY);
	if (along < 0 && !s->butt_a)
		d = hypot(rx, ry);
	else if (along > len && !s->butt_b)
		d = hypot(px - s->bx, py - s->by);
	return across(d, s->hw) * ends;
}

/* Into the mask, as the larger of what is there and this segment. */
static void seg_mask(struct canvas *c, const struct seg *s)
{
	double dx = s->bx - s->ax, dy = s->by - s->ay, len = hypot(dx, dy);
	double ux = len > 1e-9 ? dx / len : 0, uy = len > 1e-9 ? dy / len : 0;
	double R = s->hw + 0.5;	/* beyond R from the segment: no coverage */
	int y0 = (int)clampd(floor(fmin(s->ay, s->by) - R), c->cy0, c->cy1);
	int y1 = (int)clampd(ceil(fmax(s->ay, s->by) + R), c->cy0, c->cy1);
	int bx0 = c->cx1, bx1 = c->cx0;
	for (int y = y0; y < y1; y++) {
		double yc = y + 0.5, t0 = 0, t1 = 1;
		if (fabs(dy) > 1e-9) {	/* the part of the segment within R of this row */
			t0 = (yc - R - s->ay) / dy;
			t1 = (yc + R - s->ay) / dy;
			if (t0 > t1) {
				double t = t0;
				t0 = t1;
				t1 = t;
			}
			t0 = fmax(t0, 0);
			t1 = fmin(t1, 1);
			if (t0 > t1)
				continue;
		}
		double xa = s->ax + dx * t0, xb = s->ax + dx * t1;
		int x0 = (int)clampd(floor(fmin(xa, xb) - R), c->cx0, c->cx1);
		int x1 = (int)clampd(ceil(fmax(xa, xb) + R), c->cx0, c->cx1);
		uint8_t *m = c->mask + (size_t)y * c->w;
		for (int x = x0; x < x1; x++) {
			unsigned v = alpha8(seg_cover(s, ux, uy, len, x + 0.5, yc), 1);
			if (v > m[x])
				m[x] = (uint8_t)v;
		}
		if (x0 < bx0)
			bx0 = x0;
		if (x1 > bx1)
			bx1 = x1;
	}
	if (bx0 < bx1)
		canvas__mask_mark(c, bx0, y0, bx1, y1);
}

/* Dashes along a polyline: the phase carries over from segment to segment. */
struct dasher {
	const struct stroke *s;
	double left;		/* of the current dash or gap */
	int on, fresh;		/* in a dash; the dash has not been drawn yet */
};

static void dash_skip(struct dasher *d, double len)
{
	double period = d->s->dash[0] + d->s->dash[1];
	if (len > 4 * period)	/* far outside the clip: only the phase matters */
		len = fmod(len - d->left, period) + d->left;
	while (len > 0 && period > 0) {
		double step = len < d->left ? len : d->left;
		len -= step;
		if ((d->left -= step) <= 0) {
			d->on = !d->on;
			d->fresh = d->on;
			d->left = d->s->dash[!d->on];
		}
	}
}

/* Draw the part [t0, t1] of seg s with dashes, round inside a dash. */
static void dash_seg(struct canvas *c, struct dasher *d, struct seg s, double len, double t0,
		     double t1)
{
	double ux = (s.bx - s.ax) / len, uy = (s.by - s.ay) / len, ax = s.ax, ay = s.ay;
	dash_skip(d, t0 * len);
	double at = t0 * len, end = t1 * len;
	while (at < end) {
		double step = end - at < d->left ? end - at : d->left;
		if (d->on) {
			struct seg p = { ax + ux * at, ay + uy * at, ax + ux * (at + step),
					 ay + uy * (at + step), s.hw, d->fresh || s.butt_a,
					 step >= d->left || s.butt_b };
			seg_mask(c, &p);
			d->fresh = 0;
		}
		at += step;
		dash_skip(d, step);
	}
	dash_skip(d, (1 - t1) * len);
}

static int finite2(const double *p)
{
	return isfinite(p[0]) && isfinite(p[1]);
}

static void polyline(struct canvas *c, const double *xy, size_t n, const struct stroke *st,
		     int closed)
{
	if (!(st->width > 0) || !xy)
		return;
	double hw = fmin(st->width, 1000) / 2, m = hw + 2;
	int dashed = st->dash[0] > 0 && st->dash[1] >= 0;
	struct dasher d = { st, st->dash[0], 1, 1 };
	for (size_t i = 0; i + 1 < n; i++) {
		const double *a = xy + 2 * i, *b = a + 2;
		if (!finite2(a) || !finite2(b))
			continue;
		struct seg s = { a[0], a[1], b[0], b[1], hw, !closed && i == 0,
				 !closed && i + 2 == n };
		double len = hypot(b[0] - a[0], b[1] - a[1]), t0, t1;
		if (!cut(a[0], a[1], b[0], b[1], c->cx0 - m, c->cy0 - m, c->cx1 + m, c->cy1 + m,
			 &t0, &t1)) {
			if (dashed)
				dash_skip(&d, len);
			continue;
		}
		if (dashed && len > 1e-9) {
			dash_seg(c, &d, s, len, t0, t1);
			continue;
		}
		double dx = b[0] - a[0], dy = b[1] - a[1];
		s.ax = a[0] + dx * t0, s.ay = a[1] + dy * t0;
		s.bx = a[0] + dx * t1, s.by = a[1] + dy * t1;
		seg_mask(c, &s);
	}
	canvas__mask_paint(c, st->rgb, st->alpha);
}

void canvas_polyline(struct canvas *c, const double *xy, size_t n, const struct stroke *s)
{
	polyline(c, xy, n, s, 0);
}

void canvas_line(struct canvas *c, double x0, double y0, double x1, double y1,
		 const struct stroke *s)
{
	double xy[4] = { x0, y0, x1, y1 };
	polyline(c, xy, 2, s, 0);
}

void canvas_rect_line(struct canvas *c, double x, double y, double w, double h, uint32_t rgb)
{
	double xy[10] = { x, y, x + w, y, x + w, y + h, x, y + h, x, y };
	struct stroke s = { rgb, 1, 1, { 0, 0 } };
	polyline(c, xy, 5, &s, 1);
}

void canvas_dot(struct canvas *c, double x, double y, double r, uint32_t rgb, double alpha)
{
	if (!isfinite(x) || !isfinite(y) || !(r > 0) || r > 1000)
		return;
	struct seg s = { x, y, x, y, r, 0, 0 };
	seg_mask(c, &s);
	canvas__mask_paint(c, rgb, alpha);
}

/* ---- polygons ----------------------------------------------------------- */

/* Keep the part of polygon in[n] on one side of a clip edge (Sutherland-
 * Hodgman): axis 0 = x, 1 = y; keep >= v when ge, else <= v.  out has
 * room for 1.5 n points; returns its count. */
static size_t clip_side(const double *in, size_t n, double *out, int axis, double v, int ge)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const double *p = in + 2 * i, *q = in + 2 * ((i + 1) % n);
		int pin = ge ? p[axis] >= v : p[axis] <= v, qin = ge ? q[axis] >= v : q[axis] <= v;
		if (pin) {
			out[2 * k] = p[0];
			out[2 * k++ + 1] = p[1];
		}
		if (pin != qin) {
			double t = (v - p[axis]) / (q[axis] - p[axis]);
			out[2 * k] = axis ? p[0] + (q[0] - p[0]) * t : v;
			out[2 * k++ + 1] = axis ? v : p[1] + (q[1] - p[1]) * t;
		}
	}
	return k;
}

/* The integral of the share of pixel [0, 1) right of x, for x from 0 to u
 * (share 1 left of the pixel, 1 - x inside it, 0 right of it). */
static double right_share(double u)
{
	return u < 0 ? u : u < 1 ? u - u * u / 2 : 0.5;
}

/* Signed area of one edge, row by row, into acc (rows of `stride` cells,
 * coordinates relative to the box).  In a row the edge runs from x = xl to
 * xr; cell k gets C(k) - C(k-1), where C(k) is the row's share of area
 * times the mean, over the edge, of the share of pixel k right of it: the
 * running sum along the row is then the coverage. */
static void acc_edge(float *acc, size_t stride, int rows, double x0, double y0, double x1,
		     double y1)
{
	if (y0 == y1)
		return;
	double dir = 1;
	if (y0 > y1) {
		double t = x0;
		x0 = x1, x1 = t, t = y0, y0 = y1, y1 = t;
		dir = -1;
	}
	double dxdy = (x1 - x0) / (y1 - y0);
	int ye = (int)ceil(y1) < rows ? (int)ceil(y1) : rows;
	for (int y = (int)floor(y0); y < ye; y++) {
		double ya = fmax(y, y0), yb = fmin(y + 1, y1), area = (yb - ya) * dir;
		double xa = x0 + (ya - y0) * dxdy, xb = x0 + (yb - y0) * dxdy;
		double xl = fmin(xa, xb), xr = fmax(xa, xb), w = xr - xl, prev = 0;
		float *row = acc + (size_t)y * stride;
		int kmax = (int)floor(xr);
		for (int k = (int)floor(xl); k <= kmax + 1; k++) {
			double mean = 1;
			if (k <= kmax)
				mean = w > 1e-9 ? (right_share(xr - k) - right_share(xl - k)) / w
						: clampd(k + 1 - (xl + xr) / 2, 0, 1);
			row[k] += (float)(area * mean - prev);
			prev = area * mean;
		}
	}
}

void canvas_polygon(struct canvas *c, const double *xy, size_t n, uint32_t rgb, double alpha)
{
	if (n < 3 || !xy || n > (1u << 24))
		return;
	/* Each clip side leaves at most 1.5 n points (a point inside, or two
	 * for an edge that enters); four sides: < 6 n. */
	size_t room = 6 * n + 8;
	double *a = malloc(room * 4 * sizeof(double)), *b = a ? a + room * 2 : NULL;
	float *acc = NULL;
	size_t k = 0;
	if (!a)
		return;
	for (size_t i = 0; i < n; i++)
		if (finite2(xy + 2 * i)) {
			a[2 * k] = xy[2 * i];
			a[2 * k++ + 1] = xy[2 * i + 1];
		}
	k = clip_side(a, k, b, 0, c->cx0, 1);
	k = clip_side(b, k, a, 0, c->cx1, 0);
	k = clip_side(a, k, b, 1, c->cy0, 1);
	k = clip_side(b, k, a, 1, c->cy1, 0);
	if (k < 3)
		goto out;
	double minx = c->cx1, miny = c->cy1;
	for (size_t i = 0; i < k; i++) {
		minx = fmin(minx, a[2 * i]);
		miny = fmin(miny, a[2 * i + 1]);
	}
	int ox = (int)floor(minx), oy = (int)floor(miny), bw = c->cx1 - ox, bh = c->cy1 - oy;
	size_t stride = (size_t)bw + 2;
	if (bw <= 0 || bh <= 0 || !(acc = calloc(stride * bh, sizeof(float))))
		goto out;
	for (size_t i = 0; i < k; i++) {
		const double *p = a + 2 * i, *q = a + 2 * ((i + 1) % k);
		acc_edge(acc, stride, bh, p[0] - ox, p[1] - oy, q[0] - ox, q[1] - oy);
	}
	for (int y = 0; y < bh; y++) {
		double sum = 0;
		uint8_t *row = c->px + ((size_t)(y + oy) * c->w + ox) * 3;
		for (int x = 0; x < bw; x++) {
			sum += acc[(size_t)y * stride + x];
			unsigned v = alpha8(fabs(sum), alpha);
			if (v)
				blend(row + x * 3, rgb, v);
		}
	}
out:
	free(acc);
	free(a);
}
