// Runtime metrics, Tokio's set. Each worker counts into a private batch and publishes it
// with relaxed stores at maintenance, before parking and at shutdown, so readers see values
// that lag a little and never pay for a shared counter on the hot path.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/scheduler/dump.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

// Every per-worker metric, once: X(counter, report, name). Each worker counts into
// worker_counters::counter and publishes it to worker_stats::counter; `report` says how
// worker_metrics_snapshot shows it as `name`: as_count, the value; as_duration, the value in
// nanoseconds as a std::chrono::nanoseconds; summed, not per worker (runtime_metrics sums it
// over the workers).
#define SWARM_WORKER_METRICS(X)                                                                              \
  X(park_count, as_count, park_count)                                                                        \
  X(park_unpark_count, as_count, park_unpark_count)                                                          \
  X(noop_count, as_count, noop_count)                                                                        \
  X(steal_count, as_count, steal_count)                                                                      \
  X(steal_operations, as_count, steal_operations)                                                            \
  X(poll_count, as_count, poll_count)                                                                        \
  X(local_schedule_count, as_count, local_schedule_count)                                                    \
  X(overflow_count, as_count, overflow_count)                                                                \
  X(busy_duration_ns, as_duration, total_busy_duration)                                                      \
  X(budget_forced_yield_count, summed, budget_forced_yield_count)                                            \
  X(mean_poll_time_ns, as_duration, mean_poll_time)

#define SWARM_SNAPSHOT_FIELD_as_count(name) std::uint64_t name = 0;
#define SWARM_SNAPSHOT_FIELD_as_duration(name) std::chrono::nanoseconds name{0};
#define SWARM_SNAPSHOT_FIELD_summed(name)
#define SWARM_SNAPSHOT_FIELD(counter, report, name) SWARM_SNAPSHOT_FIELD_##report(name)

namespace swarm {

// A snapshot view of a scheduler's metrics, as Tokio's RuntimeMetrics.
struct worker_metrics_snapshot {
  SWARM_WORKER_METRICS(SWARM_SNAPSHOT_FIELD)
  std::size_t local_queue_depth = 0;
};

} // namespace swarm

namespace swarm::detail {

#define SWARM_COUNTER_FIELD(counter, report, name) std::uint64_t counter = 0;
#define SWARM_PUBLISHED_FIELD(counter, report, name) std::atomic<std::uint64_t> counter{0};
#define SWARM_PUBLISH(counter, report, name) counter.store(batch.counter, std::memory_order_relaxed);
#define SWARM_SNAPSHOT_READ_as_count(counter, name) s.name = counter.load(std::memory_order_relaxed);
#define SWARM_SNAPSHOT_READ_as_duration(counter, name)                                                       \
  s.name = std::chrono::nanoseconds(counter.load(std::memory_order_relaxed));
#define SWARM_SNAPSHOT_READ_summed(counter, name)
#define SWARM_SNAPSHOT_READ(counter, report, name) SWARM_SNAPSHOT_READ_##report(counter, name)

struct worker_counters {
  SWARM_WORKER_METRICS(SWARM_COUNTER_FIELD)
};

// One per worker, on its own cache lines: the counters the worker writes and their
// published copies (handle::worker_metrics(i) reads these into a worker_metrics_snapshot).
struct alignas(cache_line) worker_stats {
  // Written only by the thread that drives the worker.
  worker_counters batch;
  std::uint64_t polls_at_last_park = 0;

  // Published copies, read by metrics().
  SWARM_WORKER_METRICS(SWARM_PUBLISHED_FIELD)
  std::atomic<std::size_t> thread_id_hash{0};
  // What the worker does now, for dump(). Stored only when it changes (the driving thread
  // keeps the last value in its core), relaxed: a reader wants a recent value, nothing is
  // published through it. A worker no thread drives reads as parked.
  std::atomic<worker_run_state> run_state{worker_run_state::parked};

  // Relaxed: the values are statistics; nothing is ordered by them.
  void submit() noexcept {
    SWARM_WORKER_METRICS(SWARM_PUBLISH) // clang-format would join this line to the braces
  }

  // The published values (local_queue_depth is the queue's to tell).
  worker_metrics_snapshot snapshot() const noexcept {
    worker_metrics_snapshot s;
    SWARM_WORKER_METRICS(SWARM_SNAPSHOT_READ)
    return s;
  }
};

#undef SWARM_SNAPSHOT_READ
#undef SWARM_SNAPSHOT_READ_summed
#undef SWARM_SNAPSHOT_READ_as_duration
#undef SWARM_SNAPSHOT_READ_as_count
#undef SWARM_PUBLISH
#undef SWARM_PUBLISHED_FIELD
#undef SWARM_COUNTER_FIELD
#undef SWARM_SNAPSHOT_FIELD
#undef SWARM_SNAPSHOT_FIELD_summed
#undef SWARM_SNAPSHOT_FIELD_as_duration
#undef SWARM_SNAPSHOT_FIELD_as_count
#undef SWARM_WORKER_METRICS

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
  std::chrono::steady_clock::time_point batch_start{}; // the epoch: no batch open
  std::uint64_t polls_in_batch = 0;

  void begin() noexcept {
    batch_start = std::chrono::steady_clock::now();
    polls_in_batch = 0;
  }
  void note_poll() noexcept { ++polls_in_batch; }
  // Adds the batch to the busy time and the mean in `counters`. Outside a batch (it ended
  // already) it does nothing and reads no clock.
  void end(worker_counters& counters) noexcept {
    if (batch_start != std::chrono::steady_clock::time_point{})
      end_batch(counters);
  }

private:
  SWARM_DECL void end_batch(worker_counters& counters) noexcept;
};

// The metrics of the worker this thread drives, if any (for counters bumped from deep
// inside a poll, such as forced yields).
SWARM_DECL worker_stats* current_worker_metrics() noexcept;
SWARM_DECL void set_current_worker_metrics(worker_stats* m) noexcept;

} // namespace swarm::detail
