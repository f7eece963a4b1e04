// Allocations and schedules per operation on the public path, in steady state, on a one-worker
// runtime: operator new calls and queued tasks and jobs on every thread, over a batch of 2n operations
// minus a batch of n, so that what a batch costs once (its root task, its vectors) cancels
// out. Counted, not timed: each count is asserted, so an extra allocation or an extra hop on
// the hot path fails here.
//
// The counts hold for the Boost.Asio this suite is built with (1.81 in CI); Asio's own
// allocations (awaitable frames, co_spawn's state) are part of them.
#include "counting_new.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using swarm_test::allocation_counter;

namespace {

using executor = swarm::runtime::executor_type;

// What a batch of operations cost, counted on every thread.
struct costs {
  double allocations = 0; // operator new calls while counting is on
  double schedules = 0;   // tasks and runtime jobs queued to run (local_schedule_count)
};

// How many times the workers queued a task or a runtime job to run, once the runtime has
// gone idle: a worker publishes its counts when it parks, so read until they stay put.
std::uint64_t settled_schedules(const swarm::runtime& rt) {
  auto total = [&] {
    std::uint64_t n = 0;
    for (const auto& w : rt.metrics().workers)
      n += w.local_schedule_count;
    return n;
  };
  std::uint64_t last = total();
  for (int unchanged = 0; unchanged < 5;) {
    std::this_thread::sleep_for(10ms);
    const std::uint64_t now = total();
    unchanged = now == last ? unchanged + 1 : 0;
    last = now;
  }
  return last;
}

// The root task's coroutine type follows the body's: asio::awaitable or swarm::coro.
template <class C>
struct coroutine_of;
template <class T>
struct coroutine_of<asio::awaitable<T>> {
  template <class U>
  using type = asio::awaitable<U>;
};
template <class T>
struct coroutine_of<swarm::coro<T>> {
  template <class U>
  using type = swarm::coro<U>;
};

// Runs `body(ex, n)` inside one task on a started one-worker runtime: first unmeasured (to
// fill Asio's and swarm's per-thread caches), then n and 2n operations counted; returns the
// cost per operation.
template <class Body>
costs costs_per_op(Body body) {
  constexpr int n = 500;
  swarm::runtime rt(1);
  rt.start();
  using root_type =
      typename coroutine_of<std::invoke_result_t<Body&, executor, int>>::template type<std::uint64_t>;
  auto batch = [&](int ops) -> std::pair<std::uint64_t, std::uint64_t> {
    const std::uint64_t schedules_before = settled_schedules(rt);
    auto jh = swarm::spawn(
        rt.get_executor(), [&body, ops, ex = rt.get_executor()]() -> root_type {
          co_await body(ex, ops);
          const std::uint64_t before = allocation_counter::count.load(std::memory_order_relaxed);
          allocation_counter::on.store(true, std::memory_order_relaxed);
          co_await body(ex, ops);
          allocation_counter::on.store(false, std::memory_order_relaxed);
          co_return allocation_counter::count.load(std::memory_order_relaxed) - before;
        });
    auto f = jh.async_wait(asio::use_future);
    BOOST_REQUIRE(f.wait_for(60s) == std::future_status::ready);
    const std::uint64_t allocations = f.get();
    return {allocations, settled_schedules(rt) - schedules_before};
  };
  // The fewest of three runs of each size: a stray allocation or schedule (a worker that
  // parks and wakes on a loaded machine, a queue that grows once) only ever adds.
  auto fewest = [&](int ops) {
    std::pair<std::uint64_t, std::uint64_t> m = batch(ops);
    for (int i = 0; i < 2; ++i) {
      const auto r = batch(ops);
      m.first = std::min(m.first, r.first);
      m.second = std::min(m.second, r.second);
    }
    return m;
  };
  const auto once = fewest(n);
  const auto twice = fewest(2 * n);
  BOOST_REQUIRE(twice.first >= once.first);
  BOOST_REQUIRE(twice.second >= once.second);
  costs c;
  c.allocations = static_cast<double>(twice.first - once.first) / n;
  // Each batch runs its body twice (warm-up and counted): 2n against 4n operations.
  c.schedules = static_cast<double>(twice.second - once.second) / (2 * n);
  BOOST_TEST_MESSAGE("per operation: " << c.allocations << " allocations (" << once.first << " for " << n
                                       << ", " << twice.first << " for " << 2 * n << "), " << c.schedules
                                       << " schedules");
  return c;
}

template <class Body>
double allocations_per_op(Body body) {
  return costs_per_op(std::move(body)).allocations;
}

// Within a rounding of a whole count: the batches are deterministic, so a real change of
// one allocation per operation moves the figure by 1.
bool about(double measured, double expected) {
  return measured > expected - 0.05 && measured < expected + 0.05;
}

asio::awaitable<void> empty() { co_return; }
swarm::coro<void> empty_coro() { co_return; }

} // namespace

BOOST_AUTO_TEST_SUITE(allocations_per_operation)

BOOST_AUTO_TEST_CASE(spawn_of_a_coroutine_and_co_await_of_its_join) {
  const double a = allocations_per_op([](executor ex, int n) -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::spawn(ex, empty);
  });
  BOOST_TEST(about(a, 2), a);
}

BOOST_AUTO_TEST_CASE(spawn_of_a_callable_and_co_await_of_its_join) {
  const double a = allocations_per_op([](executor ex, int n) -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::spawn(ex, [] { return 1; });
  });
  BOOST_TEST(about(a, 2), a);
}

BOOST_AUTO_TEST_CASE(yield_now) {
  const double a = allocations_per_op([](executor, int n) -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::yield_now();
  });
  BOOST_TEST(about(a, 0), a);
}

// Each callback spawns the next task and waits for it, so one task is alive at a time.
BOOST_AUTO_TEST_CASE(join_wait_with_a_callback) {
  const double a = allocations_per_op([](executor ex, int n) -> asio::awaitable<void> {
    asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
    struct step {
      executor ex;
      asio::steady_timer* all_done;
      int left;
      std::shared_ptr<swarm::join_handle<void>> jh; // the handle outlives its wait
      void operator()() {
        if (left-- == 0) {
          all_done->cancel();
          return;
        }
        jh = std::make_shared<swarm::join_handle<void>>(swarm::spawn(ex, empty));
        jh->async_wait([s = *this](std::exception_ptr) mutable { s(); });
      }
    };
    step{ex, &all_done, n, nullptr}();
    boost::system::error_code ec;
    co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  });
  BOOST_TEST(about(a, 2), a); // one of them is the step's make_shared
}

BOOST_AUTO_TEST_CASE(join_wait_with_use_awaitable) {
  const double a = allocations_per_op([](executor ex, int n) -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::spawn(ex, empty).async_wait(asio::use_awaitable);
  });
  BOOST_TEST(about(a, 2), a);
}

BOOST_AUTO_TEST_CASE(abort_and_join) {
  const double a = allocations_per_op([](executor ex, int n) -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i) {
      auto jh = swarm::spawn(ex, []() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor, 1h);
        co_await t.async_wait(asio::use_awaitable);
      });
      jh.abort();
      try {
        co_await std::move(jh);
      } catch (const swarm::join_error&) {
      }
    }
  });
  BOOST_TEST(about(a, 2), a);
}

BOOST_AUTO_TEST_CASE(post_from_a_task) {
  const double a = allocations_per_op([](executor ex, int n) -> asio::awaitable<void> {
    asio::steady_timer all_ran(ex, asio::steady_timer::time_point::max());
    int left = n;
    for (int i = 0; i < n; ++i)
      asio::post(ex, [&] {
        if (--left == 0)
          all_ran.cancel();
      });
    boost::system::error_code ec;
    co_await all_ran.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  });
  BOOST_TEST(about(a, 0), a);
}

// Hops: a spawn and a co_await of its join schedule the child once and the parent once,
// as in Tokio: the join waker queues the delivery on the awaiting task, with no runtime job
// between them.
BOOST_AUTO_TEST_CASE(spawn_and_co_await_schedule_child_and_parent_once_each) {
  const costs c = costs_per_op([](executor ex, int n) -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::spawn(ex, empty);
  });
  BOOST_TEST(about(c.schedules, 2), c.schedules);
}

BOOST_AUTO_TEST_CASE(yield_now_schedules_the_task_once) {
  const costs c = costs_per_op([](executor, int n) -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::yield_now();
  });
  BOOST_TEST(about(c.schedules, 1), c.schedules);
}

// swarm::coro: frames and cells come from the per-thread cell cache, joins are polled with
// the task's waker, Asio operations complete through the task's queue (recycled blocks).
BOOST_AUTO_TEST_CASE(coro_spawn_and_co_await_of_its_join_allocate_nothing) {
  const costs c = costs_per_op([](executor ex, int n) -> swarm::coro<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::spawn(ex, empty_coro());
  });
  BOOST_TEST(about(c.allocations, 0), c.allocations);
  BOOST_TEST(about(c.schedules, 2), c.schedules);
}

// The same join awaited through its completion token: a poll of the handle, as co_await
// h, not a handler (one allocation per wait, and a delivery hop).
BOOST_AUTO_TEST_CASE(coro_async_wait_with_use_coro_costs_what_co_await_costs) {
  const costs c = costs_per_op([](executor ex, int n) -> swarm::coro<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::spawn(ex, empty_coro()).async_wait(swarm::use_coro);
  });
  BOOST_TEST(about(c.allocations, 0), c.allocations);
  BOOST_TEST(about(c.schedules, 2), c.schedules);
}

BOOST_AUTO_TEST_CASE(coro_yield_now_allocates_nothing_and_schedules_once) {
  const costs c = costs_per_op([](executor, int n) -> swarm::coro<void> {
    for (int i = 0; i < n; ++i)
      co_await swarm::yield_now();
  });
  BOOST_TEST(about(c.allocations, 0), c.allocations);
  BOOST_TEST(about(c.schedules, 1), c.schedules);
}

BOOST_AUTO_TEST_CASE(coro_abort_and_join_allocate_nothing) {
  const double a = allocations_per_op([](executor ex, int n) -> swarm::coro<void> {
    for (int i = 0; i < n; ++i) {
      auto jh = swarm::spawn(ex, []() -> swarm::coro<void> {
        asio::steady_timer t(co_await asio::this_coro::executor, 1h);
        co_await t.async_wait(swarm::use_coro);
      });
      jh.abort();
      try {
        co_await jh;
      } catch (const swarm::join_error&) {
      }
    }
  });
  BOOST_TEST(about(a, 0), a);
}

// Each operation spawns ten tasks and keeps their handles; the joins come after the whole
// burst. The worker's cell cache holds the burst (10 000 tasks in the larger batch, more
// than the cache's base bound of each class), so the next burst allocates nothing.
BOOST_AUTO_TEST_CASE(coro_burst_of_spawns_reuses_the_previous_bursts_cells) {
  constexpr int per_op = 10;
  const double a = allocations_per_op([](executor ex, int n) -> swarm::coro<void> {
    std::vector<swarm::join_handle<void>> handles;
    handles.reserve(static_cast<std::size_t>(n) * per_op);
    for (int i = 0; i < n * per_op; ++i)
      handles.push_back(swarm::spawn(ex, empty_coro()));
    for (auto& jh : handles)
      co_await std::move(jh);
  });
  BOOST_TEST(about(a, 0), a);
}

BOOST_AUTO_TEST_CASE(coro_timer_wait_allocates_nothing) {
  const double a = allocations_per_op([](executor ex, int n) -> swarm::coro<void> {
    asio::steady_timer t(ex);
    for (int i = 0; i < n; ++i) {
      t.expires_after(0s);
      co_await t.async_wait(swarm::use_coro);
    }
  });
  BOOST_TEST(about(a, 0), a);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(cell_cache_on_a_worker)

namespace {

// Cells of every class held by the calling thread's cache.
std::size_t cells_cached_here() {
  using limits = swarm::detail::cell_cache_limits;
  std::size_t n = 0;
  for (std::size_t size = limits::granule; size <= limits::max_size; size += limits::granule)
    n += swarm::detail::cell_cache_stats::cached_on_this_thread(size);
  return n;
}

} // namespace

// A worker keeps a burst's cells while it runs, and gives back what stays unused once it
// sleeps: after a burst of 10 000 tasks, three timer waits of 550 ms (a sleep before each,
// the last at least 1.1 s after the first) leave it fewer cells than the burst left.
BOOST_AUTO_TEST_CASE(a_sleeping_worker_gives_back_cells_a_burst_left_idle) {
  namespace sd = swarm::detail;
  if (!sd::cell_cache_stats::enabled())
    return;
  static_assert(sd::cell_cache_limits::release_period == 1000ms); // the waits below assume it
  swarm::runtime rt(1);
  rt.start();
  // No captures: the closure is gone once spawn returns, the coroutine frame is not.
  auto jh = swarm::spawn(rt.get_executor(), []() -> swarm::coro<std::pair<std::size_t, std::size_t>> {
    auto ex = co_await asio::this_coro::executor;
    std::vector<swarm::join_handle<void>> handles;
    for (int i = 0; i < 10'000; ++i)
      handles.push_back(swarm::spawn(ex, empty_coro()));
    for (auto& h : handles)
      co_await std::move(h);
    const std::size_t after_burst = cells_cached_here();
    asio::steady_timer t(ex);
    for (int i = 0; i < 3; ++i) {
      t.expires_after(550ms);
      co_await t.async_wait(swarm::use_coro);
    }
    co_return std::pair{after_burst, cells_cached_here()};
  }());
  auto f = jh.async_wait(asio::use_future);
  BOOST_REQUIRE(f.wait_for(60s) == std::future_status::ready);
  const auto [after_burst, after_sleeps] = f.get();
  BOOST_TEST_MESSAGE("cells cached on the worker: " << after_burst << " after the burst, " << after_sleeps
                                                    << " after the sleeps");
  BOOST_TEST(after_burst >= 10'000u, "the worker's cache holds the burst");
  BOOST_TEST(after_sleeps < after_burst);
}

BOOST_AUTO_TEST_SUITE_END()
