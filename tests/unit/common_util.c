/*
 * common_util.c - unit tests of common/util.c: the option parsers
 * (parse_duration, parse_size, parse_uint), the formatters (fmt_bytes,
 * fmt_duration, fmt_count), the small-file readers (read_small, read_file,
 * checked against what write(2) put in a file and against /proc), the
 * growable array (grow_array) and the file-name tests (is_trace_name,
 * is_numbered_name: against the names preload/agent.c and the report
 * create).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/unit/check.h"

static void test_parse_duration(void)
{
	static const struct { const char *s; uint64_t ns; } ok[] = {
		{ "0", 0 }, { "30", 30000000000ull }, { "30s", 30000000000ull },
		{ "500ms", 500000000ull }, { "1.5s", 1500000000ull }, { "250us", 250000ull },
		{ "10ns", 10 }, { "2m", 120000000000ull }, { "2min", 120000000000ull },
		{ "1h", 3600000000000ull }, { "0.5ms", 500000ull },
	};
	static const char *const bad[] = {
		"", "-1s", "+1s", "s", "1x", "1 s", "1sec", "ms", "1e30", "abc", "1.5.2s",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t ns = 1;
		int err = parse_duration(ok[i].s, &ns);
		CHECK(err == 0 && ns == ok[i].ns, "parse_duration(\"%s\") = %d, %" PRIu64, ok[i].s,
		      err, ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t ns = 7;
		CHECK(parse_duration(bad[i], &ns) == -EINVAL && ns == 7,
		      "parse_duration(\"%s\") refused, output untouched", bad[i]);
	}
	uint64_t ns;
	CHECK(parse_duration(NULL, &ns) == -EINVAL, "parse_duration(NULL)");
}

static void test_parse_size(void)
{
	static const struct { const char *s; uint64_t b; } ok[] = {
		{ "0", 0 }, { "4096", 4096 }, { "64k", 65536 }, { "64K", 65536 },
		{ "64KiB", 65536 }, { "64kB", 65536 }, { "512M", 512ull << 20 },
		{ "2G", 2ull << 30 }, { "1T", 1ull << 40 }, { "1.5k", 1536 },
	};
	static const char *const bad[] = {
		"", "-1", "+1", "k", "1x", "1 k", "1kk", "1KiBB", "1e30T", "1iB",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t b = 1;
		int err = parse_size(ok[i].s, &b);
		CHECK(err == 0 && b == ok[i].b, "parse_size(\"%s\") = %d, %" PRIu64, ok[i].s, err, b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t b = 7;
		CHECK(parse_size(bad[i], &b) == -EINVAL && b == 7, "parse_size(\"%s\") refused",
		      bad[i]);
	}
}

static void test_parse_uint(void)
{
	uint64_t v = 0;
	CHECK(parse_uint("0", 10, &v) == 0 && v == 0, "parse_uint 0");
	CHECK(parse_uint("10", 10, &v) == 0 && v == 10, "parse_uint at the bound");
	CHECK(parse_uint("18446744073709551615", UINT64_MAX, &v) == 0 && v == UINT64_MAX,
	      "parse_uint UINT64_MAX");
	CHECK(parse_uint(" -1", UINT64_MAX, &v) == -EINVAL, "parse_uint(\" -1\") is not 2^64 - 1");
	static const char *const bad[] = {
		"", "-1", "+1", "11", "1.0", "0x10", " 1", " -1", "1 ", "18446744073709551616", "a",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		CHECK(parse_uint(bad[i], 10, &v) == -EINVAL && v == 7, "parse_uint(\"%s\", 10) refused",
		      bad[i]);
	}
}

static void test_fmt(void)
{
	static const struct { uint64_t b; const char *s; } bytes[] = {
		{ 0, "0 B" }, { 1023, "1023 B" }, { 1024, "1.00 KiB" }, { 1536, "1.50 KiB" },
		{ 10 * 1024, "10.0 KiB" }, { 100 * 1024, "100 KiB" }, { 5ull << 20, "5.00 MiB" },
		{ 3ull << 30, "3.00 GiB" }, { 2ull << 40, "2.00 TiB" }, { 5000ull << 40, "5000 TiB" },
	};
	char buf[32];
	for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++)
		CHECK(!strcmp(fmt_bytes(bytes[i].b, buf, sizeof(buf)), bytes[i].s),
		      "fmt_bytes(%" PRIu64 ") = \"%s\", want \"%s\"", bytes[i].b, buf, bytes[i].s);
	CHECK(!strcmp(fmt_bytes(1ull << 20, buf, 4), "1.0"), "fmt_bytes truncates to the buffer");
	CHECK(!strcmp(fmt_duration(999, buf, sizeof(buf)), "999 ns"), "fmt_duration ns: %s", buf);
	CHECK(!strcmp(fmt_duration(1500, buf, sizeof(buf)), "1.5 us"), "fmt_duration us: %s", buf);
	CHECK(!strcmp(fmt_duration(340000000, buf, sizeof(buf)), "340.0 ms"), "ms: %s", buf);
	CHECK(!strcmp(fmt_duration(1250000000, buf, sizeof(buf)), "1.25 s"), "s: %s", buf);
	CHECK(!strcmp(fmt_duration(125000000000ull, buf, sizeof(buf)), "2m05s"), "m: %s", buf);
	CHECK(!strcmp(fmt_count(9999, buf, sizeof(buf)), "9999"), "fmt_count: %s", buf);
	CHECK(!strcmp(fmt_count(1200000, buf, sizeof(buf)), "1200.0k"), "fmt_count k: %s", buf);
	CHECK(!strcmp(fmt_count(12000000, buf, sizeof(buf)), "12.0M"), "fmt_count M: %s", buf);
}

static void test_read_small(void)
{
	char path[] = "/tmp/mfx-unit-XXXXXX", buf[64];
	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		return;
	const char text[] = "State:\tS (sleeping)\nName:\tx\n";
	CHECK(write(fd, text, sizeof(text) - 1) == (ssize_t)sizeof(text) - 1, "write");
	close(fd);
	CHECK(read_small(path, buf, sizeof(buf)) == (ssize_t)sizeof(text) - 1 && !strcmp(buf, text),
	      "read_small gives the file back");
	CHECK(read_small(path, buf, 6) == 5 && !strcmp(buf, "State"), "read_small truncates: %s",
	      buf);
	CHECK(read_small(path, buf, 1) == 0 && buf[0] == 0, "read_small into one byte");
	char *all;
	size_t len;
	CHECK(read_file(path, &all, &len) == 0 && len == sizeof(text) - 1 && !strcmp(all, text),
	      "read_file gives the file back");
	free(all);
	unlink(path);
	CHECK(read_small(path, buf, sizeof(buf)) == -ENOENT, "read_small of a missing file");
	CHECK(read_file(path, &all, &len) == -ENOENT, "read_file of a missing file");
	/* /proc/self/stat begins with our pid */
	char stat[1024], want[32];
	snprintf(want, sizeof(want), "%d (", (int)getpid());
	CHECK(read_small("/proc/self/stat", stat, sizeof(stat)) > 0 &&
	      !strncmp(stat, want, strlen(want)), "read_small(/proc/self/stat): %.40s", stat);
	/* a file larger than read_file's first buffer (16 KiB) */
	CHECK(read_file("/proc/self/maps", &all, &len) == 0 && len == strlen(all), "read_file maps");
	free(all);
}

static void test_grow_array(void)
{
	uint32_t *v = NULL;
	size_t cap = 0, n = 0;
	int ok = 1;
	for (uint32_t i = 0; i < 100000 && ok; i++) {
		ok = grow_array(&v, &cap, n, sizeof(*v)) == 0 && cap > n;
		if (ok)
			v[n++] = i * 7;
	}
	for (size_t i = 0; i < n; i++)
		ok &= v[i] == (uint32_t)i * 7;
	CHECK(ok && n == 100000, "100000 elements kept across growth (%zu)", n);
	CHECK((cap & (cap - 1)) == 0 && cap >= n && cap < 2 * n + 32, "cap %zu doubles", cap);
	size_t before = cap;
	CHECK(grow_array(&v, &cap, 10, sizeof(*v)) == 0 && cap == before, "no growth when room");
	free(v);
	/* a size whose bytes do not fit in size_t: -ENOMEM, the array kept
	 * (not realloc'ed to the wrapped, tiny size) */
	char *c = NULL;
	size_t cc = 0;
	CHECK(grow_array(&c, &cc, 0, 1) == 0 && c && cc == 16, "first capacity 16");
	c[0] = 'x';
	CHECK(grow_array(&c, &cc, (size_t)1 << 50, 1 << 20) == -ENOMEM && c && cc == 16 &&
	      c[0] == 'x', "grow_array refuses a size that wraps, array kept");
	CHECK(grow_array(&c, &cc, SIZE_MAX, 1) == -ENOMEM && cc == 16, "n = SIZE_MAX refused");
	free(c);
}

static void test_trace_names(void)
{
	static const char *const yes[] = {
		"trace.mfx", "trace-1.mfx", "trace-4242.mfx", "trace-4242.1.mfx", "trace-4242.99.mfx",
	};
	static const char *const no[] = {
		"trace", "trace.mfx.tmp", "trace-.mfx", "trace-12.mfx ", "trace-12..mfx",
		"trace-12.1.2.mfx", "trace-x.mfx", "traces.mfx", "mytrace.mfx", "trace.mfx2",
		"trace-12.", "trace-12.mf", ".mfx", "", "trace-12.1", "Trace.mfx", "trace.MFX",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		CHECK(is_trace_name(yes[i]), "is_trace_name(\"%s\")", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(!is_trace_name(no[i]), "!is_trace_name(\"%s\")", no[i]);
	/* the report's files of a child's trace; smaps_replay.<n> */
	CHECK(is_numbered_name("summary-4242.1.json", "summary", '-', ".json"), "summary-4242.1.json");
	CHECK(is_numbered_name("summary.json", "summary", '-', ".json"), "summary.json");
	CHECK(!is_numbered_name("summary-.json", "summary", '-', ".json"), "summary-.json");
	CHECK(is_numbered_name("smaps_replay.3", "smaps_replay", '.', ""), "smaps_replay.3");
	CHECK(!is_numbered_name("smaps_replay.3.1", "smaps_replay", '.', ""), "smaps_replay.3.1");
	CHECK(!is_numbered_name("smaps_replay-3", "smaps_replay", '.', ""), "smaps_replay-3");
}

int main(void)
{
	test_parse_duration();
	test_parse_size();
	test_parse_uint();
	test_fmt();
	test_read_small();
	test_grow_array();
	test_trace_names();
	return check_done("common_util");
}
