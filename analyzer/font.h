/*
 * font.h - the glyph atlas the charts' text is drawn from: DejaVu Sans,
 * regular and bold, rendered at build time by analyzer/font/fontgen.c into
 * build/gen/font_data.c (8-bit coverage per glyph, hinted advances, outline
 * metrics for the ink box).  No font library at run time.
 */
#ifndef MFX_ANALYZER_FONT_H
#define MFX_ANALYZER_FONT_H

#include <stdint.h>

struct font_glyph {
	uint16_t cp;		/* code point (the atlas holds the BMP only) */
	uint8_t adv;		/* advance, whole pixels */
	uint8_t w, h;		/* bitmap size */
	int8_t left, top;	/* bitmap origin: pen + left, baseline - top */
	int16_t hbx, hby, mw, mh;	/* outline bearing and size, 1/64 px (ink box) */
	uint32_t off;		/* first byte of the bitmap in the face's bits */
};

struct font_face {
	uint8_t size;		/* pixels per em */
	uint8_t bold;
	uint16_t nglyphs;
	const struct font_glyph *glyphs;	/* ascending by cp */
	const uint8_t *bits;	/* row-major coverage, 0..255 */
};

extern const struct font_face font_faces[];
extern const unsigned font_nfaces;

#endif /* MFX_ANALYZER_FONT_H */
