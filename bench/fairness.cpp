// The fairness benchmark: how long work from outside waits while every worker is busy.
//
// Under each load (every worker kept busy by N lanes of tasks), three probes measure how
// late outside work runs: a handler posted from the bench thread (post: from the post to
// the handler's first line), a task that sleeps on a 1 ms steady_timer again and again
// (timer: from the expiry to the task's resumption) and a task that accepts loopback
// connections the bench thread makes (accept: from connect() returning to the accept's
// completion in the task). Beside them, the busy lanes' own progress per second.
//
//   fairness [--workers N] [--loads none,yield,budget,chain] [--runtimes swarm,io_context]
//            [--samples S]
//
// Loads, N lanes each, on every runtime the same user code:
//   none    no load (the probes' floor)
//   yield   each lane loops { compute 20 us; yield } (swarm::yield_now; io_context:
//           co_await post(ex, use_awaitable))
//   budget  each lane loops { compute 1 us; co_await post(own executor, use_awaitable) }:
//           on swarm the post joins the task's own handler queue, so the task never yields
//           and runs until its coop budget (128) is spent; on io_context it is a yield
//   chain   each lane is a chain of tasks: each computes 20 us, spawns its successor and
//           ends (Tokio's spawn_many_remote_busy2 shape; io_context: posted handlers)
//
// Prints CSV lines `runtime,load,workers,metric,value,unit`: metric post_p50, post_p99,
// timer_p50, timer_p99, accept_p50, accept_p99 (ns), and busy_rate (lane iterations per
// second while the probes ran). Every wait is bounded (the program exits with a message),
// every loop bounded in count and time. Only loopback networking.
#include <swarm/swarm.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <random>
#include <sstream>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace asio = boost::asio;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr auto wait_bound = 20s;          // any single wait of the bench thread
constexpr auto phase_bound = 5s;          // one probe's whole series
constexpr auto warm_up = 100ms;           // the load runs this long before the probes
constexpr auto lane_compute = 20us;       // yield and chain loads, per iteration
constexpr auto budget_compute = 1us;      // budget load, per iteration
constexpr auto timer_period = 1ms;

struct config {
  int workers = static_cast<int>(std::thread::hardware_concurrency());
  int samples = 500;
};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fairness: %s\n", what);
  std::fflush(stdout);
  std::_Exit(3);
}

// Computes for `d`: a plain spin, no system call (the task holds its worker throughout).
void compute(clock_type::duration d) {
  const auto t = clock_type::now();
  while (clock_type::now() - t < d) {
  }
}

std::int64_t ns(clock_type::duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }

// A one-shot signal with a bounded wait.
struct signal {
  std::mutex m;
  std::condition_variable cv;
  bool set_ = false;
  void set() {
    std::lock_guard l(m);
    set_ = true;
    cv.notify_one();
  }
  void wait(const char* what) {
    std::unique_lock l(m);
    if (!cv.wait_for(l, wait_bound, [&] { return set_; }))
      fail(what);
    set_ = false;
  }
};

// The busy lanes' iteration counters, one cache line each.
struct alignas(64) lane_counter {
  std::atomic<std::uint64_t> n{0};
};

struct load_state {
  std::atomic<bool> run{true};
  std::atomic<int> live{0};
  std::vector<lane_counter> count;
  explicit load_state(int lanes) : count(static_cast<std::size_t>(lanes)) {}
  std::uint64_t total() const {
    std::uint64_t t = 0;
    for (auto& c : count)
      t += c.n.load(std::memory_order_relaxed);
    return t;
  }
};

// --- the two systems ----------------------------------------------------------------------

struct swarm_sys {
  static constexpr const char* name = "swarm";
  std::unique_ptr<swarm::runtime> rt;
  explicit swarm_sys(int n) {
    swarm::runtime_options o;
    o.worker_threads = static_cast<std::size_t>(n);
    rt = std::make_unique<swarm::runtime>(o);
    rt->start();
  }
  auto ex() { return rt->get_executor(); }
  template <class F>
  void spawn_co(F&& f) {
    swarm::spawn(ex(), std::forward<F>(f));
  }
  static auto yield() { return swarm::yield_now(); }

  // A chain link: a task that computes, spawns its successor and ends.
  static void link(swarm::runtime::executor_type ex, load_state* s, std::size_t lane) {
    compute(lane_compute);
    s->count[lane].n.fetch_add(1, std::memory_order_relaxed);
    if (s->run.load(std::memory_order_relaxed))
      swarm::spawn(ex, [ex, s, lane] { link(ex, s, lane); });
    else
      s->live.fetch_sub(1);
  }
  void start_chain(load_state* s, std::size_t lane) {
    swarm::spawn(ex(), [ex = ex(), s, lane] { link(ex, s, lane); });
  }
};

struct io_sys {
  static constexpr const char* name = "io_context";
  std::unique_ptr<asio::io_context> ctx;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::vector<std::thread> threads;
  explicit io_sys(int n) : ctx(std::make_unique<asio::io_context>(n)) {
    guard = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(ctx->get_executor());
    for (int i = 0; i < n; ++i)
      threads.emplace_back([c = ctx.get()] { c->run(); });
  }
  ~io_sys() {
    guard.reset();
    ctx->stop();
    for (auto& t : threads)
      t.join();
  }
  auto ex() { return ctx->get_executor(); }
  template <class F>
  void spawn_co(F&& f) {
    asio::co_spawn(ex(), std::forward<F>(f), asio::detached);
  }
  static asio::awaitable<void> yield() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
  static void link(asio::io_context::executor_type ex, load_state* s, std::size_t lane) {
    compute(lane_compute);
    s->count[lane].n.fetch_add(1, std::memory_order_relaxed);
    if (s->run.load(std::memory_order_relaxed))
      asio::post(ex, [ex, s, lane] { link(ex, s, lane); });
    else
      s->live.fetch_sub(1);
  }
  void start_chain(load_state* s, std::size_t lane) {
    asio::post(ex(), [ex = ex(), s, lane] { link(ex, s, lane); });
  }
};

// --- loads ----------------------------------------------------------------------------------

template <class Sys>
void start_load(Sys& sys, const std::string& load, load_state& s, int lanes) {
  s.live = load == "none" ? 0 : lanes;
  for (int i = 0; i < lanes && load != "none"; ++i) {
    const auto lane = static_cast<std::size_t>(i);
    if (load == "yield") {
      sys.spawn_co([&s, lane]() -> asio::awaitable<void> {
        while (s.run.load(std::memory_order_relaxed)) {
          compute(lane_compute);
          s.count[lane].n.fetch_add(1, std::memory_order_relaxed);
          co_await Sys::yield();
        }
        s.live.fetch_sub(1);
      });
    } else if (load == "budget") {
      sys.spawn_co([&s, lane]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        while (s.run.load(std::memory_order_relaxed)) {
          compute(budget_compute);
          s.count[lane].n.fetch_add(1, std::memory_order_relaxed);
          co_await asio::post(ex, asio::use_awaitable);
        }
        s.live.fetch_sub(1);
      });
    } else if (load == "chain") {
      sys.start_chain(&s, lane);
    } else {
      fail("unknown load");
    }
  }
}

void stop_load(load_state& s) {
  s.run = false;
  const auto t = clock_type::now();
  while (s.live.load() != 0) {
    if (clock_type::now() - t > wait_bound)
      fail("a load did not stop");
    std::this_thread::sleep_for(1ms);
  }
}

// p50 and p99 of `v` (sorted here).
std::pair<std::int64_t, std::int64_t> percentiles(std::vector<std::int64_t>& v) {
  if (v.empty())
    return {0, 0};
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<std::size_t>(q * double(v.size())))]; };
  return {at(0.50), at(0.99)};
}

// A pause of 200–700 us between samples, so that probes do not queue behind each other.
void pause(std::minstd_rand& rng) {
  std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 500));
}

template <class Sys>
std::vector<std::int64_t> probe_post(Sys& sys, const config& cfg, std::minstd_rand& rng) {
  std::vector<std::int64_t> out;
  signal done;
  std::int64_t seen = 0;
  const auto phase = clock_type::now();
  for (int i = 0; i < cfg.samples && clock_type::now() - phase < phase_bound; ++i) {
    const auto t0 = clock_type::now();
    asio::post(sys.ex(), [&, t0] {
      seen = ns(clock_type::now() - t0);
      done.set();
    });
    done.wait("a posted handler did not run");
    out.push_back(seen);
    pause(rng);
  }
  return out;
}

template <class Sys>
std::vector<std::int64_t> probe_timer(Sys& sys, const config& cfg) {
  auto out = std::make_shared<std::vector<std::int64_t>>();
  signal done;
  const int n = cfg.samples;
  sys.spawn_co([out, n, &done]() -> asio::awaitable<void> {
    asio::steady_timer t(co_await asio::this_coro::executor);
    const auto phase = clock_type::now();
    for (int i = 0; i < n && clock_type::now() - phase < phase_bound; ++i) {
      const auto expiry = clock_type::now() + timer_period;
      t.expires_at(expiry);
      co_await t.async_wait(asio::use_awaitable);
      out->push_back(ns(clock_type::now() - expiry));
    }
    done.set();
  });
  done.wait("the timer task did not finish");
  return std::move(*out);
}

template <class Sys>
std::vector<std::int64_t> probe_accept(Sys& sys, const config& cfg, std::minstd_rand& rng) {
  using asio::ip::tcp;
  tcp::acceptor acc(sys.ex(), tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  const unsigned short port = acc.local_endpoint().port();
  std::atomic<std::int64_t> accepted_at{-1}; // ns on clock_type, set by the accept task
  signal accepted;
  signal finished;
  const int n = cfg.samples / 2; // each sample opens a connection: fewer of them
  sys.spawn_co([&]() -> asio::awaitable<void> {
    for (int i = 0; i < n; ++i) {
      auto [ec, sock] = co_await acc.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec)
        break;
      accepted_at.store(ns(clock_type::now().time_since_epoch()), std::memory_order_relaxed);
      accepted.set();
    }
    finished.set();
  });
  std::vector<std::int64_t> out;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto phase = clock_type::now();
  int i = 0;
  for (; i < n && clock_type::now() - phase < phase_bound; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
      fail("connect to the loopback listener failed");
    const std::int64_t t0 = ns(clock_type::now().time_since_epoch());
    accepted.wait("an accept did not complete");
    out.push_back(std::max<std::int64_t>(0, accepted_at.load(std::memory_order_relaxed) - t0));
    ::close(fd);
    pause(rng);
  }
  // Ends the accept loop if the phase ran out of time: close the acceptor on its executor.
  if (i < n)
    asio::post(sys.ex(), [&] { acc.close(); });
  finished.wait("the accept task did not finish");
  return out;
}

void report(const char* rt, const std::string& load, int workers, const char* metric, std::vector<std::int64_t> v) {
  const auto [p50, p99] = percentiles(v);
  std::printf("%s,%s,%d,%s_p50,%lld,ns\n", rt, load.c_str(), workers, metric, static_cast<long long>(p50));
  std::printf("%s,%s,%d,%s_p99,%lld,ns\n", rt, load.c_str(), workers, metric, static_cast<long long>(p99));
}

template <class Sys>
void run_load(const config& cfg, const std::string& load) {
  Sys sys(cfg.workers);
  load_state s(cfg.workers);
  std::minstd_rand rng(42);
  start_load(sys, load, s, cfg.workers);
  std::this_thread::sleep_for(warm_up);
  const auto t0 = clock_type::now();
  const std::uint64_t n0 = s.total();
  auto post = probe_post(sys, cfg, rng);
  auto timer = probe_timer(sys, cfg);
  auto accept = probe_accept(sys, cfg, rng);
  const std::uint64_t n1 = s.total();
  const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  stop_load(s);
  report(Sys::name, load, cfg.workers, "post", std::move(post));
  report(Sys::name, load, cfg.workers, "timer", std::move(timer));
  report(Sys::name, load, cfg.workers, "accept", std::move(accept));
  std::printf("%s,%s,%d,busy_rate,%.0f,per_s\n", Sys::name, load.c_str(), cfg.workers,
              load == "none" ? 0.0 : double(n1 - n0) / secs);
  std::fflush(stdout);
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty())
      out.push_back(item);
  return out;
}

} // namespace

int main(int argc, char** argv) {
  config cfg;
  std::string loads = "none,yield,budget,chain";
  std::string runtimes = "swarm,io_context";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (!v) {
      std::fprintf(stderr, "fairness: %s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--workers")
      cfg.workers = std::atoi(v);
    else if (a == "--samples")
      cfg.samples = std::atoi(v);
    else if (a == "--loads")
      loads = v;
    else if (a == "--runtimes")
      runtimes = v;
    else {
      std::fprintf(stderr, "fairness: unknown argument %s\n", a.c_str());
      return 2;
    }
    ++i;
  }
  if (cfg.workers < 1 || cfg.samples < 2) {
    std::fprintf(stderr, "fairness: --workers and --samples must be positive\n");
    return 2;
  }
  for (const auto& load : split(loads))
    for (const auto& rt : split(runtimes)) {
      if (rt == "swarm")
        run_load<swarm_sys>(cfg, load);
      else if (rt == "io_context")
        run_load<io_sys>(cfg, load);
      else
        fail("unknown runtime");
    }
}
