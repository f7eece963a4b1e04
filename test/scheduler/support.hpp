// Helpers for the scheduler tests (ports of tokio/tests/rt_common.rs, rt_threaded.rs,
// task_blocking.rs and rt_metrics.rs): test futures (a lambda future, yield-once through the
// defer list, a self-waking spinner, a oneshot channel with a waker slot, drop counters), a
// test-thread waker and waiting helpers, a fake driver that counts its polls, and the runtime
// flavours that the template tests run on.
//
// Every wait here is bounded: a test that would hang fails after its timeout instead.
#pragma once

#include <swarm/scheduler/driver.hpp>
#include <swarm/scheduler/multi_thread.hpp>
#include <swarm/scheduler/options.hpp>
#include <swarm/task/join.hpp>

#include "../sanitizer.hpp"

#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace swarm_sched_test {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;
using swarm::detail::outcome;
using swarm::detail::poll_context;
using swarm::detail::raw_join_handle;
using swarm::detail::unit;
using swarm::detail::waker;
using swarm::detail::waker_vtable;

using swarm_test::sanitized;

// `n` normally, `n / divisor` (at least 1) under a sanitizer.
constexpr std::size_t scaled(std::size_t n, std::size_t divisor = 4) noexcept {
  return sanitized ? (n / divisor > 0 ? n / divisor : 1) : n;
}

// The default bound of one wait. Long enough for a loaded 2-core machine under TSan, short
// enough that a test which hangs fails well within its 3 s budget.
inline constexpr std::chrono::milliseconds wait_bound = 2000ms;

// ---------------------------------------------------------------------------------------
// Wakers.

// A waker that does nothing: for polling a join handle that is known to be finished.
inline constexpr waker_vtable noop_vtable{
    [](void* d) noexcept -> void* { return d; },
    [](void*) noexcept {},
    [](void*) noexcept {},
    [](void*) noexcept {},
};
inline waker noop_waker() noexcept { return waker(nullptr, &noop_vtable); }

// Wakes a thread blocked in wait_until. Reference-counted on the heap: a task may keep a
// clone (a join waker) after the waiting test gave up, and wake it later.
class thread_waker {
public:
  thread_waker() : state_(new state), waker_(state_, &vtable) {}
  thread_waker(const thread_waker&) = delete;
  thread_waker& operator=(const thread_waker&) = delete;

  const waker& get() const noexcept { return waker_; }

  // Returns true when woken (consuming the wake), false at the deadline.
  bool wait_until(clock::time_point deadline) {
    std::unique_lock lock(state_->mutex);
    if (!state_->cv.wait_until(lock, deadline, [&] { return state_->notified; }))
      return false;
    state_->notified = false;
    return true;
  }

  std::size_t wake_count() const noexcept { return state_->wakes.load(std::memory_order_relaxed); }

private:
  struct state {
    std::atomic<int> refs{1};
    std::atomic<std::size_t> wakes{0};
    std::mutex mutex;
    std::condition_variable cv;
    bool notified = false;
  };
  static void notify(void* d) {
    auto* s = static_cast<state*>(d);
    s->wakes.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lock(s->mutex);
      s->notified = true;
    }
    s->cv.notify_all();
  }
  static void release(void* d) noexcept {
    auto* s = static_cast<state*>(d);
    // acq_rel: the last owner sees every other owner's use before deleting.
    if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete s;
  }
  static constexpr waker_vtable vtable{
      [](void* d) noexcept -> void* {
        static_cast<state*>(d)->refs.fetch_add(1, std::memory_order_relaxed);
        return d;
      },
      [](void* d) {
        notify(d);
        release(d);
      },
      [](void* d) { notify(d); },
      [](void* d) noexcept { release(d); },
  };

  state* state_;
  waker waker_; // owns the initial reference
};

// Waits (on the test thread) for a task to finish; empty if it did not within `timeout`.
template <class T>
std::optional<outcome<T>> wait_for_join(raw_join_handle<T>& jh,
                                        std::chrono::nanoseconds timeout = wait_bound) {
  thread_waker w;
  const auto deadline = clock::now() + timeout;
  for (;;) {
    if (std::optional<outcome<T>> r = jh.poll(w.get()))
      return r;
    if (!w.wait_until(deadline))
      return jh.poll(w.get());
  }
}

// Reads the outcome of a handle whose task is known to be finished.
template <class T>
std::optional<outcome<T>> poll_now(raw_join_handle<T>& jh) {
  waker w = noop_waker();
  return jh.poll(w);
}

// The value of a task, waiting for it; empty if it did not finish in time or failed.
template <class T>
std::optional<T> join_value(raw_join_handle<T>& jh, std::chrono::nanoseconds timeout = wait_bound) {
  std::optional<outcome<T>> r = wait_for_join(jh, timeout);
  if (!r || !r->has_value())
    return std::nullopt;
  return std::optional<T>(std::move(*r).value());
}

// Whether an outcome is present and is a cancellation.
template <class T>
bool is_cancelled(const std::optional<outcome<T>>& r) {
  return r && !r->has_value() && r->error().is_cancelled();
}

// Polls `pred` until it holds or `timeout` passes (for metrics, which lag). Returns pred().
template <class Pred>
bool eventually(Pred&& pred, std::chrono::nanoseconds timeout = wait_bound) {
  const auto deadline = clock::now() + timeout;
  while (!pred()) {
    if (clock::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(200us);
  }
  return true;
}

// Spins (yielding the CPU) inside a task until `pred` holds or `timeout` passes: for tests
// that block a worker on purpose. Returns pred().
template <class Pred>
bool spin_until(Pred&& pred, std::chrono::nanoseconds timeout = wait_bound) {
  const auto deadline = clock::now() + timeout;
  while (!pred()) {
    if (clock::now() >= deadline)
      return pred();
    std::this_thread::yield();
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Futures.

// A future from a callable `std::optional<T>(poll_context&)`; its captures are its state.
template <class T, class Fn>
class poll_fn_future {
public:
  using output_type = T;
  explicit poll_fn_future(Fn fn) : fn_(std::move(fn)) {}
  std::optional<T> poll(poll_context& cx) { return fn_(cx); }

private:
  Fn fn_;
};

template <class T, class Fn>
poll_fn_future<T, std::decay_t<Fn>> poll_fn(Fn&& fn) {
  return poll_fn_future<T, std::decay_t<Fn>>(std::forward<Fn>(fn));
}

// Ready on its first poll with `value`.
template <class T>
auto ready(T value) {
  return poll_fn<T>(
      [v = std::move(value)](poll_context&) mutable -> std::optional<T> { return std::move(v); });
}

// Never ready, and never arranges a wake: it stays idle until cancelled.
inline auto pending_forever() {
  return poll_fn<unit>([](poll_context&) -> std::optional<unit> { return std::nullopt; });
}

// Runs a callback when destroyed (the live object only, not moved-from ones): put in a
// future, it reports when and where the runtime destroyed that future.
class on_drop {
public:
  on_drop() noexcept = default;
  explicit on_drop(std::function<void()> fn) noexcept : fn_(std::move(fn)) {}
  on_drop(on_drop&& o) noexcept : fn_(std::exchange(o.fn_, nullptr)) {}
  on_drop& operator=(on_drop&&) = delete;
  ~on_drop() {
    if (fn_)
      fn_();
  }

private:
  std::function<void()> fn_;
};

inline std::shared_ptr<std::atomic<int>> counter() { return std::make_shared<std::atomic<int>>(0); }

// An on_drop that increments `c`.
inline on_drop count_drop(std::shared_ptr<std::atomic<int>> c) {
  return on_drop([c = std::move(c)] { c->fetch_add(1, std::memory_order_acq_rel); });
}

// Wraps a future: counts its polls (if `polls` is set) and runs `drop` when the future is
// destroyed.
template <class F>
class counted {
public:
  using output_type = typename F::output_type;
  counted(F f, std::shared_ptr<std::atomic<int>> polls, on_drop drop = {})
      : f_(std::move(f)), polls_(std::move(polls)), drop_(std::move(drop)) {}
  counted(counted&&) = default;
  std::optional<output_type> poll(poll_context& cx) {
    if (polls_)
      polls_->fetch_add(1, std::memory_order_acq_rel);
    return f_.poll(cx);
  }

private:
  F f_;
  std::shared_ptr<std::atomic<int>> polls_;
  on_drop drop_;
};

// Yields once the way Tokio's yield_now does: the first poll defers its waker through the
// runtime (the task is re-polled only after the worker polled its driver), the second
// completes. `H` is either flavour's handle.
template <class H>
class yield_once {
public:
  using output_type = unit;
  explicit yield_once(H& h) noexcept : h_(&h) {}
  std::optional<unit> poll(poll_context& cx) {
    if (yielded_)
      return unit{};
    yielded_ = true;
    h_->defer(cx.get_waker());
    return std::nullopt;
  }

private:
  H* h_;
  bool yielded_ = false;
};

// Yields `n` times through the defer list, then returns n. Counts its polls.
template <class H>
auto yield_n(H& h, int n, std::shared_ptr<std::atomic<int>> polls = nullptr) {
  return poll_fn<int>([hp = &h, n, left = n, polls](poll_context& cx) mutable -> std::optional<int> {
    if (polls)
      polls->fetch_add(1, std::memory_order_acq_rel);
    if (left == 0)
      return n;
    --left;
    hp->defer(cx.get_waker());
    return std::nullopt;
  });
}

// Wakes itself on every poll (it goes behind other runnable work) until `stop` is set;
// counts its polls.
inline auto spinner(std::shared_ptr<std::atomic<bool>> stop,
                    std::shared_ptr<std::atomic<int>> polls = nullptr) {
  return poll_fn<unit>([stop, polls](poll_context& cx) -> std::optional<unit> {
    if (polls)
      polls->fetch_add(1, std::memory_order_relaxed);
    if (stop->load(std::memory_order_acquire))
      return unit{};
    cx.get_waker().wake_by_ref();
    return std::nullopt;
  });
}

// ---------------------------------------------------------------------------------------
// A oneshot channel: the receiver is a future whose output is the value, or empty when the
// sender went away without sending. Dropping either end wakes nobody but the receiver.
template <class T>
struct oneshot_state {
  std::mutex mutex;
  std::optional<T> value;
  bool sender_gone = false;
  bool receiver_gone = false;
  waker rx_waker; // under mutex
};

template <class T>
class oneshot_sender {
public:
  explicit oneshot_sender(std::shared_ptr<oneshot_state<T>> s) noexcept : s_(std::move(s)) {}
  oneshot_sender(oneshot_sender&&) noexcept = default;
  oneshot_sender& operator=(oneshot_sender&& o) noexcept {
    close();
    s_ = std::move(o.s_);
    return *this;
  }
  ~oneshot_sender() { close(); }

  // False if the receiver is gone (the value is dropped).
  bool send(T v) {
    waker w;
    bool delivered;
    {
      std::lock_guard lock(s_->mutex);
      delivered = !s_->receiver_gone;
      if (delivered)
        s_->value.emplace(std::move(v));
      s_->sender_gone = true;
      w = std::move(s_->rx_waker);
    }
    s_.reset();
    std::move(w).wake(); // outside the lock: the wake may run the scheduler
    return delivered;
  }

  explicit operator bool() const noexcept { return static_cast<bool>(s_); }

private:
  void close() {
    if (!s_)
      return;
    waker w;
    {
      std::lock_guard lock(s_->mutex);
      s_->sender_gone = true;
      w = std::move(s_->rx_waker);
    }
    s_.reset();
    std::move(w).wake();
  }

  std::shared_ptr<oneshot_state<T>> s_;
};

template <class T>
class oneshot_receiver {
public:
  using output_type = std::optional<T>;
  explicit oneshot_receiver(std::shared_ptr<oneshot_state<T>> s) noexcept : s_(std::move(s)) {}
  oneshot_receiver(oneshot_receiver&&) noexcept = default;
  oneshot_receiver& operator=(oneshot_receiver&&) = delete;
  ~oneshot_receiver() {
    if (!s_)
      return;
    waker w;
    {
      std::lock_guard lock(s_->mutex);
      s_->receiver_gone = true;
      w = std::move(s_->rx_waker); // give the task reference back now, not when the sender goes
    }
  }

  std::optional<std::optional<T>> poll(poll_context& cx) {
    std::optional<std::optional<T>> out;
    waker old; // dropped after the unlock (declared before the lock)
    std::lock_guard lock(s_->mutex);
    if (s_->value) {
      out.emplace(std::exchange(s_->value, std::nullopt));
    } else if (s_->sender_gone) {
      out.emplace(); // closed without a value
    } else if (!s_->rx_waker.will_wake(cx.get_waker())) {
      old = std::move(s_->rx_waker);
      s_->rx_waker = cx.get_waker().clone();
    }
    return out;
  }

private:
  std::shared_ptr<oneshot_state<T>> s_;
};

template <class T>
std::pair<oneshot_sender<T>, oneshot_receiver<T>> oneshot() {
  auto s = std::make_shared<oneshot_state<T>>();
  return {oneshot_sender<T>(s), oneshot_receiver<T>(s)};
}

// ---------------------------------------------------------------------------------------
// A latch for blocking code (block_in_place, spawn_blocking, blocked workers), with timeouts.
class latch {
public:
  explicit latch(int count = 1) : count_(count) {}
  void count_down() {
    std::lock_guard lock(mutex_);
    if (count_ > 0 && --count_ == 0)
      cv_.notify_all();
  }
  bool wait_for(std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return count_ == 0; });
  }
  bool arrive_and_wait(std::chrono::nanoseconds timeout) {
    count_down();
    return wait_for(timeout);
  }
  bool is_ready() {
    std::lock_guard lock(mutex_);
    return count_ == 0;
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int count_;
};

// ---------------------------------------------------------------------------------------
// A driver that counts its polls: zero-timeout polls (maintenance, the defer path) and
// blocking parks. A blocking park also returns by itself after `max_sleep` (a driver may
// return spuriously), so that a lost unpark shows as slowness, not as a hang.
class counting_driver final : public swarm::detail::driver {
public:
  explicit counting_driver(std::chrono::milliseconds max_sleep = 200ms) : max_sleep_(max_sleep) {}

  void park(std::optional<std::chrono::nanoseconds> timeout) override {
    in_driver_.fetch_add(1, std::memory_order_relaxed);
    if (timeout && *timeout == std::chrono::nanoseconds::zero()) {
      zero_polls_.fetch_add(1, std::memory_order_acq_rel);
    } else {
      blocking_parks_.fetch_add(1, std::memory_order_acq_rel);
      std::unique_lock lock(mutex_);
      cv_.wait_for(lock, timeout.value_or(max_sleep_), [&] { return unparked_; });
      unparked_ = false;
    }
    if (in_driver_.fetch_sub(1, std::memory_order_relaxed) != 1)
      overlapping_.store(true, std::memory_order_relaxed);
  }
  void unpark() override {
    {
      std::lock_guard lock(mutex_);
      unparked_ = true;
    }
    cv_.notify_all();
  }
  void shutdown() override { shutdowns_.fetch_add(1, std::memory_order_acq_rel); }

  // Every poll, zero-timeout or blocking.
  std::size_t polls() const noexcept { return zero_polls() + blocking_parks(); }
  std::size_t zero_polls() const noexcept { return zero_polls_.load(std::memory_order_acquire); }
  std::size_t blocking_parks() const noexcept { return blocking_parks_.load(std::memory_order_acquire); }
  std::size_t shutdowns() const noexcept { return shutdowns_.load(std::memory_order_acquire); }
  // Whether two threads were ever inside park at once (the driver lock must prevent it).
  bool overlapped() const noexcept { return overlapping_.load(std::memory_order_relaxed); }

private:
  const std::chrono::milliseconds max_sleep_;
  std::atomic<std::size_t> zero_polls_{0};
  std::atomic<std::size_t> blocking_parks_{0};
  std::atomic<std::size_t> shutdowns_{0};
  std::atomic<int> in_driver_{0};
  std::atomic<bool> overlapping_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool unparked_ = false;
};

// ---------------------------------------------------------------------------------------
// The runtime flavours of the template tests (Tokio's rt_common runs each test on
// current-thread, multi-thread(1) and multi-thread(4)). Each owns a handle `h`, started at
// construction; spawn() takes a fresh task id; shutdown() stops it (also from the destructor).

class mt_runtime {
public:
  using handle_type = swarm::detail::multi_thread::handle;
  static constexpr bool is_multi_thread = true;

  mt_runtime(std::size_t workers, swarm::scheduler_options o, swarm::detail::driver* d)
      : h((o.worker_threads = workers, std::move(o)), d) {
    h.launch();
  }
  ~mt_runtime() { h.shutdown(); }

  // The spawn location is the caller's, as with the handle's own spawn.
  template <class F>
  auto spawn(F f, std::source_location location = std::source_location::current()) {
    return h.spawn(std::move(f), swarm::task_id::next(), location);
  }
  void shutdown(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max()) { h.shutdown(timeout); }
  bool on_runtime_thread() const { return h.is_current_worker(); }

  handle_type h;
};

template <std::size_t Workers>
class mt : public mt_runtime {
public:
  static constexpr std::size_t workers = Workers;
  explicit mt(swarm::scheduler_options o = {}, swarm::detail::driver* d = nullptr)
      : mt_runtime(Workers, std::move(o), d) {}
};

using mt1 = mt<1>;
using mt2 = mt<2>;
using mt4 = mt<4>;

// The current-thread flavour as swarm::runtime builds it (runtime_flavor::current_thread):
// the one scheduler with one worker and no LIFO slot, never launched, driven by a thread in
// drive(). A background thread drives it so that the tests read the same for every flavour:
// the test thread is a foreign thread, as with multi-thread. shutdown() runs while that
// thread is still inside drive(), then joins it.
class ct {
public:
  using handle_type = swarm::detail::multi_thread::handle;
  static constexpr bool is_multi_thread = false;
  static constexpr std::size_t workers = 1;

  explicit ct(swarm::scheduler_options o = {}, swarm::detail::driver* d = nullptr)
      : h(swarm::current_thread_options(std::move(o)), d), driver_([this] { h.drive({}); }) {}
  ~ct() { shutdown(); }

  // The spawn location is the caller's, as with the handle's own spawn.
  template <class F>
  auto spawn(F f, std::source_location location = std::source_location::current()) {
    return h.spawn(std::move(f), swarm::task_id::next(), location);
  }
  void shutdown(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max()) {
    h.shutdown(timeout);
    if (driver_.joinable())
      driver_.join();
  }
  bool on_runtime_thread() const { return h.is_current_worker(); }

  handle_type h;

private:
  std::thread driver_;
};

using all_flavours = boost::mpl::list<ct, mt1, mt4>;
using multi_thread_flavours = boost::mpl::list<mt1, mt4>;

// ---------------------------------------------------------------------------------------
// Turns a hang into a failure: if the test case is still running after `limit`, prints its
// name and aborts the executable (a deadlocked runtime cannot be unwound, and going on to
// the next test beside its threads would corrupt it). Used as the
// fixture of every suite, so each test case gets its own guard.
class hang_guard {
public:
  explicit hang_guard(std::chrono::seconds limit)
      : name_(boost::unit_test::framework::current_test_case().full_name()), thread_([this, limit] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, limit, [&] { return done_; })) {
            std::fprintf(stderr, "\n*** %s: still running after %lld s: aborting (hang)\n", name_.c_str(),
                         static_cast<long long>(limit.count()));
            std::fflush(stderr);
            // Not catchable: Boost.Test turns SIGABRT into a test failure and goes on,
            // with the hung runtime's threads still running over the unwound stack.
            std::signal(SIGABRT, SIG_DFL);
            std::abort();
          }
        }) {}
  ~hang_guard() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

private:
  std::string name_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

struct bounded {
  hang_guard guard{sanitized ? 40s : 15s};
};

} // namespace swarm_sched_test
