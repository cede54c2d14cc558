/*
 * png.c - the one file that touches libpng: write a cairo ARGB32 image
 * (premultiplied alpha, native-endian 32-bit pixels) as an 8-bit RGB PNG.
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

int png_write_argb(const char *path, const uint8_t *data, int w, int h, int stride)
{
	char tmp[4200];
	FILE *f = fopen_replace(path, tmp, sizeof(tmp));
	if (!f)
		return -errno;
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	uint8_t *row = malloc((size_t)w * 3);
	int err = -ENOMEM;
	if (!png || !info || !row)
		goto out;
	err = -EIO;
	if (setjmp(png_jmpbuf(png)))
		goto out;
	png_init_io(png, f);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, 6);
	png_write_info(png, info);
	for (int y = 0; y < h; y++) {
		const uint32_t *src = (const uint32_t *)(data + (size_t)y * stride);
		for (int x = 0; x < w; x++) {
			uint32_t p = src[x];	/* the charts are opaque: alpha is 255 */
			row[3 * x] = (uint8_t)(p >> 16);
			row[3 * x + 1] = (uint8_t)(p >> 8);
			row[3 * x + 2] = (uint8_t)p;
		}
		png_write_row(png, row);
	}
	png_write_end(png, info);
	err = 0;
out:
	if (png)
		png_destroy_write_struct(&png, info ? &info : NULL);
	free(row);
	return fclose_replace(f, tmp, path, err);
}
