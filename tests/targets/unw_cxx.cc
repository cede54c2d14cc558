// unw_cxx.cc - C++ for the unwinder comparison (t181): operator new and
// the standard containers (libstdc++ frames), exceptions thrown through
// frames that allocate in constructors, in destructors run while the
// exception unwinds, and in catch blocks; std::thread.
//   unw_cxx [ROUNDS]      (default 300)
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

volatile std::size_t sink;

struct Guard {
	std::vector<int> v;
	explicit Guard(int n) : v(static_cast<std::size_t>(n), n) {}
	~Guard() { std::string s(40 + v.size(), 'g'); sink += s.size(); }
};

[[gnu::noinline]] void thrower(int d)
{
	Guard g(d + 1);
	if (d <= 0)
		throw std::runtime_error(std::string(64, 'e'));
	thrower(d - 1);
	sink += g.v.size();
}

[[gnu::noinline]] void containers(int seed)
{
	std::map<int, std::string> m;
	for (int i = 0; i < 20; i++)
		m[(seed * 31 + i) % 97] = std::string(static_cast<std::size_t>(16 + i), 'x');
	std::vector<std::unique_ptr<int>> v;
	for (int i = 0; i < 30; i++)
		v.push_back(std::make_unique<int>(i));
	sink += m.size() + v.size();
}

void round_(int seed)
{
	containers(seed);
	try {
		thrower(seed % 7);
	} catch (const std::exception &e) {
		std::string copy = e.what();
		sink += copy.size();
	}
}

void worker(int rounds)
{
	for (int i = 0; i < rounds; i++)
		round_(i);
}

}  // namespace

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? std::atoi(argv[1]) : 300;
	std::thread t1(worker, rounds), t2(worker, rounds);
	worker(rounds);
	t1.join();
	t2.join();
	return 0;
}
