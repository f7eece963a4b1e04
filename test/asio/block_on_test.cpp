// runtime::block_on without owned workers: the calling thread drives the runtime until its
// task's result is in, leaves as soon as it is, and leaves the runtime usable.
#include "support.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <thread>

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

asio::awaitable<int> add_after_yields(int a, int b) {
  for (int i = 0; i < 10; ++i)
    co_await swarm::yield_now();
  co_return a + b;
}

} // namespace

BOOST_AUTO_TEST_SUITE(block_on)

// Tokio's block_on may be called again and again on one runtime; running out of work in
// between must not leave it stopped.
BOOST_AUTO_TEST_CASE(block_on_can_be_called_many_times) {
  swarm::runtime rt(1);
  for (int i = 0; i < 100; ++i)
    BOOST_REQUIRE_EQUAL(rt.block_on(add_after_yields(i, 1)), i + 1);
  BOOST_TEST(!rt.stopped());
}

// The result arrives on a thread that is not the caller's: the caller, waiting for a free
// worker (runtime(1) is driven by the other thread's run()), must still leave.
BOOST_AUTO_TEST_CASE(block_on_returns_when_another_thread_runs_its_task) {
  swarm::runtime rt(1);
  auto guard = asio::make_work_guard(rt);
  swarm_test::runners<swarm::runtime> r(rt, 1);
  BOOST_REQUIRE(swarm_test::eventually([&] { return rt.metrics().workers.size() == 1; }));
  std::this_thread::sleep_for(10ms); // let the runner take the worker
  std::atomic<bool> returned{false};
  std::thread caller([&] {
    try {
      returned = rt.block_on(add_after_yields(2, 3)) == 5;
    } catch (...) {
    }
  });
  const bool ok = swarm_test::eventually([&] { return returned.load(); }, 5s);
  if (!ok)
    rt.stop(); // lets the caller out so that the test fails instead of hanging
  caller.join();
  guard.reset();
  rt.stop();
  BOOST_TEST(ok);
  BOOST_TEST(r.join());
}

// A drive with no other work parks in the I/O driver; the timer's completion wakes it and
// the result ends the call.
BOOST_AUTO_TEST_CASE(block_on_waits_for_a_timer) {
  swarm::runtime rt(2);
  const int v = rt.block_on([]() -> asio::awaitable<int> {
    asio::steady_timer t(co_await asio::this_coro::executor, 5ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return 7;
  }());
  BOOST_TEST(v == 7);
}

BOOST_AUTO_TEST_SUITE_END()
