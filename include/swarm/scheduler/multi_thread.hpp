// The multi-thread work-stealing scheduler (Tokio's multi_thread flavour).
//
// Each worker owns a core: a local run queue (local_queue<>), a LIFO slot for the task woken
// last, and its parker. Work from outside the workers goes through the inject queue. Idle
// workers steal half of a victim's queue; at most half of them search at once; the rest
// park, one of them in the driver. Shutdown closes the inject queue and the owned-task
// list, cancels every task and drains every queue.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/scheduler/blocking_pool.hpp>
#include <swarm/scheduler/coop.hpp>
#include <swarm/scheduler/driver.hpp>
#include <swarm/scheduler/failure_log.hpp>
#include <swarm/scheduler/idle.hpp>
#include <swarm/scheduler/inject_queue.hpp>
#include <swarm/scheduler/job.hpp>
#include <swarm/scheduler/local_queue.hpp>
#include <swarm/scheduler/metrics.hpp>
#include <swarm/scheduler/options.hpp>
#include <swarm/scheduler/park.hpp>
#include <swarm/scheduler/task_hooks.hpp>
#include <swarm/task/owned_tasks.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <mutex>
#include <source_location>
#include <vector>

namespace swarm::detail::multi_thread {

class handle;
struct core;

// The scheduler whose worker the calling thread drives, and that worker's index: the public
// part of the worker's context (multi_thread.cpp), which run_core points this_thread_drive at
// for the length of the drive and then restores. Every Asio handler asks whether it runs on a
// worker and counts its work in that worker's slot, so the answer is read inline, not called.
struct current_drive {
  const handle* h = nullptr;
  std::size_t index = 0;
};
inline thread_local current_drive* this_thread_drive = nullptr;

// What each task of this scheduler stores as its scheduler value (task_scheduler): a
// pointer to the scheduler, which outlives every task (shutdown cancels and releases them
// all before the handle goes). Asio tasks store detail::task_sched instead, which schedules
// through the same handle and also holds the task's Asio state.
struct handle_ref {
  handle* h;

  void schedule(notified<handle_ref> n);
  void yield_now(notified<handle_ref> n);
  task<handle_ref> release(raw_task t);
  void unhandled_exception(std::exception_ptr e);
};

using notified_task = notified<handle_ref>;

// Per worker, visible to all: the stealable end of its run queue and its parker.
struct alignas(cache_line) remote {
  local_queue<> queue;
  std::unique_ptr<parker> unparker;
  // The core, while no thread drives this worker (before start, during a hand-off).
  std::atomic<core*> core_slot{nullptr};
  worker_stats metrics;
  // Passes of the worker loop, stored by the thread driving the worker at each pass. Relaxed:
  // a sibling only compares two of its readings, and nothing is published through it.
  std::atomic<std::uint32_t> ticks{0};
};

// How long a thread drives the scheduler (io_context's run / run_one / run_for / poll).
struct run_limits {
  std::size_t max_polls = driver::no_limit;                      // run_one, poll_one: 1
  std::optional<std::chrono::steady_clock::time_point> deadline; // run_for, run_until
  bool block = true;                                               // poll: leave instead of parking
  // Checked when the worker runs out of work, before it parks: true means leave (run()
  // with no outstanding work).
  std::function<bool()> idle_exit;
  // Checked every tick: once set, leave (block_on, when its task's result is in). Whoever
  // sets it from another thread calls wake_parked_workers() so that a parked drive sees it.
  const std::atomic<bool>* leave_when_set = nullptr;
};

class handle {
public:
  // `drv` may be null (workers then only sleep); it must outlive the handle.
  SWARM_DECL handle(scheduler_options options, driver* drv);
  SWARM_DECL ~handle();
  handle(const handle&) = delete;
  handle& operator=(const handle&) = delete;

  // Starts one thread per worker (through the blocking pool, as Tokio does). They run until
  // shutdown: request_stop() parks them until clear_stop(). An exception from a handler on
  // them goes to options().unhandled_exception.
  SWARM_DECL void launch();

  // Drives worker `index` on the calling thread until shutdown, or until block_in_place
  // hands the worker to another thread. Returns at once if another thread drives it.
  SWARM_DECL void run_worker(std::size_t index);

  // Drives any free worker on the calling thread within `limits` (waiting for one to be
  // free if all are driven). Returns the number of polls; rethrows an exception thrown by
  // a job or by a handler the driver ran, after leaving the worker in order.
  SWARM_DECL std::size_t drive(const run_limits& limits);

  // Makes every drive leave as soon as it can (io_context::stop); clear_stop() undoes it
  // and resumes the launched threads.
  SWARM_DECL void request_stop();
  SWARM_DECL void clear_stop() noexcept;
  bool stop_requested() const noexcept { return stopped_.load(std::memory_order_acquire); }

  // Spawns a task. It is scheduled, never run inline. After shutdown the task is cancelled
  // before it runs and the handle resolves as cancelled.
  template <future F>
  raw_join_handle<typename F::output_type> spawn(F f, task_id id,
                                                 std::source_location location = std::source_location::current()) {
    return spawn_task(*this, owned_, handle_ref{this}, std::move(f), id, location);
  }

  // For runtime layers that create their own task types: the owned-task list, the
  // terminate hook to store in each task, and the spawn hook to run before scheduling.
  owned_tasks<handle_ref>& owned() noexcept { return owned_; }
  const task_hook* terminate_hook() const noexcept {
    return options_.on_task_terminate ? &options_.on_task_terminate : nullptr;
  }
  void run_spawn_hook(const task_meta& meta) const noexcept { call_task_hook(options_.on_task_spawn, meta); }

  // Whether tasks spawned from now on keep statistics for dump(), and one poll in how many
  // of theirs is timed (tracking.hpp, poll_sampler). Set before the first spawn (the runtime
  // does so at construction).
  bool track_tasks() const noexcept { return SWARM_TASK_TRACKING && timing_interval_ != 0; }
  // What a tracked spawn puts in its task's stats (task_extra_slot): 0 when tasks are not tracked.
  std::uint32_t task_timing_interval() const noexcept { return track_tasks() ? timing_interval_ : 0; }
  void set_track_tasks(bool on, std::uint32_t timing_interval) noexcept {
    timing_interval_ = on ? timing_interval : 0;
  }
  // Tasks that threw after their join handle was dropped.
  failure_log& unobserved_failures() noexcept { return failures_; }
  const failure_log& unobserved_failures() const noexcept { return failures_; }
  // The state of worker `i`, as it last said, and the depth of its local queue.
  worker_run_state worker_state(std::size_t i) const noexcept {
    return remotes_[i].metrics.run_state.load(std::memory_order_relaxed);
  }

  // Runs `f` on the blocking pool; see blocking_pool.
  template <class Fn>
  auto spawn_blocking(Fn&& fn, std::source_location location = std::source_location::current()) {
    return blocking_.spawn_blocking(std::forward<Fn>(fn), location);
  }

  // Makes a task runnable: into this worker's LIFO slot or queue when called on one of our
  // workers holding its core, into the inject queue otherwise. Per wake; hot.
  SWARM_DECL void schedule_task(notified_task n, bool is_yield);

  // Stops the scheduler: closes the queues, cancels every task, drains every queue and
  // joins the threads, waiting at most `timeout` for blocking work.
  SWARM_DECL void shutdown(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());

  // Runs `f`, a blocking call, from inside a task without stalling the worker's other
  // tasks: the worker is handed to a new thread first. Outside a worker it just runs f.
  template <class Fn>
  decltype(auto) block_in_place(Fn&& fn);

  // Defers a wake until the worker has run out of other work (yield_now): the task runs
  // again after every task already queued, and after a driver poll if one is due (the
  // driver's fairness interval bounds how long I/O waits, as under any busy loop; Tokio
  // polls the driver on every such pass). Off a worker it wakes at once.
  SWARM_DECL void defer(const waker& w);

  // Where the handlers of I/O completions that this thread's driver poll finds should run:
  // queued as jobs (true), or inline in the poll, as io_context's thread runs the handler of
  // the operation it completed. Queued when another worker is parked (it is notified after
  // the poll) or searching: it takes them sooner than this thread would reach them, and a
  // batch of completions spreads. With every other worker busy nobody would take them
  // sooner (a busy worker does not steal), and a job costs a queue round trip, an
  // allocation, and Asio's per-socket lock handed between threads (the coroutine would
  // start its next operation on another worker than the one that performed the last).
  // Always queued with one worker, so that its jobs keep the order they were queued in. A
  // hint (the counts move under it), asked when a poll starts and, during an inline poll,
  // per completion: a poll that starts queueing goes on queueing, since a completion queued
  // behind inline ones would wait for the poll to end.
  SWARM_DECL bool idle_worker_would_take_io() const noexcept;

  // A driver poll that queues completions for idle workers hands out at most this many,
  // then returns, and the polling worker runs its share. A driver keeps polling while it
  // finds ready events (Asio's poll runs the reactor again after each pass), and with load
  // enough there always are some: uncapped, the polling worker stayed in the driver while
  // the others ran what it queued, every completion moving between threads (at 256
  // connections each worker stole about as many jobs as it ran). With one worker there is
  // nobody to hand them to, and the cap does not apply.
  static constexpr std::size_t max_completions_queued_per_poll = 8;

  // Metrics.
  std::size_t num_workers() const noexcept { return remotes_.size(); }
  std::size_t num_alive_tasks() const noexcept { return owned_.num_alive_tasks(); }
  std::uint64_t spawned_tasks_count() const noexcept { return owned_.spawned_tasks_count(); }
  std::size_t global_queue_depth() const noexcept { return inject_.len(); }
  std::uint64_t remote_schedule_count() const noexcept { return remote_schedule_count_.load(std::memory_order_relaxed); }
  SWARM_DECL worker_metrics_snapshot worker_metrics(std::size_t worker) const;
  std::uint64_t budget_forced_yield_count() const noexcept;
  const blocking_pool& blocking() const noexcept { return blocking_; }
  blocking_pool& blocking() noexcept { return blocking_; }
  const scheduler_options& options() const noexcept { return options_; }
  bool is_shutdown() const noexcept { return inject_.is_closed(); }

  // Unparks every parked worker and every drive waiting for a free worker, each of which
  // then re-checks its limits.
  SWARM_DECL void wake_parked_workers();

  // Whether the calling thread is one of this scheduler's workers.
  bool is_current_worker() const noexcept {
    const current_drive* d = this_thread_drive;
    return d && d->h == this;
  }
  // The index of the worker the calling thread drives, if any.
  std::optional<std::size_t> current_worker_index() const noexcept {
    if (const current_drive* d = this_thread_drive; d && d->h == this)
      return d->index;
    return std::nullopt;
  }

private:
  friend struct handle_ref;
  friend struct worker_loop;

  void push_remote_task(notified_task n);
  // Wakes a parked worker to look for work, unless one is searching already (Tokio's
  // notify_parked_local and notify_parked_remote, which do the same here).
  void notify_parked();
  void notify_all();
  bool notify_if_work_pending();
  void close();
  void pre_shutdown(core* c);
  void shutdown_core(core* c);
  header* next_remote_task();
  void worker_job(std::size_t index, bool owned);
  void worker_exited();
  std::size_t run_core(core* c, const run_limits& limits);
  void return_core(core* c);

  // Hand-off helpers for block_in_place (out of line).
  SWARM_DECL bool begin_block_in_place();
  SWARM_DECL void end_block_in_place();

  scheduler_options options_;
  shared_driver driver_;
  std::vector<remote> remotes_;
  inject_queue inject_;
  idle idle_;
  owned_tasks<handle_ref> owned_;
  blocking_pool blocking_;
  std::atomic<std::uint64_t> remote_schedule_count_{0};
  std::atomic<bool> stopped_{false};
  std::uint32_t timing_interval_ = 0; // 0: tasks are not tracked
  failure_log failures_;

  std::mutex shutdown_mutex_;
  std::condition_variable workers_done_;
  std::condition_variable slot_freed_; // a core went back to its slot, or stop/shutdown
  std::condition_variable resumed_;    // clear_stop or shutdown: stopped owned workers go on
  std::vector<core*> shutdown_cores_;  // under shutdown_mutex_
  std::size_t active_workers_ = 0;     // worker loops running; under shutdown_mutex_
  bool all_cores_shut_down_ = false;   // under shutdown_mutex_
  bool shutdown_started_ = false;      // under shutdown_mutex_
};

template <class Fn>
decltype(auto) handle::block_in_place(Fn&& fn) {
  const bool handed_off = begin_block_in_place();
  struct reclaim {
    handle* h;
    bool active;
    ~reclaim() {
      if (active)
        h->end_block_in_place();
    }
  } guard{this, handed_off};
  coop::budget_scope unconstrained(coop::budget::unconstrained());
  return std::forward<Fn>(fn)();
}

inline void handle_ref::schedule(notified<handle_ref> n) { h->schedule_task(std::move(n), false); }
inline void handle_ref::yield_now(notified<handle_ref> n) { h->schedule_task(std::move(n), true); }
inline task<handle_ref> handle_ref::release(raw_task t) { return h->owned_.remove(t); }

} // namespace swarm::detail::multi_thread
