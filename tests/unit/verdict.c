/*
 * verdict.c - unit tests of the verdict rules (analyzer/verdict.c) and of
 * the terminal's short C++ names and cut lines (analyzer/text.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzer/term.h"
#include "analyzer/verdict.h"
#include "tests/unit/check.h"


#define MiB (1ull << 20)

static enum verdict decide(struct verdict_in in, char *line)
{
	struct verdict_out out;
	verdict_decide(&in, &out);
	if (line)
		strcpy(line, out.line);
	return out.kind;
}

static void test_rules(void)
{
	char line[512];
	struct verdict_in none = { 0 };
	CHECK(decide(none, line) == V_NONE, "no events: %s", line);
	struct verdict_in unmeasured = { .events = 100, .heap_why = "mimalloc keeps no statistics",
					  .rss_peak = 100 * MiB, .heap_rss = 50 * MiB };
	CHECK(decide(unmeasured, line) == V_NONE && strstr(line, "mimalloc keeps no"),
	      "a heap not measured: no verdict: %s", line);
	unmeasured.n_leaks = 1;
	unmeasured.leak_growth = 2 * MiB;
	unmeasured.leak_site = "f";
	CHECK(decide(unmeasured, line) == V_LEAK, "but a leak: %s", line);

	/* below the floor: steady with the figures, whatever they are */
	struct verdict_in small = { .events = 100, .heap_measured = 1, .rss_peak = 20 * MiB, .heap_rss = 2 * MiB,
				    .live = MiB / 4, .trim_estimate = MiB, .n_leaks = 1,
				    .leak_growth = MiB, .leak_site = "f" };
	CHECK(decide(small, line) == V_STEADY, "2 MiB heap: %s", line);
	CHECK(strstr(line, "2.00 MiB") && strstr(line, "1 site grew by 1.00 MiB"), "figures: %s", line);
	/* 5% of RSS: a 10 MiB heap in a 1 GiB process */
	struct verdict_in rel = { .events = 100, .heap_measured = 1, .rss_peak = 1024 * MiB, .heap_rss = 10 * MiB,
				  .live = MiB, .trim_estimate = 9 * MiB };
	CHECK(decide(rel, line) == V_STEADY, "10 MiB of 1 GiB: %s", line);
	CHECK(verdict_below_floor(8 * MiB - 1, 10 * MiB) && !verdict_below_floor(8 * MiB, 10 * MiB),
	      "8 MiB floor");

	struct verdict_in leak = { .events = 100, .heap_measured = 1, .rss_peak = 100 * MiB, .heap_rss = 60 * MiB,
				   .live = 50 * MiB, .trim_estimate = 2 * MiB, .n_leaks = 2,
				   .leak_growth = 30 * MiB, .leak_site = "remember(int)" };
	CHECK(decide(leak, line) == V_LEAK && strstr(line, "remember(int)"), "leak: %s", line);

	struct verdict_in grow = { .events = 100, .heap_measured = 1, .rss_peak = 50 * MiB, .heap_rss = 40 * MiB,
				   .live = 36 * MiB, .trim_estimate = MiB, .exited = 1,
				   .exit_growth = 23 * MiB, .exit_site = "add_session(int)",
				   .exit_site_bytes = 23 * MiB };
	CHECK(decide(grow, line) == V_GROWTH && strstr(line, "freed only at exit") &&
	      strstr(line, "23.0 MiB"), "growth freed at exit: %s", line);
	grow.exited = 0;
	CHECK(decide(grow, line) == V_STEADY, "no exit mark: no growth verdict: %s", line);

	struct verdict_in ret = { .events = 100, .heap_measured = 1, .release_call = "malloc_trim(0)", .rss_peak = 100 * MiB, .heap_rss = 80 * MiB,
				  .live = 20 * MiB, .trim_estimate = 50 * MiB };
	CHECK(decide(ret, line) == V_RETENTION && strstr(line, "malloc_trim(0) could return"),
	      "retention: %s", line);
	ret.trim_estimate = 5 * MiB;
	CHECK(decide(ret, line) == V_FRAGMENTATION, "fragmentation: %s", line);
	ret.live = 70 * MiB;
	CHECK(decide(ret, line) == V_STEADY, "mostly live: %s", line);
	/* a leak too small against the unused heap is not the verdict */
	ret.live = 20 * MiB;
	ret.trim_estimate = 50 * MiB;
	ret.n_leaks = 1;
	ret.leak_growth = 2 * MiB;
	ret.leak_site = "g";
	CHECK(decide(ret, line) == V_RETENTION, "retention over a small leak: %s", line);
	ret.exited = 1;
	CHECK(decide(ret, line) == V_LEAK, "after the exit, still held: a leak: %s", line);
	grow.exited = 1;
	grow.n_leaks = 1;
	grow.leak_growth = 9 * MiB;
	grow.leak_site = "remember(int)";
	CHECK(decide(grow, line) == V_LEAK, "a leak before growth freed at exit: %s", line);
	CHECK(!strcmp(verdict_name(V_GROWTH), "growth") && !strcmp(verdict_name(V_LEAK), "leak"), "names");
}

static void test_names(void)
{
	static const char *const cases[][2] = {
		{ "std::vector<char, std::allocator<char> >::_M_default_append(unsigned long)",
		  "std::vector<...>::_M_default_append" },
		{ "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >::append(char const*, unsigned long)",
		  "std::__cxx11::basic_string<...>::append" },
		{ "remember(int)", "remember" },
		{ "main", "main" },
		{ "postgres+0x5c785f", "postgres+0x5c785f" },
		{ "operator new(unsigned long)", "operator new" },
		{ "std::map<int, Session, std::less<int>, std::allocator<std::pair<int const, Session> > >::operator[](int const&)",
		  "std::map<...>::operator[]" },
		{ "std::ostream& std::operator<< <std::char_traits<char> >(std::ostream&, char const*)",
		  "std::operator<< <...>" },
		{ "main::{lambda(int&)#1}::operator()(int&) const", "main::{lambda#1}::operator()" },
		{ "std::unique_ptr<long [], std::default_delete<long []> > make_table<long>(unsigned long)",
		  "make_table<...>" },
		{ "(anonymous namespace)::Pool::grow(unsigned long)", "(anonymous namespace)::Pool::grow" },
		{ "foo(int) [clone .constprop.0]", "foo [clone .constprop.0]" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		term_short_name(cases[i][0], "...", out, sizeof(out));
		CHECK(!strcmp(out, cases[i][1]), "'%s' -> '%s', want '%s'", cases[i][0], out, cases[i][1]);
	}
	char out[256];
	term_short_name("std::vector<int>::push_back(int const&)", "\xe2\x80\xa6", out, sizeof(out));
	CHECK(!strcmp(out, "std::vector<\xe2\x80\xa6>::push_back"), "UTF-8 ellipsis: %s", out);
}

static void test_cut(void)
{
	char line[64] = "0123456789abcdefghij";
	term_cut(line, sizeof(line), 0, "...");
	CHECK(!strcmp(line, "0123456789abcdefghij"), "width 0: no cut");
	term_cut(line, sizeof(line), 20, "...");
	CHECK(!strcmp(line, "0123456789abcdefghij"), "exactly the width: kept");
	term_cut(line, sizeof(line), 10, "...");
	CHECK(!strcmp(line, "0123456..."), "cut to 10 with ...: %s", line);
	strcpy(line, "ab\xe2\x80\xa6" "cdefghijkl");	/* 13 columns */
	term_cut(line, sizeof(line), 8, "\xe2\x80\xa6");
	CHECK(!strcmp(line, "ab\xe2\x80\xa6" "cdef\xe2\x80\xa6"), "UTF-8 counted by columns: %s", line);
	setenv("COLUMNS", "77", 1);
	CHECK(term_width(1) == 77, "COLUMNS");
	unsetenv("COLUMNS");
}

int main(void)
{
	test_rules();
	test_names();
	test_cut();
	return check_done("verdict");
}
