/*
 * assets.h - text files built into mfx (assets.c): report.html's script
 * and style sheet, NUL-terminated.
 */
#ifndef MFX_ANALYZER_ASSETS_H
#define MFX_ANALYZER_ASSETS_H

extern const char mfx_report_js[];
extern const char mfx_report_css[];

#endif /* MFX_ANALYZER_ASSETS_H */
