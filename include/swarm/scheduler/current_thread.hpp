// The current-thread scheduler: one core, driven by whichever single thread calls run at a
// time. Local schedules go to a plain intrusive FIFO with no atomics; schedules from other
// threads go through the inject queue and wake the driving thread.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/scheduler/blocking_pool.hpp>
#include <swarm/scheduler/coop.hpp>
#include <swarm/scheduler/driver.hpp>
#include <swarm/scheduler/inject_queue.hpp>
#include <swarm/scheduler/metrics.hpp>
#include <swarm/scheduler/options.hpp>
#include <swarm/scheduler/park.hpp>
#include <swarm/scheduler/task_hooks.hpp>
#include <swarm/task/owned_tasks.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <source_location>
#include <vector>

namespace swarm::detail::current_thread {

class handle;

struct handle_ref {
  handle* h;

  void schedule(notified<handle_ref> n);
  void yield_now(notified<handle_ref> n);
  task<handle_ref> release(raw_task t);
  void unhandled_exception(std::exception_ptr e);
};

using notified_task = notified<handle_ref>;

class handle {
public:
  // `drv` may be null; it must outlive the handle.
  SWARM_DECL handle(scheduler_options options, driver* drv);
  SWARM_DECL ~handle();
  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;

  template <future F>
  raw_join_handle<typename F::output_type> spawn(F f, task_id id,
                                                 std::source_location location = std::source_location::current()) {
    return spawn_task(*this, owned_, handle_ref{this}, std::move(f), id, location);
  }

  template <class Fn>
  auto spawn_blocking(Fn&& fn, std::source_location location = std::source_location::current()) {
    return blocking_.spawn_blocking(std::forward<Fn>(fn), location);
  }

  // Drives the scheduler on the calling thread until `done()` returns true (checked after
  // every task and every wake-up) or the scheduler shuts down. Only one thread drives at a
  // time: a second caller throws std::logic_error, unless shutdown has begun (then it
  // returns 0 at once). Returns the number of polls run.
  SWARM_DECL std::size_t run_until(const std::function<bool()>& done);

  // Wakes the driving thread so that it re-checks its `done` predicate.
  SWARM_DECL void unpark();

  SWARM_DECL void schedule_task(notified_task n, bool is_yield);
  SWARM_DECL void defer(const waker& w);

  // Cancels every task, drains the queues and joins the blocking pool (waiting at most
  // `timeout` for blocking work).
  SWARM_DECL void shutdown(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());

  std::size_t num_workers() const noexcept { return 1; }
  std::size_t num_alive_tasks() const noexcept { return owned_.num_alive_tasks(); }
  std::uint64_t spawned_tasks_count() const noexcept { return owned_.spawned_tasks_count(); }
  std::size_t global_queue_depth() const noexcept { return inject_.len(); }
  std::uint64_t remote_schedule_count() const noexcept { return remote_schedule_count_.load(std::memory_order_relaxed); }
  SWARM_DECL worker_metrics_snapshot worker_metrics(std::size_t worker) const;
  std::uint64_t budget_forced_yield_count() const noexcept {
    return metrics_.budget_forced_yield_count.load(std::memory_order_relaxed);
  }
  const blocking_pool& blocking() const noexcept { return blocking_; }
  const scheduler_options& options() const noexcept { return options_; }
  bool is_shutdown() const noexcept { return inject_.is_closed(); }
  SWARM_DECL bool is_current_worker() const noexcept;

private:
  friend struct handle_ref;
  struct driving;

  header* next_task();
  void push_local(header* t) noexcept;
  header* pop_local() noexcept;
  void drain_local() noexcept;

  scheduler_options options_;
  shared_driver driver_;
  parker parker_;
  inject_queue inject_;
  owned_tasks<handle_ref> owned_;
  blocking_pool blocking_;
  std::atomic<bool> driven_{false}; // a thread is inside run_until

  // Touched only by the driving thread.
  header* local_head_ = nullptr;
  header* local_tail_ = nullptr;
  // Written only by the driving thread; read by worker_metrics() from any thread.
  std::atomic<std::size_t> local_len_{0};
  std::uint32_t tick_ = 0;
  std::vector<waker> defer_;
  struct worker_metrics metrics_;
  poll_timing timing_;

  std::atomic<std::uint64_t> remote_schedule_count_{0};
  // Set by the first shutdown(); any thread may call shutdown (the destructor too).
  std::atomic<bool> shut_down_{false};
};

inline void handle_ref::schedule(notified<handle_ref> n) { h->schedule_task(std::move(n), false); }
inline void handle_ref::yield_now(notified<handle_ref> n) { h->schedule_task(std::move(n), true); }
inline task<handle_ref> handle_ref::release(raw_task t) { return h->owned_.remove(t); }

} // namespace swarm::detail::current_thread
