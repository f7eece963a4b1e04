// What runtime::dump()'s task tracking costs, measured in one process: two runtimes with the
// same options but track_tasks, both started, run the same shape alternately, round after
// round, and each round gives one ratio (tracked / untracked). Separate processes differ by
// more than the cost measured here (heap layout, thread placement: 10-50 % on this bench's
// 2-vCPU VMs), so a pair of runs of public_shapes cannot resolve it; paired rounds in one
// process, with the pair of runtimes made anew every ten rounds, can (check with
// --untracked-both, an A/A run).
//
//   tracking_cost [--rounds R] [--interval N] [--workers W] [--untracked-both] [shape ...]
//
// Shapes, written as a user writes them with swarm::coro: yield_many (200 tasks x 1 000
// yield_now), spawn_await (20 000 sequential spawn + co_await of a task returning an int),
// yield_now (one task, 100 000 yields), skynet (100 000 leaves, 10 children per node),
// chained_spawn (1 000 detached tasks, each spawning the next), spawn_many (10 000 detached
// callables spawned from the bench thread).
// Prints per shape the untracked and tracked medians and the paired ratios' median and
// quartiles. Every wait is bounded (60 s); every loop is bounded in count.
#include "detached_shapes.hpp"
#include "quantile.hpp"
#include "skynet_swarm.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double ns_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::nano>(clock_type::now() - t).count();
}

template <class T>
T get_bounded(std::future<T>& f, const char* what) {
  if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    std::fprintf(stderr, "tracking_cost: %s did not finish in 60 s\n", what);
    std::_Exit(1);
  }
  return f.get();
}

// Runs `root` as a task of `rt` and waits for it; returns the elapsed time.
template <class F>
double timed_root(swarm::runtime& rt, F root, const char* what) {
  const auto t = clock_type::now();
  auto task = swarm::spawn(rt.get_executor(), std::move(root));
  auto fut = task.async_wait(boost::asio::use_future); // the handle outlives the wait
  get_bounded(fut, what);
  return ns_since(t);
}

double yield_many(swarm::runtime& rt) {
  auto ex = rt.get_executor();
  return timed_root(
      rt,
      [ex]() -> swarm::coro<int> {
        std::vector<swarm::join_handle<void>> tasks;
        for (int i = 0; i < 200; ++i)
          tasks.push_back(swarm::spawn(ex, []() -> swarm::coro<void> {
            for (int j = 0; j < 1000; ++j)
              co_await swarm::yield_now();
          }));
        for (auto& t : tasks)
          co_await t;
        co_return 0;
      },
      "yield_many");
}

constexpr int spawn_await_ops = 20'000;
double spawn_await(swarm::runtime& rt) {
  auto ex = rt.get_executor();
  return timed_root(
             rt,
             [ex]() -> swarm::coro<int> {
               int sum = 0;
               for (int i = 0; i < spawn_await_ops; ++i)
                 sum += co_await swarm::spawn(ex, []() -> swarm::coro<int> { co_return 1; });
               co_return sum;
             },
             "spawn_await") /
         spawn_await_ops;
}

constexpr int yield_ops = 100'000;
double yield_now(swarm::runtime& rt) {
  return timed_root(
             rt,
             []() -> swarm::coro<int> {
               for (int i = 0; i < yield_ops; ++i)
                 co_await swarm::yield_now();
               co_return 0;
             },
             "yield_now") /
         yield_ops;
}

// swarm::coro as detached_shapes.hpp wants a system.
struct coro_sys {
  template <class T>
  using co = swarm::coro<T>;
  template <class Ex, class F>
  static void spawn_detached(const Ex& ex, F&& f) {
    swarm::spawn(ex, std::forward<F>(f));
  }
};

// public_shapes' chained_spawn: 1 000 detached tasks, each spawning the next.
double chained_spawn(swarm::runtime& rt) {
  const auto t = clock_type::now();
  auto done = std::make_shared<done_signal>();
  auto f = done->p.get_future();
  chain_link<coro_sys>(rt.get_executor(), 1'000, done);
  get_bounded(f, "chained_spawn");
  return ns_since(t);
}

// public_shapes' spawn_many_local: 10 000 detached callables spawned from the bench thread.
double spawn_many(swarm::runtime& rt) {
  const auto t = clock_type::now();
  std::atomic<int> left{0};
  auto done = std::make_shared<done_signal>();
  auto f = done->p.get_future();
  spawn_detached_callables<coro_sys>(rt.get_executor(), 10'000, left, done);
  get_bounded(f, "spawn_many");
  return ns_since(t);
}

double skynet(swarm::runtime& rt) {
  auto ex = rt.get_executor();
  return timed_root(rt, skynet_swarm<swarm::coro>(ex, 0, 100'000), "skynet");
}

double run_shape(const std::string& s, swarm::runtime& rt) {
  if (s == "yield_many")
    return yield_many(rt);
  if (s == "spawn_await")
    return spawn_await(rt);
  if (s == "yield_now")
    return yield_now(rt);
  if (s == "chained_spawn")
    return chained_spawn(rt);
  if (s == "spawn_many")
    return spawn_many(rt);
  return skynet(rt);
}

[[noreturn]] void usage() {
  std::fputs("usage: tracking_cost [--rounds R] [--interval N] [--workers W] [--untracked-both] "
             "[yield_many|spawn_await|yield_now|skynet|chained_spawn|spawn_many ...]\n",
             stderr);
  std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
  int rounds = 100;
  std::uint32_t interval = swarm::runtime_options().poll_timing_interval;
  std::size_t workers = 2;
  bool both_untracked = false;
  std::vector<std::string> shapes;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc)
        usage();
      return std::atol(argv[++i]);
    };
    if (a == "--rounds")
      rounds = static_cast<int>(std::clamp(value(), 1L, 100'000L));
    else if (a == "--interval")
      interval = static_cast<std::uint32_t>(std::clamp(value(), 1L, 1L << 20));
    else if (a == "--workers")
      workers = static_cast<std::size_t>(std::clamp(value(), 1L, 256L));
    else if (a == "--untracked-both")
      both_untracked = true;
    else if (a == "yield_many" || a == "spawn_await" || a == "yield_now" || a == "skynet" ||
             a == "chained_spawn" || a == "spawn_many")
      shapes.push_back(a);
    else
      usage();
  }
  if (shapes.empty())
    shapes = {"yield_many", "spawn_await", "yield_now", "skynet", "chained_spawn", "spawn_many"};

  swarm::runtime_options o;
  o.worker_threads = workers;
  o.poll_timing_interval = interval;
  swarm::runtime_options t = o;
  t.track_tasks = !both_untracked;

  // Runtimes are made anew every `rounds_per_pair` rounds, in alternating order: where the
  // kernel places a runtime's workers can make one pair run 20 % apart for its whole life,
  // whichever of the two is tracked.
  constexpr int rounds_per_pair = 10;
  std::map<std::string, std::vector<double>> times[2];
  for (int k = 0; k < rounds; k += rounds_per_pair) {
    std::optional<swarm::runtime> rts[2];
    for (int j = 0; j < 2; ++j) {
      const int which = (k / rounds_per_pair + j) % 2;
      rts[which].emplace(which ? t : o);
      rts[which]->start();
    }
    for (const auto& s : shapes) // warm-up: the cell caches, the first faults
      for (auto& rt : rts)
        run_shape(s, *rt);
    for (int r = k; r < std::min(rounds, k + rounds_per_pair); ++r)
      for (const auto& s : shapes)
        for (int j = 0; j < 2; ++j) { // the order alternates from round to round
          const int which = (r + j) % 2;
          times[which][s].push_back(run_shape(s, *rts[which]));
        }
  }

  std::printf("tracking_cost: %d rounds, %zu workers, poll_timing_interval %u%s\n", rounds, workers, interval,
              both_untracked ? ", both runtimes untracked (A/A)" : "");
  std::printf("%-13s %14s %14s %9s %17s\n", "shape", "untracked", "tracked", "ratio", "ratio q1-q3");
  for (const auto& s : shapes) {
    std::vector<double> ratios;
    for (std::size_t k = 0; k < times[0][s].size(); ++k)
      ratios.push_back(times[1][s][k] / times[0][s][k]);
    const char* unit = s == "spawn_await" || s == "yield_now" ? "ns/op" : "ns";
    std::printf("%-13s %8.0f %5s %8.0f %5s %9.3f %8.3f-%.3f\n", s.c_str(), quantile(times[0][s], 0.5), unit,
                quantile(times[1][s], 0.5), unit, quantile(ratios, 0.5), quantile(ratios, 0.25),
                quantile(ratios, 0.75));
  }
}
