// cxx_inline.cc - a C++ program built -O2 -g (and with -flto: cxx_inline_lto)
// whose allocations sit under deep inline chains: std::vector, std::map,
// std::string, a template, a lambda.  Its stacks are checked frame by
// frame against addr2line -i -f -C (t150), and its report must name the
// functions that hold the memory (t151):
//   remember(int)    resizes a std::vector<char> of 10000 bytes, 1000 times,
//                    kept to the end and never freed (a leak),
//   add_session(int) grows a static std::map of sessions to ~23 MiB, freed
//                    only by its destructor at exit,
//   make_table<T>()  a template making a table, freed at once (churn).
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <algorithm>

static std::vector<std::vector<char> *> kept;

__attribute__((noinline)) void remember(int n)
{
	auto *v = new std::vector<char>();
	v->resize(n);
	kept.push_back(v);
}

struct Session {
	std::string user;
	std::vector<int> history;
};

static std::map<int, Session> sessions;

__attribute__((noinline)) void add_session(int id)
{
	Session &s = sessions[id];
	s.user.assign(100, 'u');
	s.history.resize(32);
}

template <typename T> __attribute__((noinline)) std::unique_ptr<T[]> make_table(size_t n)
{
	return std::unique_ptr<T[]>(new T[n]());
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? std::atoi(argv[1]) : 1000;
	for (int i = 0; i < n; i++)
		remember(10000);
	std::vector<int> ids(n * 100);
	int next = 0;
	std::for_each(ids.begin(), ids.end(), [&next](int &id) {
		id = next++;
		add_session(id);
	});
	long sum = 0;
	for (int i = 0; i < 200; i++) {
		auto t = make_table<long>(1000 + i);
		sum += t[i];
	}
	std::printf("sessions %zu kept %zu sum %ld\n", sessions.size(), kept.size(), sum);
	return 0;
}
