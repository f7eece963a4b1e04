// swarm::runtime: Tokio's work-stealing scheduler as a Boost.Asio execution context, a
// drop-in for io_context. Threads that call run() become workers (io_context's model);
// start() makes the runtime own its workers instead (Tokio's model).
#pragma once

#include <swarm/asio/context_core.hpp>
#include <swarm/asio/io_driver.hpp>
#include <swarm/asio/runtime_executor.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/scheduler/dump.hpp>
#include <swarm/scheduler/metrics.hpp>
#include <swarm/scheduler/multi_thread.hpp>
#include <swarm/scheduler/options.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

namespace swarm {

template <class T>
class coro;
template <class T>
class join_handle;
class runtime;

namespace detail {
// The runtime's core, for the layers built on it (not part of the public API).
inline context_core& core_of(runtime& rt) noexcept;
} // namespace detail

// Which scheduler a runtime runs, as Tokio's Builder::new_multi_thread and
// Builder::new_current_thread.
enum class runtime_flavor {
  // options.worker_threads workers, driven by threads that call run() (io_context's model)
  // or owned by the runtime after start() (Tokio's); work stealing between them.
  multi_thread,
  // One worker, driven only by threads inside run(), poll(), block_on(), ... (one at a time,
  // as io_context(1) is); no owned threads: start() throws std::logic_error, and
  // worker_threads is ignored. No LIFO slot: a task woken by the running task queues behind
  // the others, as in Tokio's current-thread scheduler.
  current_thread,
};

// Tokio's Builder, with Tokio's defaults.
struct runtime_options : scheduler_options {
  runtime_flavor flavor = runtime_flavor::multi_thread;
  // Keep per-task poll counts and times for dump() (a block of stats for each task its first
  // poll leaves pending, a few stores per poll). Ignored when built with SWARM_TASK_TRACKING=0.
  bool track_tasks = false;
  // With track_tasks, one poll in this many on each thread is timed (two clock reads) and a
  // task's busy time is scaled from its timed polls; the others are counted, and their start
  // and end are an early bound. On the 2-vCPU VMs swarm is measured on, tracking costs 3-5 %
  // of a 100 ns poll with 16 and more with 1, which times every poll; spawn-bound work 0-5 %
  // (doc/design.md "Task dump"). In [1, 1048576], else the constructor throws
  // std::invalid_argument.
  std::uint32_t poll_timing_interval = 16;
  // When dump()'s warnings fire.
  dump_options dump;
};

// A snapshot of a runtime's metrics (Tokio's RuntimeMetrics).
struct runtime_metrics {
  std::size_t num_workers = 0;
  std::size_t num_alive_tasks = 0;
  std::uint64_t spawned_tasks_count = 0;
  std::size_t global_queue_depth = 0;
  std::uint64_t remote_schedule_count = 0;
  std::uint64_t budget_forced_yield_count = 0;
  std::size_t num_blocking_threads = 0;
  std::size_t num_idle_blocking_threads = 0;
  std::size_t blocking_queue_depth = 0;
  // Exceptions dropped because nothing could take them (a hook's, a destructor's of an
  // output nobody reads): process-wide, every runtime's (swarm/task/swallowed_exception.hpp).
  std::uint64_t swallowed_exception_count = 0;
  std::vector<worker_metrics_snapshot> workers;
};

class runtime : public boost::asio::execution_context {
public:
  template <class Allocator, unsigned Bits>
  using basic_executor_type = detail::runtime_executor<Allocator, Bits>;
  using executor_type = basic_executor_type<std::allocator<void>, 0>;

  // Worker slots = the hardware concurrency.
  SWARM_DECL runtime();
  // As io_context(int): `concurrency_hint` worker slots (at least 1).
  SWARM_DECL explicit runtime(int concurrency_hint);
  SWARM_DECL explicit runtime(runtime_options options);

  // Stops the workers, cancels every task, destroys unrun handlers. Destroying a runtime
  // from one of its own threads is a fatal misuse (the process aborts with a message).
  SWARM_DECL ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  executor_type get_executor() noexcept;

  // io_context's loop control. The calling thread drives a worker while inside.
  SWARM_DECL std::size_t run();
  SWARM_DECL std::size_t run_one();
  SWARM_DECL std::size_t poll();
  SWARM_DECL std::size_t poll_one();
  template <class Rep, class Period>
  std::size_t run_for(std::chrono::duration<Rep, Period> d) {
    return run_until(std::chrono::steady_clock::now() + d);
  }
  template <class Clock, class Duration>
  std::size_t run_until(std::chrono::time_point<Clock, Duration> t) {
    const auto left = t - Clock::now();
    return run_until_steady(std::chrono::steady_clock::now() +
                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(left));
  }
  SWARM_DECL void stop();
  SWARM_DECL bool stopped() const noexcept;
  SWARM_DECL void restart();

  // Tokio's model: the runtime starts options.worker_threads threads of its own. A
  // current_thread runtime has none: it throws std::logic_error.
  SWARM_DECL void start();

  runtime_flavor flavor() const noexcept { return flavor_; }

  // Runs `aw` as a task and returns its value, or rethrows the exception the coroutine
  // threw (that exception itself, not a join_error); a task cancelled by a shutdown throws
  // join_error (is_cancelled()). Without owned workers the calling thread drives the
  // runtime, as run() does, until the task is done; on a stopped runtime it throws
  // std::logic_error. Defined in <swarm/spawn.hpp>.
  template <class T, class E>
  T block_on(boost::asio::awaitable<T, E> aw);
  // The same for a swarm::coro.
  template <class T>
  T block_on(coro<T> c);
  // Cancels every task and stops every thread, waiting at most `timeout` for blocking work.
  SWARM_DECL void shutdown(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());

  SWARM_DECL runtime_metrics metrics() const;

  // What the runtime is doing now: its live tasks, workers, queues and warnings. Safe from
  // any thread, including a worker; takes each task list's locks briefly, one shard at a
  // time, and never waits for a task.
  SWARM_DECL runtime_dump dump() const;

  // Aborts the live task with this id, as its abort_handle would. Returns false when no
  // live task has it.
  SWARM_DECL bool abort_task(task_id id);

  // Whether the calling thread is one of this runtime's workers.
  bool running_in_this_thread() const noexcept { return core_.running_in_this_thread(); }

private:
  // The swarm layers built on the runtime (spawn, join handles) reach its core here.
  friend detail::context_core& detail::core_of(runtime& rt) noexcept;

  struct resolved_tag {};
  runtime(runtime_options options, resolved_tag);

  static void on_out_of_work(runtime& rt) noexcept { rt.out_of_work(); }
  std::size_t drive(detail::multi_thread::run_limits limits);
  // block_on's wait for the task of `h`.
  template <class T>
  T wait_blocking(join_handle<T> h);
  SWARM_DECL std::size_t run_until_steady(std::chrono::steady_clock::time_point t);
  bool out_of_work();

  runtime_flavor flavor_;
  dump_options dump_options_;
  std::chrono::steady_clock::time_point created_at_ = std::chrono::steady_clock::now();
  // Installed first: Asio's scheduler must be the first service of the context.
  detail::io_driver driver_;
  detail::context_core core_;
  std::mutex mutex_;
  std::condition_variable stopped_cv_;
  bool started_ = false;  // owned workers are running (start()); false after shutdown
  bool launched_ = false; // start() launched them (once: they outlive a stop)
};

namespace detail {
inline context_core& core_of(runtime& rt) noexcept { return rt.core_; }
} // namespace detail

inline runtime::executor_type runtime::get_executor() noexcept { return executor_type(&core_); }

} // namespace swarm
