// The blocking pool (Tokio's runtime/blocking/pool.rs, tests of tokio/tests/task_blocking.rs
// and the shutdown-timeout cases of rt_common.rs): spawn_blocking through both runtime
// flavours and on a bare pool; the thread cap, keep-alive and reuse; abort before and during
// a run; cancellation at shutdown; shutdown with a timeout while a blocking task still runs.
#include "support.hpp"

#include <swarm/scheduler/blocking_pool.hpp>
#include <swarm/scheduler/coop.hpp>

#include <boost/test/unit_test.hpp>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace swarm_sched_test;
using swarm::scheduler_options;
using swarm::task_id;
using swarm::task_meta;
using swarm::detail::blocking_pool;
namespace coop = swarm::detail::coop;

// Tracks how many jobs run at once.
struct concurrency {
  std::atomic<int> running{0};
  std::atomic<int> max_running{0};

  void enter() {
    const int now = running.fetch_add(1) + 1;
    int seen = max_running.load();
    while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
    }
  }
  void leave() { running.fetch_sub(1); }
};

scheduler_options with_cap(std::size_t cap) {
  scheduler_options o;
  o.max_blocking_threads = cap;
  return o;
}

using pool_flavours = boost::mpl::list<ct, mt2>;

} // namespace

BOOST_FIXTURE_TEST_SUITE(blocking_pool_test, bounded)

// basic_blocking: 100 jobs sleeping 5 ms each all complete with their values.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_hundred_sleeping_jobs_all_complete, Rt, all_flavours) {
  Rt rt;
  std::vector<raw_join_handle<int>> hs;
  for (int i = 0; i < 100; ++i)
    hs.push_back(rt.h.spawn_blocking([i] {
      std::this_thread::sleep_for(5ms);
      return i;
    }));
  std::size_t wrong = 0;
  for (int i = 0; i < 100; ++i)
    wrong += join_value(hs[static_cast<std::size_t>(i)]).value_or(-1) == i ? 0 : 1;
  BOOST_TEST(wrong == 0u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_blocking_job_runs_as_a_task_outside_the_runtime_and_its_budget, Rt,
                              all_flavours) {
  scheduler_options o;
  o.thread_name = "swarm-blocking";
  Rt rt(o);
  raw_join_handle<bool> jh;
  auto expected_id = std::make_shared<std::atomic<std::uint64_t>>(0);
  auto started = std::make_shared<latch>(1);
  jh = rt.h.spawn_blocking([&rt, expected_id, started] {
    started->wait_for(wait_bound);
    char name[32] = {};
    pthread_getname_np(pthread_self(), name, sizeof name);
    return swarm::current_task_id().value() == expected_id->load() && coop::current().is_unconstrained() &&
           coop::has_budget_remaining() && !rt.on_runtime_thread() && std::string(name) == "swarm-blocking";
  });
  BOOST_TEST(jh.id() != task_id());
  expected_id->store(jh.id().value());
  started->count_down();
  BOOST_TEST(join_value(jh).value_or(false));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(an_exception_in_a_blocking_job_is_reported_as_a_panic, Rt, all_flavours) {
  Rt rt;
  auto jh = rt.h.spawn_blocking([]() -> int { throw std::runtime_error("blocking boom"); });
  std::optional<outcome<int>> r = wait_for_join(jh);
  BOOST_REQUIRE(r);
  BOOST_REQUIRE(!r->has_value());
  BOOST_TEST(r->error().is_panic());
  // The pool goes on.
  auto next = rt.h.spawn_blocking([] { return 3; });
  BOOST_TEST(join_value(next).value_or(-1) == 3);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(the_terminate_hook_fires_for_blocking_tasks, Rt, all_flavours) {
  auto terminated = std::make_shared<std::atomic<std::uint64_t>>(0);
  scheduler_options o;
  o.on_task_terminate = [terminated](const task_meta& m) { terminated->store(m.id.value()); };
  Rt rt(o);
  auto jh = rt.h.spawn_blocking([] { return 1; });
  BOOST_TEST(join_value(jh).value_or(-1) == 1);
  BOOST_TEST(eventually([&] { return terminated->load() == jh.id().value(); }));
}

// spawn_from_blocking / spawn_blocking_from_blocking.
BOOST_AUTO_TEST_CASE_TEMPLATE(blocking_jobs_can_spawn_tasks_and_blocking_jobs, Rt, all_flavours) {
  Rt rt;
  auto jh = rt.h.spawn_blocking([&rt] {
    auto task = rt.spawn(ready(20));
    auto inner = rt.h.spawn_blocking([] { return 1; });
    return join_value(task).value_or(-100) + join_value(inner).value_or(-100);
  });
  BOOST_TEST(join_value(jh).value_or(-1) == 21);
}

// The cap: with max_blocking_threads = 1 jobs run one at a time.
BOOST_AUTO_TEST_CASE(a_pool_capped_at_one_thread_runs_jobs_one_at_a_time) {
  concurrency c;
  std::size_t max_threads = 0;
  blocking_pool pool(with_cap(1));
  std::vector<raw_join_handle<int>> hs;
  for (int i = 0; i < 5; ++i)
    hs.push_back(pool.spawn_blocking([&c, i] {
      c.enter();
      std::this_thread::sleep_for(10ms);
      c.leave();
      return i;
    }));
  BOOST_TEST(eventually([&] {
    max_threads = std::max(max_threads, pool.num_threads());
    return pool.queue_depth() == 0;
  }));
  for (int i = 0; i < 5; ++i)
    BOOST_TEST(join_value(hs[static_cast<std::size_t>(i)]).value_or(-1) == i);
  BOOST_TEST(c.max_running.load() == 1);
  BOOST_TEST(max_threads == 1u);
  BOOST_TEST(pool.num_threads() == 1u);
  pool.shutdown(std::chrono::nanoseconds::max());
}

// Through a runtime the cap is max_blocking_threads on top of the workers' own threads.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_runtime_with_max_blocking_threads_one_runs_blocking_jobs_one_at_a_time, Rt,
                              all_flavours) {
  concurrency c;
  Rt rt(with_cap(1));
  std::vector<raw_join_handle<unit>> hs;
  for (int i = 0; i < 4; ++i)
    hs.push_back(rt.h.spawn_blocking([&c] {
      c.enter();
      std::this_thread::sleep_for(10ms);
      c.leave();
    }));
  for (auto& jh : hs)
    BOOST_TEST(wait_for_join(jh).has_value());
  BOOST_TEST(c.max_running.load() == 1);
  BOOST_TEST(rt.h.blocking().num_threads() == (Rt::is_multi_thread ? Rt::workers : 0) + 1);
}

BOOST_AUTO_TEST_CASE(an_idle_thread_is_reused) {
  auto starts = counter();
  scheduler_options o;
  o.on_thread_start = [starts] { starts->fetch_add(1); };
  blocking_pool pool(o);
  auto first = pool.spawn_blocking([] { return 1; });
  BOOST_TEST(join_value(first).value_or(-1) == 1);
  BOOST_REQUIRE(eventually([&] { return pool.num_idle_threads() == 1; }));
  auto second = pool.spawn_blocking([] { return 2; });
  BOOST_TEST(join_value(second).value_or(-1) == 2);
  BOOST_TEST(pool.num_threads() == 1u);
  BOOST_TEST(starts->load() == 1);
  pool.shutdown(std::chrono::nanoseconds::max());
}

BOOST_AUTO_TEST_CASE(idle_threads_exit_after_the_keep_alive) {
  auto starts = counter();
  auto stops = counter();
  auto stopped_at = std::make_shared<std::atomic<clock::rep>>(0);
  scheduler_options o;
  o.thread_keep_alive = 50ms;
  o.on_thread_start = [starts] { starts->fetch_add(1); };
  o.on_thread_stop = [stops, stopped_at] {
    stopped_at->store(clock::now().time_since_epoch().count());
    stops->fetch_add(1);
  };
  blocking_pool pool(o);
  // One thread: it leaves no sooner than keep_alive after its job ended.
  auto finished_at = std::make_shared<std::atomic<clock::rep>>(0);
  auto one = pool.spawn_blocking([finished_at] {
    finished_at->store(clock::now().time_since_epoch().count());
    return 1;
  });
  BOOST_TEST(join_value(one).value_or(-1) == 1);
  BOOST_TEST(eventually([&] { return pool.num_threads() == 0 && stops->load() == 1; }));
  const auto idle_for = clock::duration(stopped_at->load() - finished_at->load());
  BOOST_TEST((idle_for >= 50ms), "left after " << std::chrono::nanoseconds(idle_for).count() << " ns idle");
  // Several threads: all of them leave.
  std::vector<raw_join_handle<int>> hs;
  for (int i = 0; i < 3; ++i)
    hs.push_back(pool.spawn_blocking([] {
      std::this_thread::sleep_for(10ms);
      return 1;
    }));
  for (auto& jh : hs)
    BOOST_TEST(join_value(jh).value_or(-1) == 1);
  // Three more threads were started (one may have run every job before the others got a
  // CPU, so wait for their start callbacks).
  BOOST_TEST(eventually([&] { return starts->load() == 4; }));
  BOOST_TEST(eventually([&] { return pool.num_threads() == 0 && stops->load() == 4; }));
  BOOST_TEST(pool.num_idle_threads() == 0u);
  // A job after they left starts a new thread.
  auto again = pool.spawn_blocking([] { return 2; });
  BOOST_TEST(join_value(again).value_or(-1) == 2);
  BOOST_TEST(starts->load() == 5);
  pool.shutdown(std::chrono::nanoseconds::max());
  BOOST_TEST(stops->load() == 5);
}

BOOST_AUTO_TEST_CASE(a_busy_thread_is_not_ended_by_the_keep_alive) {
  scheduler_options o;
  o.thread_keep_alive = 10ms;
  blocking_pool pool(o);
  auto jh = pool.spawn_blocking([] {
    std::this_thread::sleep_for(60ms);
    return 5;
  });
  BOOST_TEST(join_value(jh).value_or(-1) == 5);
  pool.shutdown(std::chrono::nanoseconds::max());
}

BOOST_AUTO_TEST_CASE(pool_metrics_count_threads_idle_threads_and_queued_jobs) {
  auto gate = std::make_shared<latch>(1);
  blocking_pool pool(with_cap(1));
  auto busy = pool.spawn_blocking([gate] { return gate->wait_for(wait_bound); });
  BOOST_REQUIRE(eventually([&] { return pool.queue_depth() == 0 && pool.num_threads() == 1; }));
  auto q1 = pool.spawn_blocking([] { return 1; });
  auto q2 = pool.spawn_blocking([] { return 2; });
  BOOST_TEST(pool.queue_depth() == 2u);
  BOOST_TEST(pool.num_threads() == 1u);
  BOOST_TEST(pool.num_idle_threads() == 0u);
  gate->count_down();
  BOOST_TEST(join_value(busy).value_or(false));
  BOOST_TEST(join_value(q1).value_or(-1) == 1);
  BOOST_TEST(join_value(q2).value_or(-1) == 2);
  BOOST_TEST(eventually([&] { return pool.num_idle_threads() == 1 && pool.queue_depth() == 0; }));
  pool.shutdown(std::chrono::nanoseconds::max());
}

// Abort of a job that has not started: it never runs and its handle is cancelled.
BOOST_AUTO_TEST_CASE(abort_before_start_cancels_a_blocking_job) {
  auto gate = std::make_shared<latch>(1);
  auto ran = counter();
  blocking_pool pool(with_cap(1));
  auto busy = pool.spawn_blocking([gate] { return gate->wait_for(wait_bound); });
  auto queued = pool.spawn_blocking([ran] {
    ran->fetch_add(1);
    return 1;
  });
  BOOST_TEST(!queued.is_finished());
  queued.abort();
  gate->count_down();
  BOOST_TEST(join_value(busy).value_or(false));
  BOOST_TEST(is_cancelled(wait_for_join(queued)));
  BOOST_TEST(ran->load() == 0);
  pool.shutdown(std::chrono::nanoseconds::max());
}

// Abort of a running job has no effect: it completes with its value.
BOOST_AUTO_TEST_CASE(abort_of_a_running_blocking_job_has_no_effect) {
  auto gate = std::make_shared<latch>(1);
  auto started = std::make_shared<latch>(1);
  blocking_pool pool({});
  auto jh = pool.spawn_blocking([gate, started] {
    started->count_down();
    gate->wait_for(wait_bound);
    return 7;
  });
  BOOST_REQUIRE(started->wait_for(wait_bound));
  jh.abort();
  jh.get_abort_handle().abort();
  gate->count_down();
  BOOST_TEST(join_value(jh).value_or(-1) == 7);
  pool.shutdown(std::chrono::nanoseconds::max());
}

BOOST_AUTO_TEST_CASE(a_job_spawned_after_shutdown_is_cancelled) {
  auto ran = counter();
  blocking_pool pool({});
  pool.shutdown(std::chrono::nanoseconds::max());
  auto jh = pool.spawn_blocking([ran] {
    ran->fetch_add(1);
    return 1;
  });
  BOOST_TEST(jh.is_finished());
  BOOST_TEST(is_cancelled(poll_now(jh)));
  BOOST_TEST(ran->load() == 0);
  BOOST_CHECK_THROW(pool.spawn_mandatory([] {}), std::logic_error);
}

// blocking_pool.hpp: "A task that has not started when the pool shuts down is cancelled,
// unless it is mandatory": shutdown cancels the queued jobs itself, and a thread that is busy
// when it happens does not start one afterwards.
BOOST_AUTO_TEST_CASE(jobs_still_queued_at_shutdown_are_cancelled) {
  auto gate = std::make_shared<latch>(1);
  auto ran = counter();
  auto pool = std::make_unique<blocking_pool>(with_cap(1));
  auto busy = pool->spawn_blocking([gate] { return gate->wait_for(wait_bound); });
  BOOST_REQUIRE(eventually([&] { return pool->queue_depth() == 0 && pool->num_threads() == 1; }));
  std::vector<raw_join_handle<int>> queued;
  for (int i = 0; i < 3; ++i)
    queued.push_back(pool->spawn_blocking([ran] {
      ran->fetch_add(1);
      return 1;
    }));
  BOOST_TEST(pool->queue_depth() == 3u);
  pool->shutdown(std::chrono::nanoseconds::zero()); // does not wait; the busy thread is detached
  gate->count_down();
  BOOST_TEST(join_value(busy).value_or(false));
  for (auto& jh : queued)
    BOOST_TEST(is_cancelled(wait_for_join(jh)));
  BOOST_TEST(ran->load() == 0);
}

BOOST_AUTO_TEST_CASE(mandatory_jobs_ignore_the_cap) {
  auto gate = std::make_shared<latch>(1);
  auto mandatory_ran = std::make_shared<latch>(1);
  blocking_pool pool(with_cap(1));
  auto busy = pool.spawn_blocking([gate] { return gate->wait_for(wait_bound); });
  pool.spawn_mandatory([mandatory_ran] { mandatory_ran->count_down(); });
  BOOST_TEST(mandatory_ran->wait_for(wait_bound));
  gate->count_down();
  BOOST_TEST(join_value(busy).value_or(false));
  pool.shutdown(std::chrono::nanoseconds::max());
}

// shutdown_timeout: shutdown(100 ms) returns although a blocking job would block for 2 s.
// The job's thread is detached and outlives the runtime: the test then lets the job finish
// (it waits on a gate for at most 2 s), checks that its handle still resolves with the value
// after the runtime is gone, and waits for that thread's last callback so that nothing of
// this test runs on into the next one.
BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_timeout_returns_while_a_blocking_job_still_runs, Rt, pool_flavours) {
  auto gate = std::make_shared<latch>(1);
  auto starts = counter();
  auto stops = counter();
  auto finished = std::make_shared<std::atomic<bool>>(false);
  raw_join_handle<int> jh;
  {
    scheduler_options o;
    o.on_thread_start = [starts] { starts->fetch_add(1); };
    o.on_thread_stop = [stops] { stops->fetch_add(1); };
    Rt rt(o);
    jh = rt.h.spawn_blocking([gate, finished] {
      gate->wait_for(2s); // the "2 s sleep", cut short once the test has seen what it needs
      finished->store(true);
      return 5;
    });
    BOOST_REQUIRE(eventually([&] {
      return rt.h.blocking().queue_depth() == 0 && rt.h.blocking().num_idle_threads() == 0 &&
             starts->load() == static_cast<int>((Rt::is_multi_thread ? Rt::workers : 0) + 1);
    }));
    const auto start = clock::now();
    rt.shutdown(100ms);
    const auto took = clock::now() - start;
    BOOST_TEST((took >= 90ms));
    BOOST_TEST((took < 1s));
    BOOST_TEST(!finished->load());
  } // the runtime is gone; the job still runs on its detached thread
  BOOST_TEST(!jh.is_finished());
  BOOST_TEST(stops->load() == starts->load() - 1);
  gate->count_down();
  BOOST_TEST(join_value(jh).value_or(-1) == 5);
  BOOST_TEST(eventually([&] { return stops->load() == starts->load(); }));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_with_a_zero_timeout_does_not_wait, Rt, pool_flavours) {
  auto gate = std::make_shared<latch>(1);
  auto stops = counter();
  auto starts = counter();
  raw_join_handle<int> jh;
  {
    scheduler_options o;
    o.on_thread_start = [starts] { starts->fetch_add(1); };
    o.on_thread_stop = [stops] { stops->fetch_add(1); };
    Rt rt(o);
    jh = rt.h.spawn_blocking([gate] {
      gate->wait_for(2s);
      return 6;
    });
    BOOST_REQUIRE(eventually([&] { return rt.h.blocking().queue_depth() == 0; }));
    const auto start = clock::now();
    rt.shutdown(std::chrono::nanoseconds::zero());
    BOOST_TEST((clock::now() - start < 1s)); // not the 2 s of the job
  }
  gate->count_down();
  BOOST_TEST(join_value(jh).value_or(-1) == 6);
  BOOST_TEST(eventually([&] { return stops->load() == starts->load(); }));
}

// shutdown_wakeup_time: without blocking work, shutdown with no limit returns promptly,
// although idle threads would otherwise wait 10 s (the keep-alive) for work.
BOOST_AUTO_TEST_CASE_TEMPLATE(shutdown_without_blocking_work_returns_promptly, Rt, pool_flavours) {
  Rt rt;
  auto jh = rt.h.spawn_blocking([] { return 1; });
  BOOST_TEST(join_value(jh).value_or(-1) == 1);
  BOOST_REQUIRE(eventually([&] { return rt.h.blocking().num_idle_threads() >= 1; }));
  const auto start = clock::now();
  rt.shutdown();
  BOOST_TEST((clock::now() - start < 1500ms)); // not the 10 s keep-alive
  BOOST_TEST(rt.h.blocking().num_threads() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
