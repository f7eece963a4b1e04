// What a user gets for misusing the public API: a clear error, never a hang, a crash or a
// lost completion. Cases that hung or crashed before run in a child process under a
// watchdog (run_in_child), so that a regression fails the test instead of the suite.
// doc/misuse.md lists each misuse with what it gets; these tests keep that table true.
#include "child_process.hpp"
#include "support.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

} // namespace

BOOST_AUTO_TEST_SUITE(misuse)

// Awaiting an empty join_handle throws from the operation's initiation, out of the task's
// drain. That handler was counted by the task's queue and never accounted for, so the
// queue's drainers (and ~runtime) spun for ever on an op that was not there.
BOOST_AUTO_TEST_CASE(awaiting_an_empty_join_handle_throws_and_the_runtime_still_ends) {
  const auto r = swarm_test::run_in_child(20s, [] {
    std::string what;
    {
      swarm::runtime rt(2);
      try {
        rt.block_on([]() -> asio::awaitable<int> {
          swarm::join_handle<int> empty;
          co_return co_await std::move(empty);
        }());
      } catch (const std::logic_error& e) {
        what = e.what();
      }
    } // ~runtime: spun at 100% CPU before
    return contains(what, "empty handle") ? 0 : 1;
  });
  BOOST_TEST(!r.timed_out, "the runtime hung: " << r.err);
  BOOST_TEST(r.succeeded(), "exit " << r.exit_code << " signal " << r.signal << ": " << r.err);
}

// block_on rethrows the coroutine's own exception (Tokio resumes the panic), not the
// join_error that carries it.
BOOST_AUTO_TEST_CASE(block_on_rethrows_the_coroutines_own_exception) {
  swarm::runtime rt(1);
  try {
    rt.block_on([]() -> asio::awaitable<int> {
      throw std::runtime_error("x");
      co_return 1;
    }());
    BOOST_FAIL("block_on returned");
  } catch (const swarm::join_error& e) {
    BOOST_FAIL("block_on threw join_error: " << e.what());
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()) == "x");
  }
}

// After shutdown, spawn and spawn_blocking refuse alike.
BOOST_AUTO_TEST_CASE(spawn_and_spawn_blocking_after_shutdown_throw_logic_error) {
  swarm::runtime rt(1);
  rt.shutdown();
  BOOST_CHECK_THROW(swarm::spawn(rt.get_executor(), [] { return 1; }), std::logic_error);
  BOOST_CHECK_THROW(swarm::spawn_blocking(rt.get_executor(), [] { return 1; }), std::logic_error);
  try {
    swarm::spawn_blocking(rt.get_executor(), [] {});
  } catch (const std::logic_error& e) {
    BOOST_TEST(contains(e.what(), "shut down"), e.what());
  }
}

// A wait is outstanding work, as any Asio operation: run() on a runtime with nothing else
// to do stays until the wait's handler has run, inside it. Before, run() returned at once,
// the callback was lost, and ~runtime deadlocked (work_finished -> stop under shutdown's
// lock).
BOOST_AUTO_TEST_CASE(a_pending_wait_on_a_blocking_task_keeps_run_running) {
  const auto r = swarm_test::run_in_child(20s, [] {
    std::atomic<int> ran_in_run{0};
    std::size_t handled = 0;
    {
      swarm::runtime rt(2);
      auto h = swarm::spawn_blocking(rt.get_executor(), [] {
        std::this_thread::sleep_for(200ms);
        return 42;
      });
      std::atomic<bool> inside{false};
      h.async_wait([&](std::exception_ptr e, int v) {
        if (!e && v == 42 && inside)
          ++ran_in_run;
      });
      inside = true;
      handled = rt.run();
      inside = false;
    }
    return ran_in_run == 1 && handled >= 1 ? 0 : 1;
  });
  BOOST_TEST(!r.timed_out, "hung: " << r.err);
  BOOST_TEST(r.succeeded(), "exit " << r.exit_code << " signal " << r.signal << ": " << r.err);
}

// A completion handler that throws: as on io_context, the exception leaves run() on the
// thread that ran the handler (it called std::terminate before).
BOOST_AUTO_TEST_CASE(a_throwing_wait_handler_throws_out_of_run) {
  const auto r = swarm_test::run_in_child(20s, [] {
    std::string what;
    {
      swarm::runtime rt(1);
      auto h = swarm::spawn(rt.get_executor(), [] { return 1; });
      h.async_wait([](std::exception_ptr, int) { throw std::runtime_error("from the handler"); });
      try {
        rt.run();
      } catch (const std::runtime_error& e) {
        what = e.what();
      }
    }
    return what == "from the handler" ? 0 : 1;
  });
  BOOST_TEST(!r.timed_out, "hung: " << r.err);
  BOOST_TEST(r.succeeded(), "exit " << r.exit_code << " signal " << r.signal << ": " << r.err);
}

BOOST_AUTO_TEST_CASE(worker_threads_zero_is_refused_and_a_thousand_work) {
  swarm::runtime_options none;
  none.worker_threads = 0;
  try {
    swarm::runtime rt(none);
    BOOST_FAIL("a runtime with no worker was built");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(contains(e.what(), "worker_threads must be at least 1"), e.what());
  }
  swarm::runtime_options many;
  many.worker_threads = 1000;
  swarm::runtime rt(many);
  rt.start();
  std::vector<swarm::join_handle<int>> hs;
  for (int i = 0; i < 2000; ++i)
    hs.push_back(swarm::spawn(rt.get_executor(), [i] { return i; }));
  long sum = 0;
  for (auto& h : hs) {
    auto f = h.async_wait(asio::use_future);
    BOOST_REQUIRE(swarm_test::ready_in_time(f, 30s));
    sum += f.get();
  }
  BOOST_TEST(sum == 1999L * 2000 / 2);
  BOOST_TEST(rt.metrics().num_workers == 1000u);
  rt.shutdown();
}

// An exception with nowhere to go (here a task hook's) is dropped, and counted.
BOOST_AUTO_TEST_CASE(a_throwing_hook_counts_in_swallowed_exception_count) {
  swarm::runtime_options o;
  o.worker_threads = 1;
  o.on_task_spawn = [](const swarm::task_meta&) { throw std::runtime_error("spawn hook"); };
  swarm::runtime rt(o);
  rt.start();
  const std::uint64_t before = rt.metrics().swallowed_exception_count;
  swarm::join_handle<int> h = swarm::spawn(rt.get_executor(), [] { return 1; });
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(swarm_test::ready_in_time(f, 30s));
  BOOST_TEST(f.get() == 1);
  BOOST_TEST(rt.metrics().swallowed_exception_count == before + 1); // once, by spawn() itself
  rt.shutdown();
}

// More blocking calls than blocking threads: the rest queue, and every one completes.
BOOST_AUTO_TEST_CASE(more_spawn_blocking_calls_than_blocking_threads_all_complete) {
  swarm::runtime_options o;
  o.worker_threads = 1;
  o.max_blocking_threads = 2;
  swarm::runtime rt(o);
  rt.start();
  std::vector<swarm::join_handle<int>> hs;
  for (int i = 0; i < 20; ++i)
    hs.push_back(swarm::spawn_blocking(rt.get_executor(), [i] {
      std::this_thread::sleep_for(2ms);
      return i;
    }));
  int done = 0;
  for (auto& h : hs) {
    auto f = h.async_wait(asio::use_future);
    BOOST_REQUIRE(swarm_test::ready_in_time(f, 30s));
    done += f.get() >= 0;
  }
  BOOST_TEST(done == 20);
  // The owned worker runs on a pool thread too (as in Tokio, counted apart from the limit).
  BOOST_TEST(rt.metrics().num_blocking_threads <= o.max_blocking_threads + o.worker_threads);
}

// stop() while another thread is inside block_on: block_on leaves with a clear error
// (restart() lets it be called again), never hangs.
BOOST_AUTO_TEST_CASE(stop_during_block_on_ends_it_with_a_clear_error) {
  const auto r = swarm_test::run_in_child(20s, [] {
    swarm::runtime rt(1);
    std::thread stopper([&] {
      std::this_thread::sleep_for(50ms);
      rt.stop();
    });
    std::string what;
    try {
      rt.block_on([]() -> asio::awaitable<int> {
        asio::steady_timer t(co_await asio::this_coro::executor, 1h);
        co_await t.async_wait(asio::use_awaitable);
        co_return 1;
      }());
    } catch (const std::logic_error& e) {
      what = e.what();
    }
    stopper.join();
    if (!contains(what, "stopped"))
      return 1;
    rt.restart();
    return rt.block_on([]() -> asio::awaitable<int> { co_return 5; }()) == 5 ? 0 : 2;
  });
  BOOST_TEST(!r.timed_out, "hung: " << r.err);
  BOOST_TEST(r.succeeded(), "exit " << r.exit_code << " signal " << r.signal << ": " << r.err);
}

// Calls that only make sense from outside the runtime, made from inside one of its tasks.
BOOST_AUTO_TEST_CASE(block_on_and_shutdown_from_inside_a_task_throw_logic_error) {
  swarm::runtime rt(1);
  rt.start();
  auto h = swarm::spawn(rt.get_executor(), [&rt] {
    std::string errors;
    try {
      rt.block_on([]() -> asio::awaitable<int> { co_return 1; }());
    } catch (const std::logic_error& e) {
      errors += e.what();
    }
    try {
      rt.shutdown();
    } catch (const std::logic_error& e) {
      errors += e.what();
    }
    return errors;
  });
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(swarm_test::ready_in_time(f, 20s));
  const std::string errors = f.get();
  BOOST_TEST(contains(errors, "block_on: called from one of the runtime's own threads"), errors);
  BOOST_TEST(contains(errors, "cannot be shut down from one of its own"), errors);
  rt.shutdown();
}

// An executor of another context, type-erased so that the mistake compiles.
BOOST_AUTO_TEST_CASE(spawn_on_the_executor_of_another_context_throws_invalid_argument) {
  asio::io_context io;
  asio::any_io_executor ex = io.get_executor();
  try {
    swarm::spawn(ex, [] { return 1; });
    BOOST_FAIL("spawned on an io_context");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(contains(e.what(), "does not belong to a swarm::runtime"), e.what());
  }
}

// Handles that outlive their runtime: the runtime's destruction resolved their tasks, so
// waiting gives the outcome, abort is a no-op and destruction frees the task.
BOOST_AUTO_TEST_CASE(handles_outliving_their_runtime_are_inert) {
  const auto r = swarm_test::run_in_child(20s, [] {
    swarm::join_handle<int> done, pending;
    swarm::abort_handle done_abort, pending_abort;
    {
      swarm::runtime rt(1);
      rt.start();
      done = swarm::spawn(rt.get_executor(), [] { return 7; });
      pending = swarm::spawn(rt.get_executor(), []() -> asio::awaitable<int> {
        asio::steady_timer t(co_await asio::this_coro::executor, 1h);
        co_await t.async_wait(asio::use_awaitable);
        co_return 1;
      });
      done_abort = done.get_abort_handle();
      pending_abort = pending.get_abort_handle();
      while (!done.is_finished())
        std::this_thread::yield();
    }
    done.abort();
    pending.abort();
    done_abort.abort();
    pending_abort.abort();
    const bool ok = done.is_finished() && pending.is_finished();
    done = {};
    pending = {};
    return ok ? 0 : 1;
  });
  BOOST_TEST(!r.timed_out, "hung: " << r.err);
  BOOST_TEST(r.succeeded(), "exit " << r.exit_code << " signal " << r.signal << ": " << r.err);
}

// A moved-from handle is empty: waiting on it is a clear error, the rest is inert.
BOOST_AUTO_TEST_CASE(moved_from_handles_are_empty) {
  swarm::runtime rt(1);
  auto h = swarm::spawn(rt.get_executor(), [] { return 1; });
  auto a = h.get_abort_handle();
  auto h2 = std::move(h);
  auto a2 = std::move(a);
  BOOST_TEST(!h);
  BOOST_TEST(!h.is_finished());
  BOOST_TEST(h.id() == swarm::task_id());
  h.abort(); // no-op
  a.abort(); // no-op
  try {
    h.async_wait([](std::exception_ptr, int) {});
    BOOST_FAIL("waiting on a moved-from handle did not throw");
  } catch (const std::logic_error& e) {
    BOOST_TEST(contains(e.what(), "empty handle"), e.what());
  }
  BOOST_CHECK_THROW(h.get_abort_handle(), std::logic_error);
  BOOST_TEST(rt.block_on([&]() -> asio::awaitable<int> { co_return co_await std::move(h2); }()) == 1);
}

#if SWARM_ASSERTS
// One join_handle waited on by two threads at once: with asserts on, a clear abort instead
// of a crash somewhere later (it segfaulted before).
BOOST_AUTO_TEST_CASE(concurrent_waits_on_one_join_handle_abort_with_a_message) {
  const auto r = swarm_test::run_in_child(30s, [] {
    swarm::runtime rt(2);
    rt.start();
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
      auto h = swarm::spawn(rt.get_executor(), [] { return 1; });
      std::atomic<int> ready{0};
      auto wait = [&] {
        ready.fetch_add(1);
        while (ready.load() < 2) {
        }
        for (int i = 0; i < 50; ++i)
          h.async_wait([](std::exception_ptr, int) {});
      };
      std::thread a(wait), b(wait);
      a.join();
      b.join();
    }
    return 0; // never overlapped: the test fails
  });
  BOOST_TEST(r.aborted(), "exit " << r.exit_code << " signal " << r.signal << " timed out " << r.timed_out);
  BOOST_TEST(contains(r.err, "join_handle::async_wait called while another thread is in"), r.err);
}
#endif

// Destroying a runtime from one of its own threads is a documented fatal misuse: the
// process aborts with a message.
BOOST_AUTO_TEST_CASE(destroying_the_runtime_from_its_own_task_aborts_with_a_message) {
  const auto r = swarm_test::run_in_child(20s, [] {
    auto* rt = new swarm::runtime(1);
    rt->start();
    auto h = swarm::spawn(rt->get_executor(), [rt] { delete rt; });
    std::this_thread::sleep_for(5s);
    return 3; // not reached
  });
  BOOST_TEST(r.aborted(), "exit " << r.exit_code << " signal " << r.signal << " timed out " << r.timed_out);
  BOOST_TEST(contains(r.err, "destroyed from one of its own threads"), r.err);
}

BOOST_AUTO_TEST_SUITE_END()
