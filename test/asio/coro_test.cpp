// swarm::coro<T>: spawn and join, nested frames, join awaits, yields, Asio operations with
// use_coro, asio::awaitable children, abort at each kind of await, shutdown with frames
// suspended, and misuse.
#include "support.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using swarm_test::limit;

namespace {

swarm::coro<int> twice(int x) { co_return 2 * x; }

// 7, after 20 ms: a task still running when the test starts waiting on it.
swarm::coro<int> seven_after_a_timer(swarm::runtime::executor_type ex) {
  asio::steady_timer t(ex, 20ms);
  co_await t.async_wait(swarm::use_coro);
  co_return 7;
}

swarm::coro<void> throws_logic() {
  throw std::logic_error("boom");
  co_return;
}

swarm::coro<long> fib(swarm::runtime::executor_type ex, int n) {
  if (n < 2)
    co_return n;
  auto a = swarm::spawn(ex, fib(ex, n - 1));
  auto b = swarm::spawn(ex, fib(ex, n - 2));
  co_return co_await a + co_await b;
}

// Runs `f` on a 2-worker runtime through block_on, under the suite's bound.
template <class F>
auto on_runtime(F f, std::size_t workers = 2) {
  swarm::runtime rt{static_cast<int>(workers)};
  auto fut = std::async(std::launch::async, [&] { return rt.block_on(f(rt.get_executor())); });
  BOOST_REQUIRE(swarm_test::ready_in_time(fut, limit * 5));
  return fut.get();
}

} // namespace

BOOST_AUTO_TEST_SUITE(coro)

BOOST_AUTO_TEST_CASE(spawn_and_join_a_value) {
  swarm::runtime rt{2};
  BOOST_TEST(rt.block_on(twice(21)) == 42);
}

BOOST_AUTO_TEST_CASE(a_thrown_exception_reaches_block_on_and_a_join_as_join_error) {
  swarm::runtime rt{2};
  BOOST_CHECK_THROW(rt.block_on(throws_logic()), std::logic_error);
  int kind = rt.block_on([&]() -> swarm::coro<int> {
    auto h = swarm::spawn(rt.get_executor(), throws_logic());
    try {
      co_await h;
    } catch (const swarm::join_error& e) {
      co_return e.is_panic() ? 1 : 2;
    }
    co_return 0;
  }());
  BOOST_TEST(kind == 1);
}

BOOST_AUTO_TEST_CASE(fork_join_tree) {
  long v = on_runtime([](auto ex) { return fib(ex, 15); });
  BOOST_TEST(v == 610);
}

BOOST_AUTO_TEST_CASE(nested_coros_run_in_the_same_task) {
  swarm::runtime rt{2};
  auto outer = [&]() -> swarm::coro<int> {
    const swarm::task_id id = swarm::current_task_id();
    auto inner = [id]() -> swarm::coro<int> {
      if (swarm::current_task_id() != id)
        throw std::logic_error("not the same task");
      co_return co_await twice(5);
    };
    int a = co_await inner();
    int b = 0;
    try {
      co_await throws_logic();
    } catch (const std::logic_error&) {
      b = 1;
    }
    co_return a + b;
  };
  BOOST_TEST(rt.block_on(outer()) == 11);
}

BOOST_AUTO_TEST_CASE(spawned_lambda_captures_stay_valid) {
  swarm::runtime rt{2};
  auto s = std::make_shared<std::string>("captured");
  auto h = swarm::spawn(rt.get_executor(), [s]() -> swarm::coro<std::size_t> {
    co_await swarm::yield_now();
    co_return s->size();
  });
  s.reset();
  BOOST_TEST(rt.block_on([&]() -> swarm::coro<std::size_t> { co_return co_await h; }()) == 8u);
}

BOOST_AUTO_TEST_CASE(joins_of_every_kind_of_task) {
  swarm::runtime rt{2};
  int sum = rt.block_on([&]() -> swarm::coro<int> {
    auto ex = rt.get_executor();
    auto a = swarm::spawn(ex, twice(1));
    auto b = swarm::spawn(ex, []() -> asio::awaitable<int> { co_return 3; });
    auto c = swarm::spawn(ex, [] { return 4; });
    auto d = swarm::spawn_blocking(ex, [] { return 5; });
    // A handle first waited on with async_wait goes through its waiter.
    auto e = swarm::spawn(ex, twice(3));
    asio::steady_timer t(ex, 1h);
    using namespace asio::experimental::awaitable_operators;
    auto r = co_await (e.async_wait(asio::use_awaitable) || t.async_wait(asio::use_awaitable));
    if (r.index() != 0)
      co_return -1;
    int sum = co_await a + co_await b + co_await c + co_await d + std::get<0>(r);
    co_return sum;
  }());
  BOOST_TEST(sum == 2 + 3 + 4 + 5 + 6);
}

// A wait cancelled by a timer leaves the handle with its waiter; co_await then goes through
// async_wait(use_coro) and still gets the value.
BOOST_AUTO_TEST_CASE(co_await_after_a_cancelled_async_wait) {
  swarm::runtime rt{2};
  int v = rt.block_on([&]() -> swarm::coro<int> {
    auto ex = rt.get_executor();
    auto h = swarm::spawn(ex, seven_after_a_timer(ex));
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer t(ex, 1ms);
    auto r = co_await (h.async_wait(asio::use_awaitable) || t.async_wait(asio::use_awaitable));
    if (r.index() != 1)
      co_return -1;
    co_return co_await h;
  }());
  BOOST_TEST(v == 7);
}

// async_wait(use_coro) is cancel-safe as the token path is: a waiter aborted while it
// waits (or before it started) leaves the value for the next wait, which gets it once.
BOOST_AUTO_TEST_CASE(async_wait_with_use_coro_leaves_the_value_to_the_next_wait) {
  swarm::runtime rt{2};
  int v = rt.block_on([&]() -> swarm::coro<int> {
    auto ex = rt.get_executor();
    auto h = swarm::spawn(ex, seven_after_a_timer(ex));
    auto waiter =
        swarm::spawn(ex, [&h]() -> swarm::coro<int> { co_return co_await h.async_wait(swarm::use_coro); });
    asio::steady_timer t(ex, 2ms);
    co_await t.async_wait(swarm::use_coro);
    waiter.abort();
    try {
      co_await waiter;
      co_return -1;
    } catch (const swarm::join_error& e) {
      if (!e.is_cancelled())
        co_return -2;
    }
    const int value = co_await h.async_wait(swarm::use_coro);
    try {
      co_await h.async_wait(swarm::use_coro);
      co_return -3;
    } catch (const std::logic_error&) {
    }
    co_return value;
  }());
  BOOST_TEST(v == 7);
}

BOOST_AUTO_TEST_CASE(join_set_of_coros) {
  swarm::runtime rt{2};
  int sum = rt.block_on([&]() -> swarm::coro<int> {
    auto ex = rt.get_executor();
    swarm::join_set<int> set;
    for (int i = 1; i <= 10; ++i)
      set.spawn(ex, twice(i));
    set.spawn(ex, [ex]() -> swarm::coro<int> {
      asio::steady_timer t(ex, 1ms);
      co_await t.async_wait(swarm::use_coro);
      co_return 1000;
    });
    int sum = 0;
    while (!set.empty())
      sum += co_await set.async_join_next(swarm::use_coro);
    co_return sum;
  }());
  BOOST_TEST(sum == 110 + 1000);
}

BOOST_AUTO_TEST_CASE(a_value_is_joined_once) {
  swarm::runtime rt{2};
  int r = rt.block_on([&]() -> swarm::coro<int> {
    auto h = swarm::spawn(rt.get_executor(), twice(1));
    co_await h;
    try {
      co_await h;
    } catch (const std::logic_error&) {
      co_return 1;
    }
    co_return 0;
  }());
  BOOST_TEST(r == 1);
}

BOOST_AUTO_TEST_CASE(asio_operations_with_use_coro) {
  swarm::runtime rt{2};
  auto r = rt.block_on([&]() -> swarm::coro<std::string> {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex, 1ms);
    co_await t.async_wait(swarm::use_coro);
    // Errors throw; as_tuple returns them.
    t.expires_after(1h);
    asio::post(ex, [&t] { t.cancel(); });
    auto [ec] = co_await t.async_wait(asio::as_tuple(swarm::use_coro));
    if (ec != asio::error::operation_aborted)
      co_return "as_tuple";
    t.expires_after(1h);
    asio::post(ex, [&t] { t.cancel(); });
    try {
      co_await t.async_wait(swarm::use_coro);
      co_return "no throw";
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted)
        co_return "code";
    }
    // A socket pair over loopback.
    asio::ip::tcp::acceptor acc(ex, {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket a(ex), b(ex);
    auto accepting = swarm::spawn(ex, [&]() -> swarm::coro<void> { co_await acc.async_accept(b, swarm::use_coro); });
    co_await a.async_connect(acc.local_endpoint(), swarm::use_coro);
    co_await accepting;
    std::string msg = "hello";
    std::size_t n = co_await asio::async_write(a, asio::buffer(msg), swarm::use_coro);
    std::array<char, 5> buf{};
    std::size_t m = co_await asio::async_read(b, asio::buffer(buf), swarm::use_coro);
    if (n != 5 || m != 5)
      co_return "sizes";
    co_return std::string(buf.data(), buf.size());
  }());
  BOOST_TEST(r == "hello");
}

BOOST_AUTO_TEST_CASE(an_awaitable_runs_as_a_child) {
  swarm::runtime rt{2};
  int r = rt.block_on([&]() -> swarm::coro<int> {
    auto aw = [](int x) -> asio::awaitable<int> {
      asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
      co_await t.async_wait(asio::use_awaitable);
      co_await swarm::yield_now();
      co_return x + 1;
    };
    co_return co_await aw(41);
  }());
  BOOST_TEST(r == 42);
}

BOOST_AUTO_TEST_CASE(channel_ping_pong_across_tasks) {
  using chan = asio::experimental::concurrent_channel<void(boost::system::error_code, int)>;
  swarm::runtime rt{2};
  int r = rt.block_on([&]() -> swarm::coro<int> {
    auto ex = rt.get_executor();
    auto ping = std::make_shared<chan>(ex, 1);
    auto pong = std::make_shared<chan>(ex, 1);
    auto partner = swarm::spawn(ex, [ping, pong]() -> swarm::coro<void> {
      for (int i = 0; i < 100; ++i) {
        int v = co_await ping->async_receive(swarm::use_coro);
        co_await pong->async_send(boost::system::error_code{}, v + 1, swarm::use_coro);
      }
    });
    int v = 0;
    for (int i = 0; i < 100; ++i) {
      co_await ping->async_send(boost::system::error_code{}, v, swarm::use_coro);
      v = co_await pong->async_receive(swarm::use_coro);
    }
    co_await partner;
    co_return v;
  }());
  BOOST_TEST(r == 100);
}

BOOST_AUTO_TEST_CASE(yield_lets_other_tasks_run) {
  swarm::runtime rt{1};
  std::vector<int> order;
  rt.block_on([&]() -> swarm::coro<void> {
    auto ex = rt.get_executor();
    auto a = swarm::spawn(ex, [&]() -> swarm::coro<void> {
      for (int i = 0; i < 3; ++i) {
        order.push_back(0);
        co_await swarm::yield_now();
      }
    });
    auto b = swarm::spawn(ex, [&]() -> swarm::coro<void> {
      for (int i = 0; i < 3; ++i) {
        order.push_back(1);
        co_await swarm::yield_now();
      }
    });
    co_await a;
    co_await b;
  }());
  // Whichever starts first (the newest spawn may take the LIFO slot), they alternate.
  BOOST_REQUIRE(order.size() == 6u);
  for (std::size_t i = 1; i < order.size(); ++i)
    BOOST_TEST(order[i] != order[i - 1]);
}

BOOST_AUTO_TEST_CASE(abort_before_start_never_runs_the_frame) {
  swarm::runtime rt{2};
  std::atomic<bool> ran{false};
  bool cancelled = rt.block_on([&]() -> swarm::coro<bool> {
    auto h = swarm::spawn(rt.get_executor(), [&]() -> swarm::coro<void> {
      ran = true;
      co_return;
    });
    h.abort();
    try {
      co_await h;
    } catch (const swarm::join_error& e) {
      co_return e.is_cancelled();
    }
    co_return false;
  }());
  BOOST_TEST(cancelled);
  BOOST_TEST(!ran.load());
}

// Abort of a task suspended at each kind of await: the await throws operation_aborted, the
// frame unwinds (its destructors run) and the join reports cancelled.
BOOST_AUTO_TEST_CASE(abort_unwinds_at_every_kind_of_await) {
  swarm::runtime rt{2};
  for (int kind = 0; kind < 4; ++kind) {
    auto unwound = std::make_shared<std::atomic<int>>(0);
    auto started = std::make_shared<std::atomic<bool>>(false);
    bool cancelled = rt.block_on([&]() -> swarm::coro<bool> {
      auto ex = rt.get_executor();
      auto blocker = swarm::spawn(ex, [ex]() -> swarm::coro<void> {
        asio::steady_timer t(ex, 1h);
        co_await t.async_wait(swarm::use_coro);
      });
      auto h = swarm::spawn(ex, [=, &blocker]() -> swarm::coro<void> {
        struct guard {
          std::shared_ptr<std::atomic<int>> u;
          ~guard() { ++*u; }
        } g{unwound};
        started->store(true);
        if (kind == 0) {
          asio::steady_timer t(ex, 1h);
          co_await t.async_wait(swarm::use_coro);
        } else if (kind == 1) {
          co_await blocker;
        } else if (kind == 2) {
          for (;;)
            co_await swarm::yield_now();
        } else {
          auto aw = [ex]() -> asio::awaitable<void> {
            asio::steady_timer t(ex, 1h);
            co_await t.async_wait(asio::use_awaitable);
          };
          co_await aw();
        }
      });
      while (!started->load())
        co_await swarm::yield_now();
      asio::steady_timer settle(ex, 2ms);
      co_await settle.async_wait(swarm::use_coro);
      h.abort();
      bool c = false;
      try {
        co_await h;
      } catch (const swarm::join_error& e) {
        c = e.is_cancelled();
      }
      blocker.abort();
      co_return c;
    }());
    BOOST_TEST_INFO("kind " << kind);
    BOOST_TEST(cancelled);
    BOOST_TEST(unwound->load() == 1);
  }
}

BOOST_AUTO_TEST_CASE(awaits_after_an_abort_throw) {
  swarm::runtime rt{2};
  auto caught = std::make_shared<std::atomic<int>>(0);
  rt.block_on([&]() -> swarm::coro<void> {
    auto ex = rt.get_executor();
    auto h = swarm::spawn(ex, [ex, caught]() -> swarm::coro<void> {
      asio::steady_timer t(ex, 1h);
      for (int i = 0; i < 3; ++i) {
        try {
          co_await t.async_wait(swarm::use_coro);
        } catch (const boost::system::system_error& e) {
          if (e.code() == asio::error::operation_aborted)
            ++*caught;
        }
      }
    });
    asio::steady_timer settle(ex, 2ms);
    co_await settle.async_wait(swarm::use_coro);
    h.abort();
    try {
      co_await h;
    } catch (const swarm::join_error&) {
    }
  }());
  BOOST_TEST(caught->load() == 3);
}

BOOST_AUTO_TEST_CASE(shutdown_destroys_suspended_frames) {
  auto destroyed = std::make_shared<std::atomic<int>>(0);
  {
    swarm::runtime rt{2};
    rt.start();
    auto ex = rt.get_executor();
    for (int i = 0; i < 50; ++i)
      swarm::spawn(ex, [ex, destroyed, i]() -> swarm::coro<void> {
        struct guard {
          std::shared_ptr<std::atomic<int>> d;
          ~guard() { ++*d; }
        } g{destroyed};
        asio::steady_timer t(ex, 1h);
        if (i % 2)
          co_await t.async_wait(swarm::use_coro);
        else
          for (;;)
            co_await swarm::yield_now();
      });
    std::this_thread::sleep_for(20ms);
    rt.shutdown();
  }
  BOOST_TEST(destroyed->load() == 50);
}

BOOST_AUTO_TEST_CASE(current_thread_flavor_runs_coros) {
  swarm::runtime_options o;
  o.flavor = swarm::runtime_flavor::current_thread;
  swarm::runtime rt{o};
  BOOST_TEST(rt.block_on(fib(rt.get_executor(), 12)) == 144);
}

BOOST_AUTO_TEST_CASE(misuse_gets_clear_errors) {
  swarm::runtime rt{2};
  swarm::coro<int> empty;
  BOOST_CHECK_THROW(swarm::spawn(rt.get_executor(), std::move(empty)), std::invalid_argument);
  rt.shutdown();
  BOOST_CHECK_THROW(swarm::spawn(rt.get_executor(), twice(1)), std::logic_error);
}

BOOST_AUTO_TEST_SUITE_END()
