/*
 * recording.h - what a recording lacks, for the report (recording.c): the
 * agent's notes (no stacks, no spool, ...), events dropped, an early stop.
 */
#ifndef MFX_ANALYZER_RECORDING_H
#define MFX_ANALYZER_RECORDING_H

struct json;
struct model;

/* summary.json's "recording" object. */
void recording_json(struct json *j, const struct model *m);
/* Each note as a line of text (without "note: "), in order: the early
 * stop, the drops with their count, then the agent's notes in its words. */
void recording_notes(const struct model *m, void (*fn)(const char *line, void *arg), void *arg);

#endif
