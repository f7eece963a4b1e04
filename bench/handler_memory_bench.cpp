// Handler-memory recycling (doc/design.md, "Asio binding"): two coroutine shapes on a
// swarm::runtime and, for reference, an io_context, one thread each, run() on the bench
// thread. Prints `context,shape,ns_per_op,cpu_ns_per_op,allocations_per_op` per timed run:
// wall time; the bench thread's CPU time (everything runs on it, so this is steadier on
// a loaded machine); calls of operator new and aligned_alloc, the two ways Asio and swarm
// allocate.
//
//   post_yield:      one coroutine doing `co_await post(ex, use_awaitable)` N times
//   co_spawn_join:   one coroutine doing `co_await co_spawn(ex, child(), use_awaitable)` N
//                    times, child() returning at once
//
// Build (from the repository root):
//   g++ -std=c++20 -O2 -DNDEBUG -Iinclude bench/handler_memory_bench.cpp src/task/*.cpp \
//       src/scheduler/*.cpp src/asio/*.cpp src/runtime.cpp -o /tmp/handler_memory_bench -lpthread
//   /tmp/handler_memory_bench [runs] [ops]
#include <swarm/runtime.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <malloc.h>
#include <new>
#include <string>
#include <time.h>

// Allocation counting: operator new (swarm's jobs and tasks) and aligned_alloc (Asio's
// aligned_new, behind its recycling allocators).
namespace {
std::atomic<unsigned long> allocations{0};
}
void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1))
    return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
extern "C" void* aligned_alloc(std::size_t align, std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return memalign(align, n);
}

namespace asio = boost::asio;

namespace {

asio::awaitable<void> post_yield(int n) {
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < n; ++i)
    co_await asio::post(ex, asio::use_awaitable);
}

asio::awaitable<int> child() { co_return 1; }

asio::awaitable<void> co_spawn_join(int n) {
  auto ex = co_await asio::this_coro::executor;
  int sum = 0;
  for (int i = 0; i < n; ++i)
    sum += co_await asio::co_spawn(ex, child(), asio::use_awaitable);
  if (sum != n)
    std::abort();
}

double thread_cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e9 + double(ts.tv_nsec);
}

struct result {
  double ns_per_op;
  double cpu_ns_per_op;
  double allocations_per_op;
};

template <class Context, class Shape>
result measure(Shape shape, int ops) {
  Context ctx{1};
  const unsigned long a0 = allocations.load();
  const double c0 = thread_cpu_ns();
  const auto t0 = std::chrono::steady_clock::now();
  asio::co_spawn(ctx, shape(ops), asio::detached);
  ctx.run();
  const auto t1 = std::chrono::steady_clock::now();
  const double c1 = thread_cpu_ns();
  const unsigned long a1 = allocations.load();
  return {std::chrono::duration<double, std::nano>(t1 - t0).count() / ops, (c1 - c0) / ops,
          double(a1 - a0) / ops};
}

template <class Context>
void run_all(const char* name, int runs, int ops) {
  measure<Context>(post_yield, ops / 10); // warm-up
  for (int r = 0; r < runs; ++r) {
    const result p = measure<Context>(post_yield, ops);
    std::printf("%s,post_yield,%.1f,%.1f,%.2f\n", name, p.ns_per_op, p.cpu_ns_per_op, p.allocations_per_op);
    const result c = measure<Context>(co_spawn_join, ops);
    std::printf("%s,co_spawn_join,%.1f,%.1f,%.2f\n", name, c.ns_per_op, c.cpu_ns_per_op,
                c.allocations_per_op);
    std::fflush(stdout);
  }
}

} // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::stoi(argv[1]) : 7;
  const int ops = argc > 2 ? std::stoi(argv[2]) : 200000;
  run_all<swarm::runtime>("swarm", runs, ops);
  run_all<asio::io_context>("io_context", runs, ops);
}
