/*
 * assets.c - files built into mfx: report.html's script and style sheet
 * (analyzer/report.js, analyzer/report.css), kept as their own sources and
 * embedded at build time with the assembler's .incbin, each followed by a
 * NUL so it is a C string.  The Makefile makes this object depend on them.
 * The paths are relative to the top of the tree, where make runs.
 */
#include "analyzer/assets.h"

#define EMBED(sym, file)                                                                    \
	__asm__(".section .rodata\n"                                                        \
		".global " #sym "\n"                                                        \
		".type " #sym ", @object\n"                                                 \
		".balign 16\n" #sym ":\n"                                                   \
		".incbin \"" file "\"\n"                                                    \
		".byte 0\n"                                                                 \
		".size " #sym ", . - " #sym "\n"                                            \
		".previous\n")

EMBED(mfx_report_js, "analyzer/report.js");
EMBED(mfx_report_css, "analyzer/report.css");
