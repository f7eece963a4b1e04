// Tokio's task behaviours (tokio/tests/task_abort.rs, task_id.rs, task_hooks.rs,
// join_handle_panic.rs, task_join_set.rs) rewritten against swarm's Asio API: spawn,
// join_handle, abort, ids, hooks, yield_now, spawn_blocking, use_join_handle and bound
// cancellation slots, cancellation of tasks suspended in Asio operations, join_set, and
// runtime shutdown with tasks suspended.
//
// Every wait is bounded (`limit`, support.hpp); loopback only. Boost.Test assertions are not
// thread-safe: tasks record into atomics, the test thread checks them afterwards. Shared state
// is declared before the runtime, so that it outlives every task the runtime may still unwind.
#include "support.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;
using swarm::join_error;
using swarm::runtime;

namespace {

using swarm_test::busy_for;
using swarm_test::eventually;
using swarm_test::limit;
using swarm_test::ready_in_time;
using swarm_test::sleep_for;

// A runtime with its own workers (Tokio's model).
struct started_runtime {
  runtime rt;
  explicit started_runtime(int workers = 2) : rt(workers) { rt.start(); }
  explicit started_runtime(swarm::runtime_options o) : rt(std::move(o)) { rt.start(); }
  runtime::executor_type ex() { return rt.get_executor(); }
};

// The future's join_error, or nullopt if it held a value or another exception.
template <class T>
std::optional<join_error> join_error_of(std::future<T>& f) {
  try {
    f.get();
  } catch (const join_error& e) {
    return e;
  } catch (...) {
  }
  return std::nullopt;
}

template <class T>
bool is_operation_aborted(std::future<T>& f) {
  try {
    f.get();
  } catch (const boost::system::system_error& e) {
    return e.code() == asio::error::operation_aborted;
  } catch (...) {
  }
  return false;
}

template <class T>
std::string logic_error_text(std::future<T>& f) {
  try {
    f.get();
  } catch (const std::logic_error& e) {
    return e.what();
  } catch (...) {
    return "<other exception>";
  }
  return "<no exception>";
}

// Suspends until `open` is set (polling with 1 ms timers), at most `limit`.
asio::awaitable<void> wait_for_flag(const std::atomic<bool>& open) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!open.load()) {
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("wait_for_flag: timed out");
    co_await sleep_for(1ms);
  }
}

// Sets a flag when destroyed: lives in a coroutine frame to show that it unwound.
struct drop_flag {
  std::atomic<bool>* flag;
  explicit drop_flag(std::atomic<bool>& f) : flag(&f) {}
  drop_flag(const drop_flag&) = delete;
  ~drop_flag() { flag->store(true); }
};

// Records whether an awaited operation ended with operation_aborted, then rethrows.
template <class Aw>
auto note_abort(Aw aw, std::atomic<bool>& saw_abort) -> Aw {
  try {
    co_return co_await std::move(aw);
  } catch (const boost::system::system_error& e) {
    // A channel reports its cancelled operations as channel_cancelled.
    if (e.code() == asio::error::operation_aborted || e.code() == asio::experimental::error::channel_cancelled)
      saw_abort = true;
    throw;
  }
}

} // namespace

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(task_abort)

// abort_without_panic_3157, with multi-thread(1): a task sleeping on a long timer is
// aborted; its wait ends with operation_aborted and the handle reports cancelled.
BOOST_AUTO_TEST_CASE(abort_while_idle_on_a_timer_is_cancelled) {
  std::atomic<bool> started{false}, saw_abort{false}, unwound{false};
  started_runtime s(1);
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<void> {
    drop_flag d(unwound);
    started = true;
    co_await note_abort(sleep_for(100s), saw_abort);
  });
  BOOST_REQUIRE(eventually([&] { return started.load(); }));
  const auto t0 = std::chrono::steady_clock::now();
  h.abort();
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST((std::chrono::steady_clock::now() - t0 < 1s));
  auto e = join_error_of(f);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_cancelled());
  BOOST_TEST(e->id() == h.id());
  BOOST_TEST(saw_abort.load());
  BOOST_TEST(unwound.load());
}

// A running task cannot be interrupted (abort is cooperative): it finishes its busy loop
// and is cancelled at its next await.
BOOST_AUTO_TEST_CASE(abort_while_running_takes_effect_at_the_next_await) {
  std::atomic<bool> in_loop{false}, loop_done{false}, saw_abort{false};
  started_runtime s;
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    in_loop = true;
    busy_for(50ms);
    loop_done = true;
    co_await note_abort(sleep_for(100s), saw_abort);
    co_return 1;
  });
  BOOST_REQUIRE(eventually([&] { return in_loop.load(); }));
  h.abort();
  BOOST_TEST(!loop_done.load()); // the abort came while the poll was running
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  auto e = join_error_of(f);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_cancelled());
  BOOST_TEST(loop_done.load());
  BOOST_TEST(saw_abort.load());
}

// The task is runnable (a handler was queued on its executor) but no thread runs it when
// the abort comes: it is cancelled at its await once it runs.
BOOST_AUTO_TEST_CASE(abort_while_notified_is_cancelled) {
  std::atomic<bool> started{false}, saw_abort{false}, extra_ran{false};
  std::optional<asio::any_io_executor> task_ex;
  runtime rt(1); // not started: this thread drives it
  auto h = swarm::spawn(rt.get_executor(), [&]() -> asio::awaitable<void> {
    task_ex = co_await asio::this_coro::executor;
    started = true;
    co_await note_abort(sleep_for(100s), saw_abort);
  });
  auto f = h.async_wait(asio::use_future);
  for (int i = 0; i < 1000 && !started; ++i)
    rt.run_one();
  BOOST_REQUIRE(started.load());
  // Notified: a handler is queued on the task; nobody drives the runtime now.
  asio::post(*task_ex, [&] { extra_ran = true; });
  h.abort();
  task_ex.reset();
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (f.wait_for(0s) != std::future_status::ready && std::chrono::steady_clock::now() < deadline) {
    if (rt.stopped())
      rt.restart();
    rt.run_for(5ms);
  }
  BOOST_REQUIRE(ready_in_time(f, 0s));
  auto e = join_error_of(f);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_cancelled());
  BOOST_TEST(saw_abort.load());
  BOOST_TEST(extra_ran.load()); // queued before the abort: it ran, in order
}

BOOST_AUTO_TEST_CASE(abort_after_completion_keeps_the_value) {
  started_runtime s;
  auto h = swarm::spawn(s.ex(), []() -> asio::awaitable<int> { co_return 42; });
  BOOST_REQUIRE(eventually([&] { return h.is_finished(); }));
  h.abort();
  h.get_abort_handle().abort();
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(f.get() == 42);
}

// Tokio's rule: a task aborted before its first poll never runs. The function that makes
// the coroutine is destroyed (its captures with it).
BOOST_AUTO_TEST_CASE(abort_before_first_poll_never_runs_the_body) {
  std::atomic<bool> ran{false};
  auto captured = std::make_shared<int>(0);
  runtime rt(2); // not started yet: the task cannot be polled before the abort
  auto h = swarm::spawn(rt.get_executor(), [&ran, captured]() -> asio::awaitable<int> {
    ran = true;
    co_return *captured;
  });
  auto callable = swarm::spawn(rt.get_executor(), [&ran] {
    ran = true;
    return 1;
  });
  h.abort();
  callable.abort();
  rt.start();
  auto f = h.async_wait(asio::use_future);
  auto g = callable.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_REQUIRE(ready_in_time(g));
  auto e = join_error_of(f);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_cancelled());
  auto e2 = join_error_of(g);
  BOOST_REQUIRE(e2);
  BOOST_TEST(e2->is_cancelled());
  BOOST_TEST(!ran.load());
  BOOST_TEST(eventually([&] { return captured.use_count() == 1; }));
}

// abort_without_panic_3662: abort from a foreign OS thread while the task is mid-poll; the
// frame's drop flag is not set before the abort, and is set once the task unwound.
BOOST_AUTO_TEST_CASE(abort_from_another_thread_while_mid_poll) {
  std::atomic<bool> in_poll{false}, release{false}, dropped{false}, dropped_before_abort{false};
  started_runtime s;
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<void> {
    drop_flag d(dropped);
    in_poll = true;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!release && std::chrono::steady_clock::now() < deadline) {
    } // mid-poll until released
    co_await sleep_for(100s);
  });
  BOOST_REQUIRE(eventually([&] { return in_poll.load(); }));
  swarm::abort_handle a = h.get_abort_handle();
  std::thread foreign([&] {
    dropped_before_abort = dropped.load();
    a.abort();
    release = true;
  });
  foreign.join();
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  auto e = join_error_of(f);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_cancelled());
  BOOST_TEST(!dropped_before_abort.load());
  BOOST_TEST(dropped.load());
}

// Idempotent: many aborts from several threads deliver one cancellation; the coroutine,
// which catches cancellations and keeps going, sees exactly one.
BOOST_AUTO_TEST_CASE(abort_is_idempotent) {
  std::atomic<bool> started{false};
  std::atomic<int> cancellations{0};
  started_runtime s;
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    started = true;
    try {
      co_await sleep_for(100s);
    } catch (const boost::system::system_error&) {
      ++cancellations;
    }
    // Resume normally after the first cancellation and wait a while for more.
    co_await asio::this_coro::reset_cancellation_state();
    for (int i = 0; i < 20; ++i) {
      bool cancelled = false;
      try {
        co_await sleep_for(1ms);
      } catch (const boost::system::system_error&) {
        cancelled = true;
      }
      if (cancelled) {
        ++cancellations;
        co_await asio::this_coro::reset_cancellation_state();
      }
    }
    co_return 7;
  });
  BOOST_REQUIRE(eventually([&] { return started.load(); }));
  swarm::abort_handle a = h.get_abort_handle();
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i)
        a.abort();
    });
  h.abort();
  for (auto& t : threads)
    t.join();
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(f.get() == 7); // it returned a value: abort is cooperative
  BOOST_TEST(cancellations.load() == 1);
  h.abort(); // after completion: nothing
  a.abort();
  BOOST_TEST(a.is_finished());
}

// abort_wakes_task_3964: abort, then drop the handle at once; the task is still woken and
// cancelled, releasing what it holds.
BOOST_AUTO_TEST_CASE(abort_then_drop_the_handle_still_cancels_the_task) {
  std::atomic<bool> started{false};
  auto held = std::make_shared<int>(1);
  started_runtime s;
  {
    auto h = swarm::spawn(s.ex(), [&started, held]() -> asio::awaitable<void> {
      started = true;
      co_await sleep_for(100s);
    });
    BOOST_REQUIRE(eventually([&] { return started.load(); }));
    h.abort();
  }
  BOOST_TEST(eventually([&] { return held.use_count() == 1; }));
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(task_join)

BOOST_AUTO_TEST_CASE(a_detached_task_still_completes) {
  std::atomic<int> side_effect{0};
  started_runtime s;
  {
    auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<void> {
      co_await sleep_for(5ms);
      side_effect = 1;
    });
  } // detached
  BOOST_TEST(eventually([&] { return side_effect.load() == 1; }));
}

// One wait at a time: a second wait completes the first with operation_aborted and gets
// the value itself.
BOOST_AUTO_TEST_CASE(a_second_wait_replaces_the_first) {
  std::atomic<bool> release{false};
  started_runtime s;
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    co_await wait_for_flag(release);
    co_return 42;
  });
  auto first = h.async_wait(asio::use_future);
  auto second = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(first));
  BOOST_TEST(is_operation_aborted(first));
  BOOST_TEST((second.wait_for(0s) != std::future_status::ready));
  release = true;
  BOOST_REQUIRE(ready_in_time(second));
  BOOST_TEST(second.get() == 42);
}

BOOST_AUTO_TEST_CASE(a_wait_after_the_value_was_taken_is_a_clear_error) {
  started_runtime s;
  auto h = swarm::spawn(s.ex(), []() -> asio::awaitable<int> { co_return 42; });
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(f.get() == 42);
  auto again = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(again));
  BOOST_TEST(logic_error_text(again).find("already delivered") != std::string::npos);
}

// Cancel-safe: a wait that loses an `||` race leaves the task running; a second wait gets
// the value.
BOOST_AUTO_TEST_CASE(a_wait_cancelled_by_or_leaves_the_value_for_the_next_wait) {
  std::atomic<bool> release{false};
  started_runtime s;
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    co_await wait_for_flag(release);
    co_return 42;
  });
  auto waiter = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    auto r = co_await (h.async_wait(asio::use_awaitable) || sleep_for(5ms));
    if (r.index() != 1)
      co_return -1; // the join won: wrong
    if (h.is_finished())
      co_return -2;
    release = true;
    co_return co_await h.async_wait(asio::use_awaitable);
  });
  auto f = waiter.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(f.get() == 42);
}

BOOST_AUTO_TEST_CASE(co_await_on_the_handle_gives_the_value) {
  started_runtime s;
  auto outer = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    auto inner = swarm::spawn(co_await asio::this_coro::executor, []() -> asio::awaitable<int> { co_return 20; });
    int v = co_await std::move(inner);
    co_return v + 1;
  });
  auto f = outer.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(f.get() == 21);
}

BOOST_AUTO_TEST_CASE(is_finished_turns_true_at_completion) {
  std::atomic<bool> release{false};
  started_runtime s;
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<void> { co_await wait_for_flag(release); });
  BOOST_TEST(!h.is_finished());
  auto a = h.get_abort_handle();
  BOOST_TEST(!a.is_finished());
  BOOST_TEST(a.id() == h.id());
  release = true;
  BOOST_TEST(eventually([&] { return h.is_finished() && a.is_finished(); }));
  swarm::join_handle<void> empty;
  BOOST_TEST(!empty.is_finished());
  BOOST_TEST(!empty.id());
}

BOOST_AUTO_TEST_CASE(an_exception_escaping_a_task_is_a_panic_with_the_exception_inside) {
  started_runtime s;
  auto h = swarm::spawn(s.ex(), []() -> asio::awaitable<int> {
    co_await sleep_for(1ms);
    throw std::runtime_error("boom");
  });
  auto callable = swarm::spawn(s.ex(), []() -> int { throw std::runtime_error("bang"); });
  auto f = h.async_wait(asio::use_future);
  auto g = callable.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_REQUIRE(ready_in_time(g));
  for (auto* fut : {&f, &g}) {
    auto e = join_error_of(*fut);
    BOOST_REQUIRE(e);
    BOOST_TEST(e->is_panic());
    BOOST_TEST(!e->is_cancelled());
    try {
      std::rethrow_exception(e->panic());
    } catch (const std::runtime_error& inner) {
      BOOST_TEST((std::string(inner.what()) == "boom" || std::string(inner.what()) == "bang"));
    }
    BOOST_TEST(std::string(e->what()).find("panicked") != std::string::npos);
  }
}

// Once abort was requested, a task that ends by any exception reports cancelled.
BOOST_AUTO_TEST_CASE(an_aborted_task_that_ends_by_its_own_exception_is_cancelled) {
  std::atomic<bool> started{false};
  started_runtime s;
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<void> {
    started = true;
    try {
      co_await sleep_for(100s);
    } catch (const boost::system::system_error&) {
      throw std::runtime_error("my own");
    }
  });
  BOOST_REQUIRE(eventually([&] { return started.load(); }));
  h.abort();
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  auto e = join_error_of(f);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_cancelled());
  BOOST_TEST(std::string(e->what()).find("cancelled") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(task_ids)

BOOST_AUTO_TEST_CASE(current_task_id_inside_matches_the_handle_and_differs_between_tasks) {
  started_runtime s;
  auto body = []() -> asio::awaitable<swarm::task_id> {
    const swarm::task_id before = swarm::current_task_id();
    co_await sleep_for(1ms); // resumed in a later poll, maybe on another worker
    if (swarm::current_task_id() != before)
      co_return swarm::task_id();
    co_return before;
  };
  auto a = swarm::spawn(s.ex(), body);
  auto b = swarm::spawn(s.ex(), body);
  auto c = swarm::spawn(s.ex(), [] { return swarm::current_task_id(); });
  auto fa = a.async_wait(asio::use_future);
  auto fb = b.async_wait(asio::use_future);
  auto fc = c.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(fa) && ready_in_time(fb) && ready_in_time(fc));
  const swarm::task_id ia = fa.get(), ib = fb.get(), ic = fc.get();
  BOOST_TEST(static_cast<bool>(ia));
  BOOST_TEST(ia == a.id());
  BOOST_TEST(ib == b.id());
  BOOST_TEST(ic == c.id());
  BOOST_TEST(ia != ib);
  BOOST_TEST(ia != ic);
}

BOOST_AUTO_TEST_CASE(no_current_task_id_outside_a_task_or_on_block_ons_caller) {
  BOOST_TEST(!swarm::try_current_task_id());
  BOOST_CHECK_THROW(swarm::current_task_id(), std::logic_error);
  runtime rt(1); // not started: block_on drives it from this thread
  const int v = rt.block_on([]() -> asio::awaitable<int> {
    co_await sleep_for(1ms);
    co_return 3;
  }());
  BOOST_TEST(v == 3);
  BOOST_TEST(!swarm::try_current_task_id());
}

// task_id_spawn_blocking: the id is visible inside a blocking closure too.
BOOST_AUTO_TEST_CASE(current_task_id_inside_spawn_blocking) {
  started_runtime s;
  auto h = swarm::spawn_blocking(s.ex(), [] { return swarm::try_current_task_id(); });
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  const auto id = f.get();
  BOOST_TEST(id.has_value());
  if (id)
    BOOST_TEST(*id == h.id());
}

// task_id_future_destructor_completion / _abort: an object in the coroutine frame sees the
// task's id when destroyed, at completion and when unwound by an abort.
BOOST_AUTO_TEST_CASE(the_frame_is_destroyed_with_the_task_id_installed) {
  struct record_id {
    std::atomic<std::uint64_t>* out;
    ~record_id() {
      auto id = swarm::try_current_task_id();
      out->store(id ? id->value() : 0);
    }
  };
  std::atomic<std::uint64_t> on_completion{0}, on_abort{0};
  std::atomic<bool> started{false};
  started_runtime s;
  auto done = swarm::spawn(s.ex(), [&]() -> asio::awaitable<void> {
    record_id r{&on_completion};
    co_await sleep_for(1ms);
  });
  auto aborted = swarm::spawn(s.ex(), [&]() -> asio::awaitable<void> {
    record_id r{&on_abort};
    started = true;
    co_await sleep_for(100s);
  });
  BOOST_REQUIRE(eventually([&] { return started.load(); }));
  aborted.abort();
  auto f = done.async_wait(asio::use_future);
  auto g = aborted.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f) && ready_in_time(g));
  BOOST_TEST(on_completion.load() == done.id().value());
  BOOST_TEST(on_abort.load() == aborted.id().value());
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(task_hooks)

// spawn_task_hook_fires / terminate_task_hook_fires, for Asio tasks: 8 spawns, 8 distinct
// ids, the handles' ids; and the same 8 at termination.
BOOST_AUTO_TEST_CASE(spawn_and_terminate_hooks_see_every_asio_task_with_its_id) {
  std::mutex m;
  std::multiset<std::uint64_t> spawned, terminated;
  swarm::runtime_options o;
  o.worker_threads = 2;
  o.on_task_spawn = [&](const swarm::task_meta& meta) {
    std::lock_guard l(m);
    spawned.insert(meta.id.value());
  };
  o.on_task_terminate = [&](const swarm::task_meta& meta) {
    std::lock_guard l(m);
    terminated.insert(meta.id.value());
  };
  std::multiset<std::uint64_t> ids;
  {
    started_runtime s(o);
    std::vector<swarm::join_handle<int>> hs;
    for (int i = 0; i < 8; ++i) {
      if (i % 2 == 0)
        hs.push_back(swarm::spawn(s.ex(), [i]() -> asio::awaitable<int> {
          co_await swarm::yield_now();
          co_return i;
        }));
      else
        hs.push_back(asio::co_spawn(s.ex(), [i]() -> asio::awaitable<int> { co_return i; }, swarm::use_join_handle));
      ids.insert(hs.back().id().value());
    }
    for (auto& h : hs) {
      auto f = h.async_wait(asio::use_future);
      BOOST_REQUIRE(ready_in_time(f));
      f.get();
    }
    BOOST_TEST(eventually([&] {
      std::lock_guard l(m);
      return terminated.size() == 8;
    }));
  }
  std::lock_guard l(m);
  BOOST_TEST(ids.size() == 8u);
  BOOST_TEST((std::set<std::uint64_t>(ids.begin(), ids.end()).size() == 8u));
  BOOST_TEST((spawned == ids));
  BOOST_TEST((terminated == ids));
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(task_yield_and_blocking)

// One worker: a task that yields lets another task run before it continues.
BOOST_AUTO_TEST_CASE(yield_now_lets_another_task_run) {
  std::atomic<bool> other_ran{false};
  started_runtime s(1);
  auto a = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    auto b = swarm::spawn(co_await asio::this_coro::executor, [&] { other_ran = true; });
    int yields = 0;
    while (!other_ran && yields < 1000) {
      co_await swarm::yield_now();
      ++yields;
    }
    co_await std::move(b);
    co_return other_ran ? yields : -1;
  });
  auto f = a.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  const int yields = f.get();
  BOOST_TEST(yields >= 1);
  BOOST_TEST(yields < 1000);
}

BOOST_AUTO_TEST_CASE(spawn_blocking_value_exception_and_abort_before_start) {
  std::atomic<bool> release{false}, second_ran{false};
  swarm::runtime_options o;
  o.worker_threads = 1;
  o.max_blocking_threads = 1; // the second job waits behind the first
  started_runtime s(o);
  auto value = swarm::spawn_blocking(s.ex(), [] { return 7; });
  auto fv = value.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(fv));
  BOOST_TEST(fv.get() == 7);

  auto failing = swarm::spawn_blocking(s.ex(), []() -> int { throw std::runtime_error("blocking"); });
  auto fe = failing.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(fe));
  auto e = join_error_of(fe);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_panic());

  auto first = swarm::spawn_blocking(s.ex(), [&] {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!release && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
  });
  auto second = swarm::spawn_blocking(s.ex(), [&] { second_ran = true; });
  second.abort();
  release = true;
  auto f1 = first.async_wait(asio::use_future);
  auto f2 = second.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f1) && ready_in_time(f2));
  f1.get();
  auto e2 = join_error_of(f2);
  BOOST_REQUIRE(e2);
  BOOST_TEST(e2->is_cancelled());
  BOOST_TEST(!second_ran.load());
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(task_asio_cancellation)

BOOST_AUTO_TEST_CASE(co_spawn_with_use_join_handle_gives_a_join_handle) {
  started_runtime s;
  swarm::join_handle<int> h = asio::co_spawn(s.ex(), []() -> asio::awaitable<int> { co_return 5; }, swarm::use_join_handle);
  swarm::join_handle<void> v = asio::co_spawn(s.ex(), []() -> asio::awaitable<void> { co_return; }, swarm::use_join_handle);
  auto f = h.async_wait(asio::use_future);
  auto g = v.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f) && ready_in_time(g));
  BOOST_TEST(f.get() == 5);
  g.get();
}

// A slot bound to use_join_handle: terminal emission aborts the task (cancelled, not a
// panic).
BOOST_AUTO_TEST_CASE(terminal_cancellation_on_a_bound_slot_aborts_the_task) {
  std::atomic<bool> started{false}, saw_abort{false};
  asio::cancellation_signal sig;
  started_runtime s;
  auto h = asio::co_spawn(
      s.ex(),
      [&]() -> asio::awaitable<int> {
        started = true;
        co_await note_abort(sleep_for(100s), saw_abort);
        co_return 1;
      },
      asio::bind_cancellation_slot(sig.slot(), swarm::use_join_handle));
  BOOST_REQUIRE(eventually([&] { return started.load(); }));
  sig.emit(asio::cancellation_type::terminal);
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  auto e = join_error_of(f);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_cancelled());
  BOOST_TEST(saw_abort.load());
  sig.slot().clear();
}

// Partial cancellation is forwarded into the coroutine: one that enabled it sees its wait
// cancelled and goes on; one that did not ignores it.
BOOST_AUTO_TEST_CASE(partial_cancellation_on_a_bound_slot_is_forwarded_into_the_coroutine) {
  std::atomic<int> waiting{0};
  asio::cancellation_signal honours_sig, ignores_sig;
  started_runtime s;
  auto honours = asio::co_spawn(
      s.ex(),
      [&]() -> asio::awaitable<int> {
        co_await asio::this_coro::reset_cancellation_state(asio::enable_partial_cancellation());
        asio::steady_timer t(co_await asio::this_coro::executor, 100s);
        ++waiting;
        auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        auto st = co_await asio::this_coro::cancellation_state;
        const bool partial = (st.cancelled() & asio::cancellation_type::partial) != asio::cancellation_type::none;
        co_return ec == asio::error::operation_aborted && partial ? 1 : 0;
      },
      asio::bind_cancellation_slot(honours_sig.slot(), swarm::use_join_handle));
  auto ignores = asio::co_spawn(
      s.ex(),
      [&]() -> asio::awaitable<int> {
        asio::steady_timer t(co_await asio::this_coro::executor, 50ms);
        ++waiting;
        auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return ec ? 0 : 2;
      },
      asio::bind_cancellation_slot(ignores_sig.slot(), swarm::use_join_handle));
  BOOST_REQUIRE(eventually([&] { return waiting.load() == 2; }));
  honours_sig.emit(asio::cancellation_type::partial);
  ignores_sig.emit(asio::cancellation_type::partial);
  auto f = honours.async_wait(asio::use_future);
  auto g = ignores.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f) && ready_in_time(g));
  BOOST_TEST(f.get() == 1); // a value: partial cancellation is not an abort
  BOOST_TEST(g.get() == 2);
  honours_sig.slot().clear();
  ignores_sig.slot().clear();
}

namespace {

// Spawns `body` (which sets `started` right before its long await), aborts it once it
// started, and checks it was cancelled and that the await saw operation_aborted.
template <class Body>
void check_abort_cancels(runtime::executor_type ex, std::atomic<bool>& started, std::atomic<bool>& saw_abort, Body body) {
  auto h = swarm::spawn(ex, std::move(body));
  BOOST_REQUIRE(eventually([&] { return started.load(); }));
  h.abort();
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  auto e = join_error_of(f);
  BOOST_REQUIRE(e);
  BOOST_TEST(e->is_cancelled());
  BOOST_TEST(saw_abort.load());
}

} // namespace

BOOST_AUTO_TEST_CASE(abort_cancels_a_socket_read_on_loopback) {
  std::atomic<bool> started{false}, saw_abort{false};
  started_runtime s;
  asio::ip::tcp::acceptor acceptor(s.ex(), {asio::ip::address_v4::loopback(), 0});
  asio::ip::tcp::socket client(s.ex());
  client.connect(acceptor.local_endpoint());
  asio::ip::tcp::socket server = acceptor.accept();
  check_abort_cancels(s.ex(), started, saw_abort, [&]() -> asio::awaitable<void> {
    char buf[16];
    started = true;
    co_await note_abort(server.async_read_some(asio::buffer(buf), asio::use_awaitable), saw_abort);
  });
  // The socket is still usable afterwards: data sent now is read synchronously.
  asio::write(client, asio::buffer("x", 1));
  char c = 0;
  BOOST_TEST(asio::read(server, asio::buffer(&c, 1)) == 1u);
  BOOST_TEST(c == 'x');
}

BOOST_AUTO_TEST_CASE(abort_cancels_a_timer_wait) {
  std::atomic<bool> started{false}, saw_abort{false};
  started_runtime s;
  check_abort_cancels(s.ex(), started, saw_abort, [&]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor, 100s);
    started = true;
    co_await note_abort(t.async_wait(asio::use_awaitable), saw_abort);
  });
}

BOOST_AUTO_TEST_CASE(abort_cancels_a_child_co_spawn) {
  std::atomic<bool> started{false}, saw_abort{false}, child_saw_abort{false};
  started_runtime s;
  check_abort_cancels(s.ex(), started, saw_abort, [&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    started = true;
    co_await note_abort(
        asio::co_spawn(ex, note_abort(sleep_for(100s), child_saw_abort), asio::use_awaitable), saw_abort);
  });
  BOOST_TEST(child_saw_abort.load());
}

BOOST_AUTO_TEST_CASE(abort_cancels_both_sides_of_an_or_expression) {
  std::atomic<bool> started{false}, left{false}, right{false};
  started_runtime s;
  // Both sides fail, so `||` throws multiple_exceptions: check the sides, not the whole.
  check_abort_cancels(s.ex(), started, left, [&]() -> asio::awaitable<void> {
    started = true;
    co_await (note_abort(sleep_for(100s), left) || note_abort(sleep_for(100s), right));
  });
  BOOST_TEST(right.load());
}

BOOST_AUTO_TEST_CASE(abort_cancels_an_experimental_channel_receive) {
  std::atomic<bool> started{false}, saw_abort{false};
  started_runtime s;
  check_abort_cancels(s.ex(), started, saw_abort, [&]() -> asio::awaitable<void> {
    asio::experimental::channel<void(error_code, int)> ch(co_await asio::this_coro::executor, 1);
    started = true;
    co_await note_abort(ch.async_receive(asio::use_awaitable), saw_abort);
  });
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(join_set)

namespace {

// Joins every task of `set` from inside a task; returns (values, cancelled, panics).
struct joined {
  std::vector<int> values;
  int cancelled = 0;
  int panics = 0;
  int other = 0;
};

asio::awaitable<joined> join_all(swarm::join_set<int>& set) {
  joined j;
  while (!set.empty()) {
    auto [e, v] = co_await set.async_join_next(asio::as_tuple(asio::use_awaitable));
    if (!e) {
      j.values.push_back(v);
      continue;
    }
    try {
      std::rethrow_exception(e);
    } catch (const join_error& je) {
      (je.is_cancelled() ? j.cancelled : j.panics)++;
    } catch (...) {
      ++j.other;
    }
  }
  co_return j;
}

joined join_all_from_a_task(runtime::executor_type ex, swarm::join_set<int>& set) {
  auto h = swarm::spawn(ex, join_all(set));
  auto f = h.async_wait(asio::use_future);
  if (!ready_in_time(f))
    throw std::runtime_error("join_all timed out");
  return f.get();
}

} // namespace

BOOST_AUTO_TEST_CASE(spawn_many_and_join_them_all) {
  started_runtime s;
  swarm::join_set<int> set;
  BOOST_TEST(set.empty());
  constexpr int n = 64;
  for (int i = 0; i < n; ++i) {
    if (i % 2)
      set.spawn(s.ex(), [i]() -> asio::awaitable<int> {
        co_await swarm::yield_now();
        co_return i;
      });
    else
      set.spawn(s.ex(), [i] { return i; });
  }
  BOOST_TEST(set.size() == static_cast<std::size_t>(n));
  joined j = join_all_from_a_task(s.ex(), set);
  BOOST_TEST(j.values.size() == static_cast<std::size_t>(n));
  std::sort(j.values.begin(), j.values.end());
  for (int i = 0; i < n; ++i)
    BOOST_TEST(j.values[i] == i);
  BOOST_TEST(set.empty());
  BOOST_TEST(j.cancelled + j.panics + j.other == 0);
}

// Results come in the order the tasks finished, whatever the spawn order.
BOOST_AUTO_TEST_CASE(results_come_in_completion_order) {
  constexpr int n = 5;
  const int order[n] = {3, 0, 4, 1, 2};
  std::atomic<bool> go[n] = {};
  started_runtime s;
  swarm::join_set<int> set;
  std::vector<swarm::abort_handle> handles;
  for (int i = 0; i < n; ++i)
    handles.push_back(set.spawn(s.ex(), [&go, i]() -> asio::awaitable<int> {
      co_await wait_for_flag(go[i]);
      co_return i;
    }));
  for (int k : order) {
    go[k] = true;
    BOOST_REQUIRE(eventually([&] { return handles[k].is_finished(); }));
  }
  std::vector<int> got;
  for (int i = 0; i < n; ++i) {
    auto f = set.async_join_next(asio::use_future);
    BOOST_REQUIRE(ready_in_time(f));
    got.push_back(f.get());
  }
  BOOST_TEST(got == std::vector<int>(order, order + n), boost::test_tools::per_element());
  BOOST_TEST(set.empty());
}

// Tokio's abort_all: 5 pending tasks are cancelled, 5 finished ones keep their values; all
// 10 are joined.
BOOST_AUTO_TEST_CASE(abort_all_cancels_pending_tasks_and_finished_ones_keep_their_values) {
  started_runtime s;
  swarm::join_set<int> set;
  std::vector<swarm::abort_handle> finished;
  for (int i = 0; i < 5; ++i) {
    set.spawn(s.ex(), [i]() -> asio::awaitable<int> {
      co_await sleep_for(100s);
      co_return 100 + i;
    });
    finished.push_back(set.spawn(s.ex(), [i]() -> asio::awaitable<int> { co_return i; }));
  }
  BOOST_REQUIRE(eventually([&] {
    return std::all_of(finished.begin(), finished.end(), [](auto& a) { return a.is_finished(); });
  }));
  set.abort_all();
  BOOST_TEST(set.size() == 10u); // aborted tasks stay in the set until joined
  joined j = join_all_from_a_task(s.ex(), set);
  std::sort(j.values.begin(), j.values.end());
  BOOST_TEST(j.values == std::vector<int>({0, 1, 2, 3, 4}), boost::test_tools::per_element());
  BOOST_TEST(j.cancelled == 5);
  BOOST_TEST(j.panics + j.other == 0);
}

// Tokio's abort_tasks: 8 of 16 aborted through their abort handles. The aborted ones sleep
// (as in Tokio's test): abort is cooperative, so a task whose await has already completed
// when the abort arrives runs on to its next await, and one that returns before another
// await keeps its value (a flag wait polled every 1 ms once did, under TSan).
BOOST_AUTO_TEST_CASE(abort_handles_from_spawn_abort_single_tasks) {
  started_runtime s;
  swarm::join_set<int> set;
  std::atomic<bool> release{false};
  for (int i = 0; i < 16; ++i) {
    swarm::abort_handle a = set.spawn(s.ex(), [&release, i]() -> asio::awaitable<int> {
      if (i % 2)
        co_await sleep_for(std::chrono::hours(1));
      else
        co_await wait_for_flag(release);
      co_return i;
    });
    if (i % 2)
      a.abort();
  }
  release = true;
  joined j = join_all_from_a_task(s.ex(), set);
  BOOST_TEST(j.cancelled == 8);
  std::sort(j.values.begin(), j.values.end());
  BOOST_TEST(j.values == std::vector<int>({0, 2, 4, 6, 8, 10, 12, 14}), boost::test_tools::per_element());
}

// test_abort_on_drop: destroying the set aborts its tasks; their frames unwind.
BOOST_AUTO_TEST_CASE(destroying_the_set_aborts_its_tasks) {
  constexpr int n = 16;
  std::atomic<int> started{0}, unwound{0}, saw_abort{0};
  struct count_on_drop {
    std::atomic<int>* n;
    ~count_on_drop() { ++*n; }
  };
  started_runtime s;
  {
    swarm::join_set<void> set;
    for (int i = 0; i < n; ++i)
      set.spawn(s.ex(), [&]() -> asio::awaitable<void> {
        count_on_drop d{&unwound};
        ++started;
        try {
          co_await sleep_for(100s);
        } catch (const boost::system::system_error& e) {
          if (e.code() == asio::error::operation_aborted)
            ++saw_abort;
          throw;
        }
      });
    BOOST_REQUIRE(eventually([&] { return started.load() == n; }));
  }
  BOOST_TEST(eventually([&] { return unwound.load() == n; }));
  BOOST_TEST(saw_abort.load() == n);
}

BOOST_AUTO_TEST_CASE(an_empty_set_completes_a_join_with_a_documented_error) {
  started_runtime s;
  swarm::join_set<int> never_used;
  auto f = never_used.async_join_next(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(logic_error_text(f).find("join_set is empty") != std::string::npos);

  swarm::join_set<void> drained;
  drained.spawn(s.ex(), [] {});
  auto g = drained.async_join_next(asio::use_future);
  BOOST_REQUIRE(ready_in_time(g));
  g.get();
  BOOST_TEST(drained.empty());
  auto h = drained.async_join_next(asio::use_future);
  BOOST_REQUIRE(ready_in_time(h));
  BOOST_TEST(logic_error_text(h).find("join_set is empty") != std::string::npos);
}

// One wait at a time: a new wait completes the earlier with operation_aborted. Destroying
// the set completes a pending wait with operation_aborted too.
BOOST_AUTO_TEST_CASE(a_new_join_replaces_the_pending_one_and_destruction_ends_a_pending_join) {
  std::atomic<bool> release{false};
  started_runtime s;
  std::future<int> third;
  {
    swarm::join_set<int> set;
    set.spawn(s.ex(), [&]() -> asio::awaitable<int> {
      co_await wait_for_flag(release);
      co_return 9;
    });
    set.spawn(s.ex(), []() -> asio::awaitable<int> {
      co_await sleep_for(100s);
      co_return 10;
    });
    auto first = set.async_join_next(asio::use_future);
    auto second = set.async_join_next(asio::use_future);
    BOOST_REQUIRE(ready_in_time(first));
    BOOST_TEST(is_operation_aborted(first));
    release = true;
    BOOST_REQUIRE(ready_in_time(second));
    BOOST_TEST(second.get() == 9);
    BOOST_TEST(set.size() == 1u);
    third = set.async_join_next(asio::use_future);
  }
  BOOST_REQUIRE(ready_in_time(third));
  BOOST_TEST(is_operation_aborted(third));
}

// Cancel-safe: a join that loses an `||` race completes with operation_aborted and loses
// no result; the next join gets it.
BOOST_AUTO_TEST_CASE(a_join_cancelled_by_or_loses_no_result) {
  std::atomic<bool> release{false};
  started_runtime s;
  swarm::join_set<int> set;
  set.spawn(s.ex(), [&]() -> asio::awaitable<int> {
    co_await wait_for_flag(release);
    co_return 42;
  });
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    auto r = co_await (set.async_join_next(asio::use_awaitable) || sleep_for(5ms));
    if (r.index() != 1 || set.size() != 1)
      co_return -1;
    release = true;
    // Cancel again, this time through a slot of our own, once the task finished.
    asio::cancellation_signal sig;
    co_await sleep_for(20ms);
    auto [e, v] = co_await set.async_join_next(asio::bind_cancellation_slot(
        sig.slot(), asio::as_tuple(asio::use_awaitable)));
    if (e)
      co_return -2;
    co_return v;
  });
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(f.get() == 42);
  BOOST_TEST(set.empty());
}

// A cancellation that arrives after a result was picked for the wait, but before the
// handler ran, wins; the result goes back to the set.
BOOST_AUTO_TEST_CASE(a_join_cancelled_after_its_result_was_picked_gives_the_result_back) {
  started_runtime s;
  swarm::join_set<int> set;
  swarm::abort_handle task = set.spawn(s.ex(), [] { return 5; });
  auto h = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    auto ex = co_await asio::this_coro::executor;
    // Once the task finished, a join picks its result at once, inside async_join_next.
    for (int i = 0; i < 2000 && !task.is_finished(); ++i)
      co_await sleep_for(1ms);
    for (int i = 0; i < 20; ++i) {
      asio::cancellation_signal sig;
      std::optional<std::pair<std::exception_ptr, int>> got;
      set.async_join_next(asio::bind_cancellation_slot(
          sig.slot(), asio::bind_executor(ex, [&](std::exception_ptr e, int v) { got.emplace(e, v); })));
      // This task is running, so the completion (dispatched to this task) cannot have run
      // yet: the cancellation must win although the result was already picked.
      sig.emit(asio::cancellation_type::terminal);
      for (int k = 0; k < 2000 && !got; ++k)
        co_await sleep_for(1ms);
      if (!got || !got->first)
        co_return -1; // completed with the value, or not at all
      if (set.size() != 1)
        co_return -2;
    }
    co_return co_await set.async_join_next(asio::use_awaitable);
  });
  auto f = h.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(f.get() == 5);
}

// join_set_coop analogue: joining many ready results does not starve other tasks (each
// join completion goes through the runtime).
BOOST_AUTO_TEST_CASE(joining_many_ready_results_lets_other_tasks_run) {
  constexpr int n = 500;
  std::atomic<int> ticks{0};
  std::atomic<bool> stop{false};
  started_runtime s(1);
  swarm::join_set<int> set;
  for (int i = 0; i < n; ++i)
    set.spawn(s.ex(), [i] { return i; });
  auto ticker = swarm::spawn(s.ex(), [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 100000 && !stop; ++i) {
      ++ticks;
      co_await swarm::yield_now();
    }
  });
  auto joiner = swarm::spawn(s.ex(), [&]() -> asio::awaitable<int> {
    while (set.size() != static_cast<std::size_t>(n) || ticks == 0)
      co_await swarm::yield_now();
    const int before = ticks;
    int sum = 0;
    for (int i = 0; i < n; ++i)
      sum += co_await set.async_join_next(asio::use_awaitable);
    stop = true;
    co_return sum == n * (n - 1) / 2 ? ticks - before : -1;
  });
  auto f = joiner.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(f));
  BOOST_TEST(f.get() > 0);
  auto g = ticker.async_wait(asio::use_future);
  BOOST_REQUIRE(ready_in_time(g));
}

BOOST_AUTO_TEST_CASE(void_sets_blocking_tasks_panics_and_detach_all) {
  std::atomic<int> side_effect{0};
  std::atomic<bool> release{false};
  started_runtime s;
  swarm::join_set<void> set;
  set.spawn_blocking(s.ex(), [] {});
  set.spawn(s.ex(), []() -> asio::awaitable<void> {
    co_await sleep_for(1ms);
    throw std::runtime_error("boom");
  });
  int ok = 0, panics = 0;
  for (int i = 0; i < 2; ++i) {
    auto f = set.async_join_next(asio::use_future);
    BOOST_REQUIRE(ready_in_time(f));
    try {
      f.get();
      ++ok;
    } catch (const join_error& e) {
      panics += e.is_panic();
    }
  }
  BOOST_TEST(ok == 1);
  BOOST_TEST(panics == 1);

  set.spawn(s.ex(), [&]() -> asio::awaitable<void> {
    co_await wait_for_flag(release);
    side_effect = 1;
  });
  auto pending = set.async_join_next(asio::use_future);
  set.detach_all();
  BOOST_TEST(set.empty());
  BOOST_REQUIRE(ready_in_time(pending));
  BOOST_TEST(logic_error_text(pending).find("join_set is empty") != std::string::npos);
  release = true;
  BOOST_TEST(eventually([&] { return side_effect.load() == 1; }));
}

BOOST_AUTO_TEST_CASE(tasks_of_another_runtime_are_refused) {
  started_runtime a, b;
  swarm::join_set<int> set;
  set.spawn(a.ex(), [] { return 1; });
  BOOST_CHECK_THROW(set.spawn(b.ex(), [] { return 2; }), std::invalid_argument);
  BOOST_TEST(set.size() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------------------------------
BOOST_AUTO_TEST_SUITE(task_shutdown)

// Runtime destruction with tasks suspended: every pending join wait completes with a
// join_error (not a broken promise), handles outlive the runtime, nothing leaks.
BOOST_AUTO_TEST_CASE(runtime_destruction_completes_every_pending_join_wait) {
  constexpr int n = 6;
  std::atomic<int> started{0};
  std::vector<swarm::join_handle<int>> handles;
  std::vector<std::future<int>> waits;
  {
    started_runtime s;
    for (int i = 0; i < n; ++i)
      handles.push_back(swarm::spawn(s.ex(), [&started]() -> asio::awaitable<int> {
        ++started;
        co_await sleep_for(100s);
        co_return 1;
      }));
    BOOST_REQUIRE(eventually([&] { return started.load() == n; }));
    for (auto& h : handles)
      waits.push_back(h.async_wait(asio::use_future));
  } // the runtime goes first
  for (auto& f : waits) {
    BOOST_REQUIRE(ready_in_time(f));
    auto e = join_error_of(f);
    BOOST_TEST((e && e->is_cancelled()));
  }
  handles.clear();
}

// An Asio coroutine task still awaiting a join handle (through a handler) when the runtime
// goes: the handler owns the coroutine's frames, the frame owns the handle, and the handle's
// waiter held the handler. All of it is freed with the runtime.
BOOST_AUTO_TEST_CASE(runtime_destruction_frees_a_task_awaiting_a_join) {
  std::atomic<int> started{0};
  auto sentinel = std::make_shared<int>(0);
  const std::weak_ptr<int> watch = sentinel;
  {
    started_runtime s;
    auto target = swarm::spawn(s.ex(), [&started]() -> asio::awaitable<int> {
      ++started;
      co_await sleep_for(100s);
      co_return 1;
    });
    // Its wait starts in the poll that counts it as started, which shutdown lets finish.
    auto joiner = swarm::spawn(
        s.ex(),
        [&started, h = std::move(target), keep = std::move(sentinel)]() mutable -> asio::awaitable<void> {
          ++started;
          co_await h.async_wait(asio::use_awaitable);
        });
    BOOST_REQUIRE(eventually([&] { return started.load() == 2; }));
  }
  BOOST_TEST(watch.expired());
}

// Tokio's runtime_gone, for a join_set: shutdown() cancels the set's tasks and completes
// its pending join; the set may then be destroyed, before or after the runtime.
BOOST_AUTO_TEST_CASE(shutdown_completes_a_pending_join_of_a_set) {
  std::atomic<int> started{0};
  std::optional<swarm::join_set<int>> outlives;
  {
    started_runtime s;
    swarm::join_set<int> set;
    outlives.emplace();
    for (int i = 0; i < 4; ++i) {
      set.spawn(s.ex(), [&started]() -> asio::awaitable<int> {
        ++started;
        co_await sleep_for(100s);
        co_return 1;
      });
      outlives->spawn(s.ex(), [&started]() -> asio::awaitable<int> {
        ++started;
        co_await sleep_for(100s);
        co_return 1;
      });
    }
    BOOST_REQUIRE(eventually([&] { return started.load() == 8; }));
    auto f = set.async_join_next(asio::use_future);
    s.rt.shutdown();
    BOOST_REQUIRE(ready_in_time(f));
    auto e = join_error_of(f);
    BOOST_TEST((e && e->is_cancelled()));
  }
  outlives.reset(); // after the runtime: every task ended, nothing to abort
}

BOOST_AUTO_TEST_SUITE_END()
