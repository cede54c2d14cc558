/*
 * varint.h - LEB128 varints and zigzag, the integer coding of trace records
 * (trace/format.h).  Shared by the agent (writer), mfx (writer of its own
 * chunks) and the reader.
 */
#ifndef MFX_VARINT_H
#define MFX_VARINT_H

#include <stdint.h>

/* Writes 1..10 bytes; returns the byte after. */
static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static inline uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t unzigzag(uint64_t v)
{
	return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Reads one varint from [*pp, end); 0 and advances, or -1 (truncated or
 * longer than 10 bytes). */
static inline int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t r = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (p >= end)
			return -1;
		uint8_t b = *p++;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*pp = p;
			*v = r;
			return 0;
		}
	}
	return -1;
}

#endif
