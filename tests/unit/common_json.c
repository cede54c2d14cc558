/*
 * common_json.c - unit tests of common/json.c: string escaping (quotes,
 * backslashes, every control character, well-formed UTF-8 kept, bytes
 * that are not UTF-8 replaced by U+FFFD), numbers (NaN and infinities as
 * null) and the writer's nesting.  The exact bytes are checked, and the
 * whole document is decoded by Python's json module (an independent
 * parser) when python3 is installed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "tests/unit/check.h"

/* json_quote(s) as a malloc'ed string. */
static char *quoted(const char *s)
{
	char *out = NULL;
	size_t len;
	FILE *f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	json_quote(f, s);
	fclose(f);
	return out;
}

static const struct { const char *in, *out; } cases[] = {
	{ "", "\"\"" },
	{ "plain", "\"plain\"" },
	{ "say \"hi\"", "\"say \\\"hi\\\"\"" },
	{ "C:\\dir\\", "\"C:\\\\dir\\\\\"" },
	{ "a\nb\rc\td", "\"a\\nb\\rc\\td\"" },
	{ "\x01\x08\x0c\x1f\x7f", "\"\\u0001\\u0008\\u000c\\u001f\x7f\"" },
	{ "</script>", "\"</script>\"" },
	{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
	{ "\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"" },	/* U+FFFF, U+10FFFF */
	/* not UTF-8: stray continuation, truncated sequences, overlong forms,
	 * surrogates, above U+10FFFF, bytes that never occur */
	{ "a\x80z", "\"a\\ufffdz\"" },
	{ "\xc3", "\"\\ufffd\"" },
	{ "\xe2\x82", "\"\\ufffd\\ufffd\"" },
	{ "\xc0\xaf", "\"\\ufffd\\ufffd\"" },
	{ "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"" },
	{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },
	{ "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" },
	{ "\xfe\xff", "\"\\ufffd\\ufffd\"" },
	{ "\xc3\xa9\xa9", "\"\xc3\xa9\\ufffd\"" },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void test_quote(void)
{
	for (size_t i = 0; i < NCASES; i++) {
		char *q = quoted(cases[i].in);
		CHECK(q && !strcmp(q, cases[i].out), "json_quote case %zu: %s, want %s", i, q,
		      cases[i].out);
		free(q);
	}
	/* every byte value in one string: each control one escaped */
	char all[256];
	for (int c = 1; c < 256; c++)
		all[c - 1] = (char)c;
	all[255] = 0;
	char *q = quoted(all);
	int raw_ctl = 0;
	for (char *p = q; p && *p; p++)
		raw_ctl |= (unsigned char)*p < 0x20;
	CHECK(q && !raw_ctl, "no raw control character in the output");
	free(q);
}

/* A document with every case, and the writer's other members. */
static void write_doc(FILE *f)
{
	struct json j;
	json_init(&j, f);
	json_obj(&j, NULL);
	json_arr(&j, "strings");
	for (size_t i = 0; i < NCASES; i++)
		json_str(&j, NULL, cases[i].in);
	json_end(&j);
	json_str(&j, "null", NULL);
	json_int(&j, "neg", -42);
	json_uint(&j, "big", UINT64_MAX);
	json_num(&j, "half", 0.5);
	json_num(&j, "whole", 3.0);
	json_num(&j, "nan", NAN);
	json_num(&j, "inf", -INFINITY);
	json_bool(&j, "yes", 1);
	json_null(&j, "none");
	json_obj(&j, "empty");
	json_end(&j);
	json_arr(&j, "nested");
	json_arr(&j, NULL);
	json_int(&j, NULL, 1);
	json_end(&j);
	json_end(&j);
	json_end(&j);
}

/* Python decodes the document and prints each string's code points. */
static void test_python(void)
{
	if (system("python3 -c '' 2>/dev/null") != 0) {
		printf("python3 missing: the independent decode is skipped\n");
		return;
	}
	char path[] = "/tmp/mfx-unit-json-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	CHECK(f != NULL, "temp file");
	if (!f)
		return;
	write_doc(f);
	fclose(f);
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json,sys; d=json.load(open(sys.argv[1], encoding=\"utf-8\"));"
		 "assert d[\"null\"] is None and d[\"neg\"] == -42 and d[\"big\"] == 2**64-1;"
		 "assert d[\"half\"] == 0.5 and d[\"whole\"] == 3 and d[\"nan\"] is None;"
		 "assert d[\"inf\"] is None and d[\"yes\"] is True and d[\"empty\"] == {};"
		 "assert d[\"nested\"] == [[1]];"
		 "[print(\" \".join(\"%%x\" %% ord(c) for c in s)) for s in d[\"strings\"]]' %s",
		 path);
	FILE *p = popen(cmd, "r");
	char line[512];
	size_t n = 0;
	/* what Python must see: the input's code points, U+FFFD for bad bytes */
	static const char *const want[NCASES] = {
		"", "70 6c 61 69 6e", "73 61 79 20 22 68 69 22", "43 3a 5c 64 69 72 5c",
		"61 a 62 d 63 9 64", "1 8 c 1f 7f", "3c 2f 73 63 72 69 70 74 3e",
		"63 61 66 e9 20 20ac 20 1f600", "ffff 10ffff", "61 fffd 7a", "fffd", "fffd fffd",
		"fffd fffd", "fffd fffd fffd", "fffd fffd fffd", "fffd fffd fffd fffd", "fffd fffd",
		"e9 fffd",
	};
	while (p && fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = 0;
		CHECK(n < NCASES && !strcmp(line, want[n]), "python decodes case %zu as [%s], want [%s]",
		      n, line, n < NCASES ? want[n] : "");
		n++;
	}
	int st = p ? pclose(p) : -1;
	CHECK(st == 0 && n == NCASES, "python3 parsed the document (status %d, %zu strings)", st, n);
	unlink(path);
}

int main(void)
{
	test_quote();
	test_python();
	return check_done("common_json");
}
