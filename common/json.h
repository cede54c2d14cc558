/*
 * json.h - a tiny streaming JSON writer (pretty, 2-space indent) used for
 * summary.json, replay.json and `--json` outputs.  Commas and indentation are
 * handled by the writer:
 *
 *	struct json j;
 *	json_init(&j, stdout);
 *	json_obj(&j, NULL);
 *	json_int(&j, "pid", 42);
 *	json_arr(&j, "stack"); json_str(&j, NULL, "main"); json_end(&j);
 *	json_end(&j);			// prints a final newline at depth 0
 */
#ifndef MFX_COMMON_JSON_H
#define MFX_COMMON_JSON_H

#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *f;
	int depth;
	int first;	/* no member written yet at this depth */
	int compact;	/* one line, no indentation */
	unsigned char is_arr[32];	/* per depth: array (1) or object (0) */
};

void json_init(struct json *j, FILE *f);
/* Each takes the member name (NULL inside arrays or at the top). */
void json_obj(struct json *j, const char *key);
void json_arr(struct json *j, const char *key);
void json_end(struct json *j);
void json_str(struct json *j, const char *key, const char *s);	/* NULL -> null */
void json_int(struct json *j, const char *key, int64_t v);
void json_uint(struct json *j, const char *key, uint64_t v);
void json_num(struct json *j, const char *key, double v);	/* NaN/inf -> null */
void json_bool(struct json *j, const char *key, int v);
void json_null(struct json *j, const char *key);
/* Write s as a JSON string literal (with quotes) to f. */
void json_quote(FILE *f, const char *s);

#endif
