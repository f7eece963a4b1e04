// Shutdown raced by running tasks: the runtime is shut down at an unlucky moment while
// tasks compute and yield (so that resumes sit queued on them), wait on timers, receive
// handlers posted from outside, and spawn successors. Every round must end with every frame
// freed and nothing used after it was freed (ASan), and no write racing another (TSan): the
// cancellation of a task with a queued resume, and a task published to shutdown before it
// was complete, were both found this way. Bounded in rounds and in time.
#include "../sanitizer.hpp"
#include "support.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using swarm::runtime;

namespace {

using swarm_test::busy_for;
using swarm_test::frame_token;

#if defined(SWARM_TEST_TSAN) || defined(SWARM_TEST_ASAN)
constexpr int rounds = 500;
constexpr auto time_budget = 25s;
#else
constexpr int rounds = 2000;
constexpr auto time_budget = 15s;
#endif

asio::awaitable<void> busy_yielder(frame_token, const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) {
    busy_for(20us);
    co_await swarm::yield_now();
  }
}

asio::awaitable<void> ticker(frame_token, const std::atomic<bool>& stop) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (!stop.load(std::memory_order_relaxed)) {
    t.expires_after(1ms);
    co_await t.async_wait(asio::use_awaitable);
  }
}

void spawn_successor(runtime& rt, std::atomic<int>& made, std::atomic<int>& freed, int depth);

asio::awaitable<void> successor(runtime& rt, std::atomic<int>& made, std::atomic<int>& freed, int depth,
                                frame_token) {
  busy_for(5us);
  spawn_successor(rt, made, freed, depth + 1);
  co_return;
}

// Spawns its successor (awaitable and callable alternately) and ends, as Tokio's
// spawn_many_remote_busy does; the chain runs until the runtime refuses the spawn.
void spawn_successor(runtime& rt, std::atomic<int>& made, std::atomic<int>& freed, int depth) {
  if (depth > 100000)
    return;
  made.fetch_add(1, std::memory_order_relaxed);
  try {
    if (depth % 2 == 0) {
      swarm::spawn(rt.get_executor(), [&rt, &made, &freed, depth, tok = frame_token(freed)]() mutable {
        busy_for(5us);
        spawn_successor(rt, made, freed, depth + 1);
      });
    } else {
      swarm::spawn(rt.get_executor(), successor(rt, made, freed, depth, frame_token(freed)));
    }
  } catch (const std::logic_error&) {
    // The runtime shut down between the check and the spawn: nothing was created.
  }
}

} // namespace

BOOST_AUTO_TEST_SUITE(shutdown_stress)

// A task whose resume is queued (yield_now, a timer, a posted handler) is cancelled by
// shutdown. Its queued resume must never run against freed cancellation state: the frame is
// destroyed unrun, and co_spawn's cancellation proxy outlives it.
BOOST_AUTO_TEST_CASE(shutdown_cancels_tasks_with_queued_resumes_and_frees_every_frame) {
  const auto deadline = std::chrono::steady_clock::now() + time_budget;
  int done = 0;
  for (; done < rounds && std::chrono::steady_clock::now() < deadline; ++done) {
    std::atomic<int> freed{0};
    std::atomic<int> posted_ran{0};
    std::atomic<bool> stop{false};
    {
      runtime rt(2);
      rt.start();
      auto a = swarm::spawn(rt.get_executor(), busy_yielder(frame_token(freed), stop));
      auto b = swarm::spawn(rt.get_executor(), busy_yielder(frame_token(freed), stop));
      auto c = swarm::spawn(rt.get_executor(), ticker(frame_token(freed), stop));
      for (int i = 0; i < 20; ++i)
        asio::post(rt.get_executor(), [&posted_ran] { posted_ran.fetch_add(1, std::memory_order_relaxed); });
      std::this_thread::sleep_for(std::chrono::microseconds(100 + 37 * (done % 50)));
      stop.store(true, std::memory_order_relaxed);
      rt.shutdown();
    }
    BOOST_REQUIRE_EQUAL(freed.load(), 3);
  }
  BOOST_TEST_MESSAGE("shutdown with queued resumes: " << done << " rounds");
  BOOST_TEST(done > 0);
}

// The same busy tasks aborted one by one and joined: the abort path (cancellation emitted
// into the coroutine) completes every join, and frees every frame.
BOOST_AUTO_TEST_CASE(aborted_busy_tasks_complete_every_join_and_free_every_frame) {
  const auto deadline = std::chrono::steady_clock::now() + time_budget;
  std::atomic<int> freed{0};
  std::atomic<bool> never{false};
  int aborted = 0, completed = 0, made = 0;
  {
    runtime rt(2);
    rt.start();
    for (int i = 0; i < (rounds < 400 ? 1000 : 3000) && std::chrono::steady_clock::now() < deadline; ++i) {
      auto h = swarm::spawn(rt.get_executor(), i % 3 == 2 ? ticker(frame_token(freed), never)
                                                          : busy_yielder(frame_token(freed), never));
      ++made;
      if (i % 4 != 0)
        std::this_thread::sleep_for(std::chrono::microseconds(i % 200));
      h.abort();
      auto joined = h.async_wait(asio::use_future);
      BOOST_REQUIRE_MESSAGE(swarm_test::ready_in_time(joined, 10s), "an aborted task's join never resolved");
      try {
        joined.get();
        ++completed;
      } catch (const swarm::join_error& e) {
        BOOST_REQUIRE(e.is_cancelled());
        ++aborted;
      }
    }
    rt.shutdown();
  }
  BOOST_TEST(freed.load() == made);
  BOOST_TEST(aborted + completed == made);
  BOOST_TEST(aborted > 0);
}

// Tasks spawn successors while the runtime shuts down on another thread: shutdown may
// cancel a task the moment it is published, so it must be complete before (TSan saw the
// spawner's attach race the canceller's store of the join error).
BOOST_AUTO_TEST_CASE(spawns_racing_shutdown_publish_complete_tasks) {
  const auto deadline = std::chrono::steady_clock::now() + time_budget;
  int done = 0;
  for (; done < rounds && std::chrono::steady_clock::now() < deadline; ++done) {
    std::atomic<int> made{0};
    std::atomic<int> freed{0};
    {
      runtime rt(2);
      rt.start();
      for (int chain = 0; chain < 4; ++chain)
        spawn_successor(rt, made, freed, chain);
      std::this_thread::sleep_for(std::chrono::microseconds(50 + 23 * (done % 40)));
      rt.shutdown();
    }
    BOOST_REQUIRE_EQUAL(freed.load(), made.load());
  }
  BOOST_TEST_MESSAGE("spawns racing shutdown: " << done << " rounds");
  BOOST_TEST(done > 0);
}

// An operation that destroys its handler without calling it (Asio allows it: the awaiting
// frame is then unwound) ends the coroutine without a result. On io_context co_spawn's
// handler is never called; a task's join must still resolve, with an error that says why.
BOOST_AUTO_TEST_CASE(a_coroutine_dropped_by_its_operation_resolves_its_join_with_an_error) {
  std::atomic<int> freed{0};
  runtime rt(2);
  rt.start();
  auto drop_handler = [](auto token) {
    return asio::async_initiate<decltype(token), void()>([](auto&& handler) { auto dropped = std::move(handler); },
                                                         token);
  };
  auto h = swarm::spawn(rt.get_executor(), [&]() -> asio::awaitable<int> {
    frame_token tok(freed);
    co_await drop_handler(asio::use_awaitable);
    co_return 1;
  });
  auto joined = h.async_wait(asio::use_future);
  BOOST_REQUIRE_MESSAGE(swarm_test::ready_in_time(joined, 10s), "the join never resolved");
  try {
    joined.get();
    BOOST_FAIL("the join resolved with a value");
  } catch (const swarm::join_error& e) {
    BOOST_TEST(e.is_panic());
    BOOST_TEST(std::string(e.what()).find("destroyed before it completed") != std::string::npos, e.what());
  }
  BOOST_TEST(freed.load() == 1);
  rt.shutdown();
}

BOOST_AUTO_TEST_SUITE_END()
