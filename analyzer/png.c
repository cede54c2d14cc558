/*
 * png.c - the one file that touches libpng: write an RGB canvas (8 bits per
 * channel, rows of `stride` bytes) as a PNG.
 */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyzer/chart.h"
#include "common/util.h"

/* libpng's default handlers print "libpng error: Write Error" on stderr:
 * mfx says a failed write in its own one line (the errno is kept by
 * fopen_replace's stream), so these only end the write (longjmp). */
static void png_quiet_error(png_structp png, png_const_charp msg)
{
	(void)msg;
	png_longjmp(png, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

int png_write_rgb(const char *path, const uint8_t *data, int w, int h, int stride)
{
	char tmp[4200];
	FILE *f = fopen_replace(path, tmp, sizeof(tmp));
	if (!f)
		return -errno;
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_quiet_error,
						      png_quiet_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	int err = -ENOMEM;
	if (!png || !info)
		goto out;
	err = -EIO;
	if (setjmp(png_jmpbuf(png))) {
		if (ferror(f))	/* a write failed: fclose_replace says why */
			err = 0;
		goto out;
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, 6);
	png_write_info(png, info);
	for (int y = 0; y < h; y++)
		png_write_row(png, data + (size_t)y * stride);
	png_write_end(png, info);
	err = 0;
out:
	if (png)
		png_destroy_write_struct(&png, info ? &info : NULL);
	return fclose_replace(f, tmp, path, err);
}
