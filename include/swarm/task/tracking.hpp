// What a task carries beyond its identity when it has a name or is tracked: the name given
// at spawn and, with tracking on, the statistics runtime::dump() reports (poll count, busy
// time, last poll, longest poll, what the task waits on).
//
// Where they live is task_identity::extra's word (task_extra_slot below): nothing for a task
// with neither; a task_extra in the task's own cell (after the trailer,
// cell_layout::extra_offset) for a task spawned with a name; and for a tracked task without a
// name, its stats alone in a block of their own, made at the end of its first poll if that
// poll leaves it pending. Until then the word itself holds the little such a task has: the
// timing interval, then its first poll's start or end. Most tasks of spawn-bound programs
// are polled once (a leaf computes and returns), and a stats block in every cell had cost
// each of them a cache line (doc/design.md, "Task dump").
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
#include <swarm/task/cell_allocator.hpp>
#include <swarm/task/id.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
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
// 64 bytes: one size class of the cell allocator when a task's stats have a block of their
// own, and with the name's pointer the 72 of a named task's task_extra.
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

  // Whether the other fields are kept (an untracked named task's stats stay 0).
  bool tracked() const noexcept { return timing_interval != 0; }

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
  // Takes over what a task's first poll recorded in `first` (poll_tracking_scope's scratch
  // stats), as the block made at the end of that poll starts out. Before publication.
  void copy_counts(const task_stats& first) noexcept {
    constexpr auto r = std::memory_order_relaxed;
    wait_poll.store(first.wait_poll.load(r), r);
    polls.store(first.polls.load(r), r);
    stamp.store(first.stamp.load(r), r);
    timed_polls.store(first.timed_polls.load(r), r);
    busy_stamps.store(first.busy_stamps.load(r), r);
    longest_poll_stamps.store(first.longest_poll_stamps.load(r), r);
    last_poll_stamps.store(first.last_poll_stamps.load(r), r);
    wait.store(first.wait.load(r), r);
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

// Built in the cell only for a task spawned with a name; destroyed with the cell. Immutable
// after spawn except for the stats (written only when tracked), which come first so that a
// pointer to the extra is one to its stats too (task_extra_slot).
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
};

#if SWARM_TASK_TRACKING
static_assert(offsetof(task_extra, stats) == 0);
#endif

// task_identity::extra: one word that says where a task's name and stats are, or holds what
// stands for the stats until the task needs a block of them. Its forms:
//
//   0                      neither a name nor tracking;
//   task_extra*            the block in the task's own cell (a named task; tracked or not);
//   task_stats* | 2        a tracked task's stats in a block of their own (own_block_tag),
//                          made at the end of a first poll that left it pending;
//   interval << 3 | 1      tracked, never polled (lazy_bit; the timing interval above);
//   start | 7              tracked, in its first poll since `start` (lazy, in_poll, polled);
//   end | 5                tracked, its first poll ended at `end` and completed it.
//
// Stamps lose their low 3 bits (3 TSC ticks) to the tags; blocks are at least 8-aligned.
// Written by the spawn before the task is published, then only by the thread that polls the
// task, which holds `running` (the state word's transfer of it orders one poll's writes
// before the next poll's reads); a new block is published with a release store. Read by
// dump() under the owned-list shard lock with an acquire load; a block goes with the cell
// (destroy), after the task has left the owned list.
class task_extra_slot {
public:
  static constexpr std::uint64_t lazy_bit = 1;
  static constexpr std::uint64_t in_poll_bit = 2;
  static constexpr std::uint64_t polled_bit = 4;
  static constexpr std::uint64_t own_block_tag = 2;
  static constexpr std::uint64_t tag_mask = 7;

  explicit task_extra_slot(std::uint64_t w) noexcept : word_(w) {}
  task_extra_slot(const task_extra_slot&) = delete;
  task_extra_slot& operator=(const task_extra_slot&) = delete;

  // The words a spawn starts a task with.
  static std::uint64_t in_cell_word(task_extra* x) noexcept { return reinterpret_cast<std::uintptr_t>(x); }
  static constexpr std::uint64_t lazy_word(std::uint32_t timing_interval) noexcept {
    return std::uint64_t(timing_interval) << 3 | lazy_bit;
  }

  std::uint64_t load_relaxed() const noexcept { return word_.load(std::memory_order_relaxed); }
  std::uint64_t load_acquire() const noexcept { return word_.load(std::memory_order_acquire); }
  void store_relaxed(std::uint64_t w) noexcept { word_.store(w, std::memory_order_relaxed); }
  void publish_own_block(task_stats* s) noexcept {
    word_.store(reinterpret_cast<std::uintptr_t>(s) | own_block_tag, std::memory_order_release);
  }

  // The block in the cell, if the word names one.
  static task_extra* in_cell_of(std::uint64_t w) noexcept {
    return (w & tag_mask) == 0 ? reinterpret_cast<task_extra*>(static_cast<std::uintptr_t>(w)) : nullptr;
  }
  task_extra* in_cell() const noexcept { return in_cell_of(load_relaxed()); }
  static bool is_lazy(std::uint64_t w) noexcept { return (w & lazy_bit) != 0; }

#if SWARM_TASK_TRACKING
  // The stats of either block form (null for 0 and the lazy forms); those of an untracked
  // named task have timing_interval 0.
  static task_stats* stats_of(std::uint64_t w) noexcept { return is_lazy(w) ? nullptr : block_stats_of(w); }
  // The same for a word known to be 0 or a block form.
  static task_stats* block_stats_of(std::uint64_t w) noexcept {
    return reinterpret_cast<task_stats*>(static_cast<std::uintptr_t>(w & ~tag_mask));
  }
  // What a lazy word says, in task_stats' terms: its poll count and its `stamp`.
  static std::uint64_t lazy_polls(std::uint64_t w) noexcept {
    return (w & (polled_bit | in_poll_bit)) == polled_bit ? 1 : 0;
  }
  static std::uint64_t lazy_stamp(std::uint64_t w) noexcept {
    if (!(w & polled_bit))
      return 0;
    return (w & ~tag_mask) | ((w & in_poll_bit) ? task_stats::in_poll_bit : 0);
  }
  static std::uint32_t lazy_interval(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w >> 3); }
#endif

  // With the cell, given its word: destroys the in-cell extra (the cell's memory is the
  // caller's to free) or frees the own stats block.
  static void destroy(std::uint64_t w) noexcept {
    if (w == 0)
      return;
    if (task_extra* x = in_cell_of(w)) {
      x->~task_extra();
      return;
    }
#if SWARM_TASK_TRACKING
    if ((w & tag_mask) == own_block_tag)
      destroy_own_block(block_stats_of(w));
#endif
  }

#if SWARM_TASK_TRACKING
  // A tracked task's own stats fill a 64-byte line alone: two workers polling tasks whose
  // stats shared a line would write it in turn on every poll (the public bench's
  // yield_many, 200 tasks on 2 workers, cost 20-30 % tracked with 16-aligned 64-byte blocks,
  // 5-11 % with this). The cell cache's blocks are only 16-aligned, so the block is two lines
  // from it, the stats at the line boundary inside (at most 48 bytes in) and the block's
  // address after them. Not detail::cache_line (128 here, the prefetch pair): blocks of 256
  // bytes took yield_many to 1-3 % but skynet from 3-4 % to 9-13 % (memory per pending task).
  static constexpr std::size_t stats_line = 64;
  static constexpr std::size_t own_block_bytes = 2 * stats_line;
  static task_stats* make_own_block(std::uint32_t timing_interval) {
    static_assert(sizeof(task_stats) == stats_line && cell_block_alignment >= alignof(void*));
    void* mem = allocate_cell(own_block_bytes, cell_block_alignment);
    const std::uintptr_t at = (reinterpret_cast<std::uintptr_t>(mem) + stats_line - 1) & ~(stats_line - 1);
    task_stats* s = ::new (reinterpret_cast<void*>(at)) task_stats(timing_interval);
    std::memcpy(reinterpret_cast<char*>(at) + sizeof(task_stats), &mem, sizeof mem);
    return s;
  }
  static void destroy_own_block(task_stats* s) noexcept {
    void* mem;
    std::memcpy(&mem, reinterpret_cast<char*>(s) + sizeof(task_stats), sizeof mem);
    s->~task_stats();
    deallocate_cell(mem, own_block_bytes, cell_block_alignment);
  }
#endif

private:
  std::atomic<std::uint64_t> word_;
};

// What a spawn asks for beyond the task itself; the spawn passes none (null) when the task
// has no name and the runtime does not track, and the cell then has no task_extra. The name
// is copied into the cell, so it only needs to outlive the spawn call.
struct task_extra_request {
  std::string_view name;
  std::uint32_t timing_interval = 0; // the task's stats'; 0: not tracked

  bool wanted() const noexcept { return timing_interval != 0 || !name.empty(); }
  // A named task has its task_extra in its cell; a tracked one without a name starts lazy.
  bool in_cell() const noexcept { return !name.empty(); }
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

// Where a lazy task's first poll records (poll_tracking_scope), one per thread: the poll
// keeps it as a block of the task's own only if it leaves the task pending. A first poll
// nested in another's takes a block at once instead.
struct first_poll_scratch {
  alignas(task_stats) unsigned char bytes[sizeof(task_stats)];
};
inline thread_local first_poll_scratch this_thread_first_poll_scratch;

// Brackets one poll of a task. For a tracked task it installs the stats as
// this_thread_task_stats for the poll, puts back what was there when the poll ends, and
// records the poll; for any other it reads no clock and restarts the thread's sampler.
//
// Inlined into every poll, so the common tracked poll (untimed, not nested) is kept short:
// one test sends every other case down the rare path, and it counts the poll and writes the
// stamp twice, from the thread's last stamp. The rare path's end is out of line: a timed
// poll (one in the interval), a nested one, the poll of a task whose interval is 1 or that is
// named but untracked. A lazy task's first poll (most tasks of spawn-bound programs have no
// other) ends inline unless timed or nested: it makes the task's stats block
// (task_extra_slot) if the poll leaves the task pending, which the poll's caller says with
// pending().
class poll_tracking_scope {
public:
  [[gnu::always_inline]] explicit poll_tracking_scope(task_extra_slot& slot) noexcept {
#if SWARM_TASK_TRACKING
    const std::uint64_t w = slot.load_relaxed();
    if (w == 0) [[likely]] {
      poll_sampler::restart(); // neither named nor tracked: the common case first
    } else if (!task_extra_slot::is_lazy(w)) {
      begin(*task_extra_slot::block_stats_of(w));
    } else {
      task_stats* s = first_poll_stats(slot, w);
      if (!s) [[unlikely]] {
        poll_sampler::restart(); // no memory for its stats: the task is no longer tracked
        return;
      }
      begin(*s);
      if (s == scratch()) {
        first_of_ = &slot;
        slot.store_relaxed((s->stamp.load(std::memory_order_relaxed) & ~task_extra_slot::tag_mask) |
                           task_extra_slot::lazy_bit | task_extra_slot::in_poll_bit |
                           task_extra_slot::polled_bit);
      }
    }
#else
    (void)slot;
#endif
  }
  [[gnu::always_inline]] ~poll_tracking_scope() {
#if SWARM_TASK_TRACKING
    if (stats_ == 0)
      return;
    if (stats_ & rare_tag) [[unlikely]] {
      end_rare(*reinterpret_cast<task_stats*>(stats_ & ~rare_tag), prev_, timed_start_, first_of_, pending_);
      return;
    }
    task_stats& s = *reinterpret_cast<task_stats*>(stats_);
    end_untimed_poll(s);
    end_poll_of(s, nullptr, first_of_, pending_); // nullptr: what begin() found there
#endif
  }
  poll_tracking_scope(const poll_tracking_scope&) = delete;
  poll_tracking_scope& operator=(const poll_tracking_scope&) = delete;

  // The poll returned pending (the task will be polled again, or waits).
  void pending() noexcept { pending_ = true; }

private:
#if SWARM_TASK_TRACKING
  // timing_interval 0 (a named task that is not tracked) and 1 (every poll timed) share the
  // common path's one test with the sampler's countdown and nesting.
  [[gnu::always_inline]] void begin(task_stats& s) noexcept {
    poll_sampler& ps = this_thread_poll_sampler;
    const std::uint32_t left = ps.untimed_left;
    task_stats* const prev = this_thread_task_stats;
    if ((left == 0) | (prev != nullptr) | (s.timing_interval <= 1)) [[unlikely]] {
      if (!s.tracked()) {
        poll_sampler::restart();
        return;
      }
      stats_ = reinterpret_cast<std::uintptr_t>(&s) | rare_tag;
      timed_start_ = begin_timed(s, s.timing_interval);
    } else {
      stats_ = reinterpret_cast<std::uintptr_t>(&s);
      ps.untimed_left = left - 1;
      s.begin_poll(ps.last_stamp);
    }
    prev_ = prev;
    this_thread_task_stats = &s;
  }
  static task_stats* scratch() noexcept {
    return std::launder(reinterpret_cast<task_stats*>(this_thread_first_poll_scratch.bytes));
  }
  // The stats a lazy task's first poll records into: the thread's scratch, fresh; or, when a
  // first poll is already recording there (this one is nested in it), a block of the task's
  // own, published at once. A lazy word is never polled again: a first poll that leaves the
  // task pending replaces it with a block (or with 0 if none could be had), and one that
  // completes it is the last.
  [[gnu::always_inline]] static task_stats* first_poll_stats(task_extra_slot& slot,
                                                             std::uint64_t w) noexcept {
    const std::uint32_t interval = task_extra_slot::lazy_interval(w);
    if (this_thread_task_stats != scratch()) [[likely]]
      return ::new (static_cast<void*>(this_thread_first_poll_scratch.bytes)) task_stats(interval);
    return nested_first_poll_stats(slot, interval);
  }
  [[gnu::noinline]] static task_stats* nested_first_poll_stats(task_extra_slot& slot,
                                                               std::uint32_t interval) noexcept {
    task_stats fresh(interval);
    return make_block(slot, fresh);
  }
  // A block of stats for the task, starting as `from`, published in its slot; null, and the
  // slot 0 (the task no longer tracked), if there is no memory for it.
  [[gnu::noinline]] static task_stats* make_block(task_extra_slot& slot, const task_stats& from) noexcept {
    try {
      task_stats* s = task_extra_slot::make_own_block(from.timing_interval);
      s->copy_counts(from);
      slot.publish_own_block(s);
      return s;
    } catch (...) {
      slot.store_relaxed(0);
      return nullptr;
    }
  }
  // Returns the poll's start: never 0, since both clocks count from the machine's boot.
  [[gnu::noinline]] static std::uint64_t begin_timed(task_stats& s, std::uint32_t interval) noexcept {
    this_thread_poll_sampler.untimed_left = interval - 1;
    const std::uint64_t start = stamp_now();
    s.begin_poll(start);
    return start;
  }
  // The end of a poll that took the rare path: timed (timed_start != 0) or not, nested
  // (prev), and maybe a lazy task's first (first_of).
  [[gnu::noinline]] static void end_rare(task_stats& s, task_stats* prev, std::uint64_t timed_start,
                                         task_extra_slot* first_of, bool pending) noexcept {
    if (timed_start != 0) {
      const std::uint64_t now = stamp_now();
      s.end_timed_poll(timed_start, now);
      this_thread_poll_sampler.last_stamp = now;
    } else {
      end_untimed_poll(s);
    }
    end_poll_of(s, prev, first_of, pending);
  }
  // An untimed poll ends at the thread's last stamp again: a timed poll nested in it may have
  // moved that stamp, still no later than now.
  [[gnu::always_inline]] static void end_untimed_poll(task_stats& s) noexcept {
    s.end_poll(this_thread_poll_sampler.last_stamp);
  }
  // What every poll's end does last: puts back the thread's current stats and, for a lazy
  // task's first poll, keeps what the scratch recorded.
  [[gnu::always_inline]] static void end_poll_of(task_stats& s, task_stats* prev, task_extra_slot* first_of,
                                                 bool pending) noexcept {
    this_thread_task_stats = prev;
    if (!first_of)
      return;
    if (pending)
      make_block(*first_of, s);
    else // it completed the task: its end is all there is to keep
      first_of->store_relaxed((s.stamp.load(std::memory_order_relaxed) & ~task_extra_slot::tag_mask) |
                              task_extra_slot::lazy_bit | task_extra_slot::polled_bit);
  }

  // The poll's stats, rare_tag set if its end goes through end_rare; 0 for an untracked
  // poll.
  static constexpr std::uintptr_t rare_tag = 1;
  static_assert(alignof(task_stats) > rare_tag);
  std::uintptr_t stats_ = 0;
  task_stats* prev_ = nullptr;          // this_thread_task_stats before the poll (rare path)
  std::uint64_t timed_start_ = 0;       // 0: an untimed poll
  task_extra_slot* first_of_ = nullptr; // a lazy task's first poll, recorded in the scratch
#endif
  bool pending_ = false;
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
