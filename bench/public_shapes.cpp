// The public benchmark: Tokio's scheduler shapes, a fork-join tree, per-operation costs and
// a million pending tasks, written with swarm's public API (swarm::spawn, join_handle,
// yield_now, Asio channels and timers) and, beside them, with io_context + co_spawn run by N
// threads. This is the speed a user gets; bench/swarm_shapes.cpp measures the internal
// scheduler layer. swarm runs every shape twice: with swarm::coro<T> and use_coro
// ("swarm_coro"), and with asio::awaitable<T> and use_awaitable ("swarm"), the same source
// with the coroutine type and the token swapped.
//
//   public_shapes [--workers N] [--iters K] [--warmup-ms M] [--shapes a,b]
//                 [--runtimes swarm_coro,swarm,io_context]
//   public_shapes --scale swarm_coro|swarm|io_context [--workers N] [--tasks T]
//   public_shapes --track-ab R [--workers N] [--iters K] [--warmup-ms M] [--shapes a,b]
//
// Shapes named ct_* run on one thread with no worker threads: swarm's current-thread flavour
// driven by block_on, an io_context(1) run by the bench thread, Tokio's current-thread runtime
// (Builder::new_current_thread) with block_on. ct_spawn_await, ct_yield_now: per operation,
// as op_*; ct_spawn_join: one task spawns 10 000 tasks, then joins each; ct_yield_many: one
// task spawns 100 tasks of 1 000 yields each, then joins them.
//
// Prints CSV lines `runtime,shape,workers,value,unit`; unit is ns (one iteration of a shape,
// or one operation of an op_* shape), allocs (operator new calls per operation, op_* shapes),
// or bytes_per_task / ns for the scale shape.
//
// --track-ab R measures what task tracking (runtime_options::track_tasks, for runtime::dump())
// costs on these shapes, swarm_coro only, in one process: R rounds, each running every shape
// once untracked and once tracked, in alternating order; a run's value is the median of its
// K iterations, a round's ratio is tracked / untracked. Prints per shape the medians and the
// ratios' median and quartiles, then the geometric mean of the shapes' median ratios. Two
// processes of this program differ by more than tracking costs (bench/README.md).
#include "detached_shapes.hpp"
#include "quantile.hpp"
#include "skynet_swarm.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

// --- allocation counting: a replaced global operator new, counted only while enabled so
// that the timed passes pay one relaxed load.
namespace {
std::atomic<bool> counting{false};
std::atomic<std::uint64_t> alloc_count{0};
void* counted_alloc(std::size_t n, std::size_t align) {
  if (counting.load(std::memory_order_relaxed))
    alloc_count.fetch_add(1, std::memory_order_relaxed);
  if (n == 0)
    n = 1;
  void* p = align <= alignof(std::max_align_t) ? std::malloc(n)
                                               : std::aligned_alloc(align, (n + align - 1) / align * align);
  return p;
}
} // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n, 0))
    return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = counted_alloc(n, static_cast<std::size_t>(a)))
    return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

constexpr int num_spawn = 10'000;       // spawn_many_*
constexpr int num_pings = 1'000;        // ping_pong
constexpr int num_yield_tasks = 200;    // yield_many
constexpr int num_yields = 1'000;       // yield_many, per task
constexpr int num_ct_yield_tasks = 100; // ct_yield_many
constexpr int chain_depth = 1'000;      // chained_spawn
constexpr long skynet_size = 1'000'000; // leaves: 10 children per node, depth 6
constexpr int op_batch = 20'000;        // per-operation shapes: operations per timed sample
constexpr auto shape_timeout = 60s;     // any wait of the bench thread

struct config {
  int workers = static_cast<int>(std::thread::hardware_concurrency());
  int iters = 10;
  int warmup_ms = 200;
};

// --track-ab: whether swarm's runtimes track tasks (-1: as SWARM_BENCH_TRACK_TASKS says), and
// where measure() puts its iterations' times instead of printing them (null: print).
int track_tasks_override = -1;
std::vector<std::int64_t>* samples = nullptr;

// Busy-waits 10 us, yielding the thread in the loop (as Tokio's bench does).
void stall() {
  const auto t = clock_type::now();
  while (clock_type::now() - t < 10us)
    std::this_thread::yield();
}

// Waits for a future with a bound: a shape that hangs ends the program with a message.
template <class T>
T get_bounded(std::future<T>& f, const char* what) {
  if (f.wait_for(shape_timeout) != std::future_status::ready) {
    std::fprintf(stderr, "public_shapes: %s did not finish in %lld s\n", what,
                 static_cast<long long>(shape_timeout.count()));
    std::fflush(stdout);
    std::_Exit(3);
  }
  return f.get();
}

// Warm-up (at least two iterations, at most warmup_ms and 10 000 iterations), then `iters`
// timed iterations; `iteration` returns its own time in ns.
void measure(const config& cfg, const char* rt_name, const char* shape, int workers,
             const std::function<std::int64_t()>& iteration) {
  const auto start = clock_type::now();
  for (int n = 0;
       n < 2 || (clock_type::now() - start < std::chrono::milliseconds(cfg.warmup_ms) && n < 10'000); ++n)
    iteration();
  for (int i = 0; i < cfg.iters; ++i) {
    const std::int64_t ns = iteration();
    if (samples) {
      samples->push_back(ns);
      continue;
    }
    std::printf("%s,%s,%d,%lld,ns\n", rt_name, shape, workers, static_cast<long long>(ns));
    std::fflush(stdout);
  }
}

std::int64_t ns_since(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t).count();
}

// --- the two systems, written as their users write them --------------------------------

// swarm: the runtime owns its workers (start()); tasks are swarm::spawn'ed, joins awaited.
// Coroutines are asio::awaitable (swarm_sys) or swarm::coro (coro_sys).
struct swarm_sys {
  static constexpr const char* name = "swarm";
  static constexpr bool is_swarm = true;
  template <class T>
  using co = asio::awaitable<T>;
  static constexpr auto token = asio::use_awaitable;
  std::unique_ptr<swarm::runtime> rt;
  bool driven = false;
  // driven: the current-thread flavour, run by the bench thread inside root(); else N workers.
  explicit swarm_sys(int n, bool on_this_thread = false) : driven(on_this_thread) {
    swarm::runtime_options o;
    o.worker_threads = static_cast<std::size_t>(n);
    if (driven)
      o.flavor = swarm::runtime_flavor::current_thread;
    // SWARM_BENCH_TRACK_TASKS=1: per-task statistics on, to measure what runtime::dump()'s
    // tracking costs (bench/README.md).
    if (track_tasks_override >= 0)
      o.track_tasks = track_tasks_override == 1;
    else if (const char* t = std::getenv("SWARM_BENCH_TRACK_TASKS"))
      o.track_tasks = std::strcmp(t, "1") == 0;
    rt = std::make_unique<swarm::runtime>(o);
    if (!driven)
      rt->start();
  }
  void shutdown() { rt.reset(); }
  auto ex() { return rt->get_executor(); }

  // Fire and forget: the join handle is dropped (the task is detached).
  template <class Ex, class F>
  static void spawn_detached(const Ex& ex, F&& f) {
    swarm::spawn(ex, std::forward<F>(f));
  }
  static auto yield() { return swarm::yield_now(); }
  // Runs `f` (returning co<T>) as a task and gives its value to the bench thread.
  template <class T, class F>
  T root(F&& f, const char* what) {
    if (driven) {
      if constexpr (std::is_invocable_v<F&>)
        return rt->block_on(f());
      else
        return rt->block_on(std::forward<F>(f));
    }
    auto jh = swarm::spawn(ex(), std::forward<F>(f));
    std::future<T> fut = jh.async_wait(asio::use_future);
    return get_bounded(fut, what);
  }
};

struct coro_sys : swarm_sys {
  static constexpr const char* name = "swarm_coro";
  template <class T>
  using co = swarm::coro<T>;
  static constexpr auto token = swarm::use_coro;
  using swarm_sys::swarm_sys;
};

// io_context run by N threads; co_spawn(..., use_awaitable) awaits a child.
struct io_sys {
  static constexpr const char* name = "io_context";
  static constexpr bool is_swarm = false;
  template <class T>
  using co = asio::awaitable<T>;
  static constexpr auto token = asio::use_awaitable;
  std::unique_ptr<asio::io_context> ctx;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::vector<std::thread> threads;
  bool driven = false;
  // driven: no threads; root() runs the context on the bench thread until it is out of work.
  explicit io_sys(int n, bool on_this_thread = false)
      : ctx(std::make_unique<asio::io_context>(n)), driven(on_this_thread) {
    if (driven)
      return;
    guard = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(ctx->get_executor());
    for (int i = 0; i < n; ++i)
      threads.emplace_back([c = ctx.get()] { c->run(); });
  }
  void shutdown() {
    if (!ctx)
      return;
    guard.reset();
    ctx->stop();
    for (auto& t : threads)
      t.join();
    threads.clear();
    ctx.reset(); // destroys unrun handlers and suspended coroutine frames
  }
  ~io_sys() { shutdown(); }
  auto ex() { return ctx->get_executor(); }

  template <class Ex, class F>
  static void spawn_detached(const Ex& ex, F&& f) {
    if constexpr (std::is_invocable_v<F&> && !std::is_void_v<std::invoke_result_t<F&>>)
      asio::co_spawn(ex, std::forward<F>(f), asio::detached);
    else
      asio::post(ex, std::forward<F>(f));
  }
  static asio::awaitable<void> yield() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
  template <class T, class F>
  T root(F&& f, const char* what) {
    std::future<T> fut = asio::co_spawn(ex(), std::forward<F>(f), asio::use_future);
    if (driven) {
      ctx->restart();
      ctx->run_for(shape_timeout); // bounded: a root that never ends fails in get_bounded
    }
    return get_bounded(fut, what);
  }
};

// --- Tokio's shapes ----------------------------------------------------------------------

// 10 000 spawns of callables from the bench thread (not a worker); the last one signals.
template <class Sys>
void spawn_many_local(const config& cfg) {
  Sys sys(cfg.workers);
  auto ex = sys.ex();
  std::atomic<int> rem{0};
  measure(cfg, Sys::name, "spawn_many_local", cfg.workers, [&] {
    const auto t = clock_type::now();
    auto done = std::make_shared<done_signal>();
    auto fut = done->p.get_future();
    spawn_detached_callables<Sys>(ex, num_spawn, rem, done);
    get_bounded(fut, "spawn_many_local");
    return ns_since(t);
  });
}

// 10 000 spawns of empty coroutines from the bench thread, keeping their handles; then the
// bench thread awaits each in order.
template <class Sys>
std::int64_t remote_spawn_and_await(Sys& sys) {
  auto ex = sys.ex();
  const auto t = clock_type::now();
  if constexpr (Sys::is_swarm) {
    std::vector<swarm::join_handle<void>> hs;
    hs.reserve(num_spawn);
    for (int i = 0; i < num_spawn; ++i)
      hs.push_back(swarm::spawn(ex, []() -> typename Sys::template co<void> { co_return; }));
    sys.template root<void>(
        [&hs]() -> typename Sys::template co<void> {
          for (auto& h : hs)
            co_await std::move(h);
        },
        "spawn_many_remote");
  } else {
    // Asio's handle to a spawned coroutine that a non-worker thread can wait on: a future.
    std::vector<std::future<void>> fs;
    fs.reserve(num_spawn);
    for (int i = 0; i < num_spawn; ++i)
      fs.push_back(asio::co_spawn(
          ex, []() -> asio::awaitable<void> { co_return; }, asio::use_future));
    for (auto& f : fs)
      get_bounded(f, "spawn_many_remote");
  }
  return ns_since(t);
}

template <class Sys>
void spawn_many_remote_idle(const config& cfg) {
  Sys sys(cfg.workers);
  measure(cfg, Sys::name, "spawn_many_remote_idle", cfg.workers, [&] { return remote_spawn_and_await(sys); });
}

// As remote_idle while 2 x workers background tasks loop { yield_now; stall 10 us }.
template <class Sys>
void spawn_many_remote_busy(const config& cfg) {
  Sys sys(cfg.workers);
  auto ex = sys.ex();
  std::atomic<bool> run{true};
  std::atomic<int> live{2 * cfg.workers};
  for (int i = 0; i < 2 * cfg.workers; ++i)
    Sys::spawn_detached(ex, [&]() -> typename Sys::template co<void> {
      while (run.load(std::memory_order_relaxed)) {
        co_await Sys::yield();
        stall();
      }
      live.fetch_sub(1);
    });
  measure(cfg, Sys::name, "spawn_many_remote_busy", cfg.workers, [&] { return remote_spawn_and_await(sys); });
  run = false;
  for (auto t = clock_type::now(); live.load() != 0 && clock_type::now() - t < shape_timeout;)
    std::this_thread::sleep_for(1ms);
}

// One task spawns 1 000 tasks; each makes two one-shot channels, spawns a partner that
// receives on the first and answers on the second, sends, awaits the answer; the last signals.
// The two ends run on different tasks, possibly on different threads at once: Asio's plain
// channel is not safe for that, its concurrent_channel (same interface, a mutex) is.
template <class Sys>
void ping_pong(const config& cfg) {
  using chan = asio::experimental::concurrent_channel<void(boost::system::error_code)>;
  Sys sys(cfg.workers);
  auto ex = sys.ex();
  std::atomic<int> rem{0};
  measure(cfg, Sys::name, "ping_pong", cfg.workers, [&] {
    const auto t = clock_type::now();
    rem = num_pings;
    auto done = std::make_shared<done_signal>();
    auto fut = done->p.get_future();
    Sys::spawn_detached(ex, [&, ex, done]() -> typename Sys::template co<void> {
      for (int i = 0; i < num_pings; ++i)
        Sys::spawn_detached(ex, [&, ex, done]() -> typename Sys::template co<void> {
          auto cex = co_await asio::this_coro::executor;
          auto ping = std::make_shared<chan>(cex, 1);
          auto pong = std::make_shared<chan>(cex, 1);
          Sys::spawn_detached(ex, [ping, pong]() -> typename Sys::template co<void> {
            co_await ping->async_receive(Sys::token);
            co_await pong->async_send(boost::system::error_code{}, Sys::token);
          });
          co_await ping->async_send(boost::system::error_code{}, Sys::token);
          co_await pong->async_receive(Sys::token);
          if (rem.fetch_sub(1, std::memory_order_relaxed) == 1)
            done->set();
        });
      co_return;
    });
    get_bounded(fut, "ping_pong");
    return ns_since(t);
  });
}

// 200 remote spawns of tasks doing 1 000 x yield_now, the last one signalling.
template <class Sys>
void yield_many(const config& cfg) {
  Sys sys(cfg.workers);
  auto ex = sys.ex();
  std::atomic<int> rem{0};
  measure(cfg, Sys::name, "yield_many", cfg.workers, [&] {
    const auto t = clock_type::now();
    rem = num_yield_tasks;
    auto done = std::make_shared<done_signal>();
    auto fut = done->p.get_future();
    for (int i = 0; i < num_yield_tasks; ++i)
      Sys::spawn_detached(ex, [&rem, done]() -> typename Sys::template co<void> {
        for (int j = 0; j < num_yields; ++j)
          co_await Sys::yield();
        if (rem.fetch_sub(1, std::memory_order_relaxed) == 1)
          done->set();
      });
    get_bounded(fut, "yield_many");
    return ns_since(t);
  });
}

// A chain of 1 000 tasks, each spawning the next; the last signals.
template <class Sys>
void chained_spawn(const config& cfg) {
  Sys sys(cfg.workers);
  auto ex = sys.ex();
  measure(cfg, Sys::name, "chained_spawn", cfg.workers, [&] {
    const auto t = clock_type::now();
    auto done = std::make_shared<done_signal>();
    auto fut = done->p.get_future();
    chain_link<Sys>(ex, chain_depth, done);
    get_bounded(fut, "chained_spawn");
    return ns_since(t);
  });
}

// --- fork-join: skynet, 10 children per node, depth 6 (1 111 111 tasks); swarm's side is in
// skynet_swarm.hpp ----------------------------------------------------------------------

// Asio's fork-join: the children as deferred co_spawns, launched and awaited as one group.
template <class Ex>
asio::awaitable<long> skynet_io(Ex ex, long num, long size) {
  if (size == 1)
    co_return num;
  using op_type = decltype(asio::co_spawn(ex, skynet_io(ex, 0, 1), asio::deferred));
  std::vector<op_type> children;
  children.reserve(10);
  const long sub = size / 10;
  for (long i = 0; i < 10; ++i)
    children.push_back(asio::co_spawn(ex, skynet_io(ex, num + i * sub, sub), asio::deferred));
  auto [order, errors, values] = co_await asio::experimental::make_parallel_group(std::move(children))
                                     .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  long sum = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (errors[i])
      std::rethrow_exception(errors[i]);
    sum += values[i];
  }
  co_return sum;
}

template <class Sys>
void skynet(const config& cfg) {
  Sys sys(cfg.workers);
  auto ex = sys.ex();
  const long expect = skynet_size * (skynet_size - 1) / 2;
  config c = cfg;
  c.warmup_ms = 0; // each iteration is ~0.1-3 s: the two mandatory warm-up runs suffice
  measure(c, Sys::name, "skynet", cfg.workers, [&] {
    const auto t = clock_type::now();
    long sum;
    if constexpr (Sys::is_swarm)
      sum = sys.template root<long>(skynet_swarm<Sys::template co>(ex, 0, skynet_size), "skynet");
    else
      sum = sys.template root<long>(skynet_io(ex, 0, skynet_size), "skynet");
    const auto ns = ns_since(t);
    if (sum != expect) {
      std::fprintf(stderr, "public_shapes: skynet sum %ld, expected %ld\n", sum, expect);
      std::_Exit(4);
    }
    return ns;
  });
}

// ct_* shapes run on one thread driven by the bench thread (see the top of the file).
bool is_one_thread(const std::string& shape) { return shape.rfind("ct_", 0) == 0; }

// --- per-operation costs on one worker -----------------------------------------------------
// Each runs a batch of op_batch operations inside one task on a 1-worker runtime, timed by
// the task; then one more batch with allocation counting on (swarm only), reported as
// operator new calls per operation.

template <class Sys, class Body>
void per_op(const config& cfg, const char* shape, Body body) {
  Sys sys(1, is_one_thread(shape));
  auto ex = sys.ex();
  using ex_type = decltype(ex);
  auto batch = [&](int n) {
    return sys.template root<std::int64_t>(
        [ex, n, &body]() -> typename Sys::template co<std::int64_t> {
          const auto t = clock_type::now();
          co_await body(ex_type(ex), n);
          co_return ns_since(t);
        },
        shape);
  };
  measure(cfg, Sys::name, shape, 1, [&] { return batch(op_batch) / op_batch; });
  if constexpr (Sys::is_swarm) {
    if (samples)
      return; // --track-ab: times only
    // Count a batch of n against a batch of 2n so that the root task's own allocations cancel.
    auto count = [&](int n) {
      alloc_count = 0;
      counting = true;
      batch(n);
      counting = false;
      return alloc_count.load();
    };
    const std::uint64_t a = count(op_batch / 10), b = count(op_batch / 5);
    std::printf("%s,%s,1,%.2f,allocs\n", Sys::name, shape,
                static_cast<double>(b - a) / static_cast<double>(op_batch / 5 - op_batch / 10));
    std::fflush(stdout);
  }
}

template <class Sys>
void op_shape(const config& cfg, const std::string& s) {
  using C = typename Sys::template co<void>;
  if (s == "op_spawn_await" || s == "ct_spawn_await") {
    per_op<Sys>(cfg, s.c_str(), [](auto ex, int n) -> C {
      for (int i = 0; i < n; ++i) {
        if constexpr (Sys::is_swarm) {
          auto jh = swarm::spawn(ex, []() -> C { co_return; });
          co_await std::move(jh);
        } else {
          co_await asio::co_spawn(
              ex, []() -> asio::awaitable<void> { co_return; }, asio::use_awaitable);
        }
      }
    });
  } else if (s == "op_spawn_await_callable") {
    if constexpr (Sys::is_swarm)
      per_op<Sys>(cfg, s.c_str(), [](auto ex, int n) -> C {
        for (int i = 0; i < n; ++i) {
          auto jh = swarm::spawn(ex, [] {});
          co_await std::move(jh);
        }
      });
  } else if (s == "op_yield_now" || s == "ct_yield_now") {
    per_op<Sys>(cfg, s.c_str(), [](auto, int n) -> C {
      for (int i = 0; i < n; ++i)
        co_await Sys::yield();
    });
  } else if (s == "op_post") {
    // n posted handlers from inside a task; the time runs until the last one has run.
    per_op<Sys>(cfg, s.c_str(), [](auto ex, int n) -> C {
      auto left = std::make_shared<int>(n);
      asio::steady_timer all_ran(ex, clock_type::time_point::max());
      for (int i = 0; i < n; ++i)
        asio::post(ex, [left, &all_ran] {
          if (--*left == 0)
            all_ran.cancel();
        });
      co_await all_ran.async_wait(asio::as_tuple(Sys::token)); // cancelled by the last handler
    });
  } else if (s == "op_join_callback") {
    // spawn, then wait for the join with a callback; the callback spawns the next.
    per_op<Sys>(cfg, s.c_str(), [](auto ex, int n) -> C {
      asio::steady_timer all_done(ex, clock_type::time_point::max());
      struct step {
        decltype(ex) e;
        asio::steady_timer* t;
        int left;
        void go() {
          if (left-- == 0) {
            t->cancel();
            return;
          }
          if constexpr (Sys::is_swarm) {
            auto jh = std::make_shared<swarm::join_handle<void>>(swarm::spawn(e, []() -> C { co_return; }));
            jh->async_wait([s = *this, jh](std::exception_ptr) mutable { s.go(); });
          } else {
            asio::co_spawn(
                e, []() -> asio::awaitable<void> { co_return; },
                [s = *this](std::exception_ptr) mutable { s.go(); });
          }
        }
      };
      step{ex, &all_done, n}.go();
      co_await all_done.async_wait(asio::as_tuple(Sys::token)); // cancelled by the last step
    });
  } else if (s == "op_join_use_awaitable") {
    // The join awaited through a completion token: use_awaitable, or use_coro for coro.
    per_op<Sys>(cfg, s.c_str(), [](auto ex, int n) -> C {
      for (int i = 0; i < n; ++i) {
        if constexpr (Sys::is_swarm)
          co_await swarm::spawn(ex, []() -> C { co_return; }).async_wait(Sys::token);
        else
          co_await asio::co_spawn(
              ex, []() -> asio::awaitable<void> { co_return; }, asio::use_awaitable);
      }
    });
  } else if (s == "op_abort_join") {
    // spawn a task that sleeps an hour, abort it, await its join (cancelled).
    if constexpr (Sys::is_swarm)
      per_op<Sys>(cfg, s.c_str(), [](auto ex, int n) -> C {
        for (int i = 0; i < n; ++i) {
          auto jh = swarm::spawn(ex, []() -> C {
            asio::steady_timer t(co_await asio::this_coro::executor, 1h);
            co_await t.async_wait(Sys::token);
          });
          jh.abort();
          try {
            co_await std::move(jh);
          } catch (const swarm::join_error&) {
          }
        }
      });
  } else if (s == "op_timer_zero") {
    per_op<Sys>(cfg, s.c_str(), [](auto ex, int n) -> C {
      asio::steady_timer t(ex);
      for (int i = 0; i < n; ++i) {
        t.expires_after(0s);
        co_await t.async_wait(Sys::token);
      }
    });
  }
}

// One task on one thread spawns `tasks` tasks running `child`, then joins them all. swarm
// joins each handle; io_context has no join handle: its children count down and the last
// cancels a timer the root waits on.
template <class Sys, class Child>
void one_thread_fork_join(const config& cfg, const char* shape, int tasks, Child child) {
  Sys sys(1, true);
  auto ex = sys.ex();
  using C = typename Sys::template co<void>;
  measure(cfg, Sys::name, shape, 1, [&] {
    const auto t = clock_type::now();
    sys.template root<int>(
        [ex, tasks, &child]() -> typename Sys::template co<int> {
          if constexpr (Sys::is_swarm) {
            std::vector<swarm::join_handle<void>> hs;
            hs.reserve(static_cast<std::size_t>(tasks));
            for (int i = 0; i < tasks; ++i)
              hs.push_back(swarm::spawn(ex, [&child]() -> C { co_await child(); }));
            for (auto& h : hs)
              co_await std::move(h);
          } else {
            int left = tasks;
            asio::steady_timer all_done(ex, clock_type::time_point::max());
            for (int i = 0; i < tasks; ++i)
              asio::co_spawn(
                  ex,
                  [&child, &left, &all_done]() -> C {
                    co_await child();
                    if (--left == 0)
                      all_done.cancel();
                  },
                  asio::detached);
            // co_spawn dispatches: on this thread the children may all have run already.
            if (left > 0)
              co_await all_done.async_wait(asio::as_tuple(Sys::token));
          }
          co_return 0;
        },
        shape);
    return ns_since(t);
  });
}

template <class Sys>
void one_thread_shape(const config& cfg, const std::string& s) {
  using C = typename Sys::template co<void>;
  if (s == "ct_spawn_join")
    one_thread_fork_join<Sys>(cfg, "ct_spawn_join", num_spawn, []() -> C { co_return; });
  else if (s == "ct_yield_many")
    one_thread_fork_join<Sys>(cfg, "ct_yield_many", num_ct_yield_tasks, []() -> C {
      for (int j = 0; j < num_yields; ++j)
        co_await Sys::yield();
    });
  else
    op_shape<Sys>(cfg, s); // ct_spawn_await, ct_yield_now: the op_* bodies on one thread
}

// --- a million pending tasks ---------------------------------------------------------------

std::size_t resident_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

template <class Sys>
void scale(int workers, int tasks) {
  auto sys = std::make_unique<Sys>(workers);
  auto ex = sys->ex();
  std::atomic<int> waiting{0};
  const std::size_t rss0 = resident_bytes();
  const auto t0 = clock_type::now();
  for (int i = 0; i < tasks; ++i)
    Sys::spawn_detached(ex, [&waiting]() -> typename Sys::template co<void> {
      asio::steady_timer t(co_await asio::this_coro::executor, 1h);
      waiting.fetch_add(1, std::memory_order_relaxed);
      co_await t.async_wait(Sys::token);
    });
  while (waiting.load(std::memory_order_relaxed) < tasks && clock_type::now() - t0 < shape_timeout)
    std::this_thread::sleep_for(1ms);
  const std::int64_t spawn_ns = ns_since(t0);
  if (waiting.load() < tasks) {
    std::fprintf(stderr, "public_shapes: scale: only %d of %d tasks waiting after %lld s\n", waiting.load(),
                 tasks, static_cast<long long>(shape_timeout.count()));
    std::_Exit(3);
  }
  std::this_thread::sleep_for(100ms); // let the last tasks reach their timer wait
  const std::size_t rss1 = resident_bytes();
  const auto t1 = clock_type::now();
  sys->shutdown();
  const std::int64_t shutdown_ns = ns_since(t1);
  std::printf("%s,scale_bytes_per_task,%d,%.0f,bytes\n", Sys::name, workers,
              (static_cast<double>(rss1) - static_cast<double>(rss0)) / tasks);
  std::printf("%s,scale_spawn_all_waiting,%d,%lld,ns\n", Sys::name, workers,
              static_cast<long long>(spawn_ns));
  std::printf("%s,scale_shutdown,%d,%lld,ns\n", Sys::name, workers, static_cast<long long>(shutdown_ns));
  std::fflush(stdout);
}

template <class Sys>
void run_shape(const config& cfg, const std::string& s) {
  if (s == "spawn_many_local")
    spawn_many_local<Sys>(cfg);
  else if (s == "spawn_many_remote_idle")
    spawn_many_remote_idle<Sys>(cfg);
  else if (s == "spawn_many_remote_busy")
    spawn_many_remote_busy<Sys>(cfg);
  else if (s == "ping_pong")
    ping_pong<Sys>(cfg);
  else if (s == "yield_many")
    yield_many<Sys>(cfg);
  else if (s == "chained_spawn")
    chained_spawn<Sys>(cfg);
  else if (s == "skynet")
    skynet<Sys>(cfg);
  else if (s.rfind("op_", 0) == 0)
    op_shape<Sys>(cfg, s);
  else if (is_one_thread(s))
    one_thread_shape<Sys>(cfg, s);
  else {
    std::fprintf(stderr, "public_shapes: unknown shape %s\n", s.c_str());
    std::exit(2);
  }
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty())
      out.push_back(item);
  return out;
}

// --track-ab: see the top of this file.
void track_ab(const config& cfg, const std::vector<std::string>& shapes, int rounds) {
  std::printf("track-ab: %d rounds, %d workers, %d iterations a run; ratio = tracked / untracked\n", rounds,
              cfg.workers, cfg.iters);
  std::printf("%-26s %14s %14s %8s %15s\n", "shape", "untracked ns", "tracked ns", "ratio", "ratio q1-q3");
  double log_sum = 0;
  int counted = 0;
  for (const std::string& shape : shapes) {
    std::vector<double> runs[2], ratios;
    for (int k = 0; k < rounds; ++k) {
      double round[2];
      for (int j = 0; j < 2; ++j) {
        const int tracked = (k + j) % 2;
        std::vector<std::int64_t> v;
        samples = &v;
        track_tasks_override = tracked;
        run_shape<coro_sys>(cfg, shape);
        samples = nullptr;
        if (v.empty())
          break; // a shape swarm_coro does not run
        round[tracked] = static_cast<double>(quantile(v, 0.5));
        runs[tracked].push_back(round[tracked]);
      }
      if (runs[0].size() != static_cast<std::size_t>(k + 1) ||
          runs[1].size() != static_cast<std::size_t>(k + 1))
        break;
      ratios.push_back(round[1] / round[0]);
    }
    if (ratios.empty())
      continue;
    const double r = quantile(ratios, 0.5);
    std::printf("%-26s %14.0f %14.0f %8.3f %7.3f-%.3f\n", shape.c_str(), quantile(runs[0], 0.5),
                quantile(runs[1], 0.5), r, quantile(ratios, 0.25), quantile(ratios, 0.75));
    std::fflush(stdout);
    log_sum += std::log(r);
    ++counted;
  }
  if (counted != 0)
    std::printf("geometric mean of the %d shapes' ratios: %.3f\n", counted, std::exp(log_sum / counted));
}

} // namespace

int main(int argc, char** argv) {
  config cfg;
  std::string shapes = "spawn_many_local,spawn_many_remote_idle,spawn_many_remote_busy,ping_pong,yield_many,"
                       "chained_spawn,skynet,op_spawn_await,op_spawn_await_callable,op_yield_now,op_post,"
                       "op_join_callback,op_join_use_awaitable,op_abort_join,op_timer_zero,"
                       "ct_spawn_await,ct_yield_now,ct_spawn_join,ct_yield_many";
  std::string runtimes = "swarm_coro,swarm,io_context";
  std::string scale_rt;
  int tasks = 1'000'000;
  int ab_rounds = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!v) {
      std::fprintf(stderr, "public_shapes: %s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--workers")
      cfg.workers = std::atoi(v);
    else if (a == "--iters")
      cfg.iters = std::atoi(v);
    else if (a == "--warmup-ms")
      cfg.warmup_ms = std::atoi(v);
    else if (a == "--shapes")
      shapes = v;
    else if (a == "--runtimes")
      runtimes = v;
    else if (a == "--scale")
      scale_rt = v;
    else if (a == "--tasks")
      tasks = std::atoi(v);
    else if (a == "--track-ab")
      ab_rounds = std::atoi(v);
    else {
      std::fprintf(stderr, "public_shapes: unknown argument %s\n", a.c_str());
      return 2;
    }
    ++i;
  }
  if (cfg.workers < 1 || cfg.iters < 1 || tasks < 1 || ab_rounds < 0)
    return 2;
  if (ab_rounds > 0) {
    track_ab(cfg, split(shapes), ab_rounds);
    return 0;
  }
  if (!scale_rt.empty()) {
    if (scale_rt == "swarm_coro")
      scale<coro_sys>(cfg.workers, tasks);
    else if (scale_rt == "swarm")
      scale<swarm_sys>(cfg.workers, tasks);
    else
      scale<io_sys>(cfg.workers, tasks);
    return 0;
  }
  for (const std::string& s : split(shapes))
    for (const std::string& r : split(runtimes)) {
      if (r == "swarm_coro")
        run_shape<coro_sys>(cfg, s);
      else if (r == "swarm")
        run_shape<swarm_sys>(cfg, s);
      else if (r == "io_context")
        run_shape<io_sys>(cfg, s);
    }
}
