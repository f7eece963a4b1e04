// Inject-queue throughput: 1, 2 and 4 producer threads push, one consumer pops, for the
// mutex-guarded inject_queue (std::mutex, and a spin lock for comparison) and the
// boost::lockfree alternative. Prints ns per task (wall time / tasks moved through the
// queue), median of 3 runs, for a consumer popping one at a time (pop) and one taking
// batches (pop_n(32), the scheduler's shape when a worker refills its local queue).
// Bounded counts; finishes in a few seconds.
//
//   g++ -std=c++20 -O2 -DNDEBUG -Iinclude bench/inject_queue_bench.cpp -pthread -o inject_queue_bench
#include "lockfree_inject_queue.hpp"

#include <swarm/scheduler/inject_queue.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace {

using swarm::detail::header;

// Test-and-test-and-set, pausing while it spins and yielding after a few rounds (a
// preempted holder on a 2-core machine would otherwise be waited for a whole time slice).
class spin_lock {
public:
  void lock() noexcept {
    for (int spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins++ < 64) {
#if defined(__x86_64__) || defined(__i386__)
          _mm_pause();
#endif
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
  std::atomic<bool> locked_{false};
};

using mutex_queue = swarm::detail::basic_inject_queue<std::mutex>;
using spin_queue = swarm::detail::basic_inject_queue<spin_lock>;
using lockfree_queue = swarm::detail::lockfree_inject_queue;

constexpr std::size_t tasks_per_run = 1'000'000;
constexpr int runs = 3;

enum class consumer_kind { one, batch };

template <class Queue>
double run_once(std::vector<header>& tasks, int producers, consumer_kind kind) {
  Queue q;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  const std::size_t per_producer = tasks.size() / static_cast<std::size_t>(producers);
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      header* const first = tasks.data() + static_cast<std::size_t>(p) * per_producer;
      for (std::size_t i = 0; i < per_producer; ++i) {
        if (!q.push(first + i)) std::abort();
      }
    });
  }
  while (ready.load() != producers) std::this_thread::yield();
  const std::size_t total = per_producer * static_cast<std::size_t>(producers);
  const auto start = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  std::size_t received = 0;
  std::uintptr_t checksum = 0;
  auto sink = [&](header* h) noexcept { checksum += reinterpret_cast<std::uintptr_t>(h); };
  while (received < total) {
    if (kind == consumer_kind::one) {
      if (header* h = q.pop()) {
        sink(h);
        ++received;
        continue;
      }
    } else {
      const std::size_t n = q.pop_n(32, sink);
      received += n;
      if (n != 0) continue;
    }
    std::this_thread::yield(); // empty: let a producer run (2 cores, up to 5 threads)
  }
  const auto stop = std::chrono::steady_clock::now();
  for (std::thread& t : threads) t.join();
  if (checksum == 0) std::abort();
  return std::chrono::duration<double, std::nano>(stop - start).count() / static_cast<double>(total);
}

template <class Queue>
double median_of_runs(std::vector<header>& tasks, int producers, consumer_kind kind) {
  std::vector<double> r;
  for (int i = 0; i < runs; ++i) r.push_back(run_once<Queue>(tasks, producers, kind));
  std::sort(r.begin(), r.end());
  return r[r.size() / 2];
}

// One thread: push then pop, no contention: the floor each operation pays.
template <class Queue>
double uncontended(std::vector<header>& tasks) {
  Queue q;
  const auto start = std::chrono::steady_clock::now();
  for (header& t : tasks) {
    if (!q.push(&t)) std::abort();
    if (q.pop() != &t) std::abort();
  }
  const auto stop = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(stop - start).count() / static_cast<double>(tasks.size());
}

template <class Queue>
void report(const char* name, std::vector<header>& tasks) {
  std::printf("%-26s %8.1f", name, uncontended<Queue>(tasks));
  for (consumer_kind kind : {consumer_kind::one, consumer_kind::batch}) {
    for (int producers : {1, 2, 4}) std::printf(" %8.1f", median_of_runs<Queue>(tasks, producers, kind));
  }
  std::printf("\n");
  std::fflush(stdout);
}

} // namespace

int main() {
  std::vector<header> tasks(tasks_per_run);
  std::printf("inject queue, ns per task (median of %d runs of %zu tasks), %u hardware threads\n", runs,
              tasks_per_run, std::thread::hardware_concurrency());
  std::printf("%-26s %8s %8s %8s %8s %8s %8s %8s\n", "", "1 thread", "pop 1P", "pop 2P", "pop 4P", "pop_n 1P",
              "pop_n 2P", "pop_n 4P");
  report<mutex_queue>("inject_queue (std::mutex)", tasks);
  report<spin_queue>("inject_queue (spin lock)", tasks);
  report<lockfree_queue>("lockfree_inject_queue", tasks);
}
