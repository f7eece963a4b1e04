// A snapshot of what a runtime is doing: its live tasks, its workers and its queues, with
// the warnings tokio-console raises. runtime::dump() takes it; swarm::console serves it.
// Plain values: a dump holds no reference into the runtime and may outlive it.
#pragma once

#include <swarm/task/id.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace swarm {

// Where a task is in its life, as its state word says at the moment it is read.
enum class task_run_state {
  idle,       // waiting to be woken
  scheduled,  // in a run queue (notified, not running)
  running,    // being polled now
  completing, // finished, its output not yet released
  cancelled,  // abort requested, not yet observed by a poll
};

// What an idle task waits on, where swarm knows it.
enum class task_wait_kind {
  unknown,        // not known (an Asio operation swarm does not see, a foreign awaitable)
  join,           // a join handle of task `wait_target`
  join_set,       // the next completion of a join_set
  asio_operation, // an Asio operation started on the task's executor
};

// The warnings of tokio-console, as bits of task_snapshot::warnings.
enum task_warning : std::uint32_t {
  // Its current poll, or its last, ran longer than dump_options::long_poll: it blocks its
  // worker.
  warn_long_poll = 1u << 0,
  // Idle longer than dump_options::lost_waker_idle with no waker held for it: nothing can
  // wake it again.
  warn_lost_waker = 1u << 1,
};

struct task_snapshot {
  task_id id;
  task_run_state state = task_run_state::idle;
  std::string name;       // empty when the task was spawned without one
  std::string spawn_file; // std::source_location of the spawn call
  std::uint32_t spawn_line = 0;
  std::string spawn_function;
  std::uint64_t poll_count = 0;
  // The polls whose time was measured (runtime_options::poll_timing_interval): one in that
  // many per thread, and the first after the thread ran anything else.
  std::uint64_t timed_poll_count = 0;
  // Total time inside polls: the timed polls' sum, scaled by poll_count / timed_poll_count
  // (exact when every poll is timed; zero while none is).
  std::chrono::nanoseconds busy{0};
  // Since the last poll ended; zero before the first and during one. After an untimed poll it
  // counts from the thread's last stamp before it, so it may be longer by the polls run in
  // between.
  std::chrono::nanoseconds since_last_poll{0};
  std::chrono::nanoseconds longest_poll{0}; // of the timed polls
  task_wait_kind waiting_on = task_wait_kind::unknown;
  task_id wait_target; // the task a `join` waits for
  std::uint32_t warnings = 0;
};

enum class worker_run_state {
  running,    // polling tasks
  searching,  // looking for work to steal
  parked,     // asleep
  driving_io, // inside the I/O driver
};

struct worker_snapshot {
  std::size_t index = 0;
  worker_run_state state = worker_run_state::parked;
  std::size_t local_queue_depth = 0;
  std::uint64_t poll_count = 0;
  std::uint64_t steal_count = 0;
  std::chrono::nanoseconds busy{0};
  double busy_ratio = 0; // busy time over the runtime's age, in [0, 1]
  // Parked while its local queue is not empty (a warning).
  bool parked_with_work = false;
};

// A task that threw after its join handle was dropped: nobody will see the failure. The
// runtime keeps the most recent few (failure_log::capacity). A cancellation is not one:
// whoever aborted the task knows.
struct unobserved_failure {
  task_id id;
  std::string name;
  std::string spawn_file;
  std::uint32_t spawn_line = 0;
  std::string what; // the exception's what()
};

// When the warnings fire.
struct dump_options {
  std::chrono::nanoseconds long_poll = std::chrono::milliseconds(10);
  std::chrono::nanoseconds lost_waker_idle = std::chrono::seconds(10);
};

// Lower-case names of the enums, as the console shows them.
constexpr const char* to_string(task_run_state s) noexcept {
  switch (s) {
  case task_run_state::idle:
    return "idle";
  case task_run_state::scheduled:
    return "scheduled";
  case task_run_state::running:
    return "running";
  case task_run_state::completing:
    return "completing";
  case task_run_state::cancelled:
    return "cancelled";
  }
  return "unknown";
}
constexpr const char* to_string(task_wait_kind k) noexcept {
  switch (k) {
  case task_wait_kind::unknown:
    return "unknown";
  case task_wait_kind::join:
    return "join";
  case task_wait_kind::join_set:
    return "join_set";
  case task_wait_kind::asio_operation:
    return "asio_operation";
  }
  return "unknown";
}
constexpr const char* to_string(worker_run_state s) noexcept {
  switch (s) {
  case worker_run_state::running:
    return "running";
  case worker_run_state::searching:
    return "searching";
  case worker_run_state::parked:
    return "parked";
  case worker_run_state::driving_io:
    return "driving_io";
  }
  return "unknown";
}

struct runtime_dump {
  std::chrono::system_clock::time_point taken_at;
  std::chrono::nanoseconds uptime{0};
  bool tracking = false; // per-task counts and times are kept (runtime_options::track_tasks)
  std::vector<task_snapshot> tasks;
  std::vector<worker_snapshot> workers;
  std::size_t global_queue_depth = 0;
  std::size_t num_blocking_threads = 0;
  std::size_t num_idle_blocking_threads = 0;
  std::size_t blocking_queue_depth = 0;
  std::vector<unobserved_failure> unobserved_failures;
};

} // namespace swarm
