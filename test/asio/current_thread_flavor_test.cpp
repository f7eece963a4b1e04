// runtime_options::flavor = runtime_flavor::current_thread: one worker, driven only by the
// threads inside run(), poll() or block_on(); start() refused; every public feature works.
#include "support.hpp"

#include <swarm/swarm.hpp>
#include <swarm/task/cell_allocator.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using swarm_test::limit;

namespace {

swarm::runtime_options current_thread() {
  swarm::runtime_options o;
  o.flavor = swarm::runtime_flavor::current_thread;
  o.worker_threads = 4; // ignored by this flavour
  return o;
}

// Whether the calling thread's cell cache holds bursts (the setting is put back as found).
bool holds_cell_bursts() {
  const bool was = swarm::detail::hold_cell_bursts(false);
  swarm::detail::hold_cell_bursts(was);
  return was;
}

} // namespace

BOOST_AUTO_TEST_SUITE(current_thread_flavor)

BOOST_AUTO_TEST_CASE(has_one_worker_and_refuses_start) {
  swarm::runtime rt(current_thread());
  BOOST_TEST((rt.flavor() == swarm::runtime_flavor::current_thread));
  BOOST_TEST(rt.metrics().num_workers == 1u);
  try {
    rt.start();
    BOOST_FAIL("start() on a current_thread runtime did not throw");
  } catch (const std::logic_error& e) {
    BOOST_TEST(std::string(e.what()).find("current_thread") != std::string::npos, e.what());
  }
  // Still usable, driven by the caller.
  BOOST_TEST(rt.block_on([]() -> asio::awaitable<int> { co_return 7; }()) == 7);

  swarm::runtime mt(2);
  BOOST_TEST((mt.flavor() == swarm::runtime_flavor::multi_thread));
}

// spawn, join, abort, join_set, spawn_blocking, a timer and a loopback socket, all from one
// block_on on one thread.
BOOST_AUTO_TEST_CASE(every_public_feature_runs_on_the_calling_thread) {
  swarm::runtime rt(current_thread());
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<bool> off_caller{false};
  const int sum = rt.block_on([&]() -> asio::awaitable<int> {
    auto ex = co_await asio::this_coro::executor;
    auto note = [&] {
      if (std::this_thread::get_id() != caller)
        off_caller = true;
    };
    // spawn + join, of a coroutine and of a callable
    int total = co_await swarm::spawn(ex, [&]() -> asio::awaitable<int> {
      note();
      co_await swarm::yield_now();
      co_return 1;
    });
    total += co_await swarm::spawn(ex, [&] {
      note();
      return 2;
    });
    // abort of a task waiting on an hour-long timer
    auto sleeper = swarm::spawn(ex, []() -> asio::awaitable<void> {
      asio::steady_timer t(co_await asio::this_coro::executor, 1h);
      co_await t.async_wait(asio::use_awaitable);
    });
    co_await swarm::yield_now();
    sleeper.abort();
    try {
      co_await std::move(sleeper);
    } catch (const swarm::join_error& e) {
      if (e.is_cancelled())
        total += 4;
    }
    // join_set
    swarm::join_set<int> set;
    for (int i = 0; i < 3; ++i)
      set.spawn(ex, [i] { return 8 * (i == 0); });
    while (!set.empty()) {
      auto [e, v] = co_await set.async_join_next(asio::as_tuple(asio::use_awaitable));
      if (!e)
        total += v;
    }
    // spawn_blocking: runs on the blocking pool, joined here
    total += co_await swarm::spawn_blocking(ex, [] { return 16; });
    // a timer
    asio::steady_timer t(ex, 1ms);
    co_await t.async_wait(asio::use_awaitable);
    note();
    // a loopback connection: a task accepts and reads, this one connects and writes
    asio::ip::tcp::acceptor acceptor(ex, {asio::ip::address_v4::loopback(), 0});
    const auto endpoint = acceptor.local_endpoint();
    auto server = swarm::spawn(ex, [&acceptor]() -> asio::awaitable<std::string> {
      asio::ip::tcp::socket s = co_await acceptor.async_accept(asio::use_awaitable);
      std::array<char, 5> buf{};
      co_await asio::async_read(s, asio::buffer(buf), asio::use_awaitable);
      co_return std::string(buf.data(), buf.size());
    });
    asio::ip::tcp::socket client(ex);
    co_await client.async_connect(endpoint, asio::use_awaitable);
    co_await asio::async_write(client, asio::buffer("hello", 5), asio::use_awaitable);
    if (co_await std::move(server) == "hello")
      total += 32;
    co_return total;
  }());
  BOOST_TEST(sum == 63);
  BOOST_TEST(!off_caller.load());
  const swarm::runtime_metrics m = rt.metrics();
  BOOST_TEST(m.spawned_tasks_count >= 7u);
}

// As on io_context(1): several threads may call run(); one drives at a time, and every
// handler runs exactly once.
BOOST_AUTO_TEST_CASE(several_threads_in_run_drive_one_at_a_time) {
  swarm::runtime rt(current_thread());
  constexpr int n = 2000;
  std::atomic<int> ran{0};
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  for (int i = 0; i < n; ++i)
    asio::post(rt, [&] {
      if (inside.fetch_add(1) != 0)
        overlapped = true;
      ++ran;
      inside.fetch_sub(1);
    });
  {
    swarm_test::runners<swarm::runtime> threads(rt, 3);
    BOOST_TEST(threads.join());
    BOOST_TEST(threads.handled() == static_cast<std::size_t>(n));
  }
  BOOST_TEST(ran.load() == n);
  BOOST_TEST(!overlapped.load());
  BOOST_TEST(rt.stopped()); // out of work, as io_context
}

// io_context's loop control: poll runs what is ready and returns, stop makes run return
// at once, restart lets it run again.
BOOST_AUTO_TEST_CASE(run_poll_stop_restart_as_io_context) {
  swarm::runtime rt(current_thread());
  int ran = 0;
  asio::post(rt, [&] { ++ran; });
  asio::post(rt, [&] { ++ran; });
  BOOST_TEST(rt.poll() == 2u);
  BOOST_TEST(ran == 2);
  BOOST_TEST(rt.stopped()); // out of work, as io_context after the poll that ran the last of it
  rt.restart();
  asio::post(rt, [&] { ++ran; });
  rt.stop();
  BOOST_TEST(rt.run() == 0u); // stopped: returns without running
  BOOST_TEST(ran == 2);
  rt.restart();
  BOOST_TEST(swarm_test::run_bounded(rt));
  BOOST_TEST(ran == 3);
}

// No LIFO slot: tasks spawned from a task run in spawn order, behind what was queued.
BOOST_AUTO_TEST_CASE(tasks_run_in_the_order_they_were_scheduled) {
  swarm::runtime rt(current_thread());
  std::vector<int> order;
  rt.block_on([&]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    std::vector<swarm::join_handle<void>> hs;
    for (int i = 0; i < 4; ++i)
      hs.push_back(swarm::spawn(ex, [&order, i] { order.push_back(i); }));
    for (auto& h : hs)
      co_await std::move(h);
  }());
  BOOST_TEST(order == (std::vector<int>{0, 1, 2, 3}), boost::test_tools::per_element());
}

// Shutdown with tasks pending on timers and sockets cancels them and frees everything.
BOOST_AUTO_TEST_CASE(shutdown_cancels_pending_tasks) {
  swarm::runtime rt(current_thread());
  std::vector<swarm::join_handle<void>> hs;
  for (int i = 0; i < 10; ++i)
    hs.push_back(swarm::spawn(rt.get_executor(), []() -> asio::awaitable<void> {
      asio::steady_timer t(co_await asio::this_coro::executor, 1h);
      co_await t.async_wait(asio::use_awaitable);
    }));
  rt.poll(); // every task is now waiting on its timer
  rt.shutdown();
  for (auto& h : hs)
    BOOST_TEST(h.is_finished());
  BOOST_TEST(rt.metrics().num_alive_tasks == 0u);
}

// The thread inside block_on is the runtime's worker, so its cell cache holds bursts for as
// long as it drives, and no longer once block_on returns.
BOOST_AUTO_TEST_CASE(the_driving_thread_holds_cell_bursts_only_while_it_drives) {
  BOOST_TEST(!holds_cell_bursts());
  swarm::runtime rt(current_thread());
  BOOST_TEST(rt.block_on([]() -> asio::awaitable<bool> { co_return holds_cell_bursts(); }()));
  BOOST_TEST(!holds_cell_bursts());
}

BOOST_AUTO_TEST_SUITE_END()
