// The runtime tests of tokio/tests/rt_common.rs (every case runs on current-thread,
// multi-thread(1) and multi-thread(4)) and rt_threaded.rs (multi-thread only): spawning,
// many tasks, fairness under load, yield deferral, coop budget, the LIFO slot, block_in_place,
// shutdown, options, hooks and thread callbacks.
//
// The current-thread flavour here is the one scheduler with one worker and no LIFO slot,
// driven by a background thread (support.hpp, `ct`), so the test thread is always a foreign
// thread; test/asio/current_thread_flavor_test.cpp drives it from the calling thread.
#include "support.hpp"

#include <swarm/scheduler/coop.hpp>

#include <boost/test/unit_test.hpp>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace swarm_sched_test;
namespace coop = swarm::detail::coop;
using swarm::scheduler_options;
using swarm::task_id;
using swarm::task_meta;

// Nested spawn + await, `depth` levels deep; each level adds one to its child's value.
template <class Rt>
struct spawn_chain {
  using output_type = int;
  Rt* rt;
  int depth;
  std::optional<raw_join_handle<int>> child;

  std::optional<int> poll(poll_context& cx) {
    if (depth == 0)
      return 0;
    if (!child)
      child.emplace(rt->spawn(spawn_chain{rt, depth - 1, std::nullopt}));
    std::optional<outcome<int>> r = child->poll(cx.get_waker());
    if (!r)
      return std::nullopt;
    return r->has_value() ? r->value() + 1 : -1000;
  }
};

// Two tasks handing a turn back and forth: each wakes the other from inside its poll, so
// on a multi-thread worker the partner always lands in the LIFO slot.
struct ping_pong {
  std::mutex mutex;
  bool pinger_turn = true;
  bool finished = false;
  waker pinger, ponger;
  std::uint64_t exchanges = 0;
};

void register_waker(waker& slot, const waker& w) {
  if (!slot.will_wake(w))
    slot = w.clone();
}

auto pinger(std::shared_ptr<ping_pong> p, std::shared_ptr<std::atomic<bool>> running,
            std::shared_ptr<std::atomic<int>> started) {
  return poll_fn<unit>([p, running, started, first = true](poll_context& cx) mutable -> std::optional<unit> {
    if (std::exchange(first, false))
      started->fetch_add(1, std::memory_order_acq_rel);
    waker partner;
    {
      std::lock_guard lock(p->mutex);
      if (!p->pinger_turn) {
        register_waker(p->pinger, cx.get_waker());
        return std::nullopt;
      }
      p->pinger_turn = false;
      partner = std::move(p->ponger);
      if (!running->load(std::memory_order_acquire)) {
        p->finished = true;
      } else {
        ++p->exchanges;
        register_waker(p->pinger, cx.get_waker());
      }
    }
    std::move(partner).wake();
    if (p->finished)
      return unit{};
    return std::nullopt;
  });
}

auto ponger(std::shared_ptr<ping_pong> p) {
  return poll_fn<unit>([p](poll_context& cx) -> std::optional<unit> {
    waker partner;
    {
      std::lock_guard lock(p->mutex);
      if (p->pinger_turn) {
        register_waker(p->ponger, cx.get_waker());
        return std::nullopt;
      }
      if (p->finished)
        return unit{};
      p->pinger_turn = true;
      partner = std::move(p->pinger);
      register_waker(p->ponger, cx.get_waker());
    }
    std::move(partner).wake();
    return std::nullopt;
  });
}

// Spawns `n` tasks that block their worker (spinning) until `release` is set, and waits
// until all of them run: with n == workers - 1 exactly one worker stays free.
template <class Rt>
std::vector<raw_join_handle<bool>> block_workers(Rt& rt, std::size_t n,
                                                 std::shared_ptr<std::atomic<bool>> release) {
  auto started = counter();
  std::vector<raw_join_handle<bool>> handles;
  for (std::size_t i = 0; i < n; ++i) {
    handles.push_back(rt.spawn(poll_fn<bool>([release, started](poll_context&) -> std::optional<bool> {
      started->fetch_add(1, std::memory_order_acq_rel);
      return spin_until([&] { return release->load(std::memory_order_acquire); }, 2 * wait_bound);
    })));
  }
  BOOST_REQUIRE(eventually([&] { return static_cast<std::size_t>(started->load()) == n; }));
  return handles;
}

std::string current_thread_name() {
  char buf[32] = {};
  pthread_getname_np(pthread_self(), buf, sizeof buf);
  return buf;
}

} // namespace

// =========================================================================================
BOOST_FIXTURE_TEST_SUITE(runtime_common, bounded)

BOOST_AUTO_TEST_CASE_TEMPLATE(a_task_spawned_from_outside_runs_and_its_handle_yields_the_value, Rt,
                              all_flavours) {
  Rt rt;
  auto jh = rt.spawn(ready(42));
  BOOST_TEST(jh.id() != task_id());
  BOOST_TEST(join_value(jh).value_or(-1) == 42);
  BOOST_TEST(jh.is_finished());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_task_spawned_from_a_task_runs_and_is_awaited, Rt, all_flavours) {
  Rt rt;
  auto jh = rt.spawn(poll_fn<int>(
      [&rt, inner = std::optional<raw_join_handle<int>>()](poll_context& cx) mutable -> std::optional<int> {
        if (!inner)
          inner.emplace(rt.spawn(ready(7)));
        std::optional<outcome<int>> r = inner->poll(cx.get_waker());
        if (!r)
          return std::nullopt;
        return r->has_value() ? r->value() * 6 : -1;
      }));
  BOOST_TEST(join_value(jh).value_or(-1) == 42);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_spawn_chain_returns_through_every_level, Rt, all_flavours) {
  Rt rt;
  constexpr int depth = 100;
  auto jh = rt.spawn(spawn_chain<Rt>{&rt, depth, std::nullopt});
  BOOST_TEST(join_value(jh).value_or(-1) == depth);
  BOOST_TEST(eventually([&] { return rt.h.num_alive_tasks() == 0; }));
  BOOST_TEST(rt.h.spawned_tasks_count() == static_cast<std::uint64_t>(depth + 1));
}

// spawn_many_from_block_on: tasks waiting on oneshots that a foreign thread completes.
BOOST_AUTO_TEST_CASE_TEMPLATE(many_tasks_spawned_from_outside_receive_their_values, Rt, all_flavours) {
  for (std::size_t n : {std::size_t{200}, std::size_t{1000}}) {
    Rt rt;
    std::vector<oneshot_sender<int>> senders;
    std::vector<raw_join_handle<std::optional<int>>> handles;
    for (std::size_t i = 0; i < n; ++i) {
      auto [tx, rx] = oneshot<int>();
      senders.push_back(std::move(tx));
      handles.push_back(rt.spawn(std::move(rx)));
    }
    std::thread completer([&] {
      for (std::size_t i = 0; i < n; ++i)
        senders[i].send(static_cast<int>(i) * 3);
    });
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::optional<std::optional<int>> v = join_value(handles[i]);
      if (!v || *v != std::optional<int>(static_cast<int>(i) * 3))
        ++wrong;
    }
    completer.join();
    BOOST_TEST(wrong == 0u, n << " tasks: " << wrong << " without their value");
  }
}

// spawn_many_from_task: a task spawns them (local spawns, through the LIFO slot and the
// local queue, overflowing to the global queue) and returns their handles.
BOOST_AUTO_TEST_CASE_TEMPLATE(many_tasks_spawned_from_a_task_receive_their_values, Rt, all_flavours) {
  constexpr std::size_t n = 500;
  Rt rt;
  using handles_t = std::vector<raw_join_handle<std::optional<int>>>;
  std::vector<oneshot_sender<int>> senders;
  std::vector<oneshot_receiver<int>> receivers;
  for (std::size_t i = 0; i < n; ++i) {
    auto [tx, rx] = oneshot<int>();
    senders.push_back(std::move(tx));
    receivers.push_back(std::move(rx));
  }
  auto spawner = rt.spawn(poll_fn<handles_t>(
      [&rt, rxs = std::move(receivers)](poll_context&) mutable -> std::optional<handles_t> {
        handles_t out;
        for (auto& rx : rxs)
          out.push_back(rt.spawn(std::move(rx)));
        return out;
      }));
  std::optional<handles_t> handles = join_value(spawner);
  BOOST_REQUIRE(handles);
  BOOST_REQUIRE(handles->size() == n);
  std::thread completer([&] {
    for (std::size_t i = 0; i < n; ++i)
      senders[i].send(static_cast<int>(i) + 1);
  });
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::optional<std::optional<int>> v = join_value((*handles)[i]);
    if (!v || *v != std::optional<int>(static_cast<int>(i) + 1))
      ++wrong;
  }
  completer.join();
  BOOST_TEST(wrong == 0u);
}

// many_oneshot_futures: 1000 detached tasks, five runtimes in a row.
BOOST_AUTO_TEST_CASE_TEMPLATE(many_detached_tasks_complete_across_runtime_restarts, Rt, all_flavours) {
  for (int round = 0; round < 5; ++round) {
    auto done = counter();
    Rt rt;
    for (int i = 0; i < 1000; ++i) {
      rt.spawn(poll_fn<unit>([done](poll_context&) -> std::optional<unit> {
        done->fetch_add(1, std::memory_order_acq_rel);
        return unit{};
      })); // handle dropped: detached
    }
    BOOST_TEST(eventually([&] { return done->load() == 1000; }), "round " << round << ": " << done->load());
  }
}

// outstanding_tasks_dropped: what a never-ready task holds is released at shutdown.
BOOST_AUTO_TEST_CASE_TEMPLATE(outstanding_tasks_are_dropped_at_shutdown, Rt, all_flavours) {
  auto payload = std::make_shared<int>(1);
  auto polls = counter();
  Rt rt;
  auto jh = rt.spawn(counted(
      poll_fn<unit>([payload](poll_context&) -> std::optional<unit> { return std::nullopt; }), polls));
  BOOST_REQUIRE(eventually([&] { return polls->load() == 1; }));
  BOOST_TEST(payload.use_count() == 2);
  rt.shutdown();
  BOOST_TEST(payload.use_count() == 1);
  BOOST_TEST(is_cancelled(poll_now(jh)));
  BOOST_TEST(rt.h.num_alive_tasks() == 0u);
}

// complete_task_under_load: self-waking spinners do not starve other tasks.
BOOST_AUTO_TEST_CASE_TEMPLATE(spinning_tasks_do_not_starve_a_yielding_task, Rt, all_flavours) {
  Rt rt;
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto spins = counter();
  std::vector<raw_join_handle<unit>> spinners;
  for (std::size_t i = 0; i < 2 * Rt::workers; ++i)
    spinners.push_back(rt.spawn(spinner(stop, spins)));
  BOOST_REQUIRE(eventually([&] { return spins->load() > 100; }));
  // Spawned from inside a task: it goes to the local queue (or LIFO slot) of a busy worker.
  auto jh = rt.spawn(poll_fn<int>(
      [&rt, inner = std::optional<raw_join_handle<int>>()](poll_context& cx) mutable -> std::optional<int> {
        if (!inner)
          inner.emplace(rt.spawn(yield_n(rt.h, 3)));
        std::optional<outcome<int>> r = inner->poll(cx.get_waker());
        if (!r)
          return std::nullopt;
        return r->has_value() ? r->value() : -1;
      }));
  BOOST_TEST(join_value(jh).value_or(-1) == 3);
  stop->store(true, std::memory_order_release);
  for (auto& s : spinners)
    BOOST_TEST(wait_for_join(s).has_value());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_spawn_from_another_thread_wakes_an_idle_runtime, Rt, all_flavours) {
  Rt rt;
  std::this_thread::sleep_for(20ms); // every worker parks
  raw_join_handle<int> jh;
  std::thread other([&] { jh = rt.spawn(ready(11)); });
  other.join();
  BOOST_TEST(join_value(jh).value_or(-1) == 11);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_spawn_from_another_thread_runs_under_load, Rt, all_flavours) {
  Rt rt;
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto spins = counter();
  std::vector<raw_join_handle<unit>> spinners;
  for (std::size_t i = 0; i < 2 * Rt::workers; ++i)
    spinners.push_back(rt.spawn(spinner(stop, spins)));
  BOOST_REQUIRE(eventually([&] { return spins->load() > 100; }));
  raw_join_handle<int> jh;
  std::thread other([&] { jh = rt.spawn(ready(12)); });
  other.join();
  BOOST_TEST(join_value(jh).value_or(-1) == 12);
  stop->store(true, std::memory_order_release);
  for (auto& s : spinners)
    BOOST_TEST(wait_for_join(s).has_value());
}

// yield_defers_until_park, as swarm keeps it: a task that yields through the defer list
// lets its worker poll the driver within every event_interval ticks of the loop, without a
// driver poll per yield (Tokio polls the driver before every such re-poll: one syscall per
// yield). With several workers all but one are blocked, so the yielding task's worker is
// the only one that can take the driver.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_yielding_task_lets_its_worker_poll_the_driver_every_event_interval, Rt,
                              all_flavours) {
  constexpr std::uint32_t interval = 8;
  constexpr int yields = 200;
  counting_driver drv;
  scheduler_options o;
  o.event_interval = interval;
  Rt rt(o, &drv);
  auto release = std::make_shared<std::atomic<bool>>(false);
  std::vector<raw_join_handle<bool>> blockers = block_workers(rt, Rt::workers - 1, release);
  auto seen = std::make_shared<std::vector<std::size_t>>();
  auto jh = rt.spawn(
      poll_fn<int>([&drv, h = &rt.h, seen, left = yields](poll_context& cx) mutable -> std::optional<int> {
        seen->push_back(drv.polls());
        if (left-- == 0)
          return yields;
        h->defer(cx.get_waker());
        return std::nullopt;
      }));
  std::optional<int> v = join_value(jh);
  release->store(true, std::memory_order_release);
  BOOST_REQUIRE(v.value_or(-1) == yields);
  BOOST_REQUIRE(seen->size() == static_cast<std::size_t>(yields) + 1);
  // Each re-poll takes at least one tick: any `interval` consecutive ones span a driver poll.
  for (std::size_t i = interval; i < seen->size(); ++i)
    BOOST_TEST((*seen)[i] > (*seen)[i - interval], "no driver poll between poll " << i - interval << " and poll " << i);
  // And far fewer driver polls than yields (the syscall per yield this saves).
  BOOST_TEST(seen->back() - seen->front() <= static_cast<std::size_t>(yields) / 2,
             "driver polls during " << yields << " yields: " << seen->back() - seen->front());
  for (auto& b : blockers)
    BOOST_TEST(join_value(b).value_or(false));
  BOOST_TEST(!drv.overlapped());
}

// io_driver_called_when_under_load: maintenance polls the driver every event_interval ticks
// even though the workers never run out of work.
BOOST_AUTO_TEST_CASE_TEMPLATE(the_driver_is_polled_while_every_worker_is_busy, Rt, all_flavours) {
  counting_driver drv;
  Rt rt({}, &drv);
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto spins = counter();
  std::vector<raw_join_handle<unit>> spinners;
  for (std::size_t i = 0; i < 2 * Rt::workers; ++i)
    spinners.push_back(rt.spawn(spinner(stop, spins)));
  BOOST_REQUIRE(eventually([&] { return spins->load() > 200; }));
  // Measured over time, not over a number of polls: with more workers than cores, a worker
  // woken out of the driver may wait milliseconds for a CPU while it still holds the driver.
  const std::size_t before = drv.zero_polls();
  const int spins_before = spins->load();
  BOOST_TEST(eventually([&] { return drv.zero_polls() >= before + 10; }),
             "zero-timeout driver polls: " << before << " -> " << drv.zero_polls());
  BOOST_TEST(spins->load() > spins_before); // while the spinners kept every worker busy
  stop->store(true, std::memory_order_release);
  for (auto& s : spinners)
    BOOST_TEST(wait_for_join(s).has_value());
  BOOST_TEST(!drv.overlapped());
}

// coop: a loop taking 1000 budget units is forced to yield once per exhausted budget.
// (Units only: a preemption of the test's thread could otherwise end a budget early.)
BOOST_AUTO_TEST_CASE_TEMPLATE(coop_budget_forces_a_long_loop_to_yield, Rt, all_flavours) {
  swarm::scheduler_options o;
  o.coop_time_limit = {};
  Rt rt(std::move(o));
  constexpr int units = 1000;
  auto jh = rt.spawn(poll_fn<int>([done = 0, yields = 0](poll_context& cx) mutable -> std::optional<int> {
    if (coop::current().is_unconstrained())
      return -2; // a task poll must run under a budget
    while (done < units) {
      std::optional<coop::restore_on_pending> g = coop::poll_proceed();
      if (!g) {
        ++yields;
        cx.get_waker().wake_by_ref();
        return std::nullopt;
      }
      g->made_progress();
      ++done;
    }
    return yields;
  }));
  const int expected = (units - 1) / coop::initial_budget; // 7: every budget but the last is exhausted
  BOOST_TEST(join_value(jh).value_or(-1) == expected);
  if constexpr (Rt::is_multi_thread)
    BOOST_TEST(
        eventually([&] { return rt.h.budget_forced_yield_count() == static_cast<std::uint64_t>(expected); }),
        "budget_forced_yield_count " << rt.h.budget_forced_yield_count());
}

// coop_time_limit: a poll whose units are slow is spent by time, not by its 128 units. Each
// unit here lasts at least 10 us, so the budget's second read of the clock (16 units after
// its first) finds the 50 us limit passed whatever the machine's speed: 32 units a poll.
// With the limit off the poll takes all 128.
BOOST_AUTO_TEST_CASE_TEMPLATE(coop_time_limit_ends_a_poll_of_slow_units, Rt, all_flavours) {
  for (const auto limit :
       {std::chrono::nanoseconds(std::chrono::microseconds(50)), std::chrono::nanoseconds(0)}) {
    swarm::scheduler_options o;
    o.coop_time_limit = limit;
    Rt rt(std::move(o));
    auto jh = rt.spawn(poll_fn<int>([](poll_context&) -> std::optional<int> {
      int units = 0;
      while (std::optional<coop::restore_on_pending> g = coop::poll_proceed()) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(10);
        while (std::chrono::steady_clock::now() < until) {
        }
        g->made_progress();
        ++units;
      }
      return units;
    }));
    const int expected = limit.count() != 0 ? 2 * coop::time_check_units : coop::initial_budget;
    BOOST_TEST(join_value(jh).value_or(-1) == expected, "limit " << limit.count() << " ns");
  }
}

// A limit the options cannot hold is refused.
BOOST_AUTO_TEST_CASE(coop_time_limit_out_of_range_is_refused) {
  for (const auto limit : {std::chrono::nanoseconds(-1), std::chrono::nanoseconds(std::chrono::seconds(5))}) {
    swarm::scheduler_options o;
    o.coop_time_limit = limit;
    BOOST_CHECK_THROW(swarm::detail::multi_thread::handle(std::move(o), nullptr), std::invalid_argument);
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(coop_budget_is_restored_when_nothing_progressed, Rt, all_flavours) {
  Rt rt;
  auto jh = rt.spawn(poll_fn<bool>([](poll_context&) -> std::optional<bool> {
    const auto before = coop::current().value();
    { std::optional<coop::restore_on_pending> g = coop::poll_proceed(); } // dropped: no progress
    const auto after_pending = coop::current().value();
    {
      std::optional<coop::restore_on_pending> g = coop::poll_proceed();
      g->made_progress();
    }
    const auto after_progress = coop::current().value();
    return before == std::optional<std::uint8_t>(coop::initial_budget) && after_pending == before &&
           after_progress == std::optional<std::uint8_t>(coop::initial_budget - 1);
  }));
  BOOST_TEST(join_value(jh).value_or(false));
}

// ping_pong_saturation: 100 pairs waking each other keep every worker busy through the
// LIFO slot; a task that yields five times must still complete.
BOOST_AUTO_TEST_CASE_TEMPLATE(ping_pong_pairs_do_not_starve_a_yielding_task, Rt, all_flavours) {
  constexpr int pairs = 100;
  Rt rt;
  auto running = std::make_shared<std::atomic<bool>>(true);
  auto started = counter();
  std::vector<std::shared_ptr<ping_pong>> games;
  std::vector<raw_join_handle<unit>> handles;
  for (int i = 0; i < pairs; ++i) {
    auto p = std::make_shared<ping_pong>();
    games.push_back(p);
    handles.push_back(rt.spawn(ponger(p)));
    handles.push_back(rt.spawn(pinger(p, running, started)));
  }
  BOOST_REQUIRE(eventually([&] { return started->load() == pairs; }));
  auto yielder = rt.spawn(yield_n(rt.h, 5));
  std::optional<int> v = join_value(yielder);
  running->store(false, std::memory_order_release);
  BOOST_TEST(v.value_or(-1) == 5);
  std::size_t unfinished = 0;
  for (auto& jh : handles)
    unfinished += wait_for_join(jh).has_value() ? 0 : 1;
  BOOST_TEST(unfinished == 0u);
  std::uint64_t exchanges = 0;
  for (auto& g : games) {
    std::lock_guard lock(g->mutex);
    exchanges += g->exchanges;
  }
  BOOST_TEST(exchanges >= static_cast<std::uint64_t>(pairs));
}

// eagerly_drops_futures_on_shutdown: a pending future is destroyed by shutdown, on a
// runtime thread (a worker, or the thread shutting a current-thread runtime down as its
// driver).
BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_destroys_pending_futures_on_a_runtime_thread, Rt, all_flavours) {
  auto dropped = counter();
  auto on_runtime = counter();
  auto polls = counter();
  Rt rt;
  if constexpr (Rt::is_multi_thread) {
    // Every worker thread drives its core (a core no thread has taken yet would be shut
    // down by the caller of shutdown, by design).
    BOOST_REQUIRE(eventually([&] {
      for (std::size_t w = 0; w < rt.h.num_workers(); ++w)
        if (rt.h.worker_metrics(w).park_count == 0)
          return false;
      return true;
    }));
  }
  auto jh = rt.spawn(counted(pending_forever(), polls, on_drop([&rt, dropped, on_runtime] {
                               dropped->fetch_add(1);
                               if (rt.on_runtime_thread())
                                 on_runtime->fetch_add(1);
                             })));
  BOOST_REQUIRE(eventually([&] { return polls->load() == 1; }));
  BOOST_TEST(dropped->load() == 0);
  rt.shutdown();
  BOOST_TEST(dropped->load() == 1);
  BOOST_TEST(on_runtime->load() == 1);
  BOOST_TEST(is_cancelled(poll_now(jh)));
}

// wake_while_rt_is_dropping / wake_during_shutdown: two pending tasks each hold the sender
// the other waits on; whichever is cancelled first wakes the other from its destructor.
BOOST_AUTO_TEST_CASE_TEMPLATE(destructors_waking_other_tasks_during_shutdown_neither_hang_nor_crash, Rt,
                              all_flavours) {
  for (std::size_t round = 0; round < scaled(20); ++round) {
    Rt rt;
    auto polls = counter();
    auto drops = counter();
    auto a = oneshot<int>();
    auto b = oneshot<int>();
    auto ta = rt.spawn(counted(poll_fn<bool>([tx = std::move(a.first), rx = std::move(b.second)](
                                                 poll_context& cx) mutable -> std::optional<bool> {
                                 return rx.poll(cx) ? std::optional<bool>(true) : std::nullopt;
                               }),
                               polls, count_drop(drops)));
    auto tb = rt.spawn(counted(poll_fn<bool>([tx = std::move(b.first), rx = std::move(a.second)](
                                                 poll_context& cx) mutable -> std::optional<bool> {
                                 return rx.poll(cx) ? std::optional<bool>(true) : std::nullopt;
                               }),
                               polls, count_drop(drops)));
    BOOST_REQUIRE(eventually([&] { return polls->load() >= 2; }));
    rt.shutdown();
    BOOST_TEST(drops->load() == 2);
    // Each is cancelled, unless the other's destructor woke it and it ran to completion
    // before shutdown reached it.
    std::optional<outcome<bool>> ra = poll_now(ta), rb = poll_now(tb);
    BOOST_TEST((ra && rb));
    BOOST_TEST(rt.h.num_alive_tasks() == 0u);
  }
}

// A destructor run by shutdown spawns: the new task is cancelled on the spot.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_destructor_spawning_during_shutdown_gets_a_cancelled_handle, Rt,
                              all_flavours) {
  auto polls = counter();
  auto late_polls = counter();
  auto late = std::make_shared<std::optional<raw_join_handle<int>>>();
  {
    Rt rt;
    auto jh = rt.spawn(counted(pending_forever(), polls, on_drop([&rt, late, late_polls] {
                                 late->emplace(rt.spawn(counted(ready(1), late_polls)));
                               })));
    BOOST_REQUIRE(eventually([&] { return polls->load() == 1; }));
    rt.shutdown();
    BOOST_TEST(is_cancelled(poll_now(jh)));
    BOOST_REQUIRE(late->has_value());
    BOOST_TEST((*late)->is_finished());
    BOOST_TEST(is_cancelled(poll_now(**late)));
  }
  BOOST_TEST(late_polls->load() == 0);
}

// shutdown_concurrent_spawn: 10 000 tasks waiting on oneshots that a thread completes while
// the runtime shuts down. Every future is destroyed once and every handle resolves.
BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_racing_foreign_completions_leaks_nothing, Rt, all_flavours) {
  // 10 000 tasks, three times; under a sanitizer 5 000 once, to stay well within 3 s per case.
  const std::size_t n = scaled(10'000, 2);
  for (std::size_t round = 0; round < scaled(3, 3); ++round) {
    auto drops = counter();
    std::vector<oneshot_sender<int>> senders;
    std::vector<raw_join_handle<std::optional<int>>> handles;
    senders.reserve(n);
    handles.reserve(n);
    {
      Rt rt;
      for (std::size_t i = 0; i < n; ++i) {
        auto [tx, rx] = oneshot<int>();
        senders.push_back(std::move(tx));
        handles.push_back(rt.spawn(counted(std::move(rx), nullptr, count_drop(drops))));
      }
      std::thread completer([&] {
        for (auto& s : senders)
          s.send(1);
      });
      rt.shutdown();
      completer.join();
      BOOST_TEST(rt.h.num_alive_tasks() == 0u);
    }
    BOOST_TEST(drops->load() == static_cast<int>(n));
    std::size_t completed = 0, cancelled = 0, other = 0;
    for (auto& jh : handles) {
      std::optional<outcome<std::optional<int>>> r = poll_now(jh);
      if (!r)
        ++other;
      else if (r->has_value())
        completed += r->value() == std::optional<int>(1) ? 1 : 0;
      else if (r->error().is_cancelled())
        ++cancelled;
      else
        ++other;
    }
    BOOST_TEST(completed + cancelled == n, "completed " << completed << ", cancelled " << cancelled);
    BOOST_TEST(other == 0u);
  }
}

// Shutdown with spinners running, tasks idle on oneshots, and one task inside a slow poll.
BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_cancels_running_and_idle_tasks, Rt, all_flavours) {
  auto drops = counter();
  auto spins = counter();
  auto in_slow_poll = std::make_shared<std::atomic<bool>>(false);
  std::vector<oneshot_sender<int>> senders;
  std::vector<raw_join_handle<unit>> spinners;
  std::vector<raw_join_handle<std::optional<int>>> idle;
  raw_join_handle<unit> slow;
  {
    Rt rt;
    auto never = std::make_shared<std::atomic<bool>>(false);
    for (std::size_t i = 0; i < 2 * Rt::workers; ++i)
      spinners.push_back(rt.spawn(counted(spinner(never, spins), nullptr, count_drop(drops))));
    for (int i = 0; i < 50; ++i) {
      auto [tx, rx] = oneshot<int>();
      senders.push_back(std::move(tx));
      idle.push_back(rt.spawn(counted(std::move(rx), nullptr, count_drop(drops))));
    }
    // Inside its (only) poll while shutdown starts; idle afterwards.
    slow = rt.spawn(counted(poll_fn<unit>([in_slow_poll](poll_context&) -> std::optional<unit> {
                              in_slow_poll->store(true, std::memory_order_release);
                              std::this_thread::sleep_for(50ms);
                              return std::nullopt;
                            }),
                            nullptr, count_drop(drops)));
    BOOST_REQUIRE(eventually([&] { return spins->load() > 50 && in_slow_poll->load(); }));
    const auto start = clock::now();
    rt.shutdown();
    BOOST_TEST((clock::now() - start < 1s));
  }
  BOOST_TEST(drops->load() == static_cast<int>(2 * Rt::workers + 50 + 1));
  for (auto& jh : spinners)
    BOOST_TEST(is_cancelled(poll_now(jh)));
  for (auto& jh : idle)
    BOOST_TEST(is_cancelled(poll_now(jh)));
  BOOST_TEST(is_cancelled(poll_now(slow)));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_spawn_after_shutdown_resolves_cancelled_without_running, Rt, all_flavours) {
  auto polls = counter();
  auto drops = counter();
  Rt rt;
  rt.shutdown();
  BOOST_TEST(rt.h.is_shutdown());
  auto jh = rt.spawn(counted(ready(5), polls, count_drop(drops)));
  BOOST_TEST(jh.is_finished());
  BOOST_TEST(is_cancelled(poll_now(jh)));
  BOOST_TEST(polls->load() == 0);
  BOOST_TEST(drops->load() == 1);
  auto bh = rt.h.spawn_blocking([] { return 1; });
  BOOST_TEST(is_cancelled(wait_for_join(bh)));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_from_inside_a_task_throws_logic_error, Rt, all_flavours) {
  Rt rt;
  auto jh = rt.spawn(poll_fn<bool>([h = &rt.h](poll_context&) -> std::optional<bool> {
    try {
      h->shutdown();
    } catch (const std::logic_error&) {
      return true;
    }
    return false;
  }));
  BOOST_TEST(join_value(jh).value_or(false));
  BOOST_TEST(!rt.h.is_shutdown());
  auto after = rt.spawn(ready(3));
  BOOST_TEST(join_value(after).value_or(-1) == 3);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_throwing_task_reports_a_panic_and_the_runtime_goes_on, Rt, all_flavours) {
  auto drops = counter();
  Rt rt;
  auto jh = rt.spawn(
      counted(poll_fn<int>([](poll_context&) -> std::optional<int> { throw std::runtime_error("boom"); }),
              nullptr, count_drop(drops)));
  std::optional<outcome<int>> r = wait_for_join(jh);
  BOOST_REQUIRE(r);
  BOOST_REQUIRE(!r->has_value());
  BOOST_REQUIRE(r->error().is_panic());
  BOOST_CHECK_EXCEPTION(std::rethrow_exception(r->error().panic()), std::runtime_error,
                        [](const std::runtime_error& e) { return std::string(e.what()) == "boom"; });
  BOOST_TEST(drops->load() == 1);
  auto next = rt.spawn(ready(4));
  BOOST_TEST(join_value(next).value_or(-1) == 4);
  BOOST_TEST(!rt.h.is_shutdown());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(unhandled_exception_policy_shutdown_runtime_stops_the_runtime, Rt,
                              all_flavours) {
  scheduler_options o;
  o.unhandled_exception = swarm::unhandled_exception_policy::shutdown_runtime;
  auto polls = counter();
  Rt rt(o);
  auto pending = rt.spawn(counted(pending_forever(), polls));
  BOOST_REQUIRE(eventually([&] { return polls->load() == 1; }));
  auto thrower =
      rt.spawn(poll_fn<int>([](poll_context&) -> std::optional<int> { throw std::runtime_error("x"); }));
  std::optional<outcome<int>> r = wait_for_join(thrower);
  BOOST_TEST((r && !r->has_value() && r->error().is_panic()));
  BOOST_TEST(eventually([&] { return rt.h.is_shutdown(); }));
  if constexpr (Rt::is_multi_thread) {
    // The workers shut down by themselves and cancel every task.
    BOOST_TEST(is_cancelled(wait_for_join(pending)));
    rt.shutdown();
  } else {
    // The driver stops; the tasks are cancelled when the runtime is shut down.
    rt.shutdown();
    BOOST_TEST(is_cancelled(poll_now(pending)));
  }
}

// abort_without_panic_3662: abort from a foreign thread destroys the future on the runtime.
BOOST_AUTO_TEST_CASE_TEMPLATE(abort_from_a_foreign_thread_cancels_a_pending_task, Rt, all_flavours) {
  auto polls = counter();
  auto drops = counter();
  auto on_runtime = counter();
  Rt rt;
  auto jh = rt.spawn(counted(pending_forever(), polls, on_drop([&rt, drops, on_runtime] {
                               drops->fetch_add(1);
                               if (rt.on_runtime_thread())
                                 on_runtime->fetch_add(1);
                             })));
  BOOST_REQUIRE(eventually([&] { return polls->load() == 1; }));
  BOOST_TEST(drops->load() == 0);
  std::thread([&] { jh.abort(); }).join();
  BOOST_TEST(is_cancelled(wait_for_join(jh)));
  BOOST_TEST(drops->load() == 1);
  BOOST_TEST(on_runtime->load() == 1);
  BOOST_TEST(polls->load() == 1);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(the_current_task_id_inside_a_task_is_its_handle_id, Rt, all_flavours) {
  Rt rt;
  auto a = rt.spawn(
      poll_fn<task_id>([](poll_context&) -> std::optional<task_id> { return swarm::current_task_id(); }));
  auto b = rt.spawn(
      poll_fn<task_id>([](poll_context&) -> std::optional<task_id> { return swarm::current_task_id(); }));
  BOOST_TEST(join_value(a).value_or(task_id()) == a.id());
  BOOST_TEST(join_value(b).value_or(task_id()) == b.id());
  BOOST_TEST(a.id() != b.id());
  BOOST_TEST(!swarm::try_current_task_id().has_value());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(global_queue_interval_one_works, Rt, all_flavours) {
  scheduler_options o;
  o.global_queue_interval = 1;
  Rt rt(o);
  std::vector<raw_join_handle<int>> hs;
  for (int i = 0; i < 10; ++i)
    hs.push_back(rt.spawn(yield_n(rt.h, 2)));
  for (auto& jh : hs)
    BOOST_TEST(join_value(jh).value_or(-1) == 2);
}

// -----------------------------------------------------------------------------------------
// Options.

BOOST_AUTO_TEST_CASE(invalid_options_are_rejected_with_invalid_argument) {
  namespace mt = swarm::detail::multi_thread;
  auto with = [](auto edit) {
    scheduler_options o;
    o.worker_threads = 2;
    edit(o);
    return o;
  };
  BOOST_CHECK_THROW(mt::handle(with([](scheduler_options& o) { o.worker_threads = 0; }), nullptr),
                    std::invalid_argument);
  BOOST_CHECK_THROW(mt::handle(with([](scheduler_options& o) { o.global_queue_interval = 0; }), nullptr),
                    std::invalid_argument);
  BOOST_CHECK_THROW(mt::handle(with([](scheduler_options& o) { o.max_blocking_threads = 0; }), nullptr),
                    std::invalid_argument);
  BOOST_CHECK_THROW(mt::handle(with([](scheduler_options& o) { o.event_interval = 0; }), nullptr),
                    std::invalid_argument);
  // The edges that are allowed.
  BOOST_CHECK_NO_THROW(mt::handle(with([](scheduler_options& o) {
                                    o.worker_threads = 1;
                                    o.max_blocking_threads = 1;
                                    o.global_queue_interval = 1;
                                    o.event_interval = 1;
                                  }),
                                  nullptr));
}

// -----------------------------------------------------------------------------------------
// Hooks (tokio/tests/task_hooks.rs, rt_poll_callbacks.rs) and thread callbacks.

struct hook_log {
  std::mutex mutex;
  std::vector<task_id> spawned, terminated;
  std::map<task_id, int> before, after;
  std::vector<std::string> poll_files;

  scheduler_options options() {
    scheduler_options o;
    o.on_task_spawn = [this](const task_meta& m) {
      std::lock_guard lock(mutex);
      spawned.push_back(m.id);
    };
    o.on_task_terminate = [this](const task_meta& m) {
      std::lock_guard lock(mutex);
      terminated.push_back(m.id);
    };
    o.on_before_task_poll = [this](const task_meta& m) {
      std::lock_guard lock(mutex);
      ++before[m.id];
      poll_files.push_back(m.location.file_name());
    };
    o.on_after_task_poll = [this](const task_meta& m) {
      std::lock_guard lock(mutex);
      ++after[m.id];
    };
    return o;
  }
  template <class Fn>
  auto locked(Fn fn) {
    std::lock_guard lock(mutex);
    return fn();
  }
};

BOOST_AUTO_TEST_CASE_TEMPLATE(spawn_and_terminate_hooks_see_every_task_once, Rt, all_flavours) {
  hook_log log;
  Rt rt(log.options());
  std::vector<raw_join_handle<int>> hs;
  std::set<task_id> ids;
  for (int i = 0; i < 8; ++i) {
    hs.push_back(rt.spawn(ready(i)));
    ids.insert(hs.back().id());
  }
  // on_task_spawn runs on the spawning thread before spawn returns.
  BOOST_TEST(log.locked([&] { return std::set<task_id>(log.spawned.begin(), log.spawned.end()) == ids; }));
  BOOST_TEST(log.locked([&] { return log.spawned.size(); }) == 8u);
  for (auto& jh : hs)
    BOOST_TEST(join_value(jh).has_value());
  // on_task_terminate runs after the join handle was woken: wait for it.
  BOOST_TEST(eventually([&] { return log.locked([&] { return log.terminated.size(); }) == 8u; }));
  BOOST_TEST(
      log.locked([&] { return std::set<task_id>(log.terminated.begin(), log.terminated.end()) == ids; }));
  // A task cancelled by shutdown terminates too.
  auto polls = counter();
  auto pending = rt.spawn(counted(pending_forever(), polls));
  BOOST_REQUIRE(eventually([&] { return polls->load() == 1; }));
  rt.shutdown();
  BOOST_TEST(log.locked([&] { return log.terminated.size(); }) == 9u);
  BOOST_TEST(log.locked([&] { return log.terminated.back(); }) == pending.id());
}

// callbacks_fire: a task with three yield points is polled exactly four times.
BOOST_AUTO_TEST_CASE_TEMPLATE(poll_hooks_fire_once_before_and_once_after_each_poll, Rt, all_flavours) {
  hook_log log;
  Rt rt(log.options());
  auto jh = rt.spawn(yield_n(rt.h, 3));
  BOOST_TEST(join_value(jh).value_or(-1) == 3);
  BOOST_TEST(eventually([&] { return log.locked([&] { return log.after[jh.id()]; }) == 4; }));
  std::this_thread::sleep_for(5ms);
  BOOST_TEST(log.locked([&] { return log.before[jh.id()]; }) == 4);
  BOOST_TEST(log.locked([&] { return log.after[jh.id()]; }) == 4);
  BOOST_TEST(log.locked([&] { return log.before.size(); }) == 1u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(thread_start_and_stop_callbacks_are_balanced, Rt, all_flavours) {
  auto starts = counter();
  auto stops = counter();
  auto parks = counter();
  auto unparks = counter();
  {
    scheduler_options o;
    o.on_thread_start = [starts] { starts->fetch_add(1); };
    o.on_thread_stop = [stops] { stops->fetch_add(1); };
    o.on_thread_park = [parks] { parks->fetch_add(1); };
    o.on_thread_unpark = [unparks] { unparks->fetch_add(1); };
    Rt rt(o);
    auto bh = rt.h.spawn_blocking([] { return 1; });
    BOOST_TEST(join_value(bh).value_or(-1) == 1);
    auto jh = rt.spawn(ready(2));
    BOOST_TEST(join_value(jh).value_or(-1) == 2);
    BOOST_TEST(eventually([&] { return parks->load() >= static_cast<int>(Rt::workers); }));
    BOOST_TEST(starts->load() >= static_cast<int>(Rt::is_multi_thread ? Rt::workers : 1));
  }
  BOOST_TEST(starts->load() == stops->load());
  // A worker parks and unparks in pairs; at shutdown each may be left in one park.
  BOOST_TEST(parks->load() >= unparks->load());
  BOOST_TEST(parks->load() - unparks->load() <= static_cast<int>(Rt::workers));
}

// drop_threadpool_drops_futures: many runtime lifetimes, each dropping a never-ready future,
// with balanced thread callbacks.
BOOST_AUTO_TEST_CASE(every_runtime_drop_destroys_its_pending_future) {
  auto starts = counter();
  auto stops = counter();
  auto drops = counter();
  const int rounds = static_cast<int>(scaled(100, 4));
  for (int i = 0; i < rounds; ++i) {
    scheduler_options o;
    o.on_thread_start = [starts] { starts->fetch_add(1); };
    o.on_thread_stop = [stops] { stops->fetch_add(1); };
    mt2 rt(o);
    rt.spawn(counted(pending_forever(), nullptr, count_drop(drops)));
  }
  BOOST_TEST(drops->load() == rounds);
  BOOST_TEST(starts->load() == stops->load());
  BOOST_TEST(starts->load() == 2 * rounds);
}

// task_hook_spawn_location: the poll hooks report where the task was spawned, as the spawn
// hook does (read from the task's cell).
BOOST_AUTO_TEST_CASE_TEMPLATE(poll_hooks_report_the_spawn_location, Rt, all_flavours) {
  hook_log log;
  Rt rt(log.options());
  auto jh = rt.spawn(yield_n(rt.h, 1));
  BOOST_TEST(join_value(jh).value_or(-1) == 1);
  BOOST_TEST(eventually([&] { return log.locked([&] { return log.after[jh.id()]; }) == 2; }));
  const std::string here = std::source_location::current().file_name();
  BOOST_TEST(log.locked([&] { return log.poll_files.size(); }) == 2u);
  for (const std::string& f : log.locked([&] { return log.poll_files; }))
    BOOST_TEST(f == here);
}

BOOST_AUTO_TEST_SUITE_END()

// =========================================================================================
BOOST_FIXTURE_TEST_SUITE(multi_thread_only, bounded)

BOOST_AUTO_TEST_CASE(a_single_worker_runtime_works) {
  mt1 rt;
  BOOST_TEST(rt.h.num_workers() == 1u);
  auto jh = rt.spawn(yield_n(rt.h, 3));
  BOOST_TEST(join_value(jh).value_or(-1) == 3);
}

BOOST_AUTO_TEST_CASE(tasks_spawned_before_launch_run_after_it) {
  scheduler_options o;
  o.worker_threads = 2;
  swarm::detail::multi_thread::handle h(o, nullptr);
  auto jh = h.spawn(ready(8), task_id::next());
  std::this_thread::sleep_for(10ms);
  BOOST_TEST(!jh.is_finished());
  h.launch();
  BOOST_TEST(join_value(jh).value_or(-1) == 8);
  h.shutdown();
}

BOOST_AUTO_TEST_CASE(shutdown_before_launch_cancels_spawned_tasks) {
  auto drops = counter();
  auto polls = counter();
  scheduler_options o;
  o.worker_threads = 2;
  swarm::detail::multi_thread::handle h(o, nullptr);
  auto jh = h.spawn(counted(ready(8), polls, count_drop(drops)), task_id::next());
  h.shutdown();
  BOOST_TEST(is_cancelled(poll_now(jh)));
  BOOST_TEST(polls->load() == 0);
  BOOST_TEST(drops->load() == 1);
  BOOST_CHECK_THROW(h.launch(), std::logic_error); // the pool is shut down
}

// lifo_slot_budget: a task that keeps spawning its successor goes through the LIFO slot; the
// cap of three LIFO polls in a row must let the worker reach a task woken from outside.
BOOST_AUTO_TEST_CASE(a_task_endlessly_spawning_its_successor_does_not_starve_a_woken_task) {
  mt1 rt;
  struct successor {
    using output_type = unit;
    mt1* rt;
    std::shared_ptr<std::atomic<bool>> stop;
    std::shared_ptr<std::atomic<int>> polls;
    std::optional<unit> poll(poll_context&) {
      polls->fetch_add(1, std::memory_order_relaxed);
      if (!stop->load(std::memory_order_acquire))
        rt->spawn(successor{rt, stop, polls}); // detached
      return unit{};
    }
  };
  auto rx_polls = counter();
  auto [tx, rx] = oneshot<int>();
  auto receiver = rt.spawn(counted(std::move(rx), rx_polls));
  BOOST_REQUIRE(eventually([&] { return rx_polls->load() == 1; }));
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto chain = counter();
  rt.spawn(successor{&rt, stop, chain});
  BOOST_REQUIRE(eventually([&] { return chain->load() > 1000; }));
  tx.send(9);
  std::optional<std::optional<int>> v = join_value(receiver);
  stop->store(true, std::memory_order_release);
  BOOST_TEST((v && *v == std::optional<int>(9)));
  BOOST_TEST(eventually([&] { return rt.h.num_alive_tasks() == 0; }));
}

// test_disable_lifo_slot: with every local schedule at the back of the queue, a task that
// blocks its worker waiting for a task it spawned is rescued by the other worker stealing.
BOOST_AUTO_TEST_CASE(with_the_lifo_slot_disabled_an_idle_worker_steals_the_spawned_task) {
  scheduler_options o;
  o.disable_lifo_slot = true;
  mt2 rt(o);
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto jh = rt.spawn(poll_fn<bool>([&rt, ran](poll_context&) -> std::optional<bool> {
    rt.spawn(poll_fn<unit>([ran](poll_context&) -> std::optional<unit> {
      ran->store(true, std::memory_order_release);
      return unit{};
    }));
    return spin_until([&] { return ran->load(std::memory_order_acquire); });
  }));
  BOOST_TEST(join_value(jh, 2 * wait_bound).value_or(false));
}

// The other side (Tokio 1.48 and 1.53.1): the LIFO slot cannot be stolen, and filling it
// wakes nobody, so the spawned task waits for its own worker.
BOOST_AUTO_TEST_CASE(the_lifo_slot_is_not_stolen_while_its_worker_blocks) {
  mt2 rt;
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto jh = rt.spawn(poll_fn<bool>([&rt, ran](poll_context&) -> std::optional<bool> {
    rt.spawn(poll_fn<unit>([ran](poll_context&) -> std::optional<unit> {
      ran->store(true, std::memory_order_release);
      return unit{};
    }));
    return spin_until([&] { return ran->load(std::memory_order_acquire); }, 100ms);
  }));
  BOOST_TEST(!join_value(jh).value_or(true));
  BOOST_TEST(eventually([&] { return ran->load(); }));
}

// The interleaving of idle_test's parking_when_nobody_searches_must_look_at_the_queues,
// played on a runtime: worker A searches, held in its unpark hook; worker B finishes a task,
// cannot search beside A, and is held in its park hook before it becomes a sleeper. Two tasks
// come in; A takes both from the global queue (one to run, one onto its own queue) and, as
// the last searcher, finds nobody to notify. The first task waits for the second, so only B
// can run it: B must look at the queues when it parks with nobody searching (without that
// look it sleeps and the first task gives up after wait_bound).
BOOST_AUTO_TEST_CASE(a_worker_parking_as_the_searcher_takes_a_batch_still_finds_the_batch) {
  struct steps {
    std::atomic<int> parks{0};
    std::atomic<bool> hold_unpark{false};
    std::atomic<int> unparks_held_or_passed{0};
    std::atomic<std::thread::id> a_thread{};
    std::atomic<bool> a_held{false}, a_release{false};
    std::atomic<std::thread::id> b_thread{};
    std::atomic<bool> hold_park{false}, b_held{false}, b_release{false};
  };
  auto st = std::make_shared<steps>();
  scheduler_options o;
  o.on_thread_park = [st] {
    st->parks.fetch_add(1);
    if (!st->hold_park.load() || std::this_thread::get_id() != st->b_thread.load() ||
        st->b_held.exchange(true))
      return;
    spin_until([&] { return st->b_release.load(); });
  };
  o.on_thread_unpark = [st] {
    // The second unpark once armed: the worker that the first one's search woke.
    if (!st->hold_unpark.load() || st->unparks_held_or_passed.fetch_add(1) != 1)
      return;
    st->a_thread.store(std::this_thread::get_id());
    st->a_held.store(true);
    spin_until([&] { return st->a_release.load(); });
  };
  mt2 rt(o);
  struct release_all {
    std::shared_ptr<steps> st;
    ~release_all() {
      st->a_release.store(true);
      st->b_release.store(true);
    }
  } guard{st};
  BOOST_REQUIRE(eventually([&] { return st->parks.load() >= 2; })); // both asleep
  std::this_thread::sleep_for(20ms);
  st->hold_unpark.store(true);

  // B runs x; starting it, the last searcher, B wakes A, which is held searching.
  auto x_release = std::make_shared<std::atomic<bool>>(false);
  auto x = rt.spawn(poll_fn<bool>([st, x_release](poll_context&) -> std::optional<bool> {
    st->b_thread.store(std::this_thread::get_id());
    return spin_until([&] { return x_release->load(); });
  }));
  BOOST_REQUIRE(eventually([&] { return st->a_held.load() && st->b_thread.load() != std::thread::id{}; }));
  BOOST_REQUIRE(st->a_thread.load() != st->b_thread.load());

  // B ends x and goes to park without searching (A searches), held before it is a sleeper.
  st->hold_park.store(true);
  x_release->store(true);
  BOOST_REQUIRE(eventually([&] { return st->b_held.load(); }));
  BOOST_REQUIRE(join_value(x).value_or(false));

  // Two tasks from outside, nobody woken (A searches); A takes both, runs the first.
  auto second_ran = std::make_shared<std::atomic<bool>>(false);
  auto first_started = std::make_shared<std::atomic<bool>>(false);
  auto first = rt.spawn(poll_fn<bool>([first_started, second_ran](poll_context&) -> std::optional<bool> {
    first_started->store(true);
    return spin_until([&] { return second_ran->load(); });
  }));
  auto second =
      rt.spawn(poll_fn<std::thread::id>([second_ran](poll_context&) -> std::optional<std::thread::id> {
        second_ran->store(true);
        return std::this_thread::get_id();
      }));
  st->a_release.store(true);
  BOOST_REQUIRE(eventually([&] { return first_started->load(); }));

  // B parks with nobody searching: it looks, finds the second task on A's queue, runs it.
  st->b_release.store(true);
  BOOST_TEST(join_value(first).value_or(false));
  const std::optional<std::thread::id> second_on = join_value(second);
  BOOST_TEST((second_on && *second_on == st->b_thread.load())); // B ran it, not A after the first
}

// blocking (rt_threaded): four tasks block inside block_in_place on a barrier the test thread
// completes only after 1000 other tasks ran: every worker was handed to a new thread.
using bip_flavours = boost::mpl::list<mt2, mt4>;
BOOST_AUTO_TEST_CASE_TEMPLATE(tasks_blocking_in_place_leave_their_workers_to_other_tasks, Rt, bip_flavours) {
  for (std::size_t round = 0; round < scaled(3, 3); ++round) {
    Rt rt;
    auto barrier = std::make_shared<latch>(5);
    auto inside = counter();
    std::vector<raw_join_handle<bool>> blockers;
    for (int i = 0; i < 4; ++i) {
      blockers.push_back(
          rt.spawn(poll_fn<bool>([h = &rt.h, barrier, inside](poll_context&) -> std::optional<bool> {
            return h->block_in_place([&] {
              inside->fetch_add(1);
              return barrier->arrive_and_wait(2 * wait_bound);
            });
          })));
    }
    BOOST_REQUIRE(eventually([&] { return inside->load() == 4; }));
    auto done = counter();
    for (int i = 0; i < 1000; ++i)
      rt.spawn(poll_fn<unit>([done](poll_context&) -> std::optional<unit> {
        done->fetch_add(1);
        return unit{};
      }));
    BOOST_TEST(eventually([&] { return done->load() == 1000; }), "round " << round << ": " << done->load());
    barrier->count_down();
    for (auto& b : blockers)
      BOOST_TEST(join_value(b).value_or(false));
  }
}

BOOST_AUTO_TEST_CASE(nested_block_in_place_is_a_plain_call) {
  mt2 rt;
  auto jh = rt.spawn(poll_fn<bool>([h = &rt.h](poll_context&) -> std::optional<bool> {
    const auto outer_thread = std::this_thread::get_id();
    return h->block_in_place([&] {
      const std::size_t threads = h->blocking().num_threads();
      const bool unconstrained = coop::current().is_unconstrained();
      const int v = h->block_in_place([&] {
        return std::this_thread::get_id() == outer_thread && coop::current().is_unconstrained() ? 1 : 0;
      });
      return v == 1 && unconstrained && h->blocking().num_threads() == threads;
    });
  }));
  BOOST_TEST(join_value(jh).value_or(false));
  // The runtime still works after the hand-off.
  auto next = rt.spawn(yield_n(rt.h, 2));
  BOOST_TEST(join_value(next).value_or(-1) == 2);
}

BOOST_AUTO_TEST_CASE(block_in_place_outside_a_worker_just_runs_the_function) {
  mt2 rt;
  const std::size_t threads = rt.h.blocking().num_threads();
  const auto self = std::this_thread::get_id();
  BOOST_TEST(rt.h.block_in_place([&] { return std::this_thread::get_id() == self ? 5 : 0; }) == 5);
  BOOST_TEST(rt.h.blocking().num_threads() == threads);
  // Inside a blocking task too (block_in_blocking).
  auto bh = rt.h.spawn_blocking([&rt] { return rt.h.block_in_place([] { return 6; }); });
  BOOST_TEST(join_value(bh).value_or(-1) == 6);
}

// coop_and_block_in_place: the budget is unconstrained inside and constrained again after.
BOOST_AUTO_TEST_CASE(block_in_place_lifts_the_coop_budget_and_restores_it) {
  scheduler_options o;
  o.max_blocking_threads = 1;
  mt1 rt(o);
  auto jh = rt.spawn(poll_fn<bool>([h = &rt.h](poll_context&) -> std::optional<bool> {
    for (int i = 0; i < 10; ++i)
      coop::poll_proceed()->made_progress();
    const auto before = coop::current().value();
    const bool inside = h->block_in_place([] { return coop::current().is_unconstrained(); });
    const auto after = coop::current().value();
    return inside && before == std::optional<std::uint8_t>(coop::initial_budget - 10) && after == before;
  }));
  BOOST_TEST(join_value(jh).value_or(false));
}

BOOST_AUTO_TEST_CASE(an_exception_from_block_in_place_propagates_and_the_runtime_goes_on) {
  mt1 rt;
  auto jh = rt.spawn(poll_fn<int>([h = &rt.h](poll_context&) -> std::optional<int> {
    return h->block_in_place([]() -> int { throw std::runtime_error("blocked"); });
  }));
  std::optional<outcome<int>> r = wait_for_join(jh);
  BOOST_TEST((r && !r->has_value() && r->error().is_panic()));
  for (int i = 0; i < 3; ++i) {
    auto next = rt.spawn(yield_n(rt.h, 1));
    BOOST_TEST(join_value(next).value_or(-1) == 1);
  }
}

// block_in_place moves the LIFO task to the queue before the hand-off, so the thread that
// takes the worker over runs it while the spawner blocks waiting for it.
BOOST_AUTO_TEST_CASE(the_lifo_task_runs_while_its_spawner_blocks_in_place) {
  mt1 rt;
  auto ran = std::make_shared<std::atomic<bool>>(false);
  auto jh = rt.spawn(poll_fn<bool>([&rt, ran](poll_context&) -> std::optional<bool> {
    rt.spawn(poll_fn<unit>([ran](poll_context&) -> std::optional<unit> {
      ran->store(true);
      return unit{};
    }));
    return rt.h.block_in_place([&] { return spin_until([&] { return ran->load(); }); });
  }));
  BOOST_TEST(join_value(jh, 2 * wait_bound).value_or(false));
}

// Tokio PR #7879 (after 1.48): wakers deferred by yield_now on this worker are woken before
// block_in_place hands the core away; otherwise the yielded task waits for the blocking call
// to end, which deadlocks a call that waits for it.
BOOST_AUTO_TEST_CASE(a_yielded_task_runs_while_its_worker_blocks_in_place) {
  mt1 rt;
  auto a_done = std::make_shared<std::atomic<bool>>(false);
  auto jh = rt.spawn(poll_fn<bool>([&rt, a_done, b = std::optional<raw_join_handle<bool>>()](
                                       poll_context& cx) mutable -> std::optional<bool> {
    if (!b) {
      // B goes to the LIFO slot, then A displaces it to the queue: A runs (and yields) first.
      b.emplace(rt.spawn(poll_fn<bool>([h = &rt.h, a_done](poll_context&) -> std::optional<bool> {
        return h->block_in_place([&] { return spin_until([&] { return a_done->load(); }, 500ms); });
      })));
      rt.spawn(poll_fn<unit>(
          [h = &rt.h, a_done, yielded = false](poll_context& cx2) mutable -> std::optional<unit> {
            if (!std::exchange(yielded, true)) {
              h->defer(cx2.get_waker());
              return std::nullopt;
            }
            a_done->store(true);
            return unit{};
          }));
    }
    std::optional<outcome<bool>> r = b->poll(cx.get_waker());
    if (!r)
      return std::nullopt;
    return r->has_value() && r->value();
  }));
  BOOST_TEST(join_value(jh).value_or(false));
}

// hang_on_shutdown: a task waits inside block_in_place for a sender held by another task;
// shutdown cancels the holder, which releases the blocked task, and returns.
BOOST_AUTO_TEST_CASE(shutdown_releases_a_task_blocked_in_place_by_cancelling_what_it_waits_for) {
  auto gate = std::make_shared<latch>(1);
  auto released = std::make_shared<std::atomic<int>>(-1);
  auto polls = counter();
  {
    mt2 rt;
    rt.spawn(counted(pending_forever(), polls, on_drop([gate] { gate->count_down(); })));
    rt.spawn(poll_fn<unit>([h = &rt.h, gate, released](poll_context&) -> std::optional<unit> {
      released->store(h->block_in_place([&] { return gate->wait_for(2 * wait_bound); }) ? 1 : 0);
      return unit{};
    }));
    BOOST_REQUIRE(eventually([&] { return polls->load() == 1 && rt.h.blocking().num_threads() >= 3; }));
    const auto start = clock::now();
    rt.shutdown();
    BOOST_TEST((clock::now() - start < 1s));
  }
  BOOST_TEST(released->load() == 1);
}

// shutdown(timeout) bounds the wait for blocking work; a task inside block_in_place is
// blocking work (in Tokio its thread is a blocking-pool thread, detached at the timeout).
// The handle's destructor then waits for that thread, which still uses the handle when the
// call returns (the test releases the call after at most 1 s).
BOOST_AUTO_TEST_CASE(shutdown_timeout_bounds_a_task_blocked_in_place) {
  auto gate = std::make_shared<latch>(1);
  auto inside = std::make_shared<latch>(1);
  mt2 rt;
  rt.spawn(poll_fn<unit>([h = &rt.h, gate, inside](poll_context&) -> std::optional<unit> {
    h->block_in_place([&] {
      inside->count_down();
      gate->wait_for(2 * wait_bound);
    });
    return unit{};
  }));
  BOOST_REQUIRE(inside->wait_for(wait_bound));
  auto returned = std::make_shared<latch>(1);
  std::thread closer([&] {
    rt.shutdown(100ms);
    returned->count_down();
  });
  const bool in_time = returned->wait_for(1s);
  gate->count_down();
  closer.join();
  BOOST_TEST(in_time);
}

BOOST_AUTO_TEST_CASE(worker_threads_carry_the_configured_name) {
  for (const std::string name : {"swarm-t-name", "a-very-long-thread-name-indeed"}) {
    scheduler_options o;
    o.thread_name = name;
    mt2 rt(o);
    auto jh = rt.spawn(poll_fn<std::string>(
        [](poll_context&) -> std::optional<std::string> { return current_thread_name(); }));
    auto bh = rt.h.spawn_blocking([] { return current_thread_name(); });
    const std::string expected = name.substr(0, 15);
    BOOST_TEST(join_value(jh).value_or("?") == expected);
    BOOST_TEST(join_value(bh).value_or("?") == expected);
  }
}

BOOST_AUTO_TEST_CASE(worker_threads_use_the_configured_stack_size) {
  scheduler_options o;
  o.thread_stack_size = 4 << 20;
  mt1 rt(o);
  auto jh = rt.spawn(poll_fn<std::size_t>([](poll_context&) -> std::optional<std::size_t> {
    pthread_attr_t attr;
    std::size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      pthread_attr_getstacksize(&attr, &size);
      pthread_attr_destroy(&attr);
    }
    return size;
  }));
  BOOST_TEST(join_value(jh).value_or(0) >= std::size_t{4 << 20});
}

// Only one worker at a time may be inside the driver; many park/unpark cycles.
BOOST_AUTO_TEST_CASE(workers_take_the_shared_driver_one_at_a_time) {
  counting_driver drv(2ms);
  {
    mt4 rt({}, &drv);
    for (int round = 0; round < 20; ++round) {
      std::vector<raw_join_handle<int>> hs;
      for (int i = 0; i < 50; ++i)
        hs.push_back(rt.spawn(yield_n(rt.h, 2)));
      for (auto& jh : hs)
        BOOST_TEST_REQUIRE(join_value(jh).value_or(-1) == 2);
      std::this_thread::sleep_for(1ms);
    }
  }
  BOOST_TEST(drv.blocking_parks() > 0u);
  BOOST_TEST(!drv.overlapped());
}

// driver.hpp: shutdown() is "called once, by the thread holding the driver slot": the last
// core to shut down calls it, not every core's parker.
BOOST_AUTO_TEST_CASE(the_driver_is_shut_down_once) {
  counting_driver drv;
  {
    mt4 rt({}, &drv);
    auto jh = rt.spawn(ready(1));
    BOOST_TEST(join_value(jh).value_or(-1) == 1);
  }
  BOOST_TEST(drv.shutdowns() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
