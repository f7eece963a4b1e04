// Tokio's scheduler benchmark shapes (benches/rt_multi_threaded.rs and benches/spawn.rs of
// the Tokio repository) on swarm's multi-thread scheduler, and the same shapes, where they
// map, on boost::asio::io_context run by N threads and on boost::asio::thread_pool(N). The
// Rust twin is bench/tokio.
//
//   g++ -std=c++20 -O2 -DNDEBUG -Iinclude bench/swarm_shapes.cpp src/task/*.cpp src/scheduler/*.cpp -pthread
//   ./a.out [--workers N] [--iters K] [--warmup-ms M] [--runtimes swarm,io_context,thread_pool]
//           [--shapes a,b,...]
//
// Prints one CSV line per shape per timed iteration: `<runtime>,<shape>,<workers>,<ns>`, where
// <ns> is the wall time of one iteration of the shape as Tokio's bench defines it. Each
// (runtime, shape) gets a fresh runtime, is warmed up for --warmup-ms (at least two
// iterations), then timed --iters times. Shapes run in the order given, each on every
// runtime in turn, so that drift in machine load hits all runtimes alike.
//
// How the shapes map:
//  * swarm: Tokio's block_on is not a worker, so "spawn from inside block_on" spawns from
//    the bench thread (through the inject queue, as in Tokio); "block_on waits" is the bench
//    thread blocking on a latch (mutex + condition variable) or, for join handles, polling
//    the raw_join_handle with a waker that unparks the bench thread. yield_now is a future
//    that hands its waker to handle::defer, as Tokio's yield_now does. ping_pong uses a
//    one-shot channel built on a waker slot (below). Join handles not awaited are dropped
//    (detached), as in Tokio.
//  * io_context / thread_pool: plain posted handlers, no join handles: spawn = post,
//    yield = re-post, chain = post from the handler, ping_pong = ping posts pong, pong
//    posts the ping's continuation; completion is an atomic countdown + latch. The two
//    spawn_many_remote/local variants are the same shape there (post N, wait for N).
//  * threaded_scheduler_spawn runs on one worker / one thread whatever --workers says
//    (workers column 1); one iteration (spawn, poll, yield, poll, join) takes microseconds,
//    so it is timed over a batch of 1000 and reported per iteration.
//  * spawn_join_latency runs on one worker whatever --workers says: one task on that worker
//    spawns an empty task and awaits its join handle, latency_batch times in a row (the
//    spawner, the runner and the joiner are one thread, nothing parks); the task times the
//    batch itself and the figure is per spawn+run+join. Beside it, runtime `floor` (swarm
//    only) is the bound the latency goal states the figure against (doc/design.md,
//    "Performance work"): one malloc/free pair of the empty task's cell size plus two
//    uncontended atomic fetch_adds, on the same machine.

#include <swarm/scheduler/multi_thread.hpp>
#include <swarm/task/id.hpp>
#include <swarm/task/join.hpp>
#include <swarm/task/waker.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace sd = swarm::detail;
using mt_handle = sd::multi_thread::handle;
using sd::unit;
using clock_type = std::chrono::steady_clock;

constexpr long num_spawn = 10'000;      // spawn_many_local, spawn_many_remote_idle, spawn_many_remote_busy1
constexpr long num_spawn_busy2 = 1'000; // spawn_many_remote_busy2
constexpr long num_pings = 1'000;       // ping_pong
constexpr long num_yield_tasks = 200;   // yield_many
constexpr int num_yields = 1'000;       // yield_many, per task
constexpr int chain_depth = 1'000;      // chained_spawn
constexpr int spawn_batch = 1'000;      // threaded_scheduler_spawn iterations per timed batch
constexpr long latency_batch = 20'000;  // spawn_join_latency (and floor) iterations per timed batch

const char* const all_shapes[] = {"spawn_many_local", "spawn_many_remote_idle", "spawn_many_remote_busy1",
                                  "spawn_many_remote_busy2", "ping_pong", "yield_many", "chained_spawn",
                                  "threaded_scheduler_spawn", "spawn_join_latency"};
const char* const all_runtimes[] = {"swarm", "floor", "io_context", "thread_pool"};

struct config {
  std::size_t workers = std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1;
  int iters = 10;
  std::chrono::milliseconds warmup{200};
};

std::int64_t ns_since(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t).count();
}

// Runs `iteration` (which returns its own timed ns) for the warm-up period, then cfg.iters
// times, printing one CSV line per timed run.
template <class F>
void measure(const config& cfg, const char* runtime, const char* shape, std::size_t workers, F&& iteration) {
  const auto start = clock_type::now();
  for (int n = 0; n < 2 || (clock_type::now() - start < cfg.warmup && n < 10'000); ++n)
    (void)iteration();
  for (int i = 0; i < cfg.iters; ++i) {
    const std::int64_t ns = iteration();
    std::printf("%s,%s,%zu,%lld\n", runtime, shape, workers, static_cast<long long>(ns));
  }
  std::fflush(stdout);
}

// Busy-waits 10 µs, yielding the thread in the loop (Tokio's bench stall()).
void stall() {
  const auto start = clock_type::now();
  while (clock_type::now() - start < std::chrono::microseconds(10))
    std::this_thread::yield();
}

// "The bench thread blocks until done": what Tokio's benches do with a std sync_channel.
class latch {
public:
  // Notifies under the lock: once the waiter can return (and destroy the latch), the
  // notifier no longer touches it.
  void set() {
    std::lock_guard lock(m_);
    done_ = true;
    cv_.notify_one();
  }
  // Waits for set(), then re-arms.
  void wait() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return done_; });
    done_ = false;
  }

private:
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
};

// An atomic counter; the one that takes it to zero sets the latch.
struct countdown {
  std::atomic<long> left{0};
  latch done;

  void arm(long n) { left.store(n, std::memory_order_relaxed); }
  void hit() {
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1)
      done.set();
  }
};

// Parks the bench thread until unparked (Tokio's CachedParkThread, on a futex). An unpark
// before the park makes the park return at once; spurious returns are harmless because
// every caller re-checks its condition.
class thread_parker {
public:
  void park() {
    while (token_.exchange(0, std::memory_order_acquire) == 0)
      token_.wait(0, std::memory_order_relaxed);
  }
  void unpark() {
    if (token_.exchange(1, std::memory_order_release) == 0)
      token_.notify_one();
  }

private:
  std::atomic<std::uint32_t> token_{0};
};

// A waker that unparks the bench thread. Not counted: the parker outlives every runtime.
thread_parker bench_parker;
const sd::waker_vtable parker_waker_vtable{
    [](void* d) -> void* { return d; },
    [](void* d) { static_cast<thread_parker*>(d)->unpark(); },
    [](void* d) { static_cast<thread_parker*>(d)->unpark(); },
    [](void*) {},
};

// block_on(join_handle) from the bench thread.
template <class T>
sd::outcome<T> block_on_join(sd::raw_join_handle<T>& j) {
  const sd::waker w(&bench_parker, &parker_waker_vtable);
  for (;;) {
    if (std::optional<sd::outcome<T>> o = j.poll(w))
      return std::move(*o);
    bench_parker.park();
  }
}

// ---------------------------------------------------------------------------------------
// swarm
// ---------------------------------------------------------------------------------------

template <class F>
sd::raw_join_handle<typename F::output_type> spawn(mt_handle* h, F f) {
  return h->spawn(std::move(f), swarm::task_id::next());
}

// A runtime per shape, shut down at the end of it.
struct swarm_runtime {
  std::unique_ptr<mt_handle> h;
  explicit swarm_runtime(std::size_t workers) {
    swarm::scheduler_options o;
    o.worker_threads = workers;
    h = std::make_unique<mt_handle>(std::move(o), nullptr);
    h->launch();
  }
  ~swarm_runtime() { h->shutdown(); }
};

// Tokio's yield_now: the first poll defers the waker (woken after the worker next looks at
// its driver) and is pending; the second is ready. Returns true when the yield is over.
struct yielder {
  bool yielded = false;
  bool poll(mt_handle* h, sd::poll_context& cx) {
    if (yielded) {
      yielded = false;
      return true;
    }
    yielded = true;
    h->defer(cx.get_waker());
    return false;
  }
};

struct empty_task {
  using output_type = unit;
  std::optional<unit> poll(sd::poll_context&) { return unit{}; }
};

struct decrement_task {
  using output_type = unit;
  countdown* cd;
  std::optional<unit> poll(sd::poll_context&) {
    cd->hit();
    return unit{};
  }
};

// Background load of spawn_many_remote_busy1: loop { yield_now; stall } while the flag is set.
struct busy_yield_task {
  using output_type = unit;
  mt_handle* h;
  const std::atomic<bool>* flag;
  yielder y;
  std::optional<unit> poll(sd::poll_context& cx) {
    for (;;) {
      if (!y.poll(h, cx))
        return std::nullopt;
      stall();
      if (!flag->load(std::memory_order_relaxed))
        return unit{};
    }
  }
};

// Background load of spawn_many_remote_busy2: stall, then spawn the successor, while the
// flag is set. The starter (spawned remotely) only spawns the first link, from a worker.
struct busy_chain_task {
  using output_type = unit;
  mt_handle* h;
  const std::atomic<bool>* flag;
  bool starter;
  std::optional<unit> poll(sd::poll_context&) {
    if (starter) {
      spawn(h, busy_chain_task{h, flag, false});
    } else if (flag->load(std::memory_order_relaxed)) {
      stall();
      spawn(h, busy_chain_task{h, flag, false});
    }
    return unit{};
  }
};

// A one-shot unit channel on a waker slot: the receiver stores its waker and sets rx_set;
// the sender sets sent and wakes the stored waker if rx_set was set. While rx_set is set
// only the sender reads the slot; the receiver replaces it only after clearing rx_set with
// a CAS that fails once sent is set. One allocation shared by both ends, as Tokio's.
struct oneshot {
  static constexpr unsigned sent = 1, rx_set = 2;
  std::atomic<unsigned> state{0};
  sd::waker rx_waker;

  void send() {
    // Acq_rel: release publishes the value (none here) to the receiver; acquire makes the
    // receiver's waker store visible before we read the slot.
    if (state.fetch_or(sent, std::memory_order_acq_rel) & rx_set)
      rx_waker.wake_by_ref();
  }

  bool poll_recv(sd::poll_context& cx) {
    unsigned s = state.load(std::memory_order_acquire);
    if (s & sent)
      return true;
    if (s & rx_set) {
      if (rx_waker.will_wake(cx.get_waker()))
        return false;
      if (!state.compare_exchange_strong(s, s & ~rx_set, std::memory_order_acquire))
        return true; // only `sent` can have changed
    }
    rx_waker = cx.get_waker().clone();
    return (state.fetch_or(rx_set, std::memory_order_acq_rel) & sent) != 0;
  }
};

struct pong_task {
  using output_type = unit;
  std::shared_ptr<oneshot> ping_rx, pong_tx;
  std::optional<unit> poll(sd::poll_context& cx) {
    if (!ping_rx->poll_recv(cx))
      return std::nullopt;
    pong_tx->send();
    pong_tx.reset();
    return unit{};
  }
};

struct ping_task {
  using output_type = unit;
  mt_handle* h;
  countdown* cd;
  std::shared_ptr<oneshot> pong_rx;
  std::optional<unit> poll(sd::poll_context& cx) {
    if (!pong_rx) {
      auto ping = std::make_shared<oneshot>();
      pong_rx = std::make_shared<oneshot>();
      spawn(h, pong_task{ping, pong_rx});
      ping->send();
    }
    if (!pong_rx->poll_recv(cx))
      return std::nullopt;
    cd->hit();
    return unit{};
  }
};

struct ping_pong_root {
  using output_type = unit;
  mt_handle* h;
  countdown* cd;
  std::optional<unit> poll(sd::poll_context&) {
    for (long i = 0; i < num_pings; ++i)
      spawn(h, ping_task{h, cd, nullptr});
    return unit{};
  }
};

struct yield_many_task {
  using output_type = unit;
  mt_handle* h;
  countdown* cd;
  int left;
  yielder y;
  std::optional<unit> poll(sd::poll_context& cx) {
    while (left > 0) {
      if (!y.poll(h, cx))
        return std::nullopt;
      --left;
    }
    cd->hit();
    return unit{};
  }
};

struct chain_task {
  using output_type = unit;
  mt_handle* h;
  latch* done;
  int n;
  std::optional<unit> poll(sd::poll_context&) {
    if (n == 0)
      done->set();
    else
      spawn(h, chain_task{h, done, n - 1});
    return unit{};
  }
};

// spawn.rs's work(): compute 1 + 1, yield once, return it (two polls).
struct work_task {
  using output_type = int;
  mt_handle* h;
  yielder y;
  int val = 0;
  std::optional<int> poll(sd::poll_context& cx) {
    if (!y.yielded) {
      volatile int one = 1;
      val = one + one;
    }
    if (!y.poll(h, cx))
      return std::nullopt;
    return val;
  }
};

// spawn_join_latency: spawns an empty task and awaits it, latency_batch times, then stores
// the elapsed ns and sets the latch. The child lands in the worker's LIFO slot; its
// completion wakes this task through the join waker, which puts it back there.
struct spawn_join_driver {
  using output_type = unit;
  mt_handle* h;
  latch* done;
  std::int64_t* ns_out;
  long left = latency_batch;
  std::optional<sd::raw_join_handle<unit>> child;
  clock_type::time_point start{};
  std::optional<unit> poll(sd::poll_context& cx) {
    if (left == latency_batch && !child)
      start = clock_type::now();
    for (;;) {
      if (child) {
        sd::maybe<sd::outcome<unit>> o = child->poll(cx.get_waker());
        if (!o)
          return std::nullopt;
        if (!o->has_value())
          std::abort();
        child.reset();
      }
      if (left == 0) {
        *ns_out = ns_since(start) / latency_batch;
        done->set();
        return unit{};
      }
      --left;
      child.emplace(spawn(h, empty_task{}));
    }
  }
};

// The floor of spawn_join_latency: malloc/free of `size` bytes plus two uncontended
// fetch_adds, per iteration. The pointer is published through a volatile so that the
// compiler cannot drop the pair.
std::int64_t floor_iteration(std::size_t size) {
  std::atomic<std::uint64_t> a{0}, b{0};
  void* volatile sink = nullptr;
  const auto t = clock_type::now();
  for (long i = 0; i < latency_batch; ++i) {
    void* p = std::malloc(size);
    sink = p;
    a.fetch_add(1, std::memory_order_acq_rel);
    b.fetch_add(1, std::memory_order_acq_rel);
    std::free(sink);
  }
  const std::int64_t ns = ns_since(t) / latency_batch;
  if (a.load(std::memory_order_relaxed) != static_cast<std::uint64_t>(latency_batch) ||
      b.load(std::memory_order_relaxed) != static_cast<std::uint64_t>(latency_batch))
    std::abort();
  return ns;
}

// NUM remote spawns of empty tasks from the bench thread, then wait for each in order.
std::int64_t swarm_remote_spawn_and_await(mt_handle* h, long num, std::vector<sd::raw_join_handle<unit>>& handles) {
  const auto t = clock_type::now();
  for (long i = 0; i < num; ++i)
    handles.push_back(spawn(h, empty_task{}));
  for (auto& j : handles) {
    sd::outcome<unit> o = block_on_join(j);
    if (!o.has_value())
      std::abort();
  }
  handles.clear();
  return ns_since(t);
}

void swarm_shape(const config& cfg, const std::string& shape) {
  const char* rt = "swarm";
  const std::size_t w = cfg.workers;
  if (shape == "spawn_many_local") {
    countdown cd; // declared first: outlives the runtime
    swarm_runtime r(w);
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      cd.arm(num_spawn);
      for (long i = 0; i < num_spawn; ++i)
        spawn(r.h.get(), decrement_task{&cd});
      cd.done.wait();
      return ns_since(t);
    });
  } else if (shape == "spawn_many_remote_idle") {
    swarm_runtime r(w);
    std::vector<sd::raw_join_handle<unit>> handles;
    handles.reserve(num_spawn);
    measure(cfg, rt, shape.c_str(), w, [&] { return swarm_remote_spawn_and_await(r.h.get(), num_spawn, handles); });
  } else if (shape == "spawn_many_remote_busy1") {
    std::atomic<bool> flag{true}; // declared first: outlives the runtime
    swarm_runtime r(w);
    for (std::size_t i = 0; i < 2 * w; ++i)
      spawn(r.h.get(), busy_yield_task{r.h.get(), &flag, {}});
    std::vector<sd::raw_join_handle<unit>> handles;
    handles.reserve(num_spawn);
    measure(cfg, rt, shape.c_str(), w, [&] { return swarm_remote_spawn_and_await(r.h.get(), num_spawn, handles); });
    flag.store(false, std::memory_order_relaxed);
  } else if (shape == "spawn_many_remote_busy2") {
    std::atomic<bool> flag{true}; // declared first: outlives the runtime
    swarm_runtime r(w);
    for (std::size_t i = 0; i < w; ++i)
      spawn(r.h.get(), busy_chain_task{r.h.get(), &flag, true});
    std::vector<sd::raw_join_handle<unit>> handles;
    handles.reserve(num_spawn_busy2);
    measure(cfg, rt, shape.c_str(), w,
            [&] { return swarm_remote_spawn_and_await(r.h.get(), num_spawn_busy2, handles); });
    flag.store(false, std::memory_order_relaxed);
  } else if (shape == "ping_pong") {
    countdown cd; // declared first: outlives the runtime
    swarm_runtime r(w);
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      cd.arm(num_pings);
      spawn(r.h.get(), ping_pong_root{r.h.get(), &cd});
      cd.done.wait();
      return ns_since(t);
    });
  } else if (shape == "yield_many") {
    countdown cd; // declared first: outlives the runtime
    swarm_runtime r(w);
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      cd.arm(num_yield_tasks);
      for (long i = 0; i < num_yield_tasks; ++i)
        spawn(r.h.get(), yield_many_task{r.h.get(), &cd, num_yields, {}});
      cd.done.wait();
      return ns_since(t);
    });
  } else if (shape == "chained_spawn") {
    latch done;
    swarm_runtime r(w);
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      spawn(r.h.get(), chain_task{r.h.get(), &done, chain_depth});
      done.wait();
      return ns_since(t);
    });
  } else if (shape == "threaded_scheduler_spawn") {
    swarm_runtime r(1);
    measure(cfg, rt, shape.c_str(), 1, [&] {
      const auto t = clock_type::now();
      for (int i = 0; i < spawn_batch; ++i) {
        auto j = spawn(r.h.get(), work_task{r.h.get(), {}});
        sd::outcome<int> o = block_on_join(j);
        if (!o.has_value() || o.value() != 2)
          std::abort();
      }
      return ns_since(t) / spawn_batch;
    });
  } else if (shape == "spawn_join_latency") {
    latch done;
    swarm_runtime r(1);
    measure(cfg, rt, shape.c_str(), 1, [&] {
      std::int64_t ns = 0;
      spawn(r.h.get(), spawn_join_driver{r.h.get(), &done, &ns});
      done.wait();
      return ns;
    });
  }
}

// The floor rows (only spawn_join_latency has one).
void floor_shape(const config& cfg, const std::string& shape) {
  if (shape != "spawn_join_latency")
    return;
  using empty_cell = sd::cell_layout<empty_task, sd::multi_thread::handle_ref>;
  measure(cfg, "floor", shape.c_str(), 1, [&] { return floor_iteration(empty_cell::size); });
}

// ---------------------------------------------------------------------------------------
// Asio: io_context run by N threads, thread_pool(N)
// ---------------------------------------------------------------------------------------

namespace asio = boost::asio;

struct io_context_runtime {
  asio::io_context ctx;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  std::vector<std::thread> threads;
  explicit io_context_runtime(std::size_t n) : ctx(static_cast<int>(n)), guard(ctx.get_executor()) {
    for (std::size_t i = 0; i < n; ++i)
      threads.emplace_back([this] { ctx.run(); });
  }
  ~io_context_runtime() {
    guard.reset(); // run() returns once the queued work is done
    for (auto& t : threads)
      t.join();
  }
  auto executor() { return ctx.get_executor(); }
};

struct thread_pool_runtime {
  asio::thread_pool pool;
  explicit thread_pool_runtime(std::size_t n) : pool(n) {}
  ~thread_pool_runtime() { pool.join(); } // waits for the queued work
  auto executor() { return pool.get_executor(); }
};

template <class Ex>
struct busy_repost {
  Ex ex;
  const std::atomic<bool>* flag;
  void operator()() {
    stall();
    if (flag->load(std::memory_order_relaxed))
      asio::post(ex, std::move(*this));
  }
};

template <class Ex>
struct busy_chain {
  Ex ex;
  const std::atomic<bool>* flag;
  void operator()() {
    if (flag->load(std::memory_order_relaxed)) {
      stall();
      asio::post(ex, busy_chain{ex, flag});
    }
  }
};

template <class Ex>
struct pp_pong {
  Ex ex;
  countdown* cd;
  void operator()() {
    countdown* c = cd;
    asio::post(ex, [c] { c->hit(); }); // the answer: the ping's continuation
  }
};

template <class Ex>
struct pp_ping {
  Ex ex;
  countdown* cd;
  void operator()() { asio::post(ex, pp_pong<Ex>{ex, cd}); }
};

template <class Ex>
struct yield_repost {
  Ex ex;
  countdown* cd;
  int left;
  void operator()() {
    if (left == 0) {
      cd->hit();
      return;
    }
    --left;
    asio::post(ex, std::move(*this));
  }
};

template <class Ex>
struct chain_post {
  Ex ex;
  latch* done;
  int n;
  void operator()() {
    if (n == 0)
      done->set();
    else
      asio::post(ex, chain_post{ex, done, n - 1});
  }
};

template <class Ex>
struct work_repost {
  Ex ex;
  std::atomic<int>* result;
  bool yielded = false;
  int val = 0;
  void operator()() {
    if (!yielded) {
      volatile int one = 1;
      val = one + one;
      yielded = true;
      asio::post(ex, std::move(*this));
      return;
    }
    result->store(val, std::memory_order_release);
    bench_parker.unpark();
  }
};

template <class Runtime>
void asio_post_and_wait(Runtime& r, long num, countdown& cd) {
  cd.arm(num);
  auto ex = r.executor();
  for (long i = 0; i < num; ++i)
    asio::post(ex, [c = &cd] { c->hit(); });
  cd.done.wait();
}

template <class Runtime>
void asio_shape(const config& cfg, const char* rt, const std::string& shape) {
  const std::size_t w = cfg.workers;
  using Ex = decltype(std::declval<Runtime&>().executor());
  if (shape == "spawn_many_local" || shape == "spawn_many_remote_idle") {
    countdown cd; // declared first: outlives the runtime
    Runtime r(w);
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      asio_post_and_wait(r, num_spawn, cd);
      return ns_since(t);
    });
  } else if (shape == "spawn_many_remote_busy1" || shape == "spawn_many_remote_busy2") {
    const bool busy1 = shape == "spawn_many_remote_busy1";
    std::atomic<bool> flag{true};
    countdown cd; // declared first: outlives the runtime
    Runtime r(w);
    if (busy1) {
      for (std::size_t i = 0; i < 2 * w; ++i)
        asio::post(r.executor(), busy_repost<Ex>{r.executor(), &flag});
    } else {
      for (std::size_t i = 0; i < w; ++i)
        asio::post(r.executor(), busy_chain<Ex>{r.executor(), &flag});
    }
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      asio_post_and_wait(r, busy1 ? num_spawn : num_spawn_busy2, cd);
      return ns_since(t);
    });
    flag.store(false, std::memory_order_relaxed);
  } else if (shape == "ping_pong") {
    countdown cd; // declared first: outlives the runtime
    Runtime r(w);
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      cd.arm(num_pings);
      Ex ex = r.executor();
      asio::post(ex, [ex, c = &cd] {
        for (long i = 0; i < num_pings; ++i)
          asio::post(ex, pp_ping<Ex>{ex, c});
      });
      cd.done.wait();
      return ns_since(t);
    });
  } else if (shape == "yield_many") {
    countdown cd; // declared first: outlives the runtime
    Runtime r(w);
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      cd.arm(num_yield_tasks);
      for (long i = 0; i < num_yield_tasks; ++i)
        asio::post(r.executor(), yield_repost<Ex>{r.executor(), &cd, num_yields});
      cd.done.wait();
      return ns_since(t);
    });
  } else if (shape == "chained_spawn") {
    latch done;
    Runtime r(w);
    measure(cfg, rt, shape.c_str(), w, [&] {
      const auto t = clock_type::now();
      // The first link is posted from the bench thread, the rest from handlers.
      asio::post(r.executor(), chain_post<Ex>{r.executor(), &done, chain_depth});
      done.wait();
      return ns_since(t);
    });
  } else if (shape == "threaded_scheduler_spawn") {
    std::atomic<int> result{0};
    Runtime r(1);
    measure(cfg, rt, shape.c_str(), 1, [&] {
      const auto t = clock_type::now();
      for (int i = 0; i < spawn_batch; ++i) {
        result.store(0, std::memory_order_relaxed);
        asio::post(r.executor(), work_repost<Ex>{r.executor(), &result});
        while (result.load(std::memory_order_acquire) == 0)
          bench_parker.park();
        if (result.load(std::memory_order_relaxed) != 2)
          std::abort();
      }
      return ns_since(t) / spawn_batch;
    });
  }
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos)
      return out;
    start = comma + 1;
  }
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: swarm_shapes [--workers N] [--iters K] [--warmup-ms M] [--runtimes a,b] [--shapes a,b]\n"
                       "runtimes: swarm,floor,io_context,thread_pool\nshapes:");
  for (const char* s : all_shapes)
    std::fprintf(stderr, " %s", s);
  std::fprintf(stderr, "\n");
  std::exit(2);
}

} // namespace

int main(int argc, char** argv) {
  config cfg;
  std::vector<std::string> shapes(std::begin(all_shapes), std::end(all_shapes));
  std::vector<std::string> runtimes(std::begin(all_runtimes), std::end(all_runtimes));
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc)
      usage();
    const std::string v = argv[++i];
    char* end = nullptr;
    if (a == "--workers")
      cfg.workers = std::strtoul(v.c_str(), &end, 10);
    else if (a == "--iters")
      cfg.iters = static_cast<int>(std::strtol(v.c_str(), &end, 10));
    else if (a == "--warmup-ms")
      cfg.warmup = std::chrono::milliseconds(std::strtol(v.c_str(), &end, 10));
    else if (a == "--shapes")
      shapes = split(v);
    else if (a == "--runtimes")
      runtimes = split(v);
    else
      usage();
    if (end && *end)
      usage();
  }
  if (cfg.workers == 0 || cfg.iters < 0)
    usage();
  for (const auto& s : shapes)
    if (std::find(std::begin(all_shapes), std::end(all_shapes), s) == std::end(all_shapes)) {
      std::fprintf(stderr, "unknown shape: %s\n", s.c_str());
      usage();
    }
  for (const auto& s : shapes) {
    for (const auto& r : runtimes) {
      if (r == "swarm")
        swarm_shape(cfg, s);
      else if (r == "floor")
        floor_shape(cfg, s);
      else if (r == "io_context")
        asio_shape<io_context_runtime>(cfg, "io_context", s);
      else if (r == "thread_pool")
        asio_shape<thread_pool_runtime>(cfg, "thread_pool", s);
      else {
        std::fprintf(stderr, "unknown runtime: %s\n", r.c_str());
        usage();
      }
    }
  }
}
