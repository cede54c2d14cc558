/*
 * text.c - text on the canvas (raster.h) from the glyph atlas (font.h).
 *
 * A string is laid out on its baseline from the atlas's hinted advances and
 * its glyph bitmaps put into a coverage buffer of its own; the buffer is
 * then carried onto the canvas through the rotation, each canvas pixel
 * sampled bilinearly at its centre.  The pen origin is rounded to a whole
 * pixel on the canvas, as cairo rounds glyph positions on image surfaces:
 * at 0 and 90 degrees every sample falls on a pixel centre and the glyphs
 * are copied exactly; other angles are smoothed by the sampling.
 *
 * Alignment uses the ink box from the glyphs' outline metrics, rounded out
 * to whole pixels, as cairo_text_extents() gives it with hinted metrics.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/font.h"
#include "analyzer/raster.h"

#define MAX_GLYPHS 1024	/* longer strings are cut: no label is that long */

static const struct font_face *pick(double size, int bold)
{
	const struct font_face *best = NULL;
	for (unsigned i = 0; i < font_nfaces; i++) {
		const struct font_face *f = &font_faces[i];
		if (!!f->bold != !!bold)
			continue;
		if (!best || fabs(f->size - size) < fabs(best->size - size))
			best = f;
	}
	return best;
}

static const struct font_glyph *find(const struct font_face *f, uint32_t cp)
{
	size_t lo = 0, hi = f->nglyphs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (f->glyphs[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < f->nglyphs && f->glyphs[lo].cp == cp ? &f->glyphs[lo] : NULL;
}

static const struct font_glyph *glyph(const struct font_face *f, uint32_t cp)
{
	const struct font_glyph *g = find(f, cp);
	if (!g && cp >= 0x20)
		g = find(f, 0xfffd);
	return g ? g : find(f, '?');
}

/* The next code point of UTF-8 text; a byte that starts no valid sequence
 * (overlong, surrogate, cut short) is U+FFFD and one byte long. */
static uint32_t utf8_next(const unsigned char **sp)
{
	const unsigned char *s = *sp;
	uint32_t c = s[0];
	int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
	*sp = s + 1;
	if (n <= 0)
		return n < 0 ? 0xfffd : c;
	c &= 0x3f >> n;
	for (int i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0xfffd;
		c = c << 6 | (s[i] & 0x3f);
	}
	static const uint32_t least[4] = { 0, 0x80, 0x800, 0x10000 };
	if (c < least[n] || c > 0x10ffff || (c >= 0xd800 && c < 0xe000))
		return 0xfffd;
	*sp = s + n + 1;
	return c;
}

/* A string laid out: glyphs with their pen x, the ink box (outline metrics,
 * whole pixels) and the bitmaps' box, both relative to the pen origin on
 * the baseline, y down. */
struct layout {
	const struct font_face *f;
	const struct font_glyph *g[MAX_GLYPHS];
	int pen[MAX_GLYPHS];
	size_t n;
	int advance;
	double ix0, iy0, ix1, iy1;
	int bx0, by0, bx1, by1;
};

static void lay_out(struct layout *l, const char *s, double size, int bold)
{
	l->n = 0;
	l->advance = 0;
	l->ix0 = l->iy0 = INFINITY;
	l->ix1 = l->iy1 = -INFINITY;
	l->bx0 = l->by0 = l->bx1 = l->by1 = 0;
	if (!(l->f = pick(size, bold)) || !s)
		return;
	const unsigned char *p = (const unsigned char *)s;
	int pen = 0, any = 0;
	while (*p && l->n < MAX_GLYPHS) {
		const struct font_glyph *g = glyph(l->f, utf8_next(&p));
		if (!g)
			continue;
		l->g[l->n] = g;
		l->pen[l->n++] = pen;
		if (g->mw && g->mh) {
			l->ix0 = fmin(l->ix0, floor(pen + g->hbx / 64.0));
			l->ix1 = fmax(l->ix1, ceil(pen + (g->hbx + g->mw) / 64.0));
			l->iy0 = fmin(l->iy0, floor(-g->hby / 64.0));
			l->iy1 = fmax(l->iy1, ceil((g->mh - g->hby) / 64.0));
		}
		if (g->w && g->h) {
			int x0 = pen + g->left, y0 = -g->top;
			if (!any || x0 < l->bx0)
				l->bx0 = x0;
			if (!any || y0 < l->by0)
				l->by0 = y0;
			if (!any || x0 + g->w > l->bx1)
				l->bx1 = x0 + g->w;
			if (!any || y0 + g->h > l->by1)
				l->by1 = y0 + g->h;
			any = 1;
		}
		pen += g->adv;
	}
	l->advance = pen;
	if (!(l->ix1 > l->ix0))
		l->ix0 = l->iy0 = l->ix1 = l->iy1 = 0;
}

double text_advance(const char *s, double size, int bold)
{
	struct layout *l = malloc(sizeof(*l));
	if (!l)
		return 0;
	lay_out(l, s, size, bold);
	double a = l->advance;
	free(l);
	return a;
}

/* The glyphs' coverage in a buffer of the bitmaps' box (bw x bh). */
static uint8_t *render(const struct layout *l, int bw, int bh)
{
	uint8_t *buf = calloc((size_t)bw * bh, 1);
	if (!buf)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		const struct font_glyph *g = l->g[i];
		const uint8_t *src = l->f->bits + g->off;
		int x0 = l->pen[i] + g->left - l->bx0, y0 = -g->top - l->by0;
		for (int y = 0; y < g->h; y++)
			for (int x = 0; x < g->w; x++) {
				uint8_t v = src[y * g->w + x], *d = &buf[(size_t)(y0 + y) * bw + x0 + x];
				if (v > *d)
					*d = v;
			}
	}
	return buf;
}

static double sample(const uint8_t *b, int bw, int bh, double u, double v)
{
	double fx = u - 0.5, fy = v - 0.5;
	int x = (int)floor(fx), y = (int)floor(fy);
	double tx = fx - x, ty = fy - y, s = 0;
	for (int j = 0; j < 2; j++)
		for (int i = 0; i < 2; i++) {
			int xx = x + i, yy = y + j;
			if (xx < 0 || yy < 0 || xx >= bw || yy >= bh)
				continue;
			s += b[(size_t)yy * bw + xx] * (i ? tx : 1 - tx) * (j ? ty : 1 - ty);
		}
	return s;
}

/* Carry the buffer onto the canvas mask: pen origin at canvas (ox, oy),
 * turned by (co, si), k buffer pixels to a canvas pixel; each canvas pixel
 * the mean of k x k samples. */
static void place(struct canvas *c, const struct layout *l, const uint8_t *buf, int bw, int bh,
		  double ox, double oy, double co, double si, int k)
{
	double cx[4] = { l->bx0, l->bx1, l->bx1, l->bx0 }, cy[4] = { l->by0, l->by0, l->by1, l->by1 };
	double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
	for (int i = 0; i < 4; i++) {
		double X = ox + (cx[i] * co - cy[i] * si) / k, Y = oy + (cx[i] * si + cy[i] * co) / k;
		x0 = fmin(x0, X), x1 = fmax(x1, X), y0 = fmin(y0, Y), y1 = fmax(y1, Y);
	}
	int px0 = (int)fmax(floor(x0) - 1, c->cx0), px1 = (int)fmin(ceil(x1) + 1, c->cx1);
	int py0 = (int)fmax(floor(y0) - 1, c->cy0), py1 = (int)fmin(ceil(y1) + 1, c->cy1);
	for (int y = py0; y < py1; y++) {
		uint8_t *m = c->mask + (size_t)y * c->w;
		for (int x = px0; x < px1; x++) {
			double s = 0;
			for (int j = 0; j < k; j++)
				for (int i = 0; i < k; i++) {
					double dx = (x + (i + 0.5) / k - ox) * k, dy = (y + (j + 0.5) / k - oy) * k;
					s += sample(buf, bw, bh, dx * co + dy * si - l->bx0,
						    -dx * si + dy * co - l->by0);
				}
			s /= k * k;
			if (s >= 0.5 && (unsigned)(s + 0.5) > m[x])
				m[x] = (uint8_t)(s + 0.5);
		}
	}
	if (px0 < px1 && py0 < py1)
		canvas__mask_mark(c, px0, py0, px1, py1);
}

void canvas_text(struct canvas *c, double x, double y, const char *s, double size, int bold,
		 double ax, double ay, double angle, uint32_t rgb)
{
	if (!isfinite(x) || !isfinite(y) || !isfinite(angle) || fabs(x) > 1e6 || fabs(y) > 1e6)
		return;
	struct layout *l = malloc(sizeof(*l));
	if (!l)
		return;
	double co = cos(angle), si = sin(angle);
	if (fabs(co) < 1e-12)
		co = 0;
	if (fabs(si) < 1e-12)
		si = 0;
	/* Turned by other than a right angle, the glyphs are resampled: from
	 * the face of twice the size when the atlas has it (sharper). */
	int k = 1;
	if (co && si) {
		lay_out(l, s, 2 * size, bold);
		k = l->f && l->f->size == 2 * size ? 2 : 1;
	}
	if (k == 1)
		lay_out(l, s, size, bold);
	int bw = l->bx1 - l->bx0, bh = l->by1 - l->by0;
	uint8_t *buf = bw > 0 && bh > 0 ? render(l, bw, bh) : NULL;
	if (buf) {
		/* the pen origin relative to (x, y) before the turn, as cairo's
		 * move_to(-x_bearing - width * ax, -y_bearing - height * ay) */
		double px = (-l->ix0 - (l->ix1 - l->ix0) * ax) / k;
		double py = (-l->iy0 - (l->iy1 - l->iy0) * ay) / k;
		double ox = round(x + px * co - py * si), oy = round(y + px * si + py * co);
		place(c, l, buf, bw, bh, ox, oy, co, si, k);
		canvas__mask_paint(c, rgb, 1);
	}
	free(buf);
	free(l);
}
