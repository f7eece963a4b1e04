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
// Poll times are sampled: every poll is counted, and one in `interval` on each thread is
// timed with two clock reads (poll_sampler below); busy time is scaled up from the timed
// polls. On the VMs swarm is measured on, timing every poll of 100 ns made tracking cost 8-13 %
// of it, mostly the TSC read after the poll; one poll in 16, 4-8 % (doc/design.md, "Task
// dump"). interval 1 times every poll (runtime_options::poll_timing_interval).
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
//
// Durations come from timed polls only (poll_sampler): busy_stamps sums them, and dump() scales
// it by polls / timed_polls. An untimed poll's start and end are the thread's last stamp
// (poll_sampler::last_stamp), which precedes them: an early bound, so a poll in progress never
// looks shorter than it is. What an untimed poll writes is `stamp` twice and `polls`.
struct task_stats {
  std::atomic<std::uint64_t> polls{0};
  // Inside a poll: its start with the low bit set; after one: its end with the low bit clear;
  // 0: never polled (no stamp is taken at spawn). The bit costs a stamp's last tick.
  std::atomic<std::uint64_t> stamp{0};
  std::atomic<std::uint64_t> timed_polls{0};
  std::atomic<std::uint64_t> busy_stamps{0};         // timed polls only
  std::atomic<std::uint64_t> longest_poll_stamps{0}; // of the timed polls
  std::atomic<std::uint64_t> last_poll_stamps{0};    // the last timed poll's
  // What the task waits on, noted during the poll numbered wait_poll (0 for the first): it
  // holds while that poll is the task's current or last one, so no poll has to clear it.
  std::atomic<std::uint64_t> wait_target{0};
  std::atomic<std::uint64_t> wait_poll{0};
  std::atomic<wait_kind> waiting_on{wait_kind::unknown};

  static constexpr std::uint64_t in_poll_bit = 1;

  void begin_poll(std::uint64_t start) noexcept {
    stamp.store(start | in_poll_bit, std::memory_order_relaxed);
  }
  // `start` is what begin_poll was given.
  void end_timed_poll(std::uint64_t start, std::uint64_t now) noexcept {
    const std::uint64_t d = now - start;
    timed_polls.store(timed_polls.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    busy_stamps.store(busy_stamps.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
    last_poll_stamps.store(d, std::memory_order_relaxed);
    if (d > longest_poll_stamps.load(std::memory_order_relaxed))
      longest_poll_stamps.store(d, std::memory_order_relaxed);
    end_poll(now);
  }
  void end_poll(std::uint64_t ended) noexcept {
    polls.store(polls.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    stamp.store(ended & ~in_poll_bit, std::memory_order_relaxed);
  }
  // Called by the polling thread during a poll.
  void set_wait(wait_kind k, std::uint64_t target) noexcept {
    wait_target.store(target, std::memory_order_relaxed);
    waiting_on.store(k, std::memory_order_relaxed);
    wait_poll.store(polls.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  // During a poll: whether set_wait was called in it.
  bool wait_noted_in_this_poll() const noexcept {
    return wait_poll.load(std::memory_order_relaxed) == polls.load(std::memory_order_relaxed) &&
           waiting_on.load(std::memory_order_relaxed) != wait_kind::unknown;
  }
};

// Built in the cell only for a task spawned with a name or on a runtime that tracks tasks;
// destroyed with the cell. Immutable after spawn except for the stats. The stats come first:
// they are what each poll of a tracked task touches.
struct task_extra {
  task_extra(std::string_view n, std::uint32_t interval) : timing_interval(interval), name(n) {}

#if SWARM_TASK_TRACKING
  task_stats stats;
#endif
  // One poll in this many is timed, per thread (poll_sampler); 0: the stats are not kept.
  std::uint32_t timing_interval = 0;
  std::string name;

  bool tracked() const noexcept { return SWARM_TASK_TRACKING && timing_interval != 0; }
};

// What a spawn asks for beyond the task itself; the spawn passes none (null) when the task
// has no name and the runtime does not track, and the cell then has no task_extra. The name
// is copied into the cell, so it only needs to outlive the spawn call.
struct task_extra_request {
  std::string_view name;
  std::uint32_t timing_interval = 0; // task_extra's; 0: not tracked

  bool wanted() const noexcept { return timing_interval != 0 || !name.empty(); }
};

// The stats of the task this thread polls now, if it is tracked (null otherwise): where a
// join handle or a join_set records what the task waits on. Set for the length of a poll by
// poll_tracking_scope; read inline, since every tracked poll sets it and every await reads it.
inline thread_local task_stats* this_thread_task_stats = nullptr;

// Which polls of tracked tasks this thread times. One in `interval` is timed (two stamps);
// the others take the thread's last stamp as their start and end, an early bound. The bound
// is only as old as the polls run since it was taken, so whatever else runs code on the
// thread between two polls calls restart() first, and the next tracked poll is timed: an
// untracked poll (below), a job (job::poll), a task hook, and a worker's batch boundary,
// passed before the driver, a park or the end of a drive (the scheduler's start_processing
// and end_processing). A nested poll (inside another task's poll) is always timed, and so is
// every poll of a task whose interval is 1 (the countdown may come from another runtime's).
struct poll_sampler {
  std::uint32_t untimed_left = 0; // polls before the next timed one
  std::uint64_t last_stamp = 0;   // the end of this thread's last timed poll

  static void restart() noexcept;
};

inline thread_local poll_sampler this_thread_poll_sampler;

inline void poll_sampler::restart() noexcept {
#if SWARM_TASK_TRACKING
  this_thread_poll_sampler.untimed_left = 0;
#endif
}

// Brackets one poll of a task (extra may be null). For a tracked task it installs the stats as
// this_thread_task_stats for the poll, puts back what was there when the poll ends, and
// records the poll; for any other it reads no clock and restarts the thread's sampler.
class poll_tracking_scope {
public:
  // Small, so that it inlines into every poll: an untracked task pays a test and a store.
  explicit poll_tracking_scope(task_extra* x) noexcept {
#if SWARM_TASK_TRACKING
    if (x && x->tracked())
      begin(x->stats, x->timing_interval);
    else
      poll_sampler::restart();
#else
    (void)x;
#endif
  }
  ~poll_tracking_scope() {
#if SWARM_TASK_TRACKING
    if (stats_)
      end();
#endif
  }
  poll_tracking_scope(const poll_tracking_scope&) = delete;
  poll_tracking_scope& operator=(const poll_tracking_scope&) = delete;

private:
  void begin(task_stats& s, std::uint32_t interval) noexcept {
    stats_ = &s;
    prev_ = std::exchange(this_thread_task_stats, stats_);
    poll_sampler& ps = this_thread_poll_sampler;
    if (ps.untimed_left == 0 || prev_ || interval == 1) {
      timed_ = true;
      ps.untimed_left = interval - 1;
      start_ = stamp_now();
    } else {
      --ps.untimed_left;
      start_ = ps.last_stamp;
    }
    s.begin_poll(start_);
  }
  void end() noexcept {
    if (timed_) {
      const std::uint64_t now = stamp_now();
      stats_->end_timed_poll(start_, now);
      this_thread_poll_sampler.last_stamp = now;
    } else {
      stats_->end_poll(start_);
    }
    this_thread_task_stats = prev_;
  }

  task_stats* stats_ = nullptr;
  task_stats* prev_ = nullptr;
  std::uint64_t start_ = 0;
  bool timed_ = false;
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
  if (task_stats* s = this_thread_task_stats; s && !s->wait_noted_in_this_poll())
    s->set_wait(k, 0);
#endif
}

} // namespace swarm::detail
