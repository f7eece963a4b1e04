// Runtime metrics, Tokio's set. Each worker counts into a private batch and publishes it
// with relaxed stores at maintenance, before parking and at shutdown, so readers see values
// that lag a little and never pay for a shared counter on the hot path.
#pragma once

#include <swarm/detail/config.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace swarm::detail {

struct worker_counters {
  std::uint64_t park_count = 0;
  std::uint64_t park_unpark_count = 0;
  std::uint64_t noop_count = 0;
  std::uint64_t steal_count = 0;
  std::uint64_t steal_operations = 0;
  std::uint64_t poll_count = 0;
  std::uint64_t local_schedule_count = 0;
  std::uint64_t overflow_count = 0;
  std::uint64_t busy_duration_ns = 0;
  std::uint64_t budget_forced_yield_count = 0;
  std::uint64_t mean_poll_time_ns = 0;
};

// One per worker, on its own cache lines.
struct alignas(cache_line) worker_metrics {
  // Written only by the thread that drives the worker.
  worker_counters batch;
  std::uint64_t polls_at_last_park = 0;

  // Published copies, read by metrics().
  std::atomic<std::uint64_t> park_count{0};
  std::atomic<std::uint64_t> park_unpark_count{0};
  std::atomic<std::uint64_t> noop_count{0};
  std::atomic<std::uint64_t> steal_count{0};
  std::atomic<std::uint64_t> steal_operations{0};
  std::atomic<std::uint64_t> poll_count{0};
  std::atomic<std::uint64_t> local_schedule_count{0};
  std::atomic<std::uint64_t> overflow_count{0};
  std::atomic<std::uint64_t> busy_duration_ns{0};
  std::atomic<std::uint64_t> budget_forced_yield_count{0};
  std::atomic<std::uint64_t> mean_poll_time_ns{0};
  std::atomic<std::size_t> thread_id_hash{0};

  // Relaxed: the values are statistics; nothing is ordered by them.
  void submit() noexcept {
    park_count.store(batch.park_count, std::memory_order_relaxed);
    park_unpark_count.store(batch.park_unpark_count, std::memory_order_relaxed);
    noop_count.store(batch.noop_count, std::memory_order_relaxed);
    steal_count.store(batch.steal_count, std::memory_order_relaxed);
    steal_operations.store(batch.steal_operations, std::memory_order_relaxed);
    poll_count.store(batch.poll_count, std::memory_order_relaxed);
    local_schedule_count.store(batch.local_schedule_count, std::memory_order_relaxed);
    overflow_count.store(batch.overflow_count, std::memory_order_relaxed);
    busy_duration_ns.store(batch.busy_duration_ns, std::memory_order_relaxed);
    budget_forced_yield_count.store(batch.budget_forced_yield_count, std::memory_order_relaxed);
    mean_poll_time_ns.store(batch.mean_poll_time_ns, std::memory_order_relaxed);
  }
};

// Busy time and the mean poll time of one worker, kept by the thread that drives it: each
// batch of polls runs between begin() and end(). The mean is an EWMA (weight 0.1 per poll)
// that starts where the first tuned global-queue interval is the initial one.
struct poll_timing {
  // Tokio 1.48's self-tuning global-queue interval (runtime/scheduler/multi_thread/stats.rs):
  // the interval in ticks is the target latency over the mean poll time, clamped to
  // [min, max] (TARGET_GLOBAL_QUEUE_INTERVAL, MAX_TASKS_POLLED_PER_GLOBAL_QUEUE_INTERVAL),
  // and starts at TARGET_TASKS_POLLED_PER_GLOBAL_QUEUE_INTERVAL before any measurement.
  static constexpr double target_global_queue_latency_ns = 200'000.0;
  static constexpr std::uint32_t initial_global_queue_interval = 61;
  static constexpr std::uint32_t min_global_queue_interval = 2;
  static constexpr std::uint32_t max_global_queue_interval = 127;
  // Task time a busy worker runs at most, about, before the global queue, then the
  // driver, get a turn: the poll counts of the multi-thread worker's fairness rule are
  // these over the mean poll time (at least 1). io_context runs a post or a completion
  // after the handler in progress; a look at an empty global queue is one load, a driver
  // poll a non-blocking epoll_wait.
  static constexpr double fair_global_queue_latency_ns = 50'000.0;
  static constexpr double fair_driver_latency_ns = 100'000.0;
  static constexpr double ewma_weight = 0.1;

  double mean_poll_time_ns = target_global_queue_latency_ns / initial_global_queue_interval;
  std::chrono::steady_clock::time_point batch_start{};
  std::uint64_t polls_in_batch = 0;

  void begin() noexcept {
    batch_start = std::chrono::steady_clock::now();
    polls_in_batch = 0;
  }
  void note_poll() noexcept { ++polls_in_batch; }
  // Adds the batch to the busy time and the mean in `counters`; the next batch starts now.
  SWARM_DECL void end(worker_counters& counters) noexcept;
};

// The metrics of the worker this thread drives, if any (for counters bumped from deep
// inside a poll, such as forced yields).
SWARM_DECL worker_metrics* current_worker_metrics() noexcept;
SWARM_DECL void set_current_worker_metrics(worker_metrics* m) noexcept;

} // namespace swarm::detail

namespace swarm {

// A snapshot view of a scheduler's metrics, as Tokio's RuntimeMetrics.
struct worker_metrics_snapshot {
  std::uint64_t park_count = 0;
  std::uint64_t park_unpark_count = 0;
  std::uint64_t noop_count = 0;
  std::uint64_t steal_count = 0;
  std::uint64_t steal_operations = 0;
  std::uint64_t poll_count = 0;
  std::uint64_t local_schedule_count = 0;
  std::uint64_t overflow_count = 0;
  std::chrono::nanoseconds total_busy_duration{0};
  std::chrono::nanoseconds mean_poll_time{0};
  std::size_t local_queue_depth = 0;
};

} // namespace swarm
