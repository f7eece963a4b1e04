// Conformance of runtime::executor_type with what Asio asks of an executor (Boost 1.81's
// boost/asio/execution/executor.hpp and any_io_executor.hpp): the concept gates, the
// properties, post / dispatch / defer, the Networking TS members, work guards, strands,
// bind_executor, co_spawn with every token, awaitable operators, parallel_group,
// async_compose and bind_cancellation_slot. Each behavioural test runs on the runtime's
// executor and on an any_io_executor holding it. The I/O objects (sockets, timers, signals,
// resolver, channels) are in io_test.cpp. Asio's parallel_group keeps results in a union GCC
// 12 cannot follow: silence its -Wmaybe-uninitialized false positives for this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "support.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>

namespace asio = boost::asio;
namespace execution = boost::asio::execution;
using boost::system::error_code;
using swarm::runtime;
using namespace swarm_test;

namespace {

using ex_t = runtime::executor_type;
using tracked_ex_t = decltype(asio::prefer(std::declval<ex_t>(), execution::outstanding_work.tracked));

// --- The concept gates ------------------------------------------------------------------

static_assert(execution::is_executor<ex_t>::value);
static_assert(asio::is_executor<ex_t>::value, "the Networking TS members are present");
static_assert(std::is_convertible_v<ex_t, asio::any_io_executor>);
static_assert(std::is_convertible_v<tracked_ex_t, asio::any_io_executor>);
static_assert(std::is_convertible_v<asio::strand<ex_t>, asio::any_io_executor>);
static_assert(execution::is_executor<tracked_ex_t>::value);
static_assert(execution::is_executor<asio::strand<ex_t>>::value);
// At most 24 bytes and nothrow copy: any_io_executor then stores it in place, with no
// shared heap target (whose fence-based count ThreadSanitizer cannot follow).
static_assert(sizeof(ex_t) <= 24);
static_assert(sizeof(tracked_ex_t) <= 24);
static_assert(std::is_nothrow_copy_constructible_v<ex_t>);
static_assert(std::is_nothrow_move_constructible_v<ex_t>);
static_assert(std::is_nothrow_destructible_v<ex_t>);
static_assert(std::is_nothrow_copy_constructible_v<tracked_ex_t>);
static_assert(noexcept(std::declval<const ex_t&>() == std::declval<const ex_t&>()));
static_assert(asio::can_require<ex_t, execution::blocking_t::never_t>::value);
static_assert(asio::can_require<ex_t, execution::blocking_t::possibly_t>::value);
static_assert(asio::can_prefer<ex_t, execution::relationship_t::continuation_t>::value);
static_assert(asio::can_prefer<ex_t, execution::outstanding_work_t::tracked_t>::value);
static_assert(asio::can_prefer<ex_t, execution::allocator_t<std::allocator<int>>>::value);
static_assert(asio::can_query<ex_t, execution::context_t>::value);
static_assert(asio::can_query<ex_t, execution::occupancy_t>::value);
static_assert(std::is_same_v<decltype(asio::query(std::declval<ex_t>(), execution::context)), runtime&>);

// The same with the tracked bit as a type bit, as io_context does: untracked copies cost
// nothing, tracked ones count as work.
static_assert(!std::is_same_v<ex_t, tracked_ex_t>);

// --- Helpers ------------------------------------------------------------------------------

template <class Ex>
using timer_for = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Ex>;

template <class Ex>
constexpr asio::use_awaitable_t<Ex> use_aw{};

// 42, after one trip through the executor (so the coroutine really suspends).
template <class Ex>
asio::awaitable<int, Ex> answer() {
  co_await asio::post(co_await asio::this_coro::executor, use_aw<Ex>);
  co_return 42;
}

template <class Ex>
asio::awaitable<int, Ex> throws_after_a_hop() {
  co_await asio::post(co_await asio::this_coro::executor, use_aw<Ex>);
  throw std::runtime_error("boom");
}

// `v` after `d` on a timer of the coroutine's executor.
template <class Ex>
asio::awaitable<int, Ex> value_after(std::chrono::milliseconds d, int v) {
  timer_for<Ex> t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(use_aw<Ex>);
  co_return v;
}

// A composed operation as users write them: waits `n` (> 0) times for 1 ms on `timer`,
// then completes with the number of waits. The first step always starts an operation, so
// the completion never runs inside the initiating call. A cancellation that arrives
// between two waits (the last wait had completed, its step not yet run) is only recorded
// in the composed operation's state: each step checks it, as Asio asks of composed ops.
template <class Timer, class Token>
auto async_tick(Timer& timer, int n, Token&& token) {
  return asio::async_compose<Token, void(error_code, int)>(
      [&timer, n, done = -1](auto& self, error_code ec = {}) mutable {
        if (!ec && self.cancelled() != asio::cancellation_type::none)
          ec = asio::error::operation_aborted;
        if (ec)
          return self.complete(ec, done);
        if (++done == n)
          return self.complete(ec, done);
        timer.expires_after(std::chrono::milliseconds(1));
        timer.async_wait(std::move(self));
      },
      token, timer);
}

} // namespace

BOOST_AUTO_TEST_SUITE(conformance)

// --- Properties -------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(executor_properties_match_io_context_executor) {
  runtime rt{2};
  const ex_t ex = rt.get_executor();
  BOOST_TEST(&asio::query(ex, execution::context) == &rt);
  BOOST_TEST((asio::query(ex, execution::blocking) == execution::blocking.possibly));
  BOOST_TEST((asio::query(ex, execution::relationship) == execution::relationship.fork));
  BOOST_TEST((asio::query(ex, execution::outstanding_work) == execution::outstanding_work.untracked));
  BOOST_TEST((asio::query(ex, execution::mapping) == execution::mapping.thread));
  BOOST_TEST(asio::query(ex, execution::occupancy) == 2u);

  const auto never = asio::require(ex, execution::blocking.never);
  BOOST_TEST((asio::query(never, execution::blocking) == execution::blocking.never));
  BOOST_TEST((asio::query(asio::require(never, execution::blocking.possibly), execution::blocking) ==
              execution::blocking.possibly));
  const auto cont = asio::prefer(ex, execution::relationship.continuation);
  BOOST_TEST((asio::query(cont, execution::relationship) == execution::relationship.continuation));
  const auto tracked = asio::prefer(ex, execution::outstanding_work.tracked);
  BOOST_TEST((asio::query(tracked, execution::outstanding_work) == execution::outstanding_work.tracked));
  const auto untracked = asio::prefer(tracked, execution::outstanding_work.untracked);
  BOOST_TEST((untracked == ex));
  const auto with_alloc = asio::prefer(ex, execution::allocator(std::allocator<int>()));
  BOOST_TEST((asio::query(with_alloc, execution::allocator) == std::allocator<int>()));

  // Equality: same runtime and same properties.
  BOOST_TEST((ex == rt.get_executor()));
  BOOST_TEST((ex != never));
  runtime other{1};
  BOOST_TEST((ex != other.get_executor()));
  BOOST_TEST(&ex.context() == &rt);
}

BOOST_AUTO_TEST_CASE(any_io_executor_keeps_the_runtime_and_the_work_tracking) {
  runtime rt{1};
  const asio::any_io_executor any(rt.get_executor());
  BOOST_TEST(any.target<ex_t>() != nullptr);
  BOOST_TEST(&asio::query(any, execution::context) == static_cast<asio::execution_context*>(&rt));
  BOOST_TEST((any == asio::any_io_executor(rt.get_executor())));
  // prefer_only properties reach the runtime's executor instead of being dropped.
  const asio::any_io_executor tracked = asio::prefer(any, execution::outstanding_work.tracked);
  BOOST_TEST(tracked.target<tracked_ex_t>() != nullptr);
  const asio::any_io_executor never = asio::require(any, execution::blocking.never);
  BOOST_REQUIRE(never.target<ex_t>() != nullptr);
  BOOST_TEST((asio::query(*never.target<ex_t>(), execution::blocking) == execution::blocking.never));
  const asio::any_io_executor cont = asio::prefer(any, execution::relationship.continuation);
  BOOST_REQUIRE(cont.target<ex_t>() != nullptr);
  BOOST_TEST((asio::query(*cont.target<ex_t>(), execution::relationship) == execution::relationship.continuation));
}

// A tracked copy is outstanding work, as a work guard is: run() does not return while
// one is alive, and returns once the last one is gone.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_tracked_executor_keeps_run_alive, Ex, executor_types) {
  runtime rt{1};
  using tracked_t = decltype(asio::prefer(std::declval<Ex>(), execution::outstanding_work.tracked));
  std::optional<tracked_t> tracked(asio::prefer(executor_of<Ex>(rt), execution::outstanding_work.tracked));
  runners run(rt, 1);
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(!run.all_returned());
  tracked.reset();
  BOOST_TEST(run.join());
}

// --- post / dispatch / defer ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(dispatch_from_outside_queues_the_function, Ex, executor_types) {
  runtime rt{1};
  const Ex ex = executor_of<Ex>(rt);
  std::atomic<int> ran{0};
  asio::dispatch(ex, [&] { ++ran; });
  asio::post(ex, [&] { ++ran; });
  asio::defer(ex, [&] { ++ran; });
  ex.execute([&] { ++ran; });
  BOOST_TEST(ran == 0);
  BOOST_TEST(run_bounded(rt));
  BOOST_TEST(ran == 4);
}

// With two run() threads the queued functions may run on the other thread at once; what
// is checked is whether each ran inside the outer handler's own call, on its thread.
BOOST_AUTO_TEST_CASE_TEMPLATE(on_a_worker_dispatch_runs_inline_and_post_and_defer_never_do, Ex, executor_types) {
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  std::atomic<std::thread::id> outer_thread{};
  std::atomic<bool> in_outer{false};
  std::atomic<int> ran{0}, ran_inline{0};
  std::atomic<bool> dispatch_inline{false};
  auto inline_here = [&] { return in_outer && outer_thread.load() == std::this_thread::get_id(); };
  auto queued = [&] {
    if (inline_here())
      ++ran_inline;
    ++ran;
  };
  asio::post(ex, [&] {
    outer_thread = std::this_thread::get_id();
    in_outer = true;
    asio::post(ex, queued);
    asio::defer(ex, queued);
    asio::require(ex, execution::blocking.never).execute(queued);
    asio::dispatch(ex, [&] { dispatch_inline = inline_here(); });
    in_outer = false;
  });
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(ran == 3);
  BOOST_TEST(ran_inline == 0);
  BOOST_TEST(dispatch_inline);
}

// "Running in this thread" means a worker of *this* runtime: dispatch from another
// runtime's handler queues.
BOOST_AUTO_TEST_CASE_TEMPLATE(dispatch_from_another_runtimes_worker_queues, Ex, executor_types) {
  runtime a{1}, b{1};
  const Ex to_b = executor_of<Ex>(b);
  std::atomic<bool> ran_inline{false}, ran{false}, inside{false};
  std::atomic<bool> on_a{false}, on_b{true};
  asio::post(a.get_executor(), [&] {
    on_a = a.get_executor().running_in_this_thread();
    on_b = b.get_executor().running_in_this_thread();
    inside = true;
    asio::dispatch(to_b, [&] {
      ran = true;
      ran_inline = inside.load();
    });
    inside = false;
  });
  BOOST_TEST(run_bounded(a));
  BOOST_TEST(on_a);
  BOOST_TEST(!on_b);
  // The drive is over: this thread is no worker of either runtime any more.
  BOOST_TEST(!a.get_executor().running_in_this_thread());
  BOOST_TEST(!ran);
  BOOST_TEST(run_bounded(b));
  BOOST_TEST(ran);
  BOOST_TEST(!ran_inline);
  BOOST_TEST(!b.get_executor().running_in_this_thread());
}

// A drive of one runtime inside a handler of another: while b runs, this thread is b's worker
// and not a's; when b's run returns, it is a's worker again (the outer drive is restored, not
// cleared).
BOOST_AUTO_TEST_CASE(nested_drive_restores_the_outer_runtimes_worker) {
  runtime a{1}, b{1};
  std::atomic<bool> inner_on_a{true}, inner_on_b{false}, outer_on_a_after{false}, inner_ran{false};
  asio::post(b.get_executor(), [&] {
    inner_on_a = a.get_executor().running_in_this_thread();
    inner_on_b = b.get_executor().running_in_this_thread();
    inner_ran = true;
  });
  asio::post(a.get_executor(), [&] {
    b.poll();
    outer_on_a_after = a.get_executor().running_in_this_thread();
  });
  BOOST_TEST(run_bounded(a));
  BOOST_TEST(inner_ran);
  BOOST_TEST(!inner_on_a);
  BOOST_TEST(inner_on_b);
  BOOST_TEST(outer_on_a_after);
  BOOST_TEST(!a.get_executor().running_in_this_thread());
}

BOOST_AUTO_TEST_CASE(networking_ts_members_behave_as_io_contexts) {
  runtime rt{1};
  const ex_t ex = rt.get_executor();
  BOOST_TEST(&ex.context() == &rt);
  const std::allocator<void> a;
  std::vector<std::string> log;
  ex.dispatch([&] { log.emplace_back("outside dispatch"); }, a); // queued: not on a worker
  BOOST_TEST(log.empty());
  ex.post(
      [&] {
        log.emplace_back("outer begin");
        ex.post([&] { log.emplace_back("post"); }, a);
        ex.defer([&] { log.emplace_back("defer"); }, a);
        ex.dispatch([&] { log.emplace_back("dispatch"); }, a);
        BOOST_TEST(ex.running_in_this_thread());
        log.emplace_back("outer end");
      },
      a);
  BOOST_TEST(!ex.running_in_this_thread());
  BOOST_TEST(run_bounded(rt));
  BOOST_REQUIRE(log.size() == 6u);
  // One run() thread: the log is the order things ran in. Inside the outer handler only
  // the dispatch ran inline.
  const auto begin = std::find(log.begin(), log.end(), "outer begin");
  BOOST_REQUIRE((begin != log.end() && log.end() - begin >= 3));
  BOOST_TEST(begin[1] == "dispatch");
  BOOST_TEST(begin[2] == "outer end");

  // on_work_started / on_work_finished: outstanding work, as a work guard.
  rt.restart();
  ex.on_work_started();
  runners run(rt, 1);
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(!run.all_returned());
  ex.on_work_finished();
  BOOST_TEST(run.join());
}

// --- Work guards --------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(a_work_guard_keeps_run_alive_until_reset_from_another_thread, Ex, executor_types) {
  runtime rt{2};
  auto guard = asio::make_work_guard(executor_of<Ex>(rt));
  BOOST_TEST(guard.owns_work());
  runners run(rt, 2);
  std::atomic<int> ran{0};
  for (int i = 0; i < 10; ++i)
    asio::post(guard.get_executor(), [&] { ++ran; });
  BOOST_TEST(eventually([&] { return ran == 10; }));
  std::this_thread::sleep_for(30ms); // idle, yet kept alive by the guard
  BOOST_TEST(!run.all_returned());
  BOOST_TEST(!rt.stopped());
  std::thread([&] { guard.reset(); }).join();
  BOOST_TEST(run.join());
  BOOST_TEST(rt.stopped()); // running out of work stops the runtime, as io_context
}

// --- Strands -----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(a_strand_runs_10000_posts_from_several_threads_one_at_a_time_in_order, Ex,
                              executor_types) {
  runtime rt{2};
  const auto strand = asio::make_strand(executor_of<Ex>(rt));
  constexpr int posters = 4;
  constexpr int per_poster = 2500;
  std::atomic<bool> inside{false};
  std::atomic<int> overlaps{0}, out_of_order{0}, outside_strand{0}, count{0};
  std::array<int, posters> last{}; // touched only inside the strand: serial by its guarantee
  last.fill(-1);
  auto guard = asio::make_work_guard(rt.get_executor());
  runners run(rt, 2);
  std::vector<std::thread> threads;
  for (int p = 0; p < posters; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < per_poster; ++i) {
        auto h = [&, p, i] {
          if (inside.exchange(true, std::memory_order_acquire))
            ++overlaps;
          if (!strand.running_in_this_thread())
            ++outside_strand;
          if (last[p] + 1 != i)
            ++out_of_order;
          last[p] = i;
          ++count;
          inside.store(false, std::memory_order_release);
        };
        // Mix the three ways in; from outside the strand each one queues.
        if (i % 3 == 0)
          asio::post(strand, h);
        else if (i % 3 == 1)
          asio::dispatch(strand, h);
        else
          asio::defer(strand, h);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  guard.reset();
  BOOST_TEST(run.join());
  BOOST_TEST(count == posters * per_poster);
  BOOST_TEST(overlaps == 0);
  BOOST_TEST(out_of_order == 0);
  BOOST_TEST(outside_strand == 0);
}

// --- bind_executor ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(bind_executor_runs_the_completion_on_the_bound_executor, Ex, executor_types) {
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  const auto strand = asio::make_strand(ex);
  timer_for<Ex> timer(ex, 1ms);
  std::atomic<bool> in_strand{false}, waited{false};
  timer.async_wait(asio::bind_executor(strand, [&](error_code ec) {
    waited = !ec;
    in_strand = strand.running_in_this_thread();
  }));
  // post(handler) with no executor argument uses the handler's associated executor.
  std::atomic<bool> on_runtime{false};
  auto bound = asio::bind_executor(ex, [&] { on_runtime = rt.running_in_this_thread(); });
  BOOST_TEST((asio::get_associated_executor(bound) == ex));
  asio::post(std::move(bound));
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(waited);
  BOOST_TEST(in_strand);
  BOOST_TEST(on_runtime);
}

// The completion of an operation of one runtime hops to the runtime the handler is bound
// to; that pending completion keeps the second runtime's run() alive.
BOOST_AUTO_TEST_CASE_TEMPLATE(bind_executor_to_another_runtime_hops_there, Ex, executor_types) {
  runtime a{1}, b{1};
  timer_for<Ex> timer(executor_of<Ex>(a), 20ms);
  std::atomic<bool> on_b{false}, on_a{true};
  timer.async_wait(asio::bind_executor(executor_of<Ex>(b), [&](error_code) {
    on_b = b.running_in_this_thread();
    on_a = a.running_in_this_thread();
  }));
  runners run_a(a, 1), run_b(b, 1);
  BOOST_TEST(run_a.join());
  BOOST_TEST(run_b.join());
  BOOST_TEST(on_b);
  BOOST_TEST(!on_a);
}

// --- co_spawn with every token ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(co_spawn_detached_runs_the_coroutine_on_run_threads, Ex, executor_types) {
  runtime rt{2};
  std::atomic<int> done{0}, off_runtime{0};
  for (int i = 0; i < 20; ++i) {
    asio::co_spawn(
        executor_of<Ex>(rt),
        [&]() -> asio::awaitable<void, Ex> {
          if (!rt.running_in_this_thread())
            ++off_runtime;
          const int v = co_await answer<Ex>();
          if (!rt.running_in_this_thread())
            ++off_runtime;
          if (v == 42)
            ++done;
        },
        asio::detached);
  }
  BOOST_TEST(done == 0); // co_spawn from outside never runs the coroutine inline
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(done == 20);
  BOOST_TEST(off_runtime == 0);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(co_spawn_use_future_delivers_the_value_and_the_exception, Ex, executor_types) {
  runtime rt{2};
  std::future<int> ok = asio::co_spawn(executor_of<Ex>(rt), answer<Ex>(), asio::use_future);
  std::future<int> bad = asio::co_spawn(executor_of<Ex>(rt), throws_after_a_hop<Ex>(), asio::use_future);
  runners run(rt, 2);
  BOOST_REQUIRE(ready_in_time(ok));
  BOOST_REQUIRE(ready_in_time(bad));
  BOOST_TEST(ok.get() == 42);
  BOOST_CHECK_THROW(bad.get(), std::runtime_error);
  BOOST_TEST(run.join());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(co_spawn_use_awaitable_from_a_coroutine, Ex, executor_types) {
  runtime rt{2};
  std::atomic<int> value{0};
  std::atomic<bool> caught{false};
  asio::co_spawn(
      executor_of<Ex>(rt),
      [&]() -> asio::awaitable<void, Ex> {
        const Ex ex = co_await asio::this_coro::executor;
        value = co_await asio::co_spawn(ex, answer<Ex>(), use_aw<Ex>);
        try {
          co_await asio::co_spawn(ex, throws_after_a_hop<Ex>(), use_aw<Ex>);
        } catch (const std::runtime_error&) {
          caught = true;
        }
      },
      asio::detached);
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(value == 42);
  BOOST_TEST(caught);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(co_spawn_with_a_callback_completes_on_the_runtime, Ex, executor_types) {
  runtime rt{2};
  std::atomic<int> value{0};
  std::atomic<bool> ok_on_runtime{false}, bad_on_runtime{false}, bad_has_exception{false};
  asio::co_spawn(executor_of<Ex>(rt), answer<Ex>(), [&](std::exception_ptr e, int v) {
    if (!e)
      value = v;
    ok_on_runtime = rt.running_in_this_thread();
  });
  asio::co_spawn(executor_of<Ex>(rt), throws_after_a_hop<Ex>(), [&](std::exception_ptr e, int) {
    bad_has_exception = e != nullptr;
    bad_on_runtime = rt.running_in_this_thread();
  });
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(value == 42);
  BOOST_TEST(ok_on_runtime);
  BOOST_TEST(bad_has_exception);
  BOOST_TEST(bad_on_runtime);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(co_spawn_deferred_starts_when_invoked, Ex, executor_types) {
  runtime rt{2};
  std::atomic<int> value{0};
  std::atomic<bool> inner_done{false}, outer_done{false};
  auto op = asio::co_spawn(executor_of<Ex>(rt), answer<Ex>(), asio::deferred);
  std::move(op)([&](std::exception_ptr e, int v) {
    if (!e)
      value = v;
  });
  asio::co_spawn(
      executor_of<Ex>(rt),
      [&]() -> asio::awaitable<void, Ex> {
        const Ex ex = co_await asio::this_coro::executor;
        // co_await of a deferred operation (void(exception_ptr) here: 1.81 cannot await a
        // deferred void(exception_ptr, T): chriskohlhoff/asio#1172, fixed in Boost 1.82).
        co_await asio::co_spawn(
            ex, [&]() -> asio::awaitable<void, Ex> { inner_done = true; co_return; }, asio::deferred);
        timer_for<Ex> t(ex, 1ms);
        co_await t.async_wait(asio::deferred);
        outer_done = inner_done.load();
      },
      asio::detached);
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(value == 42);
  BOOST_TEST(outer_done);
}

// --- Awaitable operators and parallel_group ---------------------------------------------------

// On one run() thread, as with an io_context run by one thread. (On several threads the
// operators need a strand, with io_context too: see the next test.)
BOOST_AUTO_TEST_CASE_TEMPLATE(awaitable_operators_or_cancels_the_loser_and_and_waits_for_both, Ex, executor_types) {
  using namespace asio::experimental::awaitable_operators;
  runtime rt{1};
  std::optional<std::variant<int, int>> either;
  std::optional<std::tuple<int, int>> both;
  std::atomic<bool> and_failed{false};
  const auto start = std::chrono::steady_clock::now();
  asio::co_spawn(
      executor_of<Ex>(rt),
      [&]() -> asio::awaitable<void, Ex> {
        either = co_await (value_after<Ex>(5ms, 1) || value_after<Ex>(60s, 2));
        both = co_await (value_after<Ex>(5ms, 3) && value_after<Ex>(10ms, 4));
        try {
          co_await (throws_after_a_hop<Ex>() && value_after<Ex>(60s, 5));
        } catch (const std::exception&) {
          // Asio 1.81 throws multiple_exceptions here: the cancelled side failed too.
          and_failed = true;
        }
      },
      asio::detached);
  BOOST_TEST(run_bounded(rt));
  BOOST_TEST((std::chrono::steady_clock::now() - start < 1s)); // the 60 s losers were cancelled
  BOOST_REQUIRE(either.has_value());
  BOOST_TEST(either->index() == 0u);
  BOOST_TEST(std::get<0>(*either) == 1);
  BOOST_REQUIRE(both.has_value());
  BOOST_TEST(std::get<0>(*both) == 3);
  BOOST_TEST(std::get<1>(*both) == 4);
  BOOST_TEST(and_failed);
}

// Several run() threads, the coroutines on a strand: the way io_context users run them.
BOOST_AUTO_TEST_CASE(awaitable_operators_on_a_strand_with_two_run_threads) {
  using namespace asio::experimental::awaitable_operators;
  using strand_t = asio::strand<ex_t>;
  runtime rt{2};
  std::atomic<int> firsts{0}, boths{0};
  for (int i = 0; i < 20; ++i) {
    asio::co_spawn(
        asio::make_strand(rt.get_executor()),
        [&]() -> asio::awaitable<void, strand_t> {
          for (int j = 0; j < 5; ++j) {
            const auto r = co_await (value_after<strand_t>(1ms, 1) || value_after<strand_t>(60s, 2));
            if (r.index() == 0)
              ++firsts;
            const auto [x, y] = co_await (value_after<strand_t>(1ms, 3) && value_after<strand_t>(2ms, 4));
            if (x == 3 && y == 4)
              ++boths;
          }
        },
        asio::detached);
  }
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(firsts == 100);
  BOOST_TEST(boths == 100);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(parallel_group_wait_for_one_cancels_the_rest, Ex, executor_types) {
  runtime rt{1};
  const Ex ex = executor_of<Ex>(rt);
  timer_for<Ex> fast(ex, 5ms), slow(ex, 60s);
  std::optional<std::array<std::size_t, 2>> order;
  error_code fast_ec = asio::error::would_block, slow_ec;
  bool on_runtime = false;
  asio::experimental::make_parallel_group(fast.async_wait(asio::deferred), slow.async_wait(asio::deferred))
      .async_wait(asio::experimental::wait_for_one(), [&](std::array<std::size_t, 2> o, error_code a, error_code b) {
        order = o;
        fast_ec = a;
        slow_ec = b;
        on_runtime = rt.running_in_this_thread();
      });
  const auto start = std::chrono::steady_clock::now();
  BOOST_TEST(run_bounded(rt));
  BOOST_TEST((std::chrono::steady_clock::now() - start < 1s));
  BOOST_REQUIRE(order.has_value());
  BOOST_TEST((*order)[0] == 0u);
  BOOST_TEST(!fast_ec);
  BOOST_TEST(slow_ec == asio::error::operation_aborted);
  BOOST_TEST(on_runtime);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(parallel_group_wait_for_all_in_a_coroutine, Ex, executor_types) {
  runtime rt{1};
  std::atomic<bool> ok{false};
  asio::co_spawn(
      executor_of<Ex>(rt),
      [&]() -> asio::awaitable<void, Ex> {
        const Ex ex = co_await asio::this_coro::executor;
        timer_for<Ex> a(ex, 2ms), b(ex, 1ms);
        auto [order, ea, eb] =
            co_await asio::experimental::make_parallel_group(a.async_wait(asio::deferred), b.async_wait(asio::deferred))
                .async_wait(asio::experimental::wait_for_all(), use_aw<Ex>);
        ok = !ea && !eb && order[0] == 1 && order[1] == 0;
      },
      asio::detached);
  BOOST_TEST(run_bounded(rt));
  BOOST_TEST(ok);
}

// --- async_compose -------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(async_compose_completes_on_the_handlers_executor_never_inline, Ex, executor_types) {
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  timer_for<Ex> t1(ex), t2(ex);
  std::atomic<int> ticks{0}, awaited{0};
  std::atomic<bool> on_runtime{false}, completed_inline{false}, from_worker_inline{false};
  bool initiating = true;
  async_tick(t1, 3, [&](error_code ec, int n) {
    ticks = ec ? -1 : n;
    on_runtime = rt.running_in_this_thread();
    completed_inline = initiating;
  });
  initiating = false;
  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<void, Ex> {
        awaited = co_await async_tick(t2, 4, use_aw<Ex>);
        // Initiated on a worker: still not completed inside the initiating call.
        std::atomic<bool> inside{true};
        timer_for<Ex> t3(co_await asio::this_coro::executor);
        std::atomic<bool> done{false};
        async_tick(t3, 1, [&](error_code, int) {
          from_worker_inline = inside.load();
          done = true;
        });
        inside = false;
        while (!done)
          co_await asio::post(co_await asio::this_coro::executor, use_aw<Ex>);
      },
      asio::detached);
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(ticks == 3);
  BOOST_TEST(awaited == 4);
  BOOST_TEST(on_runtime);
  BOOST_TEST(!completed_inline);
  BOOST_TEST(!from_worker_inline);
}

// --- bind_cancellation_slot ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(bind_cancellation_slot_cancels_a_pending_timer_wait, Ex, executor_types) {
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  const auto strand = asio::make_strand(ex); // the signal is emitted where the wait lives
  timer_for<decltype(strand)> timer(strand, 60s);
  asio::cancellation_signal signal;
  error_code ec;
  timer.async_wait(asio::bind_cancellation_slot(signal.slot(), [&](error_code e) { ec = e; }));
  asio::post(strand, [&] { signal.emit(asio::cancellation_type::terminal); });
  const auto start = std::chrono::steady_clock::now();
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST((std::chrono::steady_clock::now() - start < 1s));
  BOOST_TEST(ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(bind_cancellation_slot_reaches_through_async_compose_and_use_awaitable, Ex,
                              executor_types) {
  runtime rt{1};
  const Ex ex = executor_of<Ex>(rt);
  timer_for<Ex> composed_timer(ex), awaited_timer(ex, 60s);
  asio::cancellation_signal composed_signal, awaited_signal;
  error_code composed_ec;
  std::atomic<bool> awaited_aborted{false};
  // async_tick waits 1 ms per tick: 100 000 ticks is far beyond the test; cancel it.
  async_tick(composed_timer, 100000,
             asio::bind_cancellation_slot(composed_signal.slot(), [&](error_code e, int) { composed_ec = e; }));
  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<void, Ex> {
        try {
          co_await awaited_timer.async_wait(asio::bind_cancellation_slot(awaited_signal.slot(), use_aw<Ex>));
        } catch (const boost::system::system_error& e) {
          awaited_aborted = e.code() == asio::error::operation_aborted;
        }
      },
      asio::detached);
  timer_for<Ex> later(ex, 20ms);
  later.async_wait([&](error_code) {
    composed_signal.emit(asio::cancellation_type::terminal);
    awaited_signal.emit(asio::cancellation_type::terminal);
  });
  const auto start = std::chrono::steady_clock::now();
  BOOST_TEST(run_bounded(rt));
  BOOST_TEST((std::chrono::steady_clock::now() - start < 1s));
  BOOST_TEST(composed_ec == asio::error::operation_aborted);
  BOOST_TEST(awaited_aborted);
}

BOOST_AUTO_TEST_SUITE_END()
