// A tour of swarm in one program: each step prints what it shows and what it measured.
//
//  1. Drop-in: the same Asio function runs on boost::asio::io_context and on
//     swarm::runtime; only the context type differs. It spawns 10 000 coroutines that each
//     wait on a timer and bump a counter, and times them.
//  2. Tasks: swarm::spawn returns a join_handle; awaiting it gives the value (or the
//     exception the task threw, as a join_error).
//  3. Abort: a task suspended in a timer wait is aborted through its abort_handle; its
//     join reports is_cancelled(). A wait raced by `||` with a short timer leaves the task
//     running and the handle usable.
//  4. join_set: many tasks, results in completion order; destruction aborts the rest.
//  5. TCP on 127.0.0.1: an echo server and clients, all tasks on the runtime.
//  6. swarm::coro: the same fork-join tree (each node spawns 10 children and awaits their
//     joins; 11 111 tasks) written with asio::awaitable and with swarm::coro, the
//     coroutine type whose frames belong to the task, timed on the same runtime.
//
// Usage: demo [threads]   (default: the number of cores)
#include <swarm/swarm.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

// Set when a step did not behave as it says; main then exits 1 (the demo doubles as a test).
std::atomic<bool> failed{false};
void expect(bool ok, const char* what) {
  if (!ok) {
    failed = true;
    std::printf("   UNEXPECTED: %s\n", what);
  }
}

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

asio::awaitable<void> sleep_for(clock_type::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// Step 1: plain Asio, written once for any execution context with io_context's interface.
template <class Context>
double timers_on(int threads, int coroutines, std::atomic<int>& done) {
  Context ctx(threads);
  const auto t0 = clock_type::now();
  for (int i = 0; i < coroutines; ++i) {
    asio::co_spawn(
        ctx,
        [&done]() -> asio::awaitable<void> {
          co_await sleep_for(1ms);
          done.fetch_add(1, std::memory_order_relaxed);
        },
        asio::detached);
  }
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i)
    pool.emplace_back([&ctx] { ctx.run(); });
  ctx.run();
  for (auto& t : pool)
    t.join();
  return ms_since(t0);
}

void step_drop_in(int threads) {
  constexpr int n = 10000;
  std::atomic<int> a{0}, b{0};
  const double io_ms = timers_on<asio::io_context>(threads, n, a);
  const double sw_ms = timers_on<swarm::runtime>(threads, n, b);
  std::printf("1. drop-in: %d coroutines waiting 1 ms each, %d thread(s) in run()\n"
              "   io_context:     %d done in %.1f ms\n   swarm::runtime: %d done in %.1f ms\n",
              n, threads, a.load(), io_ms, b.load(), sw_ms);
  expect(a == n && b == n, "a coroutine did not finish");
}

asio::awaitable<void> step_tasks() {
  auto ex = co_await asio::this_coro::executor;
  swarm::join_handle<int> h = swarm::spawn(ex, []() -> asio::awaitable<int> {
    co_await sleep_for(2ms);
    co_return 6 * 7;
  });
  const int v = co_await h.async_wait(asio::use_awaitable);
  swarm::join_handle<int> bad = swarm::spawn(ex, []() -> int { throw std::runtime_error("boom"); });
  std::string what;
  try {
    co_await bad.async_wait(asio::use_awaitable);
  } catch (const swarm::join_error& e) {
    what = e.is_panic() ? "panic" : "cancelled";
    try {
      std::rethrow_exception(e.panic());
    } catch (const std::exception& inner) {
      what += std::string(" (") + inner.what() + ")";
    }
  }
  std::printf("2. tasks: a task returned %d; a throwing task joined as %s\n", v, what.c_str());
  expect(v == 42 && what == "panic (boom)", "wrong value or join error");
}

asio::awaitable<void> step_abort() {
  auto ex = co_await asio::this_coro::executor;
  auto sleeper = swarm::spawn(ex, []() -> asio::awaitable<int> {
    co_await sleep_for(1h);
    co_return 1;
  });
  // Racing the wait with a short timer cancels only the wait: the task runs on.
  auto raced = co_await (sleeper.async_wait(asio::use_awaitable) || sleep_for(5ms));
  const bool still_running = raced.index() == 1 && !sleeper.is_finished();
  swarm::abort_handle ah = sleeper.get_abort_handle();
  const auto t0 = clock_type::now();
  ah.abort();
  bool cancelled = false;
  try {
    co_await sleeper.async_wait(asio::use_awaitable);
  } catch (const swarm::join_error& e) {
    cancelled = e.is_cancelled();
  }
  std::printf("3. abort: after a || with a 5 ms timer the 1 h task was %s; aborted, it joined as %s in %.2f ms\n",
              still_running ? "still running" : "NOT running", cancelled ? "cancelled" : "NOT cancelled",
              ms_since(t0));
  expect(still_running && cancelled, "the race or the abort went wrong");
}

asio::awaitable<void> step_join_set() {
  auto ex = co_await asio::this_coro::executor;
  swarm::join_set<int> set;
  for (int i = 5; i >= 1; --i) {
    set.spawn(ex, [i]() -> asio::awaitable<int> {
      co_await sleep_for(std::chrono::milliseconds(10 * i));
      co_return i;
    });
  }
  std::string order;
  for (int i = 0; i < 3; ++i)
    order += std::to_string(co_await set.async_join_next(asio::use_awaitable)) + " ";
  const std::size_t left = set.size();
  set.abort_all();
  std::printf("4. join_set: 5 tasks, the first three results in completion order: %s; %zu aborted\n",
              order.c_str(), left);
  expect(order == "1 2 3 " && left == 2, "results out of order or lost");
}

asio::awaitable<void> echo_session(tcp::socket s) {
  std::array<char, 1024> buf;
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    if (ec)
      co_return;
    co_await asio::async_write(s, asio::buffer(buf, n), asio::use_awaitable);
  }
}

asio::awaitable<void> step_tcp() {
  auto ex = co_await asio::this_coro::executor;
  tcp::acceptor acceptor(ex, {asio::ip::make_address("127.0.0.1"), 0});
  const auto endpoint = acceptor.local_endpoint();
  auto server = swarm::spawn(ex, [&acceptor]() -> asio::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    swarm::join_set<void> sessions; // aborted when the server task is aborted
    for (;;)
      sessions.spawn(ex, echo_session(co_await acceptor.async_accept(asio::use_awaitable)));
  });
  constexpr int clients = 32, round_trips = 500;
  const auto t0 = clock_type::now();
  swarm::join_set<int> set;
  for (int c = 0; c < clients; ++c) {
    set.spawn(ex, [endpoint]() -> asio::awaitable<int> {
      tcp::socket s(co_await asio::this_coro::executor);
      co_await s.async_connect(endpoint, asio::use_awaitable);
      std::array<char, 64> out{}, in{};
      int ok = 0;
      for (int i = 0; i < round_trips; ++i) {
        out[0] = static_cast<char>(i);
        co_await asio::async_write(s, asio::buffer(out), asio::use_awaitable);
        co_await asio::async_read(s, asio::buffer(in), asio::use_awaitable);
        ok += in == out;
      }
      co_return ok;
    });
  }
  int ok = 0;
  while (!set.empty())
    ok += co_await set.async_join_next(asio::use_awaitable);
  const double ms = ms_since(t0);
  // The server task uses this frame's acceptor: abort it, then wait until it has ended.
  server.abort();
  auto [ended] = co_await server.async_wait(asio::as_tuple(asio::use_awaitable));
  expect(ended != nullptr, "the server task was not cancelled");
  std::printf("5. tcp: %d clients x %d round trips of 64 bytes on 127.0.0.1: %d echoed correctly in %.1f ms "
              "(%.0f round trips/s)\n",
              clients, round_trips, ok, ms, 1000.0 * clients * round_trips / ms);
  expect(ok == clients * round_trips, "an echo came back wrong");
}

template <class T>
using awaitable_t = asio::awaitable<T>;
template <class T>
using coro_t = swarm::coro<T>;

// One source, two coroutine types: awaiting a join handle reads the same in both.
template <template <class> class Co>
Co<long> tree(swarm::runtime::executor_type ex, int depth, long num) {
  if (depth == 0)
    co_return num;
  std::array<swarm::join_handle<long>, 10> children;
  for (int i = 0; i < 10; ++i)
    children[i] = swarm::spawn(ex, tree<Co>(ex, depth - 1, num * 10 + i));
  long sum = 0;
  for (auto& c : children)
    sum += co_await std::move(c);
  co_return sum;
}

void step_coro(swarm::runtime& rt) {
  constexpr int depth = 4;
  constexpr long leaves = 10'000, expect_sum = leaves * (leaves - 1) / 2;
  auto time = [&](auto&& root) {
    const auto t0 = clock_type::now();
    const long sum = rt.block_on(std::move(root));
    expect(sum == expect_sum, "the tree's sum is wrong");
    return ms_since(t0);
  };
  // Best of five each, alternating, so that neither gets the warm caches alone.
  double aw = 1e9, co = 1e9;
  for (int i = 0; i < 5; ++i) {
    aw = std::min(aw, time(tree<awaitable_t>(rt.get_executor(), depth, 0)));
    co = std::min(co, time(tree<coro_t>(rt.get_executor(), depth, 0)));
  }
  std::printf("6. coro: a fork-join tree of 11 111 tasks: asio::awaitable %.2f ms, swarm::coro %.2f ms "
              "(%.1fx)\n",
              aw, co, aw / co);
}

} // namespace

int main(int argc, char** argv) {
  long threads = std::max(1L, static_cast<long>(std::thread::hardware_concurrency()));
  if (argc > 1) {
    char* end = nullptr;
    errno = 0;
    threads = std::strtol(argv[1], &end, 10);
    if (end == argv[1] || *end != '\0' || errno == ERANGE || threads > 1024)
      threads = 0; // not a whole number in range: the usage below
  }
  if (argc > 2 || threads < 1) {
    std::fprintf(stderr, "usage: demo [threads, 1 to 1024]\n");
    return 2;
  }
  step_drop_in(static_cast<int>(threads));

  // Tokio's model: the runtime owns its workers; block_on runs a coroutine from outside.
  swarm::runtime_options options;
  options.worker_threads = static_cast<std::size_t>(threads);
  swarm::runtime rt(options);
  rt.start();
  rt.block_on(step_tasks());
  rt.block_on(step_abort());
  rt.block_on(step_join_set());
  rt.block_on(step_tcp());
  step_coro(rt);
  return failed ? 1 : 0;
}
