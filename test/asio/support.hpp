// Shared helpers of the Asio-layer tests: bounded ways to drive a runtime and to wait, the
// executor types every conformance test runs on, and small counters. Boost.Test assertions are not
// thread-safe, so threads record into atomics and the test thread checks them afterwards.
#pragma once

#include <swarm/runtime.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace swarm_test {

using namespace std::chrono_literals;

// Every conformance test runs twice: on the runtime's own executor and type-erased.
using executor_types = std::tuple<swarm::runtime::executor_type, boost::asio::any_io_executor>;

template <class Ex>
Ex executor_of(swarm::runtime& rt) {
  return Ex(rt.get_executor());
}

// Generous bound on any single wait in these tests: far above what a passing test needs
// (milliseconds), far below the suite's budget.
inline constexpr std::chrono::seconds limit{2};

// Threads calling ctx.run() (or another loop function) on a runtime or an io_context.
// join() waits at most `bound` for all of them; past it the context is stopped so that the
// test fails instead of hanging.
template <class Context>
class runners {
public:
  using loop_fn = std::function<std::size_t(Context&)>;

  runners(Context& ctx, int n, std::type_identity_t<loop_fn> loop = [](Context& c) { return c.run(); }) : ctx_(ctx) {
    for (int i = 0; i < n; ++i) {
      auto p = std::make_shared<std::promise<void>>();
      done_.push_back(p->get_future());
      threads_.emplace_back([this, p, loop] {
        try {
          handled_ += loop(ctx_);
          p->set_value();
        } catch (...) {
          p->set_exception(std::current_exception());
        }
      });
      ids_.push_back(threads_.back().get_id());
    }
  }
  runners(const runners&) = delete;
  runners& operator=(const runners&) = delete;
  ~runners() { join(); }

  // True if every thread returned within `bound` (and none threw).
  bool join(std::chrono::steady_clock::duration bound = limit) {
    if (joined_)
      return ok_;
    joined_ = true;
    const auto deadline = std::chrono::steady_clock::now() + bound;
    for (auto& f : done_) {
      if (f.wait_until(deadline) != std::future_status::ready) {
        ok_ = false;
        ctx_.stop();
      }
    }
    for (auto& t : threads_)
      t.join();
    for (auto& f : done_) {
      try {
        f.get();
      } catch (...) {
        ok_ = false;
        error_ = std::current_exception();
      }
    }
    return ok_;
  }
  // Whether every thread has returned (without waiting).
  bool all_returned() const {
    for (auto& f : done_)
      if (f.wait_for(0s) != std::future_status::ready)
        return false;
    return true;
  }
  // The threads' ids (still valid after join()).
  const std::vector<std::thread::id>& ids() const { return ids_; }
  // Sum of what the loop functions returned (handlers run, for run()).
  std::size_t handled() const { return handled_.load(); }
  std::exception_ptr error() const { return error_; }

private:
  Context& ctx_;
  std::vector<std::thread> threads_;
  std::vector<std::thread::id> ids_;
  std::vector<std::future<void>> done_;
  std::atomic<std::size_t> handled_{0};
  bool joined_ = false;
  bool ok_ = true;
  std::exception_ptr error_;
};

// Runs ctx.run() on the calling thread; a watchdog stops the context after `bound`.
// Returns false if the watchdog had to. `handled` receives run()'s result.
template <class Context>
bool run_bounded(Context& ctx, std::chrono::steady_clock::duration bound = limit, std::size_t* handled = nullptr) {
  std::promise<void> finished;
  std::future<void> f = finished.get_future();
  std::atomic<bool> fired{false};
  std::thread watchdog([&] {
    if (f.wait_for(bound) != std::future_status::ready) {
      fired = true;
      ctx.stop();
    }
  });
  struct join_at_exit {
    std::promise<void>& finished;
    std::thread& watchdog;
    ~join_at_exit() {
      finished.set_value();
      watchdog.join();
    }
  };
  {
    join_at_exit j{finished, watchdog};
    const std::size_t n = ctx.run();
    if (handled)
      *handled = n;
  }
  return !fired;
}

// Waits until `pred` holds, at most `bound`.
template <class Pred>
bool eventually(Pred pred, std::chrono::steady_clock::duration bound = limit) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Whether `f` is ready within `bound`.
template <class T>
bool ready_in_time(std::future<T>& f, std::chrono::steady_clock::duration bound = limit) {
  return f.wait_for(bound) == std::future_status::ready;
}

// Suspends the calling coroutine for `d` on a timer of its executor.
inline boost::asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, d);
  co_await t.async_wait(boost::asio::use_awaitable);
}

// Keeps the calling thread busy for `d` (a task that occupies its worker).
inline void busy_for(std::chrono::steady_clock::duration d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
  }
}

// Counts destructions of the objects a handler captured.
struct destruction_counter {
  std::shared_ptr<std::atomic<int>> count = std::make_shared<std::atomic<int>>(0);
  struct token {
    std::shared_ptr<std::atomic<int>> count;
    token(const token&) = delete;
    token(token&& o) noexcept : count(std::move(o.count)) {}
    explicit token(std::shared_ptr<std::atomic<int>> c) : count(std::move(c)) {}
    ~token() {
      if (count)
        ++*count;
    }
  };
  token make() const { return token(count); }
  int destroyed() const { return count->load(); }
};

// Counts its own destruction, once whatever the moves: as a coroutine parameter it dies
// with the frame, whether or not the coroutine ever ran.
struct frame_token {
  std::atomic<int>* freed;
  explicit frame_token(std::atomic<int>& f) : freed(&f) {}
  frame_token(frame_token&& o) noexcept : freed(std::exchange(o.freed, nullptr)) {}
  frame_token(const frame_token&) = delete;
  ~frame_token() {
    if (freed)
      freed->fetch_add(1, std::memory_order_relaxed);
  }
};

} // namespace swarm_test
