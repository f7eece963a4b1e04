// How a scheduler is configured: Tokio's Builder knobs, with Tokio's defaults.
#pragma once

#include <swarm/task/hooks.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>

namespace swarm {

// What happens when an exception escapes a task. Either way the exception is delivered
// through the task's join handle.
enum class unhandled_exception_policy {
  ignore,           // other tasks go on (Tokio's default)
  shutdown_runtime, // the runtime shuts down, cancelling every task
};

struct scheduler_options {
  // Tokio 1.48's default event_interval (runtime/builder.rs, EVENT_INTERVAL).
  static constexpr std::uint32_t default_event_interval = 61;

  // Number of workers; 0 is refused. Defaults to the hardware concurrency.
  std::size_t worker_threads = std::thread::hardware_concurrency() ? std::thread::hardware_concurrency() : 1;
  // Name of every thread the runtime starts (Linux keeps the first 15 characters).
  std::string thread_name = "swarm-worker";
  // Stack size of every thread the runtime starts; 0 keeps the OS default.
  std::size_t thread_stack_size = 0;

  std::function<void()> on_thread_start;  // on each runtime thread, first thing
  std::function<void()> on_thread_stop;   // on each runtime thread, last thing
  std::function<void()> on_thread_park;   // before a worker sleeps
  std::function<void()> on_thread_unpark; // after a worker woke

  task_hook on_task_spawn;       // on the spawning thread, before the first schedule
  task_hook on_task_terminate;   // on completion by any path, before the task is released
  task_hook on_before_task_poll; // on the worker, around each poll
  task_hook on_after_task_poll;

  // Ticks between maintenance passes, which poll the I/O driver without sleeping. (The
  // multi-thread worker also makes one after about 100 µs of task time when polls are
  // long, counting every poll; see doc/design.md, fairness.)
  std::uint32_t event_interval = default_event_interval;
  // Ticks between checks of the global queue before the local one; empty means
  // self-tuning from the mean poll time (see poll_timing; the multi-thread worker then also
  // checks after about 50 µs of task time when polls are long). Must be > 0 when set.
  std::optional<std::uint32_t> global_queue_interval;
  // Every local schedule goes to the back of the queue, where other workers can steal it.
  bool disable_lifo_slot = false;
  // How long a task poll (with the LIFO polls that share its coop budget) may keep making
  // progress before its budget is spent, as well as the budget's 128 units: measured from
  // its 16th unit, read every 16 units (see scheduler/coop.hpp). Zero: units only, as in
  // Tokio. At most about 4 s.
  std::chrono::nanoseconds coop_time_limit = std::chrono::microseconds(50);

  // Cap on threads running blocking work (spawn_blocking), beside the workers. > 0.
  std::size_t max_blocking_threads = 512;
  // How long an idle blocking thread waits for work before it exits.
  std::chrono::nanoseconds thread_keep_alive = std::chrono::seconds(10);

  unhandled_exception_policy unhandled_exception = unhandled_exception_policy::ignore;
};

// The current-thread flavour is this scheduler with one worker and no LIFO slot (a task
// woken by the running one queues behind the others, as in Tokio's current-thread
// scheduler); driven only by threads that enter it, never by threads of its own.
inline scheduler_options current_thread_options(scheduler_options o) {
  o.worker_threads = 1;
  o.disable_lifo_slot = true;
  return o;
}

} // namespace swarm
