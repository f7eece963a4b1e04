// runtime::dump() and abort_task() (issue 16): task states, spawn locations, names, poll
// counts and times, what a task waits on, the warnings, unobserved failures, and a dump taken
// while tasks churn.
//
// Deterministic where the runtime allows: a runtime that is not started runs nothing until
// the test drives it, so states before and after a poll are exact. On started runtimes the
// test waits with `eventually` (bounded) for the state it checks. Counts are asserted, never
// speeds; a busy time is only bounded below by a busy-wait the task itself did.
#include "support.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <future>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>

// Boost.Test prints what a failed check compared.
namespace swarm {
std::ostream& operator<<(std::ostream& o, task_run_state s) { return o << to_string(s); }
std::ostream& operator<<(std::ostream& o, task_wait_kind k) { return o << to_string(k); }
std::ostream& operator<<(std::ostream& o, worker_run_state s) { return o << to_string(s); }
} // namespace swarm

using namespace swarm_test;
namespace asio = boost::asio;

namespace {

std::optional<swarm::task_snapshot> find_task(const swarm::runtime_dump& d, swarm::task_id id) {
  for (const swarm::task_snapshot& t : d.tasks)
    if (t.id == id)
      return t;
  return std::nullopt;
}

// The snapshot of task `id` once `pred` holds for it (bounded); nullopt if it never did.
template <class Pred>
std::optional<swarm::task_snapshot> wait_for_task(swarm::runtime& rt, swarm::task_id id, Pred pred) {
  std::optional<swarm::task_snapshot> seen;
  eventually([&] {
    seen = find_task(rt.dump(), id);
    return seen && pred(*seen);
  });
  if (seen && !pred(*seen))
    return std::nullopt;
  return seen;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// A runtime with its own workers.
struct dump_runtime {
  swarm::runtime rt;
  explicit dump_runtime(swarm::runtime_options o) : rt(std::move(o)) { rt.start(); }
};

// Runs what is ready on a runtime that is not started, until nothing is (bounded: tasks
// here wait on timers that do not expire, so run() would not return).
void poll_until_quiet(swarm::runtime& rt) {
  for (int i = 0; i < 1000 && rt.poll() != 0; ++i) {
  }
}

swarm::runtime_options tracked_options(int workers = 2) {
  swarm::runtime_options o;
  o.worker_threads = static_cast<std::size_t>(workers);
  o.track_tasks = true;
  return o;
}

// One worker, one poll in 1 000 timed: untimed polls are the rule, and a poll is timed only
// where the sampler's rules (a thread's first, after a restart, nested) make it so.
swarm::runtime_options rarely_timed_options() {
  swarm::runtime_options o = tracked_options(1);
  o.poll_timing_interval = 1000;
  return o;
}

// Suspends on a timer that does not expire during the test (the runtime's shutdown
// cancels it).
swarm::coro<void> wait_long() {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(1));
  co_await t.async_wait(swarm::use_coro);
}

asio::awaitable<void> wait_long_aw() {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(1));
  co_await t.async_wait(asio::use_awaitable);
}

// An operation that drops its completion handler: nothing will ever resume the awaiter.
swarm::coro<void> wait_forgotten() {
  co_await asio::async_initiate<const swarm::use_coro_t, void()>([](auto&& handler) { (void)handler; },
                                                                 swarm::use_coro);
}

// The cases that read poll counts, times, waits or warnings: built with SWARM_TASK_TRACKING=0
// the library keeps none of them, and these cases are skipped.
auto needs_stats() { return boost::unit_test::enable_if<SWARM_TASK_TRACKING != 0>(); }

} // namespace

BOOST_AUTO_TEST_SUITE(dump)

BOOST_AUTO_TEST_CASE(not_dump_runtime_shows_scheduled_then_idle_then_cancelled, *needs_stats()) {
  swarm::runtime rt(tracked_options(1));
  auto h = swarm::spawn(rt.get_executor(), wait_long());
  const swarm::task_id id = h.id();

  // Spawned, never polled: in a run queue.
  swarm::runtime_dump d = rt.dump();
  BOOST_TEST(d.tracking);
  auto t = find_task(d, id);
  BOOST_REQUIRE(t);
  BOOST_TEST(t->state == swarm::task_run_state::scheduled);
  BOOST_TEST(t->poll_count == 0u);
  BOOST_TEST(t->since_last_poll.count() == 0); // a spawn takes no stamp
  BOOST_TEST(t->warnings == 0u);

  // One poll: suspended on its timer, idle, waiting on an Asio operation.
  rt.poll();
  t = find_task(rt.dump(), id);
  BOOST_REQUIRE(t);
  BOOST_TEST(t->state == swarm::task_run_state::idle);
  BOOST_TEST(t->poll_count == 1u);
  BOOST_TEST(t->waiting_on == swarm::task_wait_kind::asio_operation);
  BOOST_TEST(t->warnings == 0u);

  // A task aborted before its first poll is cancelled until a poll sees it.
  auto h2 = swarm::spawn(rt.get_executor(), wait_long());
  BOOST_TEST(rt.abort_task(h2.id()));
  t = find_task(rt.dump(), h2.id());
  BOOST_REQUIRE(t);
  BOOST_TEST(t->state == swarm::task_run_state::cancelled);
  rt.restart();
  rt.poll();
  BOOST_TEST(!find_task(rt.dump(), h2.id())); // completed and released
  BOOST_TEST(h2.is_finished());
}

BOOST_AUTO_TEST_CASE(a_task_sees_itself_running) {
  dump_runtime s(tracked_options());
  std::promise<std::optional<swarm::task_snapshot>> seen;
  auto f = seen.get_future();
  auto h = swarm::spawn(s.rt.get_executor(),
                        [&] { seen.set_value(find_task(s.rt.dump(), swarm::current_task_id())); });
  BOOST_REQUIRE(ready_in_time(f));
  auto t = f.get();
  BOOST_REQUIRE(t);
  BOOST_TEST(t->id == h.id());
  BOOST_TEST(t->state == swarm::task_run_state::running);
}

BOOST_AUTO_TEST_CASE(spawn_location_and_names_kept_verbatim) {
  swarm::runtime rt(1); // tracking off: names and locations are still there
  const std::string hostile = "<script>alert(1)</script>";
  const std::uint32_t line = __LINE__ + 1;
  auto h1 = swarm::spawn(rt.get_executor(), wait_long(), swarm::spawn_options{.name = hostile});
  auto h2 = swarm::spawn(rt.get_executor(), wait_long_aw(), swarm::spawn_options{.name = "accept loop"});
  auto h3 = swarm::spawn(
      rt.get_executor(), [] { return 1; }, swarm::spawn_options{.name = "callable"});
  auto h4 = swarm::spawn(rt.get_executor(), [] { return 2; }); // no name
  swarm::join_set<int> set;
  set.spawn(
      rt.get_executor(), [] { return 3; }, swarm::spawn_options{.name = "in a set"});

  const swarm::runtime_dump d = rt.dump();
  BOOST_TEST(!d.tracking);
  BOOST_TEST(d.tasks.size() == 5u);
  auto t1 = find_task(d, h1.id());
  BOOST_REQUIRE(t1);
  BOOST_TEST(t1->name == hostile);
  BOOST_TEST(ends_with(t1->spawn_file, "dump_test.cpp"));
  BOOST_TEST(t1->spawn_line == line);
  BOOST_TEST(t1->spawn_function.find("spawn_location_and_names_kept_verbatim") != std::string::npos);
  BOOST_TEST(find_task(d, h2.id())->name == "accept loop");
  BOOST_TEST(find_task(d, h2.id())->spawn_line == line + 1);
  BOOST_TEST(find_task(d, h3.id())->name == "callable");
  BOOST_TEST(find_task(d, h4.id())->name.empty());
  int named_in_set = 0;
  for (const auto& t : d.tasks)
    named_in_set += t.name == "in a set";
  BOOST_TEST(named_in_set == 1);
  // Tracking off: no counts, no times, no warnings.
  for (const auto& t : d.tasks) {
    BOOST_TEST(t.poll_count == 0u);
    BOOST_TEST(t.busy.count() == 0);
    BOOST_TEST(t.warnings == 0u);
  }
}

BOOST_AUTO_TEST_CASE(a_task_that_yields_k_times_has_k_plus_one_polls, *needs_stats()) {
  constexpr int k = 5;
  swarm::runtime rt(tracked_options(1));
  auto h = swarm::spawn(rt.get_executor(), []() -> swarm::coro<void> {
    for (int i = 0; i < k; ++i)
      co_await swarm::yield_now();
    co_await wait_long();
  });
  poll_until_quiet(rt);
  auto t = find_task(rt.dump(), h.id());
  BOOST_REQUIRE(t);
  BOOST_TEST(t->state == swarm::task_run_state::idle);
  BOOST_TEST(t->poll_count == std::uint64_t{k + 1});
}

BOOST_AUTO_TEST_CASE(busy_time_and_long_poll_warning, *needs_stats()) {
  swarm::runtime_options o = tracked_options();
  o.dump.long_poll = std::chrono::milliseconds(1);
  dump_runtime s(o);
  auto h = swarm::spawn(s.rt.get_executor(), []() -> swarm::coro<void> {
    busy_for(20ms);
    co_await wait_long();
  });
  auto t = wait_for_task(s.rt, h.id(), [](const swarm::task_snapshot& t) { return t.poll_count >= 1; });
  BOOST_REQUIRE(t);
  // Busy time is kept in TSC stamps and converted with a calibrated ratio (tracking.hpp,
  // stamp_clock), so 20 ms of the steady clock may read a fraction of a per cent short
  // (19.9993 ms seen in CI).
  BOOST_TEST(t->busy >= std::chrono::milliseconds(19));
  BOOST_TEST(t->longest_poll >= std::chrono::milliseconds(19));
  BOOST_TEST((t->warnings & swarm::warn_long_poll) != 0u);
  BOOST_TEST((t->warnings & swarm::warn_lost_waker) == 0u);

  // The same task on an untracked runtime: no times, no warning.
  swarm::runtime_options off;
  off.worker_threads = 2;
  off.dump.long_poll = std::chrono::milliseconds(1);
  dump_runtime s2(off);
  auto h2 = swarm::spawn(s2.rt.get_executor(), []() -> swarm::coro<void> {
    busy_for(20ms);
    co_await wait_long();
  });
  auto t2 = wait_for_task(
      s2.rt, h2.id(), [](const swarm::task_snapshot& t) { return t.state == swarm::task_run_state::idle; });
  BOOST_REQUIRE(t2);
  BOOST_TEST(t2->busy.count() == 0);
  BOOST_TEST(t2->poll_count == 0u);
  BOOST_TEST(t2->warnings == 0u);
}

// Poll times are sampled (runtime_options::poll_timing_interval): every poll is counted, one
// in the interval per thread is timed, and busy time is scaled from the timed ones. A lone
// task yielding on one worker: its polls follow each other in one batch, which ends only when
// the driver is due (every event_interval ticks, or after fair_driver_latency of task time).
BOOST_AUTO_TEST_CASE(sampled_poll_times_count_every_poll_and_time_one_in_the_interval, *needs_stats()) {
  constexpr int polls = 200;
  for (const std::uint32_t interval : {1u, 16u}) {
    swarm::runtime_options o = tracked_options(1);
    o.poll_timing_interval = interval;
    dump_runtime s(o);
    auto h = swarm::spawn(s.rt.get_executor(), []() -> swarm::coro<void> {
      for (int i = 0; i < polls - 1; ++i) {
        busy_for(std::chrono::microseconds(2));
        co_await swarm::yield_now();
      }
      co_await wait_long();
    });
    auto t = wait_for_task(s.rt, h.id(), [](const swarm::task_snapshot& t) {
      return t.poll_count == polls && t.state == swarm::task_run_state::idle;
    });
    BOOST_REQUIRE(t);
    if (interval == 1) {
      BOOST_TEST(t->timed_poll_count == t->poll_count);
    } else {
      // One in 16, and the first after each batch boundary.
      BOOST_TEST(t->timed_poll_count >= std::uint64_t{polls / interval});
      BOOST_TEST(t->timed_poll_count <= std::uint64_t{polls / interval + polls / 8});
    }
    // Scaled from the timed polls, each of which busy-waited 2 us but the last.
    BOOST_TEST(t->busy >= std::chrono::microseconds(2 * polls) * 9 / 10);
  }
}

// An untimed poll starts from the thread's last stamp, which precedes it: a poll that
// blocks its thread is seen as long while it runs, though its own time is not measured.
BOOST_AUTO_TEST_CASE(an_untimed_poll_that_blocks_is_seen_as_long_while_it_runs, *needs_stats()) {
  swarm::runtime_options o = rarely_timed_options();
  o.dump.long_poll = std::chrono::milliseconds(5);
  swarm::runtime rt(o);
  auto first = swarm::spawn(rt.get_executor(), wait_long()); // timed: the drive's first poll
  std::promise<void> started;
  std::atomic<bool> release{false};
  auto blocker = swarm::spawn(rt.get_executor(), [&]() -> swarm::coro<void> {
    started.set_value();
    for (int i = 0; i < 10'000 && !release.load(); ++i) // bounded: at most about 10 s
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    co_await wait_long();
  });
  std::thread driver([&] { rt.poll(); });
  struct join_on_exit {
    std::thread& t;
    std::atomic<bool>& release;
    ~join_on_exit() {
      release = true;
      if (t.joinable())
        t.join();
    }
  } guard{driver, release};
  auto f = started.get_future();
  BOOST_REQUIRE(ready_in_time(f));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto t = find_task(rt.dump(), blocker.id());
  BOOST_REQUIRE(t);
  BOOST_TEST(t->state == swarm::task_run_state::running);
  BOOST_TEST((t->warnings & swarm::warn_long_poll) != 0u);
  release = true;
  driver.join();
  t = find_task(rt.dump(), blocker.id());
  BOOST_REQUIRE(t);
  BOOST_TEST(t->poll_count == 1u);
  BOOST_TEST(t->timed_poll_count == 0u); // the second poll of the drive, interval 1000
  BOOST_TEST(t->busy.count() == 0);
  // Its end is the bound it started from, the end of the drive's first poll: about as old
  // as the blocked poll, not a stamp from before the drive.
  BOOST_TEST(t->since_last_poll >= std::chrono::milliseconds(20));
  BOOST_TEST(t->since_last_poll < std::chrono::seconds(10));
  auto tf = find_task(rt.dump(), first.id());
  BOOST_REQUIRE(tf);
  BOOST_TEST(tf->timed_poll_count == 1u);
}

// Whatever runs on the thread between two polls restarts the sampler: the poll after a
// handler is timed, since the thread's last stamp no longer bounds its start.
BOOST_AUTO_TEST_CASE(a_handler_between_two_polls_makes_the_next_one_timed, *needs_stats()) {
  swarm::runtime rt(rarely_timed_options());
  auto a = swarm::spawn(rt.get_executor(), wait_long());
  auto b = swarm::spawn(rt.get_executor(), wait_long());
  int ran = 0;
  asio::post(rt.get_executor(), [&] { ++ran; });
  auto c = swarm::spawn(rt.get_executor(), wait_long());
  poll_until_quiet(rt);
  BOOST_TEST(ran == 1);
  const swarm::runtime_dump d = rt.dump();
  BOOST_TEST(find_task(d, a.id())->timed_poll_count == 1u); // the drive's first poll
  BOOST_TEST(find_task(d, b.id())->timed_poll_count == 0u); // 1 of 1000
  BOOST_TEST(find_task(d, c.id())->timed_poll_count == 1u); // after the handler
  for (const auto& id : {a.id(), b.id(), c.id()})
    BOOST_TEST(find_task(d, id)->poll_count == 1u);
}

// The same for a task hook: user code that runs between two polls.
BOOST_AUTO_TEST_CASE(a_task_hook_makes_the_next_poll_timed, *needs_stats()) {
  swarm::runtime_options o = rarely_timed_options();
  int hooked = 0;
  o.on_before_task_poll = [&](const swarm::task_meta&) { ++hooked; };
  swarm::runtime rt(o);
  auto a = swarm::spawn(rt.get_executor(), wait_long());
  auto b = swarm::spawn(rt.get_executor(), wait_long());
  poll_until_quiet(rt);
  BOOST_TEST(hooked == 2);
  const swarm::runtime_dump d = rt.dump();
  BOOST_TEST(find_task(d, a.id())->timed_poll_count == 1u);
  BOOST_TEST(find_task(d, b.id())->timed_poll_count == 1u); // after the hook, not 1 of 1000
}

// A poll inside another task's poll (here: a task that polls another runtime on its thread)
// is always timed, and the outer task's stats are put back after it, so what the outer task
// awaits next is noted on it. All three polls are first polls: the outer one records in the
// thread's scratch stats, so the inner ones take their stats blocks at once (tracking.hpp).
BOOST_AUTO_TEST_CASE(a_nested_poll_is_timed_and_the_outer_task_keeps_its_stats, *needs_stats()) {
  const swarm::runtime_options o = rarely_timed_options();
  swarm::runtime inner(o);
  auto i1 = swarm::spawn(inner.get_executor(), wait_long());
  auto i2 = swarm::spawn(inner.get_executor(), wait_long());
  swarm::runtime outer(o);
  auto target = swarm::spawn(outer.get_executor(), wait_long());
  const swarm::task_id target_id = target.id();
  std::size_t inner_ran = 0;
  auto driver = swarm::spawn(outer.get_executor(), [&, h = std::move(target)]() mutable -> swarm::coro<void> {
    inner_ran = inner.poll(); // i1 and i2 polled inside this poll
    co_await h;
  });
  poll_until_quiet(outer);
  BOOST_TEST(inner_ran >= 2u);
  const swarm::runtime_dump di = inner.dump();
  BOOST_TEST(find_task(di, i1.id())->timed_poll_count == 1u);
  BOOST_TEST(find_task(di, i2.id())->timed_poll_count == 1u); // nested: not 1 of 1000
  auto d = find_task(outer.dump(), driver.id());
  BOOST_REQUIRE(d);
  BOOST_TEST(d->poll_count == 1u); // not counted again by the polls nested in it
  BOOST_TEST(d->waiting_on == swarm::task_wait_kind::join);
  BOOST_TEST(d->wait_target == target_id);
}

BOOST_AUTO_TEST_CASE(poll_timing_interval_out_of_range_is_refused) {
  for (const std::uint32_t bad : {0u, (1u << 20) + 1}) {
    swarm::runtime_options o;
    o.poll_timing_interval = bad;
    BOOST_CHECK_THROW(swarm::runtime rt(o), std::invalid_argument);
  }
  swarm::runtime_options o;
  o.poll_timing_interval = 1u << 20;
  BOOST_CHECK_NO_THROW(swarm::runtime rt(o));
}

BOOST_AUTO_TEST_CASE(waits_on_a_join_a_join_set_and_an_operation, *needs_stats()) {
  swarm::runtime rt(tracked_options(1));
  auto ex = rt.get_executor();
  auto target = swarm::spawn(ex, wait_long());
  const swarm::task_id target_id = target.id();
  // A coro awaiting the join handle; an Asio coroutine awaiting one with async_wait.
  auto coro_joiner = swarm::spawn(ex, [h = std::move(target)]() mutable -> swarm::coro<void> { co_await h; });
  auto target2 = swarm::spawn(ex, wait_long_aw());
  const swarm::task_id target2_id = target2.id();
  auto aw_joiner = swarm::spawn(ex, [h = std::move(target2)]() mutable -> asio::awaitable<void> {
    co_await h.async_wait(asio::use_awaitable);
  });
  auto set_joiner = swarm::spawn(ex, []() -> swarm::coro<void> {
    swarm::join_set<void> set;
    set.spawn(co_await asio::this_coro::executor, wait_long());
    co_await set.async_join_next(swarm::use_coro);
  });
  poll_until_quiet(rt);

  const swarm::runtime_dump d = rt.dump();
  auto j = find_task(d, coro_joiner.id());
  BOOST_REQUIRE(j);
  BOOST_TEST(j->state == swarm::task_run_state::idle);
  BOOST_TEST(j->waiting_on == swarm::task_wait_kind::join);
  BOOST_TEST(j->wait_target == target_id);
  auto a = find_task(d, aw_joiner.id());
  BOOST_REQUIRE(a);
  BOOST_TEST(a->waiting_on == swarm::task_wait_kind::join);
  BOOST_TEST(a->wait_target == target2_id);
  auto s = find_task(d, set_joiner.id());
  BOOST_REQUIRE(s);
  BOOST_TEST(s->waiting_on == swarm::task_wait_kind::join_set);
  BOOST_TEST(find_task(d, target_id)->waiting_on == swarm::task_wait_kind::asio_operation);
  BOOST_TEST(find_task(d, target2_id)->waiting_on == swarm::task_wait_kind::asio_operation);
  // The runtime goes with every joiner still waiting (task_test's
  // runtime_destruction_frees_a_task_awaiting_a_join: nothing is left behind).
}

BOOST_AUTO_TEST_CASE(lost_waker_warning, *needs_stats()) {
  swarm::runtime_options o = tracked_options(1);
  o.dump.lost_waker_idle = std::chrono::microseconds(1);
  swarm::runtime rt(o);
  auto lost = swarm::spawn(rt.get_executor(), wait_forgotten());
  auto timer = swarm::spawn(rt.get_executor(), wait_long()); // its timer holds a waker
  auto timer_aw = swarm::spawn(rt.get_executor(), wait_long_aw());
  poll_until_quiet(rt);
  std::this_thread::sleep_for(2ms);
  const swarm::runtime_dump d = rt.dump();
  auto t = find_task(d, lost.id());
  BOOST_REQUIRE(t);
  BOOST_TEST(t->state == swarm::task_run_state::idle);
  BOOST_TEST((t->warnings & swarm::warn_lost_waker) != 0u);
  BOOST_TEST((find_task(d, timer.id())->warnings & swarm::warn_lost_waker) == 0u);
  BOOST_TEST((find_task(d, timer_aw.id())->warnings & swarm::warn_lost_waker) == 0u);
}

BOOST_AUTO_TEST_CASE(failure_after_the_handle_was_dropped_is_kept) {
  swarm::runtime rt(1);
  auto doomed = []() -> int { throw std::runtime_error("boom 16"); };
  swarm::task_id id;
  std::uint32_t line = 0;
  {
    line = __LINE__ + 1;
    auto h = swarm::spawn(rt.get_executor(), doomed, swarm::spawn_options{.name = "doomed"});
    id = h.id();
  } // dropped before the task ever ran
  // A failure seen through its handle is not one.
  auto seen = swarm::spawn(rt.get_executor(), []() -> int { throw std::runtime_error("seen"); });
  BOOST_TEST(run_bounded(rt));
  BOOST_TEST(seen.is_finished());
  const swarm::runtime_dump d = rt.dump();
  BOOST_REQUIRE(d.unobserved_failures.size() == 1u);
  const swarm::unobserved_failure& f = d.unobserved_failures.front();
  BOOST_TEST(f.id == id);
  BOOST_TEST(f.name == "doomed");
  BOOST_TEST(f.what == "boom 16");
  BOOST_TEST(f.spawn_line == line);
  BOOST_TEST(ends_with(f.spawn_file, "dump_test.cpp"));
}

BOOST_AUTO_TEST_CASE(abort_task_by_id, *needs_stats()) {
  dump_runtime s(tracked_options());
  auto h = swarm::spawn(s.rt.get_executor(), wait_long());
  BOOST_REQUIRE(wait_for_task(s.rt, h.id(), [](const swarm::task_snapshot& t) {
    return t.state == swarm::task_run_state::idle && t.poll_count >= 1;
  }));
  BOOST_TEST(s.rt.abort_task(h.id()));
  std::future<void> f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  bool cancelled = false;
  try {
    f.get();
  } catch (const swarm::join_error& e) {
    cancelled = e.is_cancelled();
  }
  BOOST_TEST(cancelled);
  // Released from the task list just after its handle saw the end.
  BOOST_TEST(eventually([&] { return !find_task(s.rt.dump(), h.id()); }));
  BOOST_TEST(!s.rt.abort_task(h.id()));                            // gone
  BOOST_TEST(!s.rt.abort_task(swarm::task_id(~std::uint64_t{0}))); // never existed
}

BOOST_AUTO_TEST_CASE(workers_and_queues) {
  {
    swarm::runtime rt(3);
    const swarm::runtime_dump d = rt.dump();
    BOOST_TEST(d.workers.size() == 3u);
    for (const auto& w : d.workers) {
      BOOST_TEST((w.state == swarm::worker_run_state::parked));
      BOOST_TEST(!w.parked_with_work);
    }
    BOOST_TEST(d.unobserved_failures.empty());
  }
  {
    dump_runtime s(tracked_options());
    std::promise<swarm::runtime_dump> seen;
    auto f = seen.get_future();
    swarm::spawn(s.rt.get_executor(), [&] { seen.set_value(s.rt.dump()); });
    BOOST_REQUIRE(ready_in_time(f));
    const swarm::runtime_dump d = f.get();
    int running = 0;
    for (const auto& w : d.workers)
      running += w.state == swarm::worker_run_state::running;
    BOOST_TEST(running >= 1); // the worker taking the dump
  }
}

// dump() from outside and from inside tasks while tasks are spawned, yield and end.
BOOST_AUTO_TEST_CASE(dump_while_tasks_churn) {
  dump_runtime s(tracked_options());
  auto ex = s.rt.get_executor();
  std::atomic<int> done{0};
  std::atomic<std::size_t> inner_dumps{0};
  constexpr int tasks = 400;
  auto spawner = swarm::spawn(ex, [&]() -> swarm::coro<void> {
    for (int i = 0; i < tasks; ++i) {
      swarm::spawn(
          ex,
          [&, i]() -> swarm::coro<void> {
            co_await swarm::yield_now();
            if (i % 50 == 0)
              inner_dumps += s.rt.dump().tasks.size() != 0;
            ++done;
          },
          swarm::spawn_options{.name = "churn " + std::to_string(i)});
      if (i % 8 == 0)
        co_await swarm::yield_now();
    }
  });
  std::size_t outer = 0;
  while (done.load() < tasks && outer < 100000) {
    const swarm::runtime_dump d = s.rt.dump();
    for (const auto& t : d.tasks)
      BOOST_REQUIRE(t.spawn_line != 0u);
    ++outer;
  }
  BOOST_TEST(eventually([&] { return done.load() == tasks; }));
  BOOST_TEST(inner_dumps.load() == std::size_t{tasks / 50});
}

BOOST_AUTO_TEST_SUITE_END()
