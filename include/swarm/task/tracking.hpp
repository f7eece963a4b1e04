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
// of it, mostly the TSC read after the poll (doc/design.md, "Task dump"). interval 1 times
// every poll (runtime_options::poll_timing_interval).
//
// SWARM_TASK_TRACKING=0 compiles the statistics out: no clock read, no stats member.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/task/id.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
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
// looks shorter than it is. What an untimed poll reads and writes is the first 24 bytes.
//
// 64 bytes, so that with the name's pointer a tracked task's cell grows by 72 bytes, one
// line: what spawn-bound shapes pay for tracking is mostly that growth (skynet tracked cost
// nothing beside untracked cells made as large, doc/design.md "Task dump").
struct task_stats {
  explicit task_stats(std::uint32_t interval) noexcept : timing_interval(interval) {}

  // One poll in this many is timed, per thread (poll_sampler); 0: the task is not tracked and
  // the other fields stay 0.
  const std::uint32_t timing_interval;
  // What the task waits on (`wait`) was noted during the poll whose number has these low 32
  // bits (0 for the first poll): it holds while that poll is the task's current or last one,
  // so no poll has to clear it. A note 2^32 polls old with none since would pass for current.
  std::atomic<std::uint32_t> wait_poll{0};
  std::atomic<std::uint64_t> polls{0};
  // Inside a poll: its start with the low bit set; after one: its end with the low bit clear;
  // 0: never polled (no stamp is taken at spawn). The bit costs a stamp's last tick.
  std::atomic<std::uint64_t> stamp{0};
  std::atomic<std::uint64_t> timed_polls{0};
  std::atomic<std::uint64_t> busy_stamps{0};         // timed polls only
  std::atomic<std::uint64_t> longest_poll_stamps{0}; // of the timed polls
  std::atomic<std::uint64_t> last_poll_stamps{0};    // the last timed poll's
  // The wait_kind in the top 8 bits, the task waited for (a join's) below: task ids count
  // from 1 and never reach 2^56.
  std::atomic<std::uint64_t> wait{0};

  static constexpr std::uint64_t in_poll_bit = 1;
  static constexpr unsigned wait_kind_shift = 56;
  static constexpr std::uint64_t wait_target_mask = (std::uint64_t(1) << wait_kind_shift) - 1;

  [[gnu::always_inline]] void begin_poll(std::uint64_t start) noexcept {
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
  [[gnu::always_inline]] void end_poll(std::uint64_t ended) noexcept {
    polls.store(polls.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    stamp.store(ended & ~in_poll_bit, std::memory_order_relaxed);
  }
  // Called by the polling thread during a poll.
  void set_wait(wait_kind k, std::uint64_t target) noexcept {
    wait.store((std::uint64_t(k) << wait_kind_shift) | (target & wait_target_mask),
               std::memory_order_relaxed);
    wait_poll.store(static_cast<std::uint32_t>(polls.load(std::memory_order_relaxed)),
                    std::memory_order_relaxed);
  }
  // During a poll: whether set_wait was called in it.
  bool wait_noted_in_this_poll() const noexcept {
    return wait_poll.load(std::memory_order_relaxed) ==
               static_cast<std::uint32_t>(polls.load(std::memory_order_relaxed)) &&
           wait_kind_of(wait.load(std::memory_order_relaxed)) != wait_kind::unknown;
  }
  static wait_kind wait_kind_of(std::uint64_t w) noexcept {
    return static_cast<wait_kind>(w >> wait_kind_shift);
  }
  static std::uint64_t wait_target_of(std::uint64_t w) noexcept { return w & wait_target_mask; }
};
static_assert(sizeof(task_stats) == 64);

// A task's name: null when empty, else one heap block (the length, then the bytes), so that
// it costs a tracked task's cell one pointer. Named spawns are few; they pay the allocation.
class task_name {
public:
  explicit task_name(std::string_view n) {
    if (n.empty())
      return;
    block_.reset(new char[sizeof(std::size_t) + n.size()]);
    const std::size_t size = n.size();
    std::memcpy(block_.get(), &size, sizeof size);
    std::memcpy(block_.get() + sizeof size, n.data(), size);
  }

  std::string_view view() const noexcept {
    if (!block_)
      return {};
    std::size_t size;
    std::memcpy(&size, block_.get(), sizeof size);
    return {block_.get() + sizeof size, size};
  }

private:
  std::unique_ptr<char[]> block_;
};

// Built in the cell only for a task spawned with a name or on a runtime that tracks tasks;
// destroyed with the cell. Immutable after spawn except for the stats, whose first line is
// what each poll of a tracked task reads and writes.
struct task_extra {
  task_extra(std::string_view n, [[maybe_unused]] std::uint32_t interval)
      :
#if SWARM_TASK_TRACKING
        stats(interval),
#endif
        name(n) {
  }

#if SWARM_TASK_TRACKING
  task_stats stats;
#endif
  task_name name;

  bool tracked() const noexcept {
#if SWARM_TASK_TRACKING
    return stats.timing_interval != 0;
#else
    return false;
#endif
  }
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
//
// Inlined into every poll, so the untimed path is kept short: it counts the poll and writes
// the stamp twice, from the thread's last stamp (31 instructions a poll under Cachegrind,
// 8 for an untracked task); the timed path, one poll in the interval, is out of line.
class poll_tracking_scope {
public:
  [[gnu::always_inline]] explicit poll_tracking_scope(task_extra* x) noexcept {
#if SWARM_TASK_TRACKING
    if (x && x->tracked())
      begin(*x);
    else
      poll_sampler::restart();
#else
    (void)x;
#endif
  }
  [[gnu::always_inline]] ~poll_tracking_scope() {
#if SWARM_TASK_TRACKING
    if (!stats_)
      return;
    if (timed_start_ != 0) [[unlikely]] {
      end_timed(*stats_, timed_start_);
    } else {
      // The thread's last stamp again: a nested timed poll may have moved it, still no later
      // than now.
      stats_->end_poll(this_thread_poll_sampler.last_stamp);
    }
    this_thread_task_stats = prev_;
#endif
  }
  poll_tracking_scope(const poll_tracking_scope&) = delete;
  poll_tracking_scope& operator=(const poll_tracking_scope&) = delete;

private:
#if SWARM_TASK_TRACKING
  [[gnu::always_inline]] void begin(task_extra& x) noexcept {
    stats_ = &x.stats;
    prev_ = std::exchange(this_thread_task_stats, stats_);
    poll_sampler& ps = this_thread_poll_sampler;
    const std::uint32_t left = ps.untimed_left;
    if ((left == 0) | (prev_ != nullptr) | (stats_->timing_interval == 1)) [[unlikely]] {
      timed_start_ = begin_timed(*stats_, stats_->timing_interval);
    } else {
      ps.untimed_left = left - 1;
      stats_->begin_poll(ps.last_stamp);
    }
  }
  // Returns the poll's start: never 0, since both clocks count from the machine's boot.
  [[gnu::noinline]] static std::uint64_t begin_timed(task_stats& s, std::uint32_t interval) noexcept {
    this_thread_poll_sampler.untimed_left = interval - 1;
    const std::uint64_t start = stamp_now();
    s.begin_poll(start);
    return start;
  }
  [[gnu::noinline]] static void end_timed(task_stats& s, std::uint64_t start) noexcept {
    const std::uint64_t now = stamp_now();
    s.end_timed_poll(start, now);
    this_thread_poll_sampler.last_stamp = now;
  }
#endif

  task_stats* stats_ = nullptr;
  task_stats* prev_ = nullptr;
  std::uint64_t timed_start_ = 0; // 0: an untimed poll
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
