// Shared fixtures for the task-layer tests: schedulers, a toy runtime, test futures and
// outputs, and a waker that counts what is done to it.
//
// Nothing here is the product's scheduler. The toy runtime is the smallest thing that owns
// tasks the way a real one does (an owned_tasks list plus a FIFO of notified), so that the
// task layer's flows can be driven step by step (tick) or by real threads (workers).
#pragma once

#include <swarm/task/abort.hpp>
#include <swarm/task/join.hpp>
#include <swarm/task/new_task.hpp>
#include <swarm/task/owned_tasks.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace swarm_test {

namespace sd = swarm::detail;
using sd::poll_context;
using sd::unit;
using sd::waker;

// ---------------------------------------------------------------------------------------
// Live-object accounting

// Counts objects of one kind: created counts live constructions (moves are not creations),
// destroyed counts destructions of live objects (moved-from objects are not live).
struct live_counter {
  std::atomic<long> created{0};
  std::atomic<long> destroyed{0};
  long alive() const noexcept { return created.load() - destroyed.load(); }
};

// Every test future made here counts itself in this one, so that a test can check that no
// future outlived it (a leaked cell keeps its future).
inline live_counter& global_futures() {
  static live_counter c;
  return c;
}

// A member that makes its owner countable: live until moved from. The counter is optional.
class live_token {
public:
  explicit live_token(live_counter* c) noexcept : c_(c) {
    if (c_)
      c_->created.fetch_add(1, std::memory_order_relaxed);
  }
  live_token(live_token&& o) noexcept : c_(std::exchange(o.c_, nullptr)), live_(std::exchange(o.live_, false)) {}
  live_token& operator=(live_token&&) = delete;
  ~live_token() {
    if (c_)
      c_->destroyed.fetch_add(1, std::memory_order_relaxed);
  }
  bool live() const noexcept { return live_; }

private:
  live_counter* c_;
  bool live_ = true;
};

// What the destructor of a probed object saw. Written by that destructor (any thread), read
// by the test after it synchronised with it (join, is_finished, or the same thread).
struct drop_probe {
  std::atomic<int> drops{0};
  std::atomic<std::uint64_t> id_at_drop{~std::uint64_t{0}}; // 0: no current task id
  std::atomic<bool> on_test_thread{false};
  std::thread::id test_thread = std::this_thread::get_id();

  void record() noexcept {
    const std::optional<swarm::task_id> id = swarm::try_current_task_id();
    id_at_drop.store(id ? id->value() : 0);
    on_test_thread.store(std::this_thread::get_id() == test_thread);
    drops.fetch_add(1);
  }
  bool dropped() const noexcept { return drops.load() > 0; }
  std::optional<swarm::task_id> seen_id() const noexcept {
    const std::uint64_t v = id_at_drop.load();
    return v == 0 ? std::nullopt : std::optional<swarm::task_id>(swarm::task_id(v));
  }
};

// Thrown by the destructors and polls that are asked to throw.
struct test_panic : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------
// Outputs

// An output that reports its destruction and may throw from its destructor.
struct probed_output {
  int value = 0;
  drop_probe* probe = nullptr;
  bool throw_on_drop = false;
  live_token token;

  probed_output(int v, drop_probe* p, bool throws, live_counter* c = nullptr)
      : value(v), probe(p), throw_on_drop(throws), token(c) {}
  probed_output(probed_output&&) noexcept = default;
  ~probed_output() noexcept(false) {
    if (!token.live())
      return;
    if (probe)
      probe->record();
    if (throw_on_drop)
      throw test_panic("output destructor");
  }
};

// Destroys the value of a consumed outcome (what a join-handle poll returned) and reports
// whether its destructor threw. The value is moved out first and destroyed here, so this
// works whatever holds the outcome (a std::optional's noexcept reset would turn the
// exception into std::terminate).
template <class R>
bool destroy_value_catching(R& r) {
  using T = std::remove_cvref_t<decltype((*r).value())>;
  bool threw = false;
  try {
    T v(std::move(*r).value());
    r.reset(); // the moved-from value
  } catch (...) {
    threw = true;
  }
  return threw;
}

// ---------------------------------------------------------------------------------------
// Futures

// Ready on its first poll with fn()'s value; fn may throw (a panic on run).
template <class Fn>
struct ready_with {
  using output_type = std::invoke_result_t<Fn&>;
  Fn fn;
  live_token token{&global_futures()};
  explicit ready_with(Fn f) : fn(std::move(f)) {}
  std::optional<output_type> poll(poll_context&) { return fn(); }
};

// Ready on the first poll with a copy of `value`.
template <class T = unit>
struct ready_now {
  using output_type = T;
  T value{};
  live_token token{&global_futures()};
  ready_now() = default;
  explicit ready_now(T v) : value(std::move(v)) {}
  std::optional<T> poll(poll_context&) { return value; }
};

// Wakes itself and returns pending `n` times, then is ready with `value`.
template <class T = unit>
struct yield_n {
  using output_type = T;
  int remaining = 1;
  T value{};
  std::atomic<int>* polls = nullptr;
  live_token token{&global_futures()};
  explicit yield_n(int n = 1, T v = T{}, std::atomic<int>* p = nullptr) : remaining(n), value(std::move(v)), polls(p) {}
  yield_n(yield_n&& o) noexcept
      : remaining(o.remaining), value(std::move(o.value)), polls(o.polls), token(std::move(o.token)) {}
  std::optional<T> poll(poll_context& cx) {
    if (polls)
      polls->fetch_add(1);
    if (remaining-- > 0) {
      cx.get_waker().wake_by_ref();
      return std::nullopt;
    }
    return value;
  }
};

// Wakes itself forever.
struct yield_forever {
  using output_type = unit;
  std::atomic<int>* polls = nullptr;
  live_token token{&global_futures()};
  std::optional<unit> poll(poll_context& cx) {
    if (polls)
      polls->fetch_add(1);
    cx.get_waker().wake_by_ref();
    return std::nullopt;
  }
};

// Never ready, never wakes itself; only an abort or a shutdown ends it.
struct pending_forever {
  using output_type = unit;
  std::atomic<int>* polls = nullptr;
  live_token token{&global_futures()};
  std::optional<unit> poll(poll_context&) {
    if (polls)
      polls->fetch_add(1);
    return std::nullopt;
  }
};

// A one-shot event with a stored waker, set from any thread. The future waiting on it
// stores a clone of its waker (replacing it only when it would wake something else).
class event {
public:
  event() = default;
  event(const event&) = delete;
  event& operator=(const event&) = delete;

  // Sets the event and wakes (by value) the waiter, if one is registered.
  void set() {
    waker w;
    {
      std::lock_guard lock(mutex_);
      set_ = true;
      w = std::move(waker_);
    }
    std::move(w).wake();
  }
  // As set(), but wakes by reference and drops the waker after that.
  void set_by_ref() {
    waker w;
    {
      std::lock_guard lock(mutex_);
      set_ = true;
      w = std::move(waker_);
    }
    w.wake_by_ref();
  }
  bool is_set() const {
    std::lock_guard lock(mutex_);
    return set_;
  }
  // Returns true when set; otherwise registers the waker.
  bool poll(const waker& w) {
    std::lock_guard lock(mutex_);
    if (set_)
      return true;
    if (!waker_.will_wake(w))
      waker_ = w.clone();
    return false;
  }
  // Drops the stored waker (test cleanup, so that no task reference outlives the test).
  void clear_waker() {
    waker w;
    std::lock_guard lock(mutex_);
    w = std::move(waker_);
  }

private:
  mutable std::mutex mutex_;
  bool set_ = false;
  waker waker_;
};

// Pending until the event is set; then ready with `value`.
template <class T = unit>
struct wait_event {
  using output_type = T;
  event* sig;
  T value{};
  live_token token{&global_futures()};
  explicit wait_event(event* s, T v = T{}) : sig(s), value(std::move(v)) {}
  wait_event(wait_event&& o) noexcept : sig(o.sig), value(std::move(o.value)), token(std::move(o.token)) {}
  std::optional<T> poll(poll_context& cx) {
    if (sig->poll(cx.get_waker()))
      return value;
    return std::nullopt;
  }
};

// Wraps a future: records its destruction in a probe (with the task id current at that
// moment), records each poll's task id, and may throw from its destructor.
template <class F>
struct probed {
  using output_type = typename F::output_type;
  F inner;
  drop_probe* probe;
  bool throw_on_drop = false;
  std::atomic<std::uint64_t>* id_in_poll = nullptr;
  live_token token{&global_futures()};

  probed(F f, drop_probe* p, bool throws = false, std::atomic<std::uint64_t>* id_slot = nullptr)
      : inner(std::move(f)), probe(p), throw_on_drop(throws), id_in_poll(id_slot) {}
  probed(probed&& o) noexcept
      : inner(std::move(o.inner)), probe(o.probe), throw_on_drop(o.throw_on_drop), id_in_poll(o.id_in_poll),
        token(std::move(o.token)) {}
  ~probed() noexcept(false) {
    if (!token.live())
      return;
    if (probe)
      probe->record();
    if (throw_on_drop)
      throw test_panic("future destructor");
  }
  std::optional<output_type> poll(poll_context& cx) {
    if (id_in_poll) {
      const auto id = swarm::try_current_task_id();
      id_in_poll->store(id ? id->value() : 0);
    }
    return inner.poll(cx);
  }
};

template <class F>
probed<F> make_probed(F f, drop_probe* p, bool throws = false, std::atomic<std::uint64_t>* id_slot = nullptr) {
  return probed<F>(std::move(f), p, throws, id_slot);
}

// ---------------------------------------------------------------------------------------
// Wakers

// A waker with its own vtable that counts clone / wake / wake_by_ref / drop, for join-handle
// polls. The object's address is the data pointer, so two counting_wakers never will_wake
// each other. get() is the test's borrowed base waker; only its clones are counted as live.
//
// Unlike a real waker, a clone does not keep the counting_waker alive: it must outlive every
// task that may still hold a clone. With worker threads that includes a task whose output
// was already read and whose handle was dropped: its worker may still be inside complete(),
// about to wake and then drop the join waker (wait for toy_runtime::cells_live() == 0).
class counting_waker {
public:
  counting_waker() : base_(this, &vtable) {}
  counting_waker(const counting_waker&) = delete;
  counting_waker& operator=(const counting_waker&) = delete;
  ~counting_waker() { base_.forget(); }

  const waker& get() const noexcept { return base_; }

  int clones() const noexcept { return clones_.load(); }
  int wakes() const noexcept { return wakes_.load(); }               // by value
  int wakes_by_ref() const noexcept { return wakes_by_ref_.load(); } // by reference
  int drops() const noexcept { return drops_.load(); }
  int total_wakes() const noexcept { return wakes() + wakes_by_ref(); }
  // Clones not yet given back (a wake by value gives its clone back).
  int live_clones() const noexcept { return clones() - drops() - wakes(); }

  // Runs inside every wake (by value or by reference) after it was counted, on the waking
  // thread: lets a test act at the exact moment the runtime wakes the join waker.
  void on_wake(std::function<void()> f) { on_wake_ = std::move(f); }

  // Blocks until total_wakes() > seen, or the timeout. Returns whether it was woken.
  bool wait_woken_after(int seen, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return total_wakes() > seen; });
  }

private:
  static counting_waker* self(void* d) noexcept { return static_cast<counting_waker*>(d); }
  void notify() {
    if (on_wake_)
      on_wake_();
    std::lock_guard lock(mutex_);
    cv_.notify_all();
  }
  static void* clone_fn(void* d) noexcept {
    self(d)->clones_.fetch_add(1);
    return d;
  }
  static void wake_fn(void* d) {
    self(d)->wakes_.fetch_add(1);
    self(d)->notify();
  }
  static void wake_by_ref_fn(void* d) {
    self(d)->wakes_by_ref_.fetch_add(1);
    self(d)->notify();
  }
  static void drop_fn(void* d) noexcept { self(d)->drops_.fetch_add(1); }
  static constexpr sd::waker_vtable vtable{&clone_fn, &wake_fn, &wake_by_ref_fn, &drop_fn};

  std::atomic<int> clones_{0}, wakes_{0}, wakes_by_ref_{0}, drops_{0};
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  std::function<void()> on_wake_;
  waker base_;
};

// A waker that does nothing and counts nothing.
inline const waker& noop_waker() {
  static constexpr sd::waker_vtable vt{[](void* d) noexcept { return d; }, [](void*) {}, [](void*) {},
                                       [](void*) noexcept {}};
  static const waker w(nullptr, &vt);
  return w;
}

// ---------------------------------------------------------------------------------------
// Schedulers

// For unowned tasks and tasks driven by hand: schedules nowhere (drops the notified), owns
// no list. Counts what it is asked to do.
struct noop_scheduler {
  std::shared_ptr<std::atomic<int>> scheduled = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> unhandled = std::make_shared<std::atomic<int>>(0);

  void schedule(sd::notified<noop_scheduler>) { scheduled->fetch_add(1); }
  void yield_now(sd::notified<noop_scheduler>) { scheduled->fetch_add(1); }
  sd::task<noop_scheduler> release(sd::raw_task) { return {}; }
  void unhandled_exception(std::exception_ptr) { unhandled->fetch_add(1); }
};

// A scheduler that keeps its notifieds, for tests that run a task by hand.
struct queue_scheduler {
  std::shared_ptr<std::deque<sd::notified<queue_scheduler>>> queue =
      std::make_shared<std::deque<sd::notified<queue_scheduler>>>();

  void schedule(sd::notified<queue_scheduler> n) { queue->push_back(std::move(n)); }
  void yield_now(sd::notified<queue_scheduler> n) { queue->push_back(std::move(n)); }
  sd::task<queue_scheduler> release(sd::raw_task) { return {}; }
  void unhandled_exception(std::exception_ptr) {}
};

// ---------------------------------------------------------------------------------------
// The toy runtime

struct toy_core;

// The toy runtime's scheduler, stored in every cell. A live one (not moved from) is counted
// in toy_core::cells_live, so that count is the number of cells not yet deallocated.
struct toy_scheduler {
  std::shared_ptr<toy_core> core;

  explicit toy_scheduler(std::shared_ptr<toy_core> c) noexcept;
  toy_scheduler(toy_scheduler&&) noexcept = default;
  toy_scheduler& operator=(toy_scheduler&&) = delete;
  ~toy_scheduler();

  void schedule(sd::notified<toy_scheduler> n);
  void yield_now(sd::notified<toy_scheduler> n);
  sd::task<toy_scheduler> release(sd::raw_task t);
  void unhandled_exception(std::exception_ptr e);
};

struct toy_core {
  explicit toy_core(std::size_t workers) : owned(workers == 0 ? 1 : workers) {}

  sd::owned_tasks<toy_scheduler> owned;
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<sd::notified<toy_scheduler>> queue; // under mutex
  bool queue_closed = false;                     // under mutex
  bool stopping = false;                         // under mutex

  std::atomic<long> cells_live{0};
  std::atomic<long> unhandled{0};
  std::atomic<long> schedules{0};
  std::atomic<long> yields{0};
  std::atomic<long> polls{0};
  std::exception_ptr last_unhandled; // single-threaded tests only
  const swarm::task_hook* on_terminate = nullptr;

  // A notified sent to a closed queue is dropped; that only releases its reference (the
  // waking side still holds its own, so this is never the last one).
  void push(sd::notified<toy_scheduler> n) {
    {
      std::lock_guard lock(mutex);
      if (!queue_closed) {
        queue.push_back(std::move(n));
        cv.notify_one();
        return;
      }
    }
    // n is dropped here, outside the lock.
  }

  std::optional<sd::notified<toy_scheduler>> pop() {
    std::lock_guard lock(mutex);
    if (queue.empty())
      return std::nullopt;
    std::optional<sd::notified<toy_scheduler>> n(std::move(queue.front()));
    queue.pop_front();
    return n;
  }

  std::size_t queued() {
    std::lock_guard lock(mutex);
    return queue.size();
  }

  void run(sd::notified<toy_scheduler> n) {
    polls.fetch_add(1, std::memory_order_relaxed);
    owned.assert_owner(std::move(n)).run();
  }
};

inline toy_scheduler::toy_scheduler(std::shared_ptr<toy_core> c) noexcept : core(std::move(c)) {
  core->cells_live.fetch_add(1);
}
inline toy_scheduler::~toy_scheduler() {
  if (core)
    core->cells_live.fetch_sub(1);
}
inline void toy_scheduler::schedule(sd::notified<toy_scheduler> n) {
  core->schedules.fetch_add(1, std::memory_order_relaxed);
  core->push(std::move(n));
}
inline void toy_scheduler::yield_now(sd::notified<toy_scheduler> n) {
  core->yields.fetch_add(1, std::memory_order_relaxed);
  core->push(std::move(n));
}
inline sd::task<toy_scheduler> toy_scheduler::release(sd::raw_task t) { return core->owned.remove(t); }
inline void toy_scheduler::unhandled_exception(std::exception_ptr e) {
  core->unhandled.fetch_add(1);
  core->last_unhandled = e;
}

// A test runtime: an owned_tasks list and a FIFO of notified. With no workers it is driven
// by tick() on the calling thread; with workers, each pulls notified from the queue.
class toy_runtime {
public:
  explicit toy_runtime(std::size_t workers = 0) : core_(std::make_shared<toy_core>(workers)) {
    for (std::size_t i = 0; i < workers; ++i)
      workers_.emplace_back([c = core_] { worker_loop(*c); });
  }
  toy_runtime(const toy_runtime&) = delete;
  toy_runtime& operator=(const toy_runtime&) = delete;
  ~toy_runtime() { shutdown(); }

  // Must be set before spawning; must outlive the tasks (the runtime does).
  void set_on_terminate(swarm::task_hook hook) {
    hook_ = std::make_unique<swarm::task_hook>(std::move(hook));
    core_->on_terminate = hook_.get();
  }

  // Binds and schedules the task. After close, the task is cancelled at once and the handle
  // resolves cancelled.
  template <sd::future F>
  sd::raw_join_handle<typename F::output_type> spawn(F f,
                                                     std::source_location loc = std::source_location::current()) {
    sd::bind_result<F, toy_scheduler> r =
        core_->owned.bind(std::move(f), toy_scheduler(core_), swarm::task_id::next(), loc, core_->on_terminate);
    if (r.first)
      core_->push(std::move(*r.first));
    return std::move(r.join);
  }

  // Polls queued tasks, including those queued meanwhile, until the queue is empty or `max`
  // polls ran. Returns the number of polls. Only without workers.
  std::size_t tick(std::size_t max = std::numeric_limits<std::size_t>::max()) {
    std::size_t n = 0;
    while (n < max) {
      std::optional<sd::notified<toy_scheduler>> t = core_->pop();
      if (!t)
        break;
      ++n;
      core_->run(std::move(*t));
    }
    return n;
  }

  // Runs until pred() holds. Without workers: ticks, failing once nothing is queued. With
  // workers: waits, failing after the timeout.
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    if (workers_.empty()) {
      for (;;) {
        if (pred())
          return true;
        if (tick(1) == 0)
          return pred();
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int spins = 0;; ++spins) {
      if (pred())
        return true;
      if (std::chrono::steady_clock::now() > deadline)
        return false;
      if (spins < 64)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  // Closes the owned list and cancels every task in it. Running tasks are flagged and
  // cancelled by their pollers. May be called while workers run, and from any thread.
  void close_and_shutdown_all() { core_->owned.close_and_shutdown_all(); }

  // close_and_shutdown_all, stops the workers, then closes the queue and drops what it holds.
  // Idempotent.
  void shutdown() {
    core_->owned.close_and_shutdown_all();
    {
      std::lock_guard lock(core_->mutex);
      core_->stopping = true;
      core_->cv.notify_all();
    }
    for (std::thread& t : workers_)
      t.join();
    workers_.clear();
    std::deque<sd::notified<toy_scheduler>> drained;
    {
      std::lock_guard lock(core_->mutex);
      core_->queue_closed = true;
      drained.swap(core_->queue);
    }
    drained.clear(); // outside the lock: dropping may run destructors that wake
  }

  sd::owned_tasks<toy_scheduler>& owned() noexcept { return core_->owned; }
  toy_core& core() noexcept { return *core_; }
  bool is_empty() { return core_->owned.is_empty(); }
  std::size_t queued() { return core_->queued(); }
  long cells_live() const noexcept { return core_->cells_live.load(); }
  long unhandled() const noexcept { return core_->unhandled.load(); }
  std::size_t workers() const noexcept { return workers_.size(); }

private:
  static void worker_loop(toy_core& c) {
    for (;;) {
      std::optional<sd::notified<toy_scheduler>> n;
      {
        std::unique_lock lock(c.mutex);
        c.cv.wait(lock, [&] { return c.stopping || !c.queue.empty(); });
        if (c.queue.empty())
          return; // stopping and drained
        n.emplace(std::move(c.queue.front()));
        c.queue.pop_front();
      }
      c.run(std::move(*n));
    }
  }

  std::shared_ptr<toy_core> core_;
  std::unique_ptr<swarm::task_hook> hook_;
  std::vector<std::thread> workers_;
};

// Polls the join handle until it resolves. Without workers, ticks between polls; with
// workers, waits for the counting waker to be woken (a lost wake-up fails the wait).
// Returns what the poll returns (empty on failure).
template <class T>
auto join(toy_runtime& rt, sd::raw_join_handle<T>& jh, const counting_waker& w,
          std::chrono::milliseconds timeout = std::chrono::seconds(10)) -> decltype(jh.poll(w.get())) {
  for (;;) {
    const int seen = w.total_wakes();
    auto r = jh.poll(w.get());
    if (r)
      return r;
    if (rt.workers() == 0) {
      if (rt.tick() == 0 && w.total_wakes() == seen)
        return r; // empty: nothing to run and nobody woke us, would hang
    } else if (!w.wait_woken_after(seen, timeout)) {
      return r; // empty
    }
  }
}

} // namespace swarm_test
