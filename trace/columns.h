/*
 * columns.h - the column transform of EVENTS payloads (codec
 * MFX_CODEC_COLS): records are split into streams of like fields (first
 * bytes, time deltas, sizes, pointers, stack ids, extended records), each
 * compressed on its own, so the entropy coder sees homogeneous data.  The
 * transform is lossless and exact: join(split(x)) == x, byte for byte.
 *
 * Shared by the finaliser (split) and the reader (join); both walk the
 * record grammar of trace/format.h.
 */
#ifndef MFX_COLUMNS_H
#define MFX_COLUMNS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "trace/format.h"

enum { COL_OP, COL_TS, COL_SIZE, COL_PTR, COL_STACK, COL_EXT, COL_N };

struct col_buf {
	uint8_t *p;		/* split: write cursor; join: read cursor */
	uint8_t *end;
};

/* Length of the varint at p (bounded by end), 0 if malformed. */
static inline size_t col_varint_len(const uint8_t *p, const uint8_t *end)
{
	for (size_t i = 0; i < 10 && p + i < end; i++)
		if (!(p[i] & 0x80))
			return i + 1;
	return 0;
}

/* Move one varint from *src to column c (split) or from column c to *dst
 * (join).  0 or -1. */
static inline int col_move(const uint8_t **src, const uint8_t *send, uint8_t **dst,
			   const uint8_t *dend)
{
	size_t n = col_varint_len(*src, send);
	if (!n || *dst + n > dend)
		return -1;
	memcpy(*dst, *src, n);
	*src += n;
	*dst += n;
	return 0;
}

/*
 * Walk one record, moving its parts between the interleaved stream and the
 * columns.  split = 1: from *raw into cols; split = 0: from cols into *raw.
 * `stacks`: the trace has MFX_HF_STACKS.  0 or -1 (malformed).
 */
static inline int col_record(const uint8_t **rp, uint8_t **wp, const uint8_t *rend,
			     const uint8_t *wend, struct col_buf *c, int split, int stacks)
{
	/* The first byte: tells the rest. */
	uint8_t b0;
	if (split) {
		if (*rp >= rend || c[COL_OP].p >= c[COL_OP].end)
			return -1;
		b0 = *(*rp)++;
		*c[COL_OP].p++ = b0;
	} else {
		if (c[COL_OP].p >= c[COL_OP].end || *wp >= wend)
			return -1;
		b0 = *c[COL_OP].p++;
		*(*wp)++ = b0;
	}
	unsigned kind = b0 & 15, flags = b0 & 0xf0;
#define MOVE(col)                                                                          \
	do {                                                                               \
		if (split ? col_move(rp, rend, &c[col].p, c[col].end)                      \
			  : col_move((const uint8_t **)&c[col].p, c[col].end, wp, wend))   \
			return -1;                                                         \
	} while (0)
	if (kind == MFX_K_EXT) {
		/* ext kind byte, length varint, body: all to COL_EXT */
		const uint8_t *s = split ? *rp : c[COL_EXT].p;
		const uint8_t *se = split ? rend : c[COL_EXT].end;
		if (s >= se)
			return -1;
		size_t ln = col_varint_len(s + 1, se);
		if (!ln)
			return -1;
		uint64_t len = 0;
		for (size_t i = 0; i < ln; i++)
			len |= (uint64_t)(s[1 + i] & 0x7f) << (7 * i);
		size_t total = 1 + ln + len;
		if (len > (uint64_t)(se - s) || total > (size_t)(se - s))
			return -1;
		uint8_t **d = split ? &c[COL_EXT].p : wp;
		const uint8_t *de = split ? c[COL_EXT].end : wend;
		if (*d + total > de)
			return -1;
		memcpy(*d, s, total);
		*d += total;
		if (split)
			*rp += total;
		else
			c[COL_EXT].p += total;
		return 0;
	}
	if (kind == MFX_K_PAD || kind > MFX_K_PVALLOC)
		return -1;
	MOVE(COL_TS);
	if (kind == MFX_K_FREE) {
		MOVE(COL_PTR);
		return 0;
	}
	MOVE(COL_SIZE);
	if (kind == MFX_K_REALLOC || kind == MFX_K_REALLOCARRAY) {
		if (!(flags & MFX_F_OLD_NULL))
			MOVE(COL_PTR);
	} else if (kind >= MFX_K_POSIX_MEMALIGN && kind <= MFX_K_MEMALIGN) {
		MOVE(COL_SIZE);	/* alignment */
	}
	if (!(flags & MFX_F_NULL))
		MOVE(COL_PTR);
	if (stacks && !(flags & MFX_F_SAME_STACK))
		MOVE(COL_STACK);
#undef MOVE
	return 0;
}

#endif /* MFX_COLUMNS_H */
