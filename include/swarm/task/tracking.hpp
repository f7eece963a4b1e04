// What a task carries beyond its identity when it has a name or is tracked: the name given
// at spawn and, with tracking on, the statistics runtime::dump() reports (poll count, busy
// time, last poll, longest poll, what the task waits on).
//
// A task_extra lives in its task's own cell, after the trailer (cell_layout::extra_offset):
// a spawn that wants one asks the cell allocator for the larger block, so a tracked spawn
// still draws one block from the per-thread cache. task_identity::extra points to it, and is
// null for a task with neither a name nor tracking, which then pays one null pointer in its
// cell and a test of it per poll (the identity shares a line with the id the poll reads
// anyway). A non-null `extra` is also what tells the cell's destroy the block's size.
//
// SWARM_TASK_TRACKING=0 compiles the statistics out: no clock read, no stats member.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/task/id.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#ifndef SWARM_TASK_TRACKING
#define SWARM_TASK_TRACKING 1
#endif

namespace swarm::detail {

// What a task's last pending poll said it waits on (dump.hpp's task_wait_kind, which the
// task layer cannot include: same values).
enum class wait_kind : std::uint8_t { unknown, join, join_set, asio_operation };

// Nanoseconds on the steady clock.
inline std::uint64_t steady_now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// The unit every stamp below is kept in: the TSC on x86-64 (invariant on the CPUs swarm
// targets; about 12 ns a read on a KVM guest against 31 ns for steady_clock under
// kvm-clock, and two are read per poll), the steady clock's nanoseconds elsewhere.
// stamp_clock converts.
inline std::uint64_t stamp_now() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return steady_now_ns();
#endif
}

// Converts stamps to nanoseconds. calibrate() records an epoch (stamp, steady time) once per
// process, timing a first window of about a millisecond; later conversions use the whole
// time since the epoch, so they sharpen as the process runs.
struct stamp_clock {
  SWARM_DECL static void calibrate() noexcept;
  SWARM_DECL static double ns_per_stamp() noexcept;
};

// Per-task statistics, times in stamps (stamp_now). Written only by the thread that polls the task (it holds
// `running`), read at any time by dump() under the owned-list shard lock. Every field is a relaxed atomic:
// each is a statistic read on its own, nothing is published through it, and a reader only needs untorn values
// (a dump may mix the fields of two consecutive polls). The writer is single, so updates are a relaxed load
// and store, not read-modify-writes.
struct task_stats {
  std::atomic<std::uint64_t> polls{0};
  std::atomic<std::uint64_t> busy_stamps{0};
  std::atomic<std::uint64_t> longest_poll_stamps{0};
  std::atomic<std::uint64_t> last_poll_stamps{0};
  std::atomic<std::uint64_t> poll_started{0};    // 0: not inside a poll
  std::atomic<std::uint64_t> last_poll_ended{0}; // 0: never polled (no stamp is taken at spawn)
  std::atomic<std::uint64_t> wait_target{0};
  std::atomic<wait_kind> waiting_on{wait_kind::unknown};

  void begin_poll(std::uint64_t now) noexcept {
    waiting_on.store(wait_kind::unknown, std::memory_order_relaxed);
    poll_started.store(now, std::memory_order_relaxed);
  }
  void end_poll(std::uint64_t now) noexcept {
    const std::uint64_t start = poll_started.load(std::memory_order_relaxed);
    const std::uint64_t d = now - start;
    polls.store(polls.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    busy_stamps.store(busy_stamps.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    last_poll_stamps.store(d, std::memory_order_relaxed);
    if (d > longest_poll_stamps.load(std::memory_order_relaxed))
      longest_poll_stamps.store(d, std::memory_order_relaxed);
    last_poll_ended.store(now, std::memory_order_relaxed);
    poll_started.store(0, std::memory_order_relaxed);
  }
  void set_wait(wait_kind k, std::uint64_t target) noexcept {
    wait_target.store(target, std::memory_order_relaxed);
    waiting_on.store(k, std::memory_order_relaxed);
  }
};

// Built in the cell only for a task spawned with a name or on a runtime that tracks tasks;
// destroyed with the cell. Immutable after spawn except for the stats. The stats come first:
// they are what each poll of a tracked task touches.
struct task_extra {
  task_extra(std::string_view n, bool t) : tracked(t), name(n) {}

#if SWARM_TASK_TRACKING
  task_stats stats;
#endif
  bool tracked = false; // the stats are kept
  std::string name;

  task_stats* tracked_stats() noexcept {
#if SWARM_TASK_TRACKING
    return tracked ? &stats : nullptr;
#else
    return nullptr;
#endif
  }
};

// What a spawn asks for beyond the task itself; the spawn passes none (null) when the task
// has no name and the runtime does not track, and the cell then has no task_extra. The name
// is copied into the cell, so it only needs to outlive the spawn call.
struct task_extra_request {
  std::string_view name;
  bool tracked = false;

  bool wanted() const noexcept { return tracked || !name.empty(); }
};

// The stats of the task this thread polls now, if it is tracked (null otherwise): where a
// join handle or a join_set records what the task waits on. Set for the length of a poll by
// poll_tracking_scope; read inline, since every tracked poll sets it and every await reads it.
inline thread_local task_stats* this_thread_task_stats = nullptr;

// Brackets one poll of a tracked task (stats may be null: then it does nothing and reads
// no clock). Installs the stats as this_thread_task_stats for the poll, and puts back what
// was there when the poll ends.
class poll_tracking_scope {
public:
  explicit poll_tracking_scope(task_stats* s) noexcept : stats_(s) {
#if SWARM_TASK_TRACKING
    if (stats_) {
      prev_ = std::exchange(this_thread_task_stats, stats_);
      stats_->begin_poll(stamp_now());
    }
#endif
  }
  ~poll_tracking_scope() {
#if SWARM_TASK_TRACKING
    if (stats_) {
      stats_->end_poll(stamp_now());
      this_thread_task_stats = prev_;
    }
#endif
  }
  poll_tracking_scope(const poll_tracking_scope&) = delete;
  poll_tracking_scope& operator=(const poll_tracking_scope&) = delete;

private:
  task_stats* stats_;
  task_stats* prev_ = nullptr;
};

// Records what the task being polled on this thread waits on, if it is tracked.
inline void note_current_wait([[maybe_unused]] wait_kind k,
                              [[maybe_unused]] std::uint64_t target = 0) noexcept {
#if SWARM_TASK_TRACKING
  if (task_stats* s = this_thread_task_stats)
    s->set_wait(k, target);
#endif
}

inline void note_current_wait_if_unknown([[maybe_unused]] wait_kind k) noexcept {
#if SWARM_TASK_TRACKING
  if (task_stats* s = this_thread_task_stats;
      s && s->waiting_on.load(std::memory_order_relaxed) == wait_kind::unknown)
    s->set_wait(k, 0);
#endif
}

} // namespace swarm::detail
