/*
 * analyzer_raster.c - unit tests of the charts' rasterizer (analyzer/raster.c,
 * text.c): coverage summed over the pixels against the geometry's own area
 * (rectangles, polygons by the shoelace formula, strokes as length x width,
 * dashes by their duty cycle), the non-zero rule, one blend per polyline,
 * clipping, coordinates that are NaN, infinite or huge, and text: every
 * printable ASCII character in the atlas at every size, bad UTF-8, text
 * centred by its ink as measured on the pixels, a right-angle turn that is
 * the exact transpose of the upright text, and DejaVu's cap height.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analyzer/font.h"
#include "analyzer/raster.h"
#include "tests/unit/check.h"

#define W 200
#define H 120

/* Coverage of black on white, summed: 1 per fully black pixel. */
static double ink(const struct canvas *c)
{
	double s = 0;
	for (int i = 0; i < c->w * c->h; i++)
		s += (255 - c->px[3 * i]) / 255.0;
	return s;
}

static double darkest(const struct canvas *c)
{
	int m = 255;
	for (int i = 0; i < c->w * c->h; i++)
		if (c->px[3 * i] < m)
			m = c->px[3 * i];
	return (255 - m) / 255.0;
}

static void fresh(struct canvas *c)
{
	canvas_free(c);
	canvas_init(c, W, H, 0xffffff);
}

static double shoelace(const double *xy, size_t n)
{
	double a = 0;
	for (size_t i = 0; i < n; i++) {
		const double *p = xy + 2 * i, *q = xy + 2 * ((i + 1) % n);
		a += p[0] * q[1] - q[0] * p[1];
	}
	return fabs(a) / 2;
}

static void test_rects(struct canvas *c)
{
	fresh(c);
	canvas_rect(c, 10, 10, 20, 30, 0, 1);
	CHECK(fabs(ink(c) - 600) < 0.01, "whole-pixel rect: %f, want 600", ink(c));
	fresh(c);
	canvas_rect(c, 10.3, 20.6, 15.5, 7.25, 0, 1);
	CHECK(fabs(ink(c) - 15.5 * 7.25) < 0.6, "fractional rect: %f, want %f", ink(c), 15.5 * 7.25);
	fresh(c);
	canvas_rect(c, 50, 50, 10, 10, 0, 0.5);
	CHECK(fabs(ink(c) - 50) < 0.5, "alpha 0.5: %f, want 50", ink(c));
	fresh(c);
	canvas_clip(c, 0, 0, 100, 100);
	canvas_rect(c, 90, 90, 40, 40, 0, 1);
	CHECK(fabs(ink(c) - 100) < 0.01, "clipped rect: %f, want 100", ink(c));
	canvas_unclip(c);
	fresh(c);
	canvas_rect(c, -1e300, -1e300, INFINITY, INFINITY, 0, 1);
	CHECK(fabs(ink(c) - W * H) < 0.01, "infinite rect fills the canvas: %f", ink(c));
	fresh(c);
	canvas_rect(c, NAN, 0, 10, 10, 0, 1);
	canvas_rect(c, 0, 0, NAN, 10, 0, 1);
	canvas_rect(c, 0, 0, -5, 10, 0, 1);
	CHECK(ink(c) == 0, "NaN or negative rects draw nothing: %f", ink(c));
}

static void test_polygons(struct canvas *c)
{
	static const double tri[] = { 10, 10, 150, 30, 40, 100 };
	static const double star[] = { 100, 5, 115, 50, 160, 50, 122, 75, 135, 115, 100, 90,
				       65, 115, 78, 75, 40, 50, 85, 50 };
	fresh(c);
	canvas_polygon(c, tri, 3, 0, 1);
	CHECK(fabs(ink(c) - shoelace(tri, 3)) < 1.0, "triangle: %f, want %f", ink(c),
	      shoelace(tri, 3));
	fresh(c);
	canvas_polygon(c, star, 10, 0, 1);
	CHECK(fabs(ink(c) - shoelace(star, 10)) < 1.5, "concave star: %f, want %f", ink(c),
	      shoelace(star, 10));
	/* a square with a hole wound the other way: non-zero leaves the hole */
	static const double ring[] = { 20, 20, 100, 20, 100, 100, 20, 100, 20, 20,
				       40, 40, 40, 80, 80, 80, 80, 40, 40, 40 };
	fresh(c);
	canvas_polygon(c, ring, 10, 0, 1);
	CHECK(fabs(ink(c) - (6400 - 1600)) < 1.0, "ring: %f, want 4800", ink(c));
	/* half outside the canvas: only the inside part */
	static const double over[] = { 150, 60, 400, 60, 400, 400, 150, 400 };
	fresh(c);
	canvas_polygon(c, over, 4, 0, 1);
	CHECK(fabs(ink(c) - 50 * 60) < 0.5, "polygon over the edge: %f, want 3000", ink(c));
	static const double bad[] = { NAN, 0, 1e300, -1e300, INFINITY, 5, 10, 10, 50, 90 };
	fresh(c);
	canvas_polygon(c, bad, 5, 0, 1);
	CHECK(1, "a polygon of NaN and huge points does not crash");
}

static void test_strokes(struct canvas *c)
{
	struct stroke s = { 0, 1, 1, { 0, 0 } };
	fresh(c);
	canvas_line(c, 10, 20.5, 110, 20.5, &s);
	int row_full = 1;
	for (int x = 10; x < 110; x++)
		row_full &= c->px[(20 * W + x) * 3] == 0;
	CHECK(row_full && fabs(ink(c) - 100) < 0.01, "1px line on a pixel row: %f", ink(c));
	/* a long diagonal: length x width */
	s.width = 3;
	fresh(c);
	canvas_line(c, 10, 10, 190, 110, &s);
	double len = hypot(180, 100);
	CHECK(fabs(ink(c) - len * 3) < len * 3 * 0.02, "diagonal: %f, want %f", ink(c), len * 3);
	/* dashes 8 on 4 off: two thirds of it */
	s.width = 2;
	s.dash[0] = 8;
	s.dash[1] = 4;
	fresh(c);
	canvas_line(c, 4, 60, 196, 60, &s);
	CHECK(fabs(ink(c) - 192 * 2 * 2 / 3) < 192 * 0.05, "dashed: %f, want %f", ink(c),
	      192 * 2 * 2.0 / 3);
	/* a zig-zag that crosses itself, half transparent: blended once */
	static const double zz[] = { 10, 10, 190, 110, 190, 10, 10, 110, 100, 5, 100, 115 };
	struct stroke t = { 0, 0.5, 6, { 0, 0 } };
	fresh(c);
	canvas_polyline(c, zz, 6, &t);
	CHECK(darkest(c) <= 0.5 + 1.0 / 255, "a polyline is blended once: %f", darkest(c));
	/* clipped to a box: nothing outside */
	fresh(c);
	canvas_clip(c, 50, 50, 50, 50);
	canvas_line(c, 0, 0, 200, 120, &s);
	canvas_unclip(c);
	int outside = 0;
	for (int y = 0; y < H; y++)
		for (int x = 0; x < W; x++)
			if ((x < 50 || x >= 100 || y < 50 || y >= 100) && c->px[(y * W + x) * 3] != 255)
				outside++;
	CHECK(outside == 0 && ink(c) > 0, "clip: %d pixels outside", outside);
	/* a dot of radius 5: pi r^2 */
	fresh(c);
	canvas_dot(c, 100, 60, 5, 0, 1);
	CHECK(fabs(ink(c) - M_PI * 25) < 2, "dot: %f, want %f", ink(c), M_PI * 25);
}

static void test_bad_strokes(struct canvas *c)
{
	struct stroke s = { 0, 1, 2, { 5, 5 } };
	static const double pts[] = { NAN, 1, 10, 10, 1e300, -1e300, INFINITY, 0,
				      20, 20, 30, 30, -1e308, 1e308, 40, 40 };
	fresh(c);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	canvas_polyline(c, pts, 8, &s);
	s.dash[0] = 0;
	canvas_polyline(c, pts, 8, &s);
	s.width = 1e300;
	canvas_polyline(c, pts, 8, &s);
	canvas_line(c, 0, 0, 0, 0, &s);
	canvas_dot(c, NAN, 0, 3, 0, 1);
	canvas_text(c, NAN, 5, "x", 12, 0, 0, 0, 0, 0);
	canvas_text(c, 5, 5, "x", 12, 0, 0, 0, INFINITY, 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(secs < 5, "huge and NaN coordinates are cut, not walked: %.2f s", secs);
}

/* The ink's box on the canvas (pixels darker than a quarter). */
static void ink_box(const struct canvas *c, int *x0, int *y0, int *x1, int *y1)
{
	*x0 = c->w, *y0 = c->h, *x1 = -1, *y1 = -1;
	for (int y = 0; y < c->h; y++)
		for (int x = 0; x < c->w; x++)
			if (c->px[(y * c->w + x) * 3] < 192) {
				*x0 = x < *x0 ? x : *x0, *x1 = x > *x1 ? x : *x1;
				*y0 = y < *y0 ? y : *y0, *y1 = y > *y1 ? y : *y1;
			}
}

static void test_atlas(void)
{
	int missing = 0;
	for (unsigned i = 0; i < font_nfaces; i++) {
		const struct font_face *f = &font_faces[i];
		for (unsigned cp = 0x20; cp < 0x7f; cp++) {
			int found = 0;
			for (unsigned g = 0; g < f->nglyphs; g++)
				found |= f->glyphs[g].cp == cp;
			missing += !found;
		}
		for (unsigned g = 1; g < f->nglyphs; g++)
			CHECK(f->glyphs[g - 1].cp < f->glyphs[g].cp, "face %u: glyphs in order", f->size);
	}
	CHECK(missing == 0 && font_nfaces >= 8, "every printable ASCII glyph in %u faces: %d missing",
	      font_nfaces, missing);
	double a = text_advance("mmmm", 12, 0), b = text_advance("mm", 12, 0);
	CHECK(a == 2 * b && b > 10, "advances add up: %f, %f", a, b);
	/* bad UTF-8 is one replacement glyph per byte, never a crash */
	double bad = text_advance("\xff\xc3(\xe2\x82", 12, 0);
	CHECK(bad > 0, "bad UTF-8 laid out: %f", bad);
}

static void test_text(struct canvas *c)
{
	int x0, y0, x1, y1;
	fresh(c);
	canvas_text(c, 100, 60, "Memory over time", 12, 0, 0.5, 0.5, 0, 0);
	ink_box(c, &x0, &y0, &x1, &y1);
	CHECK(x1 > x0 && abs((100 - x0) - (x1 + 1 - 100)) <= 1 && abs((60 - y0) - (y1 + 1 - 60)) <= 1,
	      "centred on its ink: x %d..%d y %d..%d", x0, x1, y0, y1);
	/* DejaVu Sans caps are 0.729 em high: 16 px at 22 px */
	fresh(c);
	canvas_text(c, 20, 20, "HEH", 22, 1, 0, 0, 0, 0);
	ink_box(c, &x0, &y0, &x1, &y1);
	CHECK(abs(y1 - y0 + 1 - 16) <= 1, "cap height at 22 px: %d", y1 - y0 + 1);
	/* turned a right angle: the same pixels, transposed */
	struct canvas u = { 0 }, r = { 0 };
	canvas_init(&u, 120, 120, 0xffffff);
	canvas_init(&r, 120, 120, 0xffffff);
	canvas_text(&u, 60, 60, "RSS (MiB)", 14, 0, 0.5, 0.5, 0, 0);
	canvas_text(&r, 60, 60, "RSS (MiB)", 14, 0, 0.5, 0.5, M_PI / 2, 0);
	int ux0, uy0, ux1, uy1, rx0, ry0, rx1, ry1, same = 1;
	ink_box(&u, &ux0, &uy0, &ux1, &uy1);
	ink_box(&r, &rx0, &ry0, &rx1, &ry1);
	for (int y = uy0; y <= uy1 && same; y++)
		for (int x = ux0; x <= ux1; x++) {
			int tx = rx1 - (y - uy0), ty = ry0 + (x - ux0);	/* clockwise quarter turn */
			if (u.px[(y * 120 + x) * 3] != r.px[(ty * 120 + tx) * 3]) {
				same = 0;
				break;
			}
		}
	CHECK(same && ux1 - ux0 == ry1 - ry0 && uy1 - uy0 == rx1 - rx0,
	      "90 degrees is the transpose: %dx%d vs %dx%d", ux1 - ux0, uy1 - uy0, rx1 - rx0,
	      ry1 - ry0);
	canvas_free(&u);
	canvas_free(&r);
}

int main(void)
{
	struct canvas c = { 0 };
	test_rects(&c);
	test_polygons(&c);
	test_strokes(&c);
	test_bad_strokes(&c);
	test_atlas();
	test_text(&c);
	canvas_free(&c);
	return check_done("analyzer_raster");
}
