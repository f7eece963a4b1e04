// io_context's guarantees, one test each, held by swarm::runtime. Where io_context has the
// same loop control, the test is a template run on both: io_context shows what the guarantee
// is, the runtime must match it. What only the runtime has (start(), owned workers, thread
// accounting) is tested on it alone.
#include "support.hpp"

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/multiple_exceptions.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>
#include <swarm/asio/boost_shim.hpp>
#include <swarm/swarm.hpp>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using swarm::runtime;
using namespace swarm_test;

namespace {

using contexts = std::tuple<asio::io_context, runtime>;

template <class Context>
using timer_of = asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>,
                                            typename Context::executor_type>;
template <class Context>
using socket_of = asio::basic_stream_socket<tcp, typename Context::executor_type>;
template <class Context>
using acceptor_of = asio::basic_socket_acceptor<tcp, typename Context::executor_type>;

template <class Context>
bool on_a_run_thread(Context& ctx) {
  return ctx.get_executor().running_in_this_thread();
}

bool elapsed_at_least(std::chrono::steady_clock::time_point start, std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() - start >= d;
}
bool elapsed_below(std::chrono::steady_clock::time_point start, std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() - start < d;
}

// Whether two of the runtime's workers run handlers at the same time: two posted handlers
// each wait up to `patience` for the other to start, and both must meet within `bound`.
bool two_workers_meet(runtime& rt, std::chrono::milliseconds patience = 500ms,
                      std::chrono::steady_clock::duration bound = limit) {
  struct meeting {
    std::atomic<int> arrived{0}, met{0};
  };
  auto m = std::make_shared<meeting>(); // outlives handlers that run late
  for (int i = 0; i < 2; ++i)
    asio::post(rt.get_executor(), [m, patience] {
      ++m->arrived;
      if (eventually([&] { return m->arrived == 2; }, patience))
        ++m->met;
    });
  return eventually([&] { return m->met == 2; }, bound);
}

// A connected pair of sockets on 127.0.0.1, made synchronously.
template <class Context>
struct socket_pair {
  socket_of<Context> a, b;
  explicit socket_pair(Context& ctx) : a(ctx.get_executor()), b(ctx.get_executor()) {
    acceptor_of<Context> acceptor(ctx.get_executor(), {asio::ip::address_v4::loopback(), 0});
    a.connect(acceptor.local_endpoint());
    acceptor.accept(b);
  }
};

// `round_trips` echoes over a socket pair with completion handlers, serialised on a strand
// (a socket is not thread-safe); calls `probe` from a handler at every round trip. Keeps
// itself alive through its handlers.
template <class Context>
struct echo_exchange : std::enable_shared_from_this<echo_exchange<Context>> {
  socket_pair<Context> sockets;
  asio::strand<typename Context::executor_type> strand;
  int round_trips;
  std::function<void()> probe;
  std::atomic<int>& done;
  char out[4] = {'p', 'i', 'n', 'g'}, in[4] = {}, echo[4] = {};

  echo_exchange(Context& ctx, int n, std::atomic<int>& d, std::function<void()> p = {})
      : sockets(ctx), strand(ctx.get_executor()), round_trips(n), probe(std::move(p)), done(d) {}

  void start() { asio::dispatch(strand, [self = this->shared_from_this()] { self->next(); }); }

  void next() {
    if (done >= round_trips)
      return;
    auto self = this->shared_from_this();
    asio::async_write(sockets.a, asio::buffer(out), asio::bind_executor(strand, [self](error_code ec, std::size_t) {
      if (ec)
        return;
      asio::async_read(self->sockets.a, asio::buffer(self->in),
                       asio::bind_executor(self->strand, [self](error_code ec2, std::size_t) {
                         if (ec2)
                           return;
                         if (self->probe)
                           self->probe();
                         ++self->done;
                         self->next();
                       }));
    }));
    asio::async_read(sockets.b, asio::buffer(echo), asio::bind_executor(strand, [self](error_code ec, std::size_t) {
      if (!ec)
        asio::async_write(self->sockets.b, asio::buffer(self->echo),
                          asio::bind_executor(self->strand, [self](error_code, std::size_t) {}));
    }));
  }
};

// The process's threads, by kernel id (/proc/self/task).
std::set<std::string> thread_ids() {
  std::set<std::string> ids;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task"))
    ids.insert(e.path().filename().string());
  return ids;
}

// Tracks the most threads alive at once that were not alive at construction. (Threads
// of earlier tests may still be exiting: they are not counted, either way.)
class new_threads {
public:
  std::size_t now() const {
    std::size_t n = 0;
    for (const std::string& id : thread_ids())
      n += before_.count(id) == 0 ? 1 : 0;
    return n;
  }
  void sample() {
    const std::size_t n = now();
    std::size_t prev = most_.load();
    while (n > prev && !most_.compare_exchange_weak(prev, n)) {
    }
  }
  std::size_t most() const { return most_.load(); }

private:
  std::set<std::string> before_ = thread_ids();
  std::atomic<std::size_t> most_{0};
};

} // namespace

// A check written as a function template, run on io_context (proving the guarantee) and on
// the runtime, as two test cases.
#define SWARM_ON_BOTH(check)                                                                                \
  BOOST_AUTO_TEST_CASE(check##_on_io_context) { check<asio::io_context>(); }                                \
  BOOST_AUTO_TEST_CASE(check##_on_runtime) { check<runtime>(); }

BOOST_AUTO_TEST_SUITE(io_context_guarantees)

// --- One run() thread is single threaded --------------------------------------------------

// Context{1} run by one thread: 10 000 handlers posted from two threads, plus timer
// completions, never overlap and all run on that thread.
BOOST_AUTO_TEST_CASE_TEMPLATE(one_run_thread_never_runs_two_handlers_at_once, Context, contexts) {
  Context ctx{1};
  auto guard = asio::make_work_guard(ctx.get_executor());
  std::atomic<bool> inside{false};
  std::atomic<int> overlaps{0}, ran{0}, timers_fired{0}, elsewhere{0};
  runners run(ctx, 1);
  const std::thread::id runner = run.ids().at(0);
  auto body = [&] {
    if (inside.exchange(true))
      ++overlaps;
    if (std::this_thread::get_id() != runner)
      ++elsewhere;
    inside = false;
  };
  std::vector<std::thread> posters;
  for (int p = 0; p < 2; ++p) {
    posters.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        asio::post(ctx.get_executor(), [&, i] {
          body();
          ++ran;
          if (i % 100 == 0) {
            // Handlers run by the I/O driver take part too.
            auto t = std::make_shared<timer_of<Context>>(ctx.get_executor(), std::chrono::microseconds(200));
            t->async_wait([&, t](error_code) {
              body();
              ++timers_fired;
            });
          }
        });
      }
    });
  }
  for (auto& t : posters)
    t.join();
  guard.reset();
  BOOST_TEST(run.join());
  BOOST_TEST(ran == 10000);
  BOOST_TEST(timers_fired == 100);
  BOOST_TEST(overlaps == 0);
  BOOST_TEST(elsewhere == 0);
}

// One run() thread is an implicit strand (Asio's documentation, "Strands"), and a strand
// runs one thread's posts in the order they were made. (The runtime used to break this
// every 61st tick, when Tokio's fairness rule takes the inject queue before the local one.)
template <class Context>
void posts_from_one_thread_run_in_order_on_one_run_thread() {
  Context ctx{1};
  std::vector<int> order;
  for (int i = 0; i < 1000; ++i)
    asio::post(ctx.get_executor(), [&, i] { order.push_back(i); });
  BOOST_TEST(run_bounded(ctx));
  BOOST_REQUIRE(order.size() == 1000u);
  BOOST_TEST(std::is_sorted(order.begin(), order.end()));
}
SWARM_ON_BOTH(posts_from_one_thread_run_in_order_on_one_run_thread)

// Posts (and defers) made by a handler come after every post made before them from outside,
// on one run() thread: the 300 outside posts are queued when the first of them posts 300
// more, so the order is 0..599. (io_context holds a handler's own posts until it returns;
// the runtime queues them behind the outside posts still waiting.)
template <class Context>
void local_posts_follow_earlier_outside_posts_on_one_run_thread() {
  if constexpr (std::is_same_v<Context, asio::io_context>) {
    // io_context{1} of Boost 1.87 runs without its one-thread mode (boost_shim.hpp).
    if (!swarm::detail::asio_shim::one_thread_hint_works)
      return;
  }
  Context ctx{1};
  std::vector<int> order;
  for (int i = 0; i < 300; ++i)
    asio::post(ctx.get_executor(), [&, i] {
      order.push_back(i);
      if (i != 0)
        return;
      for (int j = 300; j < 600; ++j) {
        if (j % 3 == 0)
          asio::defer(ctx.get_executor(), [&, j] { order.push_back(j); });
        else
          asio::post(ctx.get_executor(), [&, j] { order.push_back(j); });
      }
    });
  BOOST_TEST(run_bounded(ctx));
  BOOST_REQUIRE(order.size() == 600u);
  BOOST_TEST(std::is_sorted(order.begin(), order.end()));
}
SWARM_ON_BOTH(local_posts_follow_earlier_outside_posts_on_one_run_thread)

// --- run() returns when out of work ---------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(run_without_work_returns_at_once_and_stops, Context, contexts) {
  Context ctx{2};
  const auto start = std::chrono::steady_clock::now();
  BOOST_TEST(ctx.run() == 0u);
  BOOST_TEST(elapsed_below(start, 500ms));
  BOOST_TEST(ctx.stopped());
  bool ran = false;
  asio::post(ctx.get_executor(), [&] { ran = true; });
  BOOST_TEST(ctx.run() == 0u); // stopped: restart() first
  BOOST_TEST(!ran);
  ctx.restart();
  BOOST_TEST(!ctx.stopped());
  BOOST_TEST(run_bounded(ctx));
  BOOST_TEST(ran);
}

// Whichever loop function runs the last unit of work stops the context: poll() and
// run_one() too, not only run().
BOOST_AUTO_TEST_CASE_TEMPLATE(poll_and_run_one_that_run_the_last_work_stop, Context, contexts) {
  Context ctx{2};
  int ran = 0;
  asio::post(ctx.get_executor(), [&] { ++ran; });
  asio::post(ctx.get_executor(), [&] { ++ran; });
  BOOST_TEST(ctx.run_one() == 1u);
  BOOST_TEST(!ctx.stopped()); // one handler is still queued
  BOOST_TEST(ctx.poll() == 1u);
  BOOST_TEST(ran == 2);
  BOOST_TEST(ctx.stopped());
  ctx.restart();
  asio::post(ctx.get_executor(), [&] { ++ran; });
  BOOST_TEST(ctx.run_one() == 1u);
  BOOST_TEST(ctx.stopped());
  BOOST_TEST(ran == 3);
}

// The last unit of work is a timer completion, run by the I/O driver: run() still
// returns, on one run() thread and on two.
BOOST_AUTO_TEST_CASE_TEMPLATE(run_returns_after_the_last_timer_fired, Context, contexts) {
  for (const int threads : {1, 2}) {
    Context ctx{threads};
    const auto start = std::chrono::steady_clock::now();
    timer_of<Context> t(ctx.get_executor(), 30ms);
    std::atomic<int> fired{0};
    t.async_wait([&](error_code) {
      ++fired;
      t.expires_after(5ms);
      t.async_wait([&](error_code) { ++fired; });
    });
    runners run(ctx, threads);
    BOOST_TEST(run.join());
    BOOST_TEST(fired == 2);
    BOOST_TEST(elapsed_at_least(start, 35ms));
    BOOST_TEST(ctx.stopped());
  }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(run_returns_after_the_last_socket_operation, Context, contexts) {
  for (const int threads : {1, 2}) {
    Context ctx{threads};
    std::atomic<int> done{0};
    std::make_shared<echo_exchange<Context>>(ctx, 50, done)->start();
    runners run(ctx, threads);
    BOOST_TEST(run.join());
    BOOST_TEST(done == 50);
  }
}

// run() returns the number of handlers it ran, completions included: those Asio's
// scheduler runs inside the runtime's I/O driver count too.
template <class Context>
void run_counts_the_handlers_it_ran() {
  Context ctx{1};
  timer_of<Context> t(ctx.get_executor(), 1ms);
  t.async_wait([](error_code) {});
  asio::post(ctx.get_executor(), [] {});
  std::size_t n = 0;
  BOOST_TEST(run_bounded(ctx, limit, &n));
  BOOST_TEST(n == 2u);
}
SWARM_ON_BOTH(run_counts_the_handlers_it_ran)

// --- Exceptions -----------------------------------------------------------------------------

// The exception leaves run() on the thread that ran the handler; run() may be called
// again without restart(), and the rest of the work is still there.
BOOST_AUTO_TEST_CASE_TEMPLATE(a_handlers_exception_leaves_run_and_run_can_be_called_again, Context, contexts) {
  Context ctx{1};
  std::atomic<bool> second{false};
  asio::post(ctx.get_executor(), [] { throw std::runtime_error("first"); });
  asio::post(ctx.get_executor(), [&] { second = true; });
  BOOST_CHECK_THROW(ctx.run(), std::runtime_error);
  BOOST_TEST(!second);
  BOOST_TEST(!ctx.stopped());
  BOOST_TEST(run_bounded(ctx));
  BOOST_TEST(second);
}

// Only the thread that ran the throwing handler leaves; the other run() thread goes on.
BOOST_AUTO_TEST_CASE_TEMPLATE(an_exception_leaves_only_the_throwing_threads_run, Context, contexts) {
  Context ctx{2};
  auto guard = asio::make_work_guard(ctx.get_executor());
  std::atomic<int> caught{0}, ran{0};
  runners run(ctx, 2, [&](Context& c) -> std::size_t {
    for (;;) {
      try {
        return c.run();
      } catch (const std::runtime_error&) {
        ++caught; // and back into run(), as io_context's documentation suggests
      }
    }
  });
  asio::post(ctx.get_executor(), [] { throw std::runtime_error("boom"); });
  for (int i = 0; i < 100; ++i)
    asio::post(ctx.get_executor(), [&] { ++ran; });
  BOOST_TEST(eventually([&] { return ran == 100 && caught == 1; }));
  guard.reset();
  BOOST_TEST(run.join());
  BOOST_TEST(caught == 1);
}

// A handler dispatched inline from another handler throws: the outer handler finishes,
// then the exception leaves run().
BOOST_AUTO_TEST_CASE_TEMPLATE(an_exception_from_an_inline_dispatch_leaves_run_after_the_outer_handler, Context,
                              contexts) {
  Context ctx{1};
  bool outer_finished = false;
  asio::post(ctx.get_executor(), [&] {
    asio::dispatch(ctx.get_executor(), [] { throw std::runtime_error("inner"); });
    outer_finished = true;
  });
  BOOST_CHECK_THROW(ctx.run(), std::runtime_error);
  BOOST_TEST(outer_finished);
}

// The same for a completion run by the I/O driver: a timer's handler throws.
BOOST_AUTO_TEST_CASE_TEMPLATE(an_exception_from_a_completion_handler_leaves_run, Context, contexts) {
  Context ctx{1};
  timer_of<Context> first(ctx.get_executor(), 1ms), second(ctx.get_executor(), 20ms);
  bool second_fired = false;
  first.async_wait([](error_code) { throw std::runtime_error("from a timer"); });
  second.async_wait([&](error_code) { second_fired = true; });
  BOOST_CHECK_THROW(ctx.run(), std::runtime_error);
  BOOST_TEST(!second_fired);
  BOOST_TEST(!ctx.stopped());
  BOOST_TEST(run_bounded(ctx));
  BOOST_TEST(second_fired);
}

// Two exceptions in one handler (an inline dispatch threw, then the handler itself): one
// of them leaves run() (io_context: the handler's own; for two inline ones,
// multiple_exceptions) and run() can be called again. (The runtime used to terminate.)
template <class Context>
void two_exceptions_in_one_handler_leave_run() {
  Context ctx{1};
  bool later = false;
  asio::post(ctx.get_executor(), [&] {
    asio::dispatch(ctx.get_executor(), [] { throw std::runtime_error("inline"); });
    throw std::logic_error("outer");
  });
  asio::post(ctx.get_executor(), [&] { later = true; });
  BOOST_CHECK_THROW(ctx.run(), std::exception);
  BOOST_TEST(run_bounded(ctx));
  BOOST_TEST(later);
}
SWARM_ON_BOTH(two_exceptions_in_one_handler_leave_run)

// Two inline dispatches of one handler throw: run() throws multiple_exceptions, which
// holds the first; the handler itself finished.
template <class Context>
void two_inline_exceptions_leave_run_as_multiple_exceptions() {
  Context ctx{1};
  bool finished = false;
  asio::post(ctx.get_executor(), [&] {
    asio::dispatch(ctx.get_executor(), [] { throw std::runtime_error("first"); });
    asio::dispatch(ctx.get_executor(), [] { throw std::logic_error("second"); });
    asio::dispatch(ctx.get_executor(), [] { throw std::logic_error("third"); });
    finished = true;
  });
  bool multiple = false, holds_first = false;
  try {
    ctx.run();
  } catch (const asio::multiple_exceptions& e) {
    multiple = true;
    try {
      std::rethrow_exception(e.first_exception());
    } catch (const std::runtime_error&) {
      holds_first = true;
    } catch (...) {
    }
  }
  BOOST_TEST(multiple);
  BOOST_TEST(holds_first);
  BOOST_TEST(finished);
}
SWARM_ON_BOTH(two_inline_exceptions_leave_run_as_multiple_exceptions)

// --- stop / stopped / restart -----------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(stop_makes_every_run_return_and_restart_resumes, Context, contexts) {
  Context ctx{2};
  auto guard = asio::make_work_guard(ctx.get_executor());
  {
    runners run(ctx, 2);
    std::atomic<int> ran{0};
    for (int i = 0; i < 10; ++i)
      asio::post(ctx.get_executor(), [&] { ++ran; });
    BOOST_TEST(eventually([&] { return ran == 10; }));
    BOOST_TEST(!run.all_returned());
    ctx.stop();
    BOOST_TEST(run.join());
    BOOST_TEST(ctx.stopped());
  }
  // Work queued while stopped is kept, not run, until restart().
  bool ran_after = false;
  asio::post(ctx.get_executor(), [&] { ran_after = true; });
  BOOST_TEST(ctx.run() == 0u);
  BOOST_TEST(ctx.poll() == 0u);
  BOOST_TEST(!ran_after);
  ctx.restart();
  BOOST_TEST(!ctx.stopped());
  guard.reset();
  BOOST_TEST(run_bounded(ctx));
  BOOST_TEST(ran_after);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(stop_from_a_handler_makes_every_run_return, Context, contexts) {
  Context ctx{2};
  auto guard = asio::make_work_guard(ctx.get_executor());
  runners run(ctx, 2);
  timer_of<Context> t(ctx.get_executor(), 20ms);
  t.async_wait([&](error_code) { ctx.stop(); });
  BOOST_TEST(run.join());
  BOOST_TEST(ctx.stopped());
}

// --- run_for / run_until -------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(run_for_and_run_until_return_after_the_time_with_work_outstanding, Context, contexts) {
  Context ctx{1};
  auto guard = asio::make_work_guard(ctx.get_executor());
  int ran = 0;
  for (int i = 0; i < 3; ++i)
    asio::post(ctx.get_executor(), [&] { ++ran; });
  auto start = std::chrono::steady_clock::now();
  BOOST_TEST(ctx.run_for(100ms) == 3u);
  BOOST_TEST(ran == 3);
  BOOST_TEST(elapsed_at_least(start, 100ms));
  BOOST_TEST(elapsed_below(start, 1500ms));
  BOOST_TEST(!ctx.stopped());

  start = std::chrono::steady_clock::now();
  BOOST_TEST(ctx.run_until(std::chrono::steady_clock::now() + 50ms) == 0u);
  BOOST_TEST(elapsed_at_least(start, 50ms));
  BOOST_TEST(elapsed_below(start, 1500ms));

  start = std::chrono::steady_clock::now();
  BOOST_TEST(ctx.run_until(std::chrono::system_clock::now() + 50ms) == 0u);
  BOOST_TEST(elapsed_at_least(start, 45ms)); // system_clock and steady_clock drift apart a little
  BOOST_TEST(elapsed_below(start, 1500ms));

  // A timer inside the window runs, and run_for still waits out the rest.
  timer_of<Context> t(ctx.get_executor(), 20ms);
  bool fired = false;
  t.async_wait([&](error_code) { fired = true; });
  start = std::chrono::steady_clock::now();
  ctx.run_for(60ms);
  BOOST_TEST(fired);
  BOOST_TEST(elapsed_at_least(start, 60ms));

  // Without work, run_for returns at once (and the context stops, as with run()).
  guard.reset();
  start = std::chrono::steady_clock::now();
  BOOST_TEST(ctx.run_for(1s) == 0u);
  BOOST_TEST(elapsed_below(start, 500ms));
  BOOST_TEST(ctx.stopped());
}

// --- run_one / poll / poll_one ------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(run_one_runs_exactly_one_handler, Context, contexts) {
  Context ctx{1};
  int ran = 0;
  asio::post(ctx.get_executor(), [&] {
    ++ran;
    asio::post(ctx.get_executor(), [&] { ++ran; });
    asio::defer(ctx.get_executor(), [&] { ++ran; });
  });
  asio::post(ctx.get_executor(), [&] { ++ran; });
  for (int expected = 1; expected <= 4; ++expected) {
    BOOST_TEST(ctx.run_one() == 1u);
    BOOST_TEST(ran == expected);
  }
  BOOST_TEST(ctx.run_one() == 0u); // out of work
  BOOST_TEST(ctx.stopped());
}

// run_one waits for a handler to become ready; a timer's completion is one. (The runtime
// used to run it inside the I/O driver uncounted and wait on, with a work guard forever.)
template <class Context>
void run_one_waits_for_a_timer_completion() {
  Context ctx{1};
  auto guard = asio::make_work_guard(ctx.get_executor());
  const auto start = std::chrono::steady_clock::now();
  timer_of<Context> t(ctx.get_executor(), 20ms);
  std::atomic<bool> fired{false};
  t.async_wait([&](error_code) { fired = true; });
  runners run(ctx, 1, [](Context& c) { return c.run_one(); });
  const bool returned = run.join();
  BOOST_TEST(returned);
  BOOST_TEST(run.handled() == 1u);
  BOOST_TEST(fired);
  BOOST_TEST(elapsed_at_least(start, 20ms));
}
SWARM_ON_BOTH(run_one_waits_for_a_timer_completion)

// run_one and poll_one run one handler, even when several completions are ready: the
// I/O driver runs at most what the caller has left.
template <class Context>
void run_one_and_poll_one_run_one_of_two_due_completions() {
  Context ctx{1};
  auto guard = asio::make_work_guard(ctx.get_executor());
  timer_of<Context> a(ctx.get_executor(), 1ms), b(ctx.get_executor(), 1ms);
  int fired = 0;
  a.async_wait([&](error_code) { ++fired; });
  b.async_wait([&](error_code) { ++fired; });
  std::this_thread::sleep_for(20ms);
  BOOST_TEST(ctx.poll_one() == 1u);
  BOOST_TEST(fired == 1);
  runners run(ctx, 1, [](Context& c) { return c.run_one(); }); // bounded: a guard is held
  BOOST_TEST(run.join());
  BOOST_TEST(run.handled() == 1u);
  BOOST_TEST(fired == 2);
}
SWARM_ON_BOTH(run_one_and_poll_one_run_one_of_two_due_completions)

BOOST_AUTO_TEST_CASE_TEMPLATE(poll_runs_ready_handlers_without_blocking, Context, contexts) {
  Context ctx{1};
  auto guard = asio::make_work_guard(ctx.get_executor());
  auto start = std::chrono::steady_clock::now();
  BOOST_TEST(ctx.poll() == 0u);
  BOOST_TEST(ctx.poll_one() == 0u);
  BOOST_TEST(elapsed_below(start, 500ms));
  BOOST_TEST(!ctx.stopped());

  int ran = 0;
  for (int i = 0; i < 3; ++i)
    asio::post(ctx.get_executor(), [&] { ++ran; });
  BOOST_TEST(ctx.poll_one() == 1u);
  BOOST_TEST(ran == 1);
  BOOST_TEST(ctx.poll() == 2u);
  BOOST_TEST(ran == 3);

  // A pending timer not yet due: poll returns at once without running it.
  timer_of<Context> far(ctx.get_executor(), 60s), near(ctx.get_executor(), 1ms);
  bool far_fired = false, near_fired = false;
  far.async_wait([&](error_code) { far_fired = true; });
  start = std::chrono::steady_clock::now();
  BOOST_TEST(ctx.poll() == 0u);
  BOOST_TEST(elapsed_below(start, 500ms));
  BOOST_TEST(!far_fired);
  // Once due, poll runs its completion.
  near.async_wait([&](error_code) { near_fired = true; });
  std::this_thread::sleep_for(10ms);
  BOOST_TEST(eventually([&] {
    ctx.poll();
    return near_fired;
  }));
  BOOST_TEST(!far_fired);
}

// poll() counts a completion the I/O driver ran.
template <class Context>
void poll_counts_a_due_timer_completion() {
  Context ctx{1};
  auto guard = asio::make_work_guard(ctx.get_executor());
  timer_of<Context> t(ctx.get_executor(), 1ms);
  bool fired = false;
  t.async_wait([&](error_code) { fired = true; });
  std::this_thread::sleep_for(20ms);
  BOOST_TEST(ctx.poll() == 1u);
  BOOST_TEST(fired);
}
SWARM_ON_BOTH(poll_counts_a_due_timer_completion)

// --- Which threads run handlers -----------------------------------------------------------

// Nothing runs before anyone calls run(), even when due; afterwards handlers, timer and
// socket completions run only on the run() threads.
BOOST_AUTO_TEST_CASE_TEMPLATE(handlers_run_only_on_threads_inside_run, Context, contexts) {
  Context ctx{2};
  std::mutex m;
  std::set<std::thread::id> seen;
  auto record = [&] {
    std::lock_guard l(m);
    seen.insert(std::this_thread::get_id());
  };
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i)
    asio::post(ctx.get_executor(), [&] {
      record();
      ++ran;
    });
  timer_of<Context> t(ctx.get_executor(), 1ms);
  t.async_wait([&](error_code) {
    record();
    ++ran;
  });
  std::atomic<int> done{0};
  std::make_shared<echo_exchange<Context>>(ctx, 100, done, record)->start();
  std::this_thread::sleep_for(30ms);
  BOOST_TEST(ran == 0);
  BOOST_TEST(done == 0);
  runners run(ctx, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(ran == 101);
  BOOST_TEST(done == 100);
  const auto ids = run.ids();
  for (const std::thread::id id : seen)
    BOOST_TEST((std::find(ids.begin(), ids.end(), id) != ids.end()));
}

// More run() threads than the concurrency hint: with io_context they all run; with the
// runtime the extra ones wait for a free worker slot. Either way every run() returns once
// the work is done.
BOOST_AUTO_TEST_CASE_TEMPLATE(more_run_threads_than_the_hint_all_return, Context, contexts) {
  Context ctx{1};
  std::atomic<int> ran{0};
  timer_of<Context> t(ctx.get_executor(), 20ms);
  t.async_wait([&](error_code) { ++ran; });
  for (int i = 0; i < 100; ++i)
    asio::post(ctx.get_executor(), [&] { ++ran; });
  runners run(ctx, 3);
  BOOST_TEST(run.join());
  BOOST_TEST(ran == 101);
}

// A difference by design: io_context lets a handler call run() / poll() of its own context
// (a nested loop); the runtime refuses with an exception that names the misuse, and that
// exception leaves the outer run() like any handler's.
BOOST_AUTO_TEST_CASE(a_nested_run_from_a_handler_is_refused_with_a_clear_error) {
  runtime rt{1};
  asio::post(rt.get_executor(), [&] { rt.poll(); });
  BOOST_CHECK_THROW(rt.run(), std::logic_error);
}

// Context{2} with two run() threads runs two handlers at the same time: each waits for
// the other to start.
BOOST_AUTO_TEST_CASE_TEMPLATE(two_run_threads_run_handlers_concurrently, Context, contexts) {
  Context ctx{2};
  std::atomic<int> arrived{0}, met{0};
  for (int i = 0; i < 2; ++i)
    asio::post(ctx.get_executor(), [&] {
      ++arrived;
      if (eventually([&] { return arrived == 2; }, 1s))
        ++met;
    });
  runners run(ctx, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(met == 2);
}

// --- start(): the runtime's own workers (Tokio's model) -------------------------------------

BOOST_AUTO_TEST_CASE(start_runs_handlers_with_no_run_caller_and_stop_start_brings_them_back) {
  swarm::runtime_options o;
  o.worker_threads = 2;
  runtime rt(o);
  const auto main_id = std::this_thread::get_id();
  std::atomic<int> ran{0}, on_main{0};
  auto count = [&] {
    if (std::this_thread::get_id() == main_id)
      ++on_main;
    ++ran;
  };
  rt.start();
  for (int i = 0; i < 10; ++i)
    asio::post(rt.get_executor(), count);
  BOOST_TEST(eventually([&] { return ran == 10; }));
  // Running out of work does not stop a started runtime.
  std::this_thread::sleep_for(20ms);
  BOOST_TEST(!rt.stopped());
  asio::post(rt.get_executor(), count);
  BOOST_TEST(eventually([&] { return ran == 11; }));

  rt.stop();
  BOOST_TEST(rt.stopped());
  asio::post(rt.get_executor(), count);
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(ran == 11); // stopped: kept, not run

  rt.start();
  BOOST_TEST(!rt.stopped());
  BOOST_TEST(eventually([&] { return ran == 12; }));
  BOOST_TEST(on_main == 0);
}

// stop() stops the owned workers too, and restart() brings them back (doc/design.md, "Asio
// binding"): the owned threads wait out the stop and go on when restart() clears it.
BOOST_AUTO_TEST_CASE(restart_brings_back_the_owned_workers) {
  swarm::runtime_options o;
  o.worker_threads = 2;
  runtime rt(o);
  rt.start();
  for (int round = 0; round < 3; ++round) {
    rt.stop();
    std::this_thread::sleep_for(50ms); // the workers see the stop and leave
    std::atomic<int> ran{0};
    asio::post(rt.get_executor(), [&] { ++ran; });
    std::this_thread::sleep_for(20ms);
    BOOST_TEST(ran == 0); // stopped: kept, not run
    rt.restart();
    BOOST_TEST(!rt.stopped());
    BOOST_TEST(eventually([&] { return ran == 1; }));
    BOOST_TEST(two_workers_meet(rt)); // both workers are back
  }
}

// A handler's exception on a started runtime has no run() caller to go to: the runtime's
// unhandled-exception policy decides (doc/design.md). ignore (the default, Tokio's): the
// exception is dropped and the worker goes on; every worker is still there.
BOOST_AUTO_TEST_CASE(a_handlers_exception_on_owned_workers_is_dropped_by_default) {
  swarm::runtime_options o;
  o.worker_threads = 2;
  runtime rt(o);
  rt.start();
  std::atomic<int> ran{0};
  for (int i = 0; i < 20; ++i) {
    asio::post(rt.get_executor(), [] { throw std::runtime_error("posted"); });
    asio::post(rt.get_executor(), [&] { ++ran; });
  }
  // From an inline dispatch and from a completion the I/O driver runs, too.
  asio::post(rt.get_executor(), [&] {
    asio::dispatch(rt.get_executor(), [] { throw std::runtime_error("inline"); });
    ++ran;
  });
  timer_of<runtime> t(rt.get_executor(), 1ms);
  t.async_wait([](error_code) { throw std::runtime_error("timer"); });
  BOOST_TEST(eventually([&] { return ran == 21; }));
  BOOST_TEST(!rt.stopped());
  BOOST_TEST(!swarm::detail::core_of(rt).scheduler().is_shutdown());
  BOOST_TEST(two_workers_meet(rt));
}

// shutdown_runtime: the first such exception shuts the runtime down, cancelling its tasks;
// a run() caller waiting on the started runtime returns; handlers posted afterwards are
// destroyed unrun.
BOOST_AUTO_TEST_CASE(a_handlers_exception_on_owned_workers_shuts_the_runtime_down_by_policy) {
  swarm::runtime_options o;
  o.worker_threads = 2;
  o.unhandled_exception = swarm::unhandled_exception_policy::shutdown_runtime;
  runtime rt(o);
  rt.start();
  std::atomic<bool> task_started{false};
  auto h = swarm::spawn(rt.get_executor(), [&]() -> asio::awaitable<void> {
    task_started = true;
    asio::steady_timer long_wait(co_await asio::this_coro::executor, 100s);
    co_await long_wait.async_wait(asio::use_awaitable);
  });
  BOOST_REQUIRE(eventually([&] { return task_started.load(); }));
  auto f = h.async_wait(asio::use_future);
  runners run(rt, 1);
  std::this_thread::sleep_for(20ms);
  BOOST_TEST(!run.all_returned()); // waits while the runtime runs
  asio::post(rt.get_executor(), [] { throw std::runtime_error("boom"); });
  BOOST_TEST(eventually([&] { return swarm::detail::core_of(rt).scheduler().is_shutdown(); }));
  BOOST_TEST(run.join());
  BOOST_REQUIRE(ready_in_time(f));
  bool cancelled = false;
  try {
    f.get();
  } catch (const swarm::join_error& e) {
    cancelled = e.is_cancelled();
  }
  BOOST_TEST(cancelled);
  destruction_counter late;
  std::atomic<bool> late_ran{false};
  asio::post(rt.get_executor(), [&, t = late.make()] { late_ran = true; });
  BOOST_TEST(eventually([&] { return late.destroyed() == 1; }));
  BOOST_TEST(!late_ran);
}

// stop() then start() at once, many times: every owned worker comes back (two handlers
// that wait for each other need both).
BOOST_AUTO_TEST_CASE(stop_then_start_at_once_brings_back_every_worker) {
  swarm::runtime_options o;
  o.worker_threads = 2;
  runtime rt(o);
  rt.start();
  int failed_round = -1;
  for (int round = 0; round < 30 && failed_round < 0; ++round) {
    rt.stop();
    rt.start();
    if (!two_workers_meet(rt, 500ms, 1500ms))
      failed_round = round;
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 3));
  }
  BOOST_TEST(failed_round == -1);
}

// run() on a started runtime waits until the runtime is stopped (doc/design.md).
BOOST_AUTO_TEST_CASE(run_on_a_started_runtime_waits_until_stop) {
  swarm::runtime_options o;
  o.worker_threads = 2;
  runtime rt(o);
  rt.start();
  runners run(rt, 1);
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(!run.all_returned());
  rt.stop();
  BOOST_TEST(run.join());
}

// --- Destruction ----------------------------------------------------------------------------

// Handlers that never ran are destroyed with the context; so are the handlers of pending
// operations. (LeakSanitizer checks the rest.)
BOOST_AUTO_TEST_CASE_TEMPLATE(destruction_destroys_unrun_handlers_and_pending_operations, Context, contexts) {
  destruction_counter posted, timers, reads;
  std::atomic<int> ran{0};
  {
    Context ctx{2};
    for (int i = 0; i < 100; ++i)
      asio::post(ctx.get_executor(), [&, t = posted.make()] { ++ran; });
    for (int i = 0; i < 10; ++i) {
      auto timer = std::make_shared<timer_of<Context>>(ctx.get_executor(), 1h);
      timer->async_wait([&, timer, t = timers.make()](error_code) { ++ran; });
    }
    for (int i = 0; i < 10; ++i) {
      auto pair = std::make_shared<socket_pair<Context>>(ctx);
      auto buf = std::make_shared<std::array<char, 16>>();
      pair->a.async_read_some(asio::buffer(*buf), [&, pair, buf, t = reads.make()](error_code, std::size_t) { ++ran; });
    }
  }
  BOOST_TEST(ran == 0);
  BOOST_TEST(posted.destroyed() == 100);
  BOOST_TEST(timers.destroyed() == 10);
  BOOST_TEST(reads.destroyed() == 10);
}

// The same after the context ran for a while (the operations are in the reactor, some
// handlers queued on workers), and with co_spawn'ed coroutines suspended on a socket read.
BOOST_AUTO_TEST_CASE_TEMPLATE(destruction_destroys_suspended_coroutines, Context, contexts) {
  destruction_counter frames, handlers;
  std::atomic<int> reading{0}, finished{0};
  {
    Context ctx{2};
    for (int i = 0; i < 10; ++i) {
      auto pair = std::make_shared<socket_pair<Context>>(ctx);
      asio::co_spawn(
          ctx.get_executor(),
          [&, pair, t = std::make_shared<destruction_counter::token>(frames.make())]() -> asio::awaitable<void> {
            char buf[16];
            ++reading;
            co_await pair->a.async_read_some(asio::buffer(buf), asio::use_awaitable);
            ++finished;
          },
          asio::detached);
    }
    auto guard = asio::make_work_guard(ctx.get_executor());
    runners run(ctx, 2, [&](Context& c) { return c.run_for(std::chrono::milliseconds(100)); });
    BOOST_TEST(run.join());
    BOOST_TEST(reading == 10);
    // Queued, never run.
    for (int i = 0; i < 10; ++i)
      asio::post(ctx.get_executor(), [&, t = handlers.make()] { ++finished; });
  }
  BOOST_TEST(finished == 0);
  BOOST_TEST(frames.destroyed() == 10);
  BOOST_TEST(handlers.destroyed() == 10);
}

BOOST_AUTO_TEST_CASE(destruction_of_a_started_runtime_destroys_suspended_coroutines) {
  destruction_counter frames;
  std::atomic<int> reading{0}, finished{0};
  {
    swarm::runtime_options o;
    o.worker_threads = 2;
    runtime rt(o);
    rt.start();
    for (int i = 0; i < 10; ++i) {
      auto pair = std::make_shared<socket_pair<runtime>>(rt);
      asio::co_spawn(
          rt.get_executor(),
          [&, pair, t = std::make_shared<destruction_counter::token>(frames.make())]() -> asio::awaitable<void> {
            char buf[16];
            ++reading;
            co_await pair->a.async_read_some(asio::buffer(buf), asio::use_awaitable);
            ++finished;
          },
          asio::detached);
    }
    BOOST_TEST(eventually([&] { return reading == 10; }));
  }
  BOOST_TEST(finished == 0);
  BOOST_TEST(frames.destroyed() == 10);
}

// --- No hidden threads -----------------------------------------------------------------------

// During socket I/O the process has no thread beyond the run() threads and the test's own:
// idle workers drive the reactor. A resolver adds its one thread, as with io_context.
BOOST_AUTO_TEST_CASE_TEMPLATE(socket_io_uses_no_thread_beyond_the_run_threads, Context, contexts) {
  for (const bool with_resolver : {false, true}) {
    new_threads threads;
    Context ctx{2};
    if (with_resolver) {
      asio::ip::basic_resolver<tcp, typename Context::executor_type> r(ctx.get_executor());
      r.async_resolve("127.0.0.1", "80", tcp::resolver::numeric_host | tcp::resolver::numeric_service,
                      [](error_code, auto) {});
    }
    // Both run() threads are up before the exchange starts (it may be over in a
    // millisecond); the guard keeps the first from leaving meanwhile.
    auto guard = asio::make_work_guard(ctx.get_executor());
    runners run(ctx, 2);
    BOOST_TEST(eventually([&] { return threads.now() >= 2u + (with_resolver ? 1u : 0u); }));
    std::atomic<int> done{0};
    std::make_shared<echo_exchange<Context>>(ctx, 100, done, [&] { threads.sample(); })->start();
    BOOST_TEST(eventually([&] { return done == 100; }));
    guard.reset();
    BOOST_TEST(run.join());
    // The two run() threads, and the resolver's own thread if one was used.
    BOOST_TEST(threads.most() == 2u + (with_resolver ? 1u : 0u));
  }
}

BOOST_AUTO_TEST_CASE(socket_io_on_a_started_runtime_uses_only_its_workers) {
  new_threads threads;
  swarm::runtime_options o;
  o.worker_threads = 2;
  runtime rt(o);
  rt.start();
  BOOST_TEST(eventually([&] { return threads.now() >= o.worker_threads; }));
  std::atomic<int> done{0};
  asio::post(rt.get_executor(), [&] {
    std::make_shared<echo_exchange<runtime>>(rt, 100, done, [&] { threads.sample(); })->start();
  });
  BOOST_TEST(eventually([&] { return done == 100; }));
  BOOST_TEST(threads.most() == o.worker_threads);
}

BOOST_AUTO_TEST_SUITE_END()
