/*
 * raster.h - the small rasterizer the charts are drawn with (raster.c,
 * text.c): an opaque RGB canvas, anti-aliased strokes (polylines with round
 * joins, butt ends, dashes), filled rectangles and polygons, text from the
 * build-time glyph atlas (font.h), all blended source-over with an alpha,
 * inside a clip rectangle.  Coordinates are pixels, (0,0) the top-left
 * corner of the top-left pixel, as in cairo.  Any coordinate may be huge,
 * infinite or NaN: what cannot be drawn is left out, never an error.
 */
#ifndef MFX_ANALYZER_RASTER_H
#define MFX_ANALYZER_RASTER_H

#include <stddef.h>
#include <stdint.h>

struct canvas {
	int w, h;
	uint8_t *px;		/* RGB, 3 * w bytes per row */
	uint8_t *mask;		/* w * h coverage scratch (strokes, text) */
	int cx0, cy0, cx1, cy1;	/* clip: [cx0, cx1) x [cy0, cy1) */
	int mx0, my0, mx1, my1;	/* the mask's dirty box */
};

/* A stroke: colour 0xRRGGBB, alpha 0..1, width in pixels; dash[0] > 0 for
 * dashes of dash[0] pixels on, dash[1] off (starting on). */
struct stroke {
	uint32_t rgb;
	double alpha, width;
	double dash[2];
};

/* 0 or -ENOMEM; the canvas starts filled with bg. */
int canvas_init(struct canvas *c, int w, int h, uint32_t bg);
void canvas_free(struct canvas *c);
/* Clip to the rectangle (rounded to whole pixels) within the canvas. */
void canvas_clip(struct canvas *c, double x, double y, double w, double h);
void canvas_unclip(struct canvas *c);

void canvas_rect(struct canvas *c, double x, double y, double w, double h, uint32_t rgb,
		 double alpha);
/* Outline of a rectangle, a line of width 1 along its edges. */
void canvas_rect_line(struct canvas *c, double x, double y, double w, double h, uint32_t rgb);
/* xy: n points as x0, y0, x1, y1, ... */
void canvas_polyline(struct canvas *c, const double *xy, size_t n, const struct stroke *s);
void canvas_line(struct canvas *c, double x0, double y0, double x1, double y1,
		 const struct stroke *s);
void canvas_dot(struct canvas *c, double x, double y, double r, uint32_t rgb, double alpha);
/* A filled polygon (non-zero winding), closed from the last point to the first. */
void canvas_polygon(struct canvas *c, const double *xy, size_t n, uint32_t rgb, double alpha);

/* Text (text.c), UTF-8; size in pixels per em (the nearest in the atlas).
 * The ink box of the text is placed so that its point (ax, ay) (0..1 of its
 * width and height) is at (x, y), then turned by angle (radians, clockwise
 * on screen, as cairo_rotate) around (x, y). */
void canvas_text(struct canvas *c, double x, double y, const char *s, double size, int bold,
		 double ax, double ay, double angle, uint32_t rgb);
/* The pen advance of s, in pixels. */
double text_advance(const char *s, double size, int bold);

/* Internal to raster.c and text.c: blend the mask's dirty box in colour rgb
 * and clear it. */
void canvas__mask_paint(struct canvas *c, uint32_t rgb, double alpha);
void canvas__mask_mark(struct canvas *c, int x0, int y0, int x1, int y1);

#endif /* MFX_ANALYZER_RASTER_H */
