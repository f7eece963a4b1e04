// Runtime metrics (Tokio's runtime/metrics/, tests of tokio/tests/rt_metrics.rs and
// rt_unstable_metrics.rs). Worker counters are published at maintenance, before parking and
// at shutdown, so the tests either read them after shutdown or poll with a bounded retry
// (support.hpp, `eventually`).
#include "support.hpp"

#include <swarm/scheduler/coop.hpp>
#include <swarm/task/swallowed_exception.hpp>

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace swarm_sched_test;
namespace coop = swarm::detail::coop;
using swarm::scheduler_options;
using swarm::worker_metrics_snapshot;

template <class Rt, class Field>
std::uint64_t sum_over_workers(Rt& rt, Field field) {
  std::uint64_t n = 0;
  for (std::size_t w = 0; w < rt.h.num_workers(); ++w)
    n += static_cast<std::uint64_t>(field(rt.h.worker_metrics(w)));
  return n;
}

std::uint64_t polls(const worker_metrics_snapshot& m) { return m.poll_count; }
std::uint64_t local_schedules(const worker_metrics_snapshot& m) { return m.local_schedule_count; }
std::uint64_t overflows(const worker_metrics_snapshot& m) { return m.overflow_count; }
std::uint64_t steals(const worker_metrics_snapshot& m) { return m.steal_count; }
std::uint64_t steal_operations(const worker_metrics_snapshot& m) { return m.steal_operations; }
std::uint64_t queue_depth(const worker_metrics_snapshot& m) { return m.local_queue_depth; }

// Inside a task on worker X of a two-worker runtime: spawns a task that blocks the other
// worker Y (it is displaced from the LIFO slot into X's queue by a second spawn, so the
// idle Y steals it), and waits until it runs. From then on, nothing takes work from X's
// queue while this task runs. Returns false if Y never took it.
bool occupy_the_other_worker(mt2& rt, std::shared_ptr<std::atomic<bool>> release) {
  auto running = std::make_shared<std::atomic<bool>>(false);
  rt.spawn(poll_fn<unit>([release, running](poll_context&) -> std::optional<unit> {
    running->store(true, std::memory_order_release);
    spin_until([&] { return release->load(std::memory_order_acquire); }, 2 * wait_bound);
    return unit{};
  }));
  rt.spawn(ready(unit{}));
  return spin_until([&] { return running->load(std::memory_order_acquire); });
}

using metric_flavours = boost::mpl::list<ct, mt1, mt2, mt4>;

// An output whose destructor throws, once: moved-from copies stay quiet.
struct throwing_output {
  bool armed = true;
  throwing_output() = default;
  throwing_output(throwing_output&& o) noexcept : armed(std::exchange(o.armed, false)) {}
  ~throwing_output() noexcept(false) {
    if (armed)
      throw std::runtime_error("output destructor");
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(metrics, bounded)

BOOST_AUTO_TEST_CASE_TEMPLATE(num_workers_is_the_configured_count, Rt, metric_flavours) {
  Rt rt;
  BOOST_TEST(rt.h.num_workers() == Rt::workers);
  BOOST_CHECK_THROW(rt.h.worker_metrics(Rt::workers), std::out_of_range);
  BOOST_CHECK_NO_THROW(rt.h.worker_metrics(Rt::workers - 1));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(num_alive_tasks_counts_the_running_task_and_returns_to_zero, Rt,
                              metric_flavours) {
  Rt rt;
  BOOST_TEST(rt.h.num_alive_tasks() == 0u);
  auto jh = rt.spawn(poll_fn<std::size_t>(
      [h = &rt.h](poll_context&) -> std::optional<std::size_t> { return h->num_alive_tasks(); }));
  BOOST_TEST(join_value(jh).value_or(99) == 1u);
  // The task leaves the owned list only after it woke its join handle: retry.
  BOOST_TEST(eventually([&] { return rt.h.num_alive_tasks() == 0; }));
  BOOST_TEST(rt.h.spawned_tasks_count() == 1u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(spawned_tasks_count_counts_every_spawn, Rt, metric_flavours) {
  Rt rt;
  for (int i = 0; i < 3; ++i)
    rt.spawn(ready(i));
  BOOST_TEST(rt.h.spawned_tasks_count() == 3u);
  BOOST_TEST(eventually([&] { return rt.h.num_alive_tasks() == 0; }));
  BOOST_TEST(rt.h.spawned_tasks_count() == 3u);
}

// global_queue_depth_multi_thread: with every worker blocked, each foreign spawn stays in
// the global queue.
BOOST_AUTO_TEST_CASE_TEMPLATE(global_queue_depth_counts_foreign_spawns_while_every_worker_is_blocked, Rt,
                              metric_flavours) {
  Rt rt;
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto started = counter();
  std::vector<raw_join_handle<bool>> blockers;
  for (std::size_t i = 0; i < Rt::workers; ++i)
    blockers.push_back(rt.spawn(poll_fn<bool>([release, started](poll_context&) -> std::optional<bool> {
      started->fetch_add(1);
      return spin_until([&] { return release->load(); }, 2 * wait_bound);
    })));
  BOOST_REQUIRE(eventually([&] { return started->load() == static_cast<int>(Rt::workers); }));
  BOOST_TEST(rt.h.global_queue_depth() == 0u);
  std::vector<raw_join_handle<int>> queued;
  for (std::size_t i = 1; i <= 5; ++i) {
    queued.push_back(rt.spawn(ready(1)));
    BOOST_TEST(rt.h.global_queue_depth() == i);
  }
  release->store(true);
  for (auto& jh : queued)
    BOOST_TEST(join_value(jh).value_or(-1) == 1);
  BOOST_TEST(rt.h.global_queue_depth() == 0u);
  for (auto& b : blockers)
    BOOST_TEST(join_value(b).value_or(false));
}

// worker_park_count / worker_noop_count / worker_park_unpark_count.
BOOST_AUTO_TEST_CASE_TEMPLATE(idle_workers_park_and_count_it, Rt, metric_flavours) {
  Rt rt;
  BOOST_TEST(eventually([&] {
    for (std::size_t w = 0; w < Rt::workers; ++w) {
      const worker_metrics_snapshot m = rt.h.worker_metrics(w);
      if (m.park_count < 1 || m.noop_count < 1)
        return false;
    }
    return true;
  }));
  if constexpr (Rt::is_multi_thread) {
    // Once idle after start, each worker parked exactly once and has not woken since (odd).
    BOOST_TEST(eventually([&] {
      for (std::size_t w = 0; w < Rt::workers; ++w)
        if (rt.h.worker_metrics(w).park_unpark_count != 1)
          return false;
      return true;
    }));
    auto jh = rt.spawn(ready(1));
    BOOST_TEST(join_value(jh).value_or(-1) == 1);
    // The worker that ran it woke (2) and parked again (3); every worker ends parked (odd).
    BOOST_TEST(eventually([&] {
      std::uint64_t most = 0;
      for (std::size_t w = 0; w < Rt::workers; ++w) {
        const std::uint64_t n = rt.h.worker_metrics(w).park_unpark_count;
        if (n % 2 != 1)
          return false;
        most = std::max(most, n);
      }
      return most >= 3;
    }));
    rt.shutdown();
    for (std::size_t w = 0; w < Rt::workers; ++w)
      BOOST_TEST(rt.h.worker_metrics(w).park_unpark_count % 2 == 0u, "worker " << w);
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(remote_schedule_count_counts_one_foreign_spawn, Rt, metric_flavours) {
  Rt rt;
  auto jh = rt.spawn(ready(1));
  BOOST_TEST(join_value(jh).value_or(-1) == 1);
  rt.shutdown();
  BOOST_TEST(rt.h.remote_schedule_count() == 1u);
  BOOST_TEST(sum_over_workers(rt, local_schedules) == 0u);
}

// worker_local_schedule_count / spawn_two: a task spawned from outside spawns another and
// awaits it. The inner spawn and the wake of the outer task are local; the first is remote.
BOOST_AUTO_TEST_CASE_TEMPLATE(local_schedule_count_counts_spawns_and_wakes_on_a_worker, Rt, metric_flavours) {
  Rt rt;
  auto jh = rt.spawn(poll_fn<int>(
      [&rt, inner = std::optional<raw_join_handle<int>>()](poll_context& cx) mutable -> std::optional<int> {
        if (!inner)
          inner.emplace(rt.spawn(ready(2)));
        std::optional<outcome<int>> r = inner->poll(cx.get_waker());
        if (!r)
          return std::nullopt;
        return r->has_value() ? r->value() : -1;
      }));
  BOOST_TEST(join_value(jh).value_or(-1) == 2);
  rt.shutdown();
  BOOST_TEST(rt.h.remote_schedule_count() == 1u);
  BOOST_TEST(sum_over_workers(rt, local_schedules) == 2u);
}

// worker_poll_count_and_time: five tasks, five polls; the mean poll time is measured.
BOOST_AUTO_TEST_CASE_TEMPLATE(poll_count_counts_every_poll, Rt, metric_flavours) {
  Rt rt;
  std::vector<raw_join_handle<int>> hs;
  for (int i = 0; i < 5; ++i)
    hs.push_back(rt.spawn(ready(i)));
  for (auto& jh : hs)
    BOOST_TEST(join_value(jh).has_value());
  BOOST_TEST(eventually([&] { return sum_over_workers(rt, polls) == 5; }),
             "polls " << sum_over_workers(rt, polls));
  rt.shutdown();
  BOOST_TEST(sum_over_workers(rt, polls) == 5u);
  std::size_t measured = 0;
  for (std::size_t w = 0; w < Rt::workers; ++w) {
    const worker_metrics_snapshot m = rt.h.worker_metrics(w);
    if (m.poll_count > 0) {
      BOOST_TEST(m.mean_poll_time.count() > 0);
      BOOST_TEST(m.total_busy_duration.count() > 0);
      ++measured;
    }
  }
  BOOST_TEST(measured >= 1u);
}

// worker_total_busy_duration: a worker that polls a self-waking task without a break is busy
// from its first poll to its last.
BOOST_AUTO_TEST_CASE(busy_duration_covers_the_time_a_worker_spends_polling) {
  mt1 rt;
  struct span {
    std::mutex mutex;
    std::optional<clock::time_point> first;
    clock::time_point last;
  };
  auto times = std::make_shared<span>();
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto spin = rt.spawn(poll_fn<unit>([times, stop](poll_context& cx) -> std::optional<unit> {
    {
      std::lock_guard lock(times->mutex);
      const auto now = clock::now();
      if (!times->first)
        times->first = now;
      times->last = now;
    }
    if (stop->load())
      return unit{};
    cx.get_waker().wake_by_ref();
    return std::nullopt;
  }));
  std::this_thread::sleep_for(30ms);
  stop->store(true);
  BOOST_TEST(wait_for_join(spin).has_value());
  rt.shutdown();
  std::lock_guard lock(times->mutex);
  BOOST_REQUIRE(times->first.has_value());
  const auto polling = times->last - *times->first;
  const auto busy = rt.h.worker_metrics(0).total_busy_duration;
  BOOST_TEST((polling > 0ms));
  // Busy time excludes the maintenance passes (a driver poll and a metrics submit every 61
  // ticks), so it is a little less than the polling span, never a small part of it.
  BOOST_TEST((busy >= polling / 2), "busy " << busy.count() << " ns, polling for "
                                            << std::chrono::nanoseconds(polling).count() << " ns");
}

// budget_exhaustion_yield: one exhausted budget is one forced yield.
BOOST_AUTO_TEST_CASE_TEMPLATE(one_exhausted_budget_is_one_forced_yield, Rt, metric_flavours) {
  Rt rt;
  auto jh = rt.spawn(poll_fn<int>([polls = 0](poll_context& cx) mutable -> std::optional<int> {
    if (++polls == 1) {
      while (std::optional<coop::restore_on_pending> g = coop::poll_proceed())
        g->made_progress();
      cx.get_waker().wake_by_ref();
      return std::nullopt;
    }
    return polls;
  }));
  BOOST_TEST(join_value(jh).value_or(-1) == 2);
  BOOST_TEST(eventually([&] { return rt.h.budget_forced_yield_count() == 1; }));
  rt.shutdown();
  BOOST_TEST(rt.h.budget_forced_yield_count() == 1u);
}

// worker_steal_count: with the LIFO slot disabled, the one task spawned beside a blocked
// worker is stolen by the other.
BOOST_AUTO_TEST_CASE(steal_count_counts_the_one_stolen_task) {
  scheduler_options o;
  o.disable_lifo_slot = true;
  mt2 rt(o);
  auto jh = rt.spawn(poll_fn<bool>([&rt](poll_context&) -> std::optional<bool> {
    auto ran = std::make_shared<std::atomic<bool>>(false);
    rt.spawn(poll_fn<unit>([ran](poll_context&) -> std::optional<unit> {
      ran->store(true);
      return unit{};
    }));
    return spin_until([&] { return ran->load(); });
  }));
  BOOST_TEST(join_value(jh).value_or(false));
  rt.shutdown();
  BOOST_TEST(sum_over_workers(rt, steals) == 1u);
  BOOST_TEST(sum_over_workers(rt, steal_operations) == 1u);
}

// worker_overflow_count: 300 local spawns while the other worker is blocked fill the
// 256-slot queue once: exactly one overflow of half the queue.
BOOST_AUTO_TEST_CASE(three_hundred_local_spawns_beside_a_blocked_worker_overflow_once) {
  mt2 rt;
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto jh = rt.spawn(poll_fn<bool>([&rt, release](poll_context&) -> std::optional<bool> {
    if (!occupy_the_other_worker(rt, release))
      return false;
    for (int i = 0; i < 300; ++i)
      rt.spawn(ready(unit{}));
    release->store(true);
    return true;
  }));
  BOOST_TEST(join_value(jh).value_or(false));
  release->store(true);
  BOOST_TEST(eventually([&] { return rt.h.num_alive_tasks() == 0; }));
  rt.shutdown();
  BOOST_TEST(sum_over_workers(rt, overflows) == 1u);
}

// worker_local_queue_depth: 100 local spawns beside a blocked worker: 100 queued (the
// newest sits in the LIFO slot, the one it displaced is the first queued).
BOOST_AUTO_TEST_CASE(local_queue_depth_counts_the_queued_local_spawns) {
  mt2 rt;
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto jh = rt.spawn(poll_fn<std::uint64_t>([&rt, release](poll_context&) -> std::optional<std::uint64_t> {
    if (!occupy_the_other_worker(rt, release))
      return 0;
    for (int i = 0; i < 100; ++i)
      rt.spawn(ready(unit{}));
    const std::uint64_t depth = sum_over_workers(rt, queue_depth);
    release->store(true);
    return depth;
  }));
  BOOST_TEST(join_value(jh).value_or(0) == 100u);
  release->store(true);
  BOOST_TEST(eventually([&] { return sum_over_workers(rt, queue_depth) == 0; }));
}

// worker_local_queue_depth on the current-thread flavour (Tokio reports its run queue).
BOOST_AUTO_TEST_CASE(current_thread_local_queue_depth_counts_queued_local_tasks) {
  ct rt;
  auto jh = rt.spawn(poll_fn<std::size_t>([&rt](poll_context&) -> std::optional<std::size_t> {
    for (int i = 0; i < 10; ++i)
      rt.spawn(ready(i));
    return rt.h.worker_metrics(0).local_queue_depth;
  }));
  BOOST_TEST(join_value(jh).value_or(0) == 10u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(blocking_pool_metrics_include_the_workers, Rt, metric_flavours) {
  Rt rt;
  BOOST_TEST(
      eventually([&] { return rt.h.blocking().num_threads() == (Rt::is_multi_thread ? Rt::workers : 0); }));
  auto gate = std::make_shared<latch>(1);
  auto jh = rt.h.spawn_blocking([gate] { return gate->wait_for(wait_bound); });
  BOOST_TEST(eventually(
      [&] { return rt.h.blocking().num_threads() == (Rt::is_multi_thread ? Rt::workers : 0) + 1; }));
  BOOST_TEST(rt.h.blocking().num_idle_threads() == 0u);
  gate->count_down();
  BOOST_TEST(join_value(jh).value_or(false));
  BOOST_TEST(eventually([&] { return rt.h.blocking().num_idle_threads() == 1; }));
}

// Exceptions with nowhere to go are dropped, and counted: one from a hook, one from the
// destructor of an output whose join handle was dropped. Each source is counted on its own,
// so that one counted twice cannot hide another not counted at all.
BOOST_AUTO_TEST_CASE(swallowed_exceptions_are_counted) {
  const auto count = [] { return swarm::detail::swallowed_exception_count(); };
  {
    // The spawn hook runs on the spawning thread, inside spawn(); the task's output is quiet.
    scheduler_options o;
    o.on_task_spawn = [](const swarm::task_meta&) { throw std::runtime_error("spawn hook"); };
    mt1 rt(o);
    const std::uint64_t before = count();
    auto jh = rt.spawn(ready(unit{}));
    BOOST_TEST(count() == before + 1);
    BOOST_TEST(join_value(jh).has_value());
    BOOST_TEST(count() == before + 1);
  }
  {
    // No hooks: the output's destructor throws once, on the worker when the task completes
    // or here when the handle drops, whichever comes second.
    mt1 rt;
    const std::uint64_t before = count();
    rt.spawn(ready(throwing_output{}));
    BOOST_TEST(eventually([&] { return count() >= before + 1; }));
    rt.shutdown();
    BOOST_TEST(count() == before + 1);
  }
}

BOOST_AUTO_TEST_SUITE_END()
