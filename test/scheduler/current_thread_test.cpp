// The current-thread flavour driven directly (Tokio's runtime/scheduler/current_thread/, the
// current-thread cases of tokio/tests/rt_common.rs): nothing runs until a thread calls
// run_until; local schedules are FIFO with no LIFO slot; the global queue and the driver get
// their turns every global_queue_interval and event_interval ticks; one driver at a time;
// shutdown while driven.
#include "support.hpp"

#include <boost/test/unit_test.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using namespace swarm_sched_test;
using swarm::scheduler_options;
using swarm::task_id;
using handle = swarm::detail::current_thread::handle;

template <class F>
auto spawn(handle& h, F f) {
  return h.spawn(std::move(f), task_id::next());
}

// Appends `tag` to a shared log each time it is polled; wakes itself `self_wakes` times.
auto logger(std::shared_ptr<std::vector<int>> log, int tag, int self_wakes = 0) {
  return poll_fn<unit>([log, tag, self_wakes](poll_context& cx) mutable -> std::optional<unit> {
    log->push_back(tag);
    if (self_wakes-- > 0) {
      cx.get_waker().wake_by_ref();
      return std::nullopt;
    }
    return unit{};
  });
}

// Runs run_until(stop) on a thread of its own.
class background_driver {
public:
  explicit background_driver(handle& h)
      : h_(h), thread_([this] {
          try {
            polls_ = h_.run_until([this] {
              inside_.store(true, std::memory_order_release);
              return stop_.load(std::memory_order_acquire);
            });
          } catch (...) {
            threw_ = true;
          }
          returned_.store(true, std::memory_order_release);
        }) {
    while (!inside_.load(std::memory_order_acquire) && !returned_.load(std::memory_order_acquire))
      std::this_thread::yield();
  }
  ~background_driver() { stop(); }
  void stop() {
    stop_.store(true, std::memory_order_release);
    h_.unpark();
    if (thread_.joinable())
      thread_.join();
  }
  void set_stop_flag_only() { stop_.store(true, std::memory_order_release); }
  bool returned() const { return returned_.load(std::memory_order_acquire); }
  bool threw() const { return threw_; }

private:
  handle& h_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> inside_{false};
  std::atomic<bool> returned_{false};
  std::size_t polls_ = 0;
  bool threw_ = false;
  std::thread thread_;
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(current_thread, bounded)

BOOST_AUTO_TEST_CASE(nothing_runs_until_a_thread_drives_the_runtime) {
  handle h({}, nullptr);
  auto polls = counter();
  auto jh = spawn(h, counted(ready(3), polls));
  std::this_thread::sleep_for(10ms);
  BOOST_TEST(polls->load() == 0);
  BOOST_TEST(!jh.is_finished());
  BOOST_TEST(h.global_queue_depth() == 1u);
  BOOST_TEST(drive_until(h, [&] { return jh.is_finished(); }));
  BOOST_TEST(join_value(jh).value_or(-1) == 3);
  h.shutdown();
}

BOOST_AUTO_TEST_CASE(run_until_returns_once_the_predicate_holds_and_counts_its_polls) {
  handle h({}, nullptr);
  std::vector<raw_join_handle<int>> hs;
  for (int i = 0; i < 3; ++i)
    hs.push_back(spawn(h, ready(i)));
  const std::size_t polls = h.run_until([&] {
    for (auto& jh : hs)
      if (!jh.is_finished())
        return false;
    return true;
  });
  BOOST_TEST(polls == 3u);
  // Already true: returns at once without polling.
  BOOST_TEST(h.run_until([] { return true; }) == 0u);
  h.shutdown();
}

BOOST_AUTO_TEST_CASE(the_runtime_is_not_bound_to_one_thread_between_runs) {
  handle h({}, nullptr);
  auto first = spawn(h, ready(1));
  std::thread([&] { drive_until(h, [&] { return first.is_finished(); }); }).join();
  auto second = spawn(h, yield_n(h, 2));
  BOOST_TEST(drive_until(h, [&] { return second.is_finished(); }));
  BOOST_TEST(join_value(first).value_or(-1) == 1);
  BOOST_TEST(join_value(second).value_or(-1) == 2);
  h.shutdown();
}

BOOST_AUTO_TEST_CASE(a_second_driver_is_refused_with_logic_error) {
  handle h({}, nullptr);
  {
    background_driver bg(h);
    BOOST_CHECK_THROW(h.run_until([] { return false; }), std::logic_error);
    BOOST_TEST(!bg.returned());
  }
  // Once the first driver left, the calling thread may drive.
  BOOST_TEST(h.run_until([] { return true; }) == 0u);
  h.shutdown();
}

BOOST_AUTO_TEST_CASE(unpark_makes_the_parked_driver_recheck_its_predicate) {
  handle h({}, nullptr);
  background_driver bg(h);
  std::this_thread::sleep_for(20ms); // parked: nothing to do
  bg.set_stop_flag_only();
  std::this_thread::sleep_for(30ms);
  BOOST_TEST(!bg.returned()); // nobody told it to look
  h.unpark();
  BOOST_TEST(eventually([&] { return bg.returned(); }));
  bg.stop();
  h.shutdown();
}

// The same through a driver: unpark reaches a thread blocked inside driver::park.
BOOST_AUTO_TEST_CASE(unpark_interrupts_a_driver_park) {
  counting_driver drv(5s);
  handle h({}, &drv);
  background_driver bg(h);
  BOOST_REQUIRE(eventually([&] { return drv.blocking_parks() >= 1; }));
  bg.set_stop_flag_only();
  const auto start = clock::now();
  h.unpark();
  BOOST_TEST(eventually([&] { return bg.returned(); }, 1s));
  BOOST_TEST((clock::now() - start < 1s));
  bg.stop();
  h.shutdown();
  BOOST_TEST(drv.shutdowns() == 1u);
}

BOOST_AUTO_TEST_CASE(a_wake_from_another_thread_resumes_a_parked_driver) {
  handle h({}, nullptr);
  auto [tx, rx] = oneshot<int>();
  auto jh = spawn(h, std::move(rx));
  std::thread sender([tx = std::move(tx)]() mutable {
    std::this_thread::sleep_for(20ms);
    tx.send(5);
  });
  // No watchdog: only the wake can get the driver out of its park.
  const std::size_t polls = h.run_until([&] { return jh.is_finished(); });
  sender.join();
  BOOST_TEST(polls == 2u);
  BOOST_TEST(join_value(jh).value_or(std::nullopt).value_or(-1) == 5);
  BOOST_TEST(h.remote_schedule_count() == 2u); // the spawn and the wake
  h.shutdown();
}

// No LIFO slot: tasks spawned from a task run in spawn order, after it.
BOOST_AUTO_TEST_CASE(local_spawns_run_in_spawn_order) {
  handle h({}, nullptr);
  auto log = std::make_shared<std::vector<int>>();
  auto outer = spawn(h, poll_fn<unit>([&h, log](poll_context&) -> std::optional<unit> {
                       for (int i = 1; i <= 5; ++i)
                         spawn(h, logger(log, i));
                       log->push_back(0);
                       return unit{};
                     }));
  BOOST_TEST(drive_until(h, [&] { return log->size() == 6; }));
  BOOST_TEST(*log == std::vector<int>({0, 1, 2, 3, 4, 5}), boost::test_tools::per_element());
  h.shutdown();
}

// A task that wakes itself goes behind the work already queued.
BOOST_AUTO_TEST_CASE(a_self_woken_task_goes_behind_other_local_work) {
  handle h({}, nullptr);
  auto log = std::make_shared<std::vector<int>>();
  auto outer = spawn(h, poll_fn<unit>([&h, log](poll_context&) -> std::optional<unit> {
                       spawn(h, logger(log, 1, 1));
                       spawn(h, logger(log, 2));
                       spawn(h, logger(log, 3));
                       return unit{};
                     }));
  BOOST_TEST(drive_until(h, [&] { return log->size() == 4; }));
  BOOST_TEST(*log == std::vector<int>({1, 2, 3, 1}), boost::test_tools::per_element());
  h.shutdown();
}

// Under local load, the global queue is looked at every global_queue_interval ticks.
BOOST_AUTO_TEST_CASE(the_global_queue_gets_a_turn_every_interval_under_local_load) {
  scheduler_options o;
  o.global_queue_interval = 5;
  handle h(o, nullptr);
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto spins = counter();
  auto spin = spawn(h, spinner(stop, spins)); // tick 1 takes it from the global queue
  auto target =
      spawn(h, poll_fn<int>([spins](poll_context&) -> std::optional<int> { return spins->load(); }));
  BOOST_TEST(drive_until(h, [&] { return target.is_finished(); }));
  // Ticks 2-4 poll the spinner from the local queue; tick 5 looks at the global queue first.
  BOOST_TEST(join_value(target).value_or(-1) == 4);
  stop->store(true);
  BOOST_TEST(drive_until(h, [&] { return spin.is_finished(); }));
  h.shutdown();
}

// io_driver_called_when_under_load, exactly: one zero-timeout driver poll per
// event_interval ticks while the local queue never empties.
BOOST_AUTO_TEST_CASE(the_driver_is_polled_every_event_interval_ticks_under_load) {
  for (std::uint32_t interval : {7u, 61u}) {
    counting_driver drv;
    scheduler_options o;
    o.event_interval = interval;
    handle h(o, &drv);
    auto stop = std::make_shared<std::atomic<bool>>(false);
    auto spins = counter();
    auto spin = spawn(h, spinner(stop, spins));
    const int n = static_cast<int>(10 * interval);
    h.run_until([&] { return spins->load() >= n; }); // never idle: no watchdog needed
    BOOST_TEST(spins->load() == n);
    BOOST_TEST(drv.zero_polls() == 10u, "event_interval " << interval);
    BOOST_TEST(drv.blocking_parks() == 0u);
    stop->store(true);
    BOOST_TEST(drive_until(h, [&] { return spin.is_finished(); }));
    h.shutdown();
  }
}

BOOST_AUTO_TEST_CASE(defer_outside_the_driving_thread_wakes_at_once) {
  handle h({}, nullptr);
  thread_waker w;
  h.defer(w.get());
  BOOST_TEST(w.wake_count() == 1u);
  h.shutdown();
}

BOOST_AUTO_TEST_CASE(is_current_worker_holds_only_on_the_driving_thread) {
  handle h({}, nullptr);
  BOOST_TEST(!h.is_current_worker());
  auto jh =
      spawn(h, poll_fn<bool>([&h](poll_context&) -> std::optional<bool> { return h.is_current_worker(); }));
  BOOST_TEST(drive_until(h, [&] { return jh.is_finished(); }));
  BOOST_TEST(join_value(jh).value_or(false));
  BOOST_TEST(!h.is_current_worker());
  h.shutdown();
}

// Shutdown from another thread while one drives: the driver leaves run_until, and the
// cancelled futures are destroyed on the shutting-down thread acting as the driver.
BOOST_AUTO_TEST_CASE(shutdown_while_another_thread_drives_cancels_on_the_calling_thread) {
  handle h({}, nullptr);
  auto polls = counter();
  auto drops = counter();
  std::thread::id dropped_on;
  bool dropped_as_driver = false;
  auto jh = spawn(h, counted(pending_forever(), polls, on_drop([&] {
                               drops->fetch_add(1);
                               dropped_on = std::this_thread::get_id();
                               dropped_as_driver = h.is_current_worker();
                             })));
  background_driver bg(h);
  BOOST_REQUIRE(eventually([&] { return polls->load() == 1; }));
  h.shutdown();
  BOOST_TEST(eventually([&] { return bg.returned(); }));
  BOOST_TEST(!bg.threw());
  BOOST_TEST(drops->load() == 1);
  BOOST_TEST((dropped_on == std::this_thread::get_id()));
  BOOST_TEST(dropped_as_driver);
  BOOST_TEST(is_cancelled(poll_now(jh)));
}

BOOST_AUTO_TEST_CASE(run_until_after_shutdown_returns_at_once) {
  handle h({}, nullptr);
  auto jh = spawn(h, ready(1));
  h.shutdown();
  BOOST_TEST(h.run_until([] { return false; }) == 0u);
  BOOST_TEST(is_cancelled(poll_now(jh)));
}

// Wakes and spawns from destructors that shutdown runs stay local and are dropped.
BOOST_AUTO_TEST_CASE(wakes_and_spawns_from_destructors_during_shutdown_are_dropped) {
  handle h({}, nullptr);
  auto polls = counter();
  auto late_polls = counter();
  auto a = oneshot<int>();
  auto waiter = spawn(h, counted(std::move(a.second), polls));
  std::optional<raw_join_handle<int>> late;
  auto holder = spawn(h, counted(pending_forever(), polls,
                                 on_drop([&, tx = std::make_shared<oneshot_sender<int>>(std::move(a.first))] {
                                   tx->send(1); // wakes `waiter`
                                   late.emplace(spawn(h, counted(ready(2), late_polls)));
                                 })));
  BOOST_TEST(drive_until(h, [&] { return polls->load() == 2; }));
  h.shutdown();
  BOOST_TEST(is_cancelled(poll_now(holder)));
  BOOST_TEST(is_cancelled(poll_now(waiter)));
  BOOST_REQUIRE(late.has_value());
  BOOST_TEST(is_cancelled(poll_now(*late)));
  BOOST_TEST(late_polls->load() == 0);
  BOOST_TEST(h.num_alive_tasks() == 0u);
}

// A thread that starts run_until while another thread is inside shutdown (destroying the
// cancelled futures as the driver) finds the runtime shut down and returns.
BOOST_AUTO_TEST_CASE(run_until_racing_shutdown_returns_instead_of_throwing) {
  handle h({}, nullptr);
  auto in_destructor = std::make_shared<latch>(1);
  auto jh = spawn(h, counted(pending_forever(), nullptr, on_drop([in_destructor] {
                               in_destructor->count_down();
                               std::this_thread::sleep_for(100ms);
                             })));
  std::thread closer([&] { h.shutdown(); });
  BOOST_REQUIRE(in_destructor->wait_for(wait_bound));
  std::size_t polls = 99;
  BOOST_CHECK_NO_THROW(polls = h.run_until([] { return false; }));
  BOOST_TEST(polls == 0u);
  closer.join();
  BOOST_TEST(is_cancelled(poll_now(jh)));
}

BOOST_AUTO_TEST_CASE(blocking_work_from_a_task_runs_on_the_pool) {
  handle h({}, nullptr);
  auto jh = spawn(h, poll_fn<int>([&h, b = std::optional<raw_join_handle<int>>()](
                                      poll_context& cx) mutable -> std::optional<int> {
                    if (!b)
                      b.emplace(h.spawn_blocking([&h] { return h.is_current_worker() ? -1 : 21; }));
                    std::optional<outcome<int>> r = b->poll(cx.get_waker());
                    if (!r)
                      return std::nullopt;
                    return r->has_value() ? r->value() * 2 : -2;
                  }));
  BOOST_TEST(drive_until(h, [&] { return jh.is_finished(); }));
  BOOST_TEST(join_value(jh).value_or(-3) == 42);
  BOOST_TEST(h.blocking().num_threads() == 1u);
  h.shutdown();
}

BOOST_AUTO_TEST_SUITE_END()
