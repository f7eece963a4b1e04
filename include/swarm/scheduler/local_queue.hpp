// A worker's local run queue: a bounded ring with one producer (its owner) and many
// consumers (the owner popping, other workers stealing), after Go's runq, as Tokio 1.48's
// multi-thread scheduler has it (tokio/src/runtime/scheduler/multi_thread/queue.rs).
//
// The queue holds raw `header*`s. Each one stands for one owned `notified` reference,
// which travels with the pointer: the queue never touches reference counts.
//
// Indices. `tail` (u32) and the two halves of `head` (u64 = steal << 32 | real) are
// free-running counters; the slot of index i is i & (Capacity - 1). Only differences of
// indices are ever used, so wrapping at 2^32 is harmless; they are far wider than the ring
// so that full (tail - steal == Capacity) and empty (tail == real) differ, and so that a
// CAS cannot succeed on a head value reused after a wrap (ABA) unless 2^32 operations fit
// between one thread's load and its CAS.
//   real  : the next index the owner pops. A thief also advances it, to claim a batch.
//   steal : the first index of the batch a thief is still copying out; equals real when no
//           steal is in flight. At most one steal is in flight per queue.
//   tail  : the next index the owner pushes to. Written only by the owner.
// Invariant (modular): steal <= real <= tail and tail - steal <= Capacity. Slots
// [real, tail) hold queued tasks; slots [steal, real) belong to the thief copying them out;
// the owner writes only slot `tail`, and only while tail - steal < Capacity.
//
// The three ordering rules every atomic operation below refers to:
//   (T) tail publishes slots. Every store of `tail` is a release and every load of `tail` by
//       a thread other than the owner is an acquire, so a slot written before the store is
//       visible to whoever saw the new tail.
//   (S) head frees slots. The CAS that ends a steal (steal := real) is a release and every
//       load of `head` before writing slots is an acquire: the thief's reads of the slots it
//       copied happen before the owner (or, for a thief's own queue, the thief) rewrites them.
//   (R) real never runs ahead of tail. Every CAS that moves `real` is a release (and all
//       writes of head are RMWs, so each continues the release sequences before it), and
//       whoever computes tail - real loads head (acquire) before tail (acquire). The tail it
//       then reads is at least the one the mover of `real` saw, so tail - real never
//       underflows.
//
// Thread roles: functions marked "owner" are called only by the worker owning the queue;
// steal_into is called on the victim by the owner of `dst`; "any thread" functions only
// read.
#pragma once

#include <swarm/detail/assert.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/task/header.hpp>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <ranges>

namespace swarm::detail {

// Where push_back_or_overflow sends tasks when the ring is full: usually an adaptor over
// the inject queue. push_batch receives n >= 1 tasks already linked through queue_next
// from `first` to `last` (last->queue_next == nullptr) and takes them in every case: if it
// cannot queue them (the inject queue is closed at shutdown) it must release their
// references itself. That is why the result must be void: the ring has no way back for them.
template <class O>
concept overflow_target = requires(O& o, header* task, std::size_t n) {
  { o.push_batch(task, task, n) } -> std::same_as<void>;
};

// What push_back_or_overflow did; for the scheduler's statistics. Tokio's
// worker_overflow_count counts only `overflowed_half`.
enum class push_outcome {
  pushed,          // the task is in the ring
  overflowed_one,  // ring full while a thief was copying out a batch (it will free slots
                   // soon): only this task went to the overflow target
  overflowed_half, // ring full: the oldest Capacity/2 tasks and this one went to the
                   // overflow target as one batch
};

// What steal_into did. `task` is the stolen task the thief should run now (nullptr: none);
// `moved` counts every task taken from the victim, `task` included (Tokio's steal_count).
struct steal_result {
  header* task = nullptr;
  std::uint32_t moved = 0;
};

// Slots of a worker's run queue: Tokio 1.48's LOCAL_QUEUE_CAPACITY
// (runtime/scheduler/multi_thread/queue.rs).
inline constexpr std::size_t default_local_queue_capacity = 256;

template <std::size_t Capacity = default_local_queue_capacity>
class local_queue {
  static_assert(Capacity >= 2 && (Capacity & (Capacity - 1)) == 0,
                "local_queue: Capacity must be a power of two, at least 2");
  static_assert(Capacity <= (std::size_t{1} << 31),
                "local_queue: u32 indices must tell a full ring from an empty one");

public:
  static constexpr std::uint32_t capacity = Capacity;
  static constexpr std::uint32_t mask = Capacity - 1;
  // The most a steal takes, the batch an overflow moves, and the fill level above which a
  // thief refuses to steal into its own queue.
  static constexpr std::uint32_t half = Capacity / 2;

  local_queue() noexcept = default;
  // Starts the free-running indices at `first_index` instead of 0, so tests can run the
  // queue across the 2^32 wrap.
  explicit local_queue(std::uint32_t first_index) noexcept
      : head_(pack(first_index, first_index)), tail_(first_index) {}
  local_queue(const local_queue&) = delete;
  local_queue& operator=(const local_queue&) = delete;

  // Dropping queued tasks would leak their references: the owner must drain the queue
  // before destroying it. Relaxed loads: destruction excludes every other access, and
  // whatever made this thread the last user (a join, a lock) already ordered them.
  ~local_queue() {
    [[maybe_unused]] const std::uint64_t h = head_.load(std::memory_order_relaxed);
    [[maybe_unused]] const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    SWARM_ASSERT((std::uncaught_exceptions() > 0 || (steal_of(h) == real_of(h) && real_of(h) == t)) &&
                 "local_queue destroyed while holding tasks");
  }

  // ---- Index arithmetic of each step: pure, shared with the exhaustive model check in
  // ---- test/scheduler/local_queue_model_test.cpp, which drives them one atomic step at a time.

  static constexpr std::uint64_t pack(std::uint32_t steal, std::uint32_t real) noexcept {
    return std::uint64_t{steal} << 32 | real;
  }
  static constexpr std::uint32_t steal_of(std::uint64_t head) noexcept {
    return static_cast<std::uint32_t>(head >> 32);
  }
  static constexpr std::uint32_t real_of(std::uint64_t head) noexcept {
    return static_cast<std::uint32_t>(head);
  }
  // The owner may write slot `tail`: the ring, counting a batch being stolen, is not full.
  static constexpr bool has_room(std::uint64_t head, std::uint32_t tail) noexcept {
    return tail - steal_of(head) < Capacity;
  }
  // The head that pops index `real`, or nothing when the queue is empty. While a steal is
  // in flight only `real` moves; the thief puts `steal` back level with it afterwards.
  static constexpr std::optional<std::uint64_t> head_after_pop(std::uint64_t head,
                                                               std::uint32_t tail) noexcept {
    const std::uint32_t steal = steal_of(head), real = real_of(head);
    if (real == tail)
      return std::nullopt;
    if (steal == real)
      return pack(real + 1, real + 1);
    SWARM_ASSERT(steal != real + 1);
    return pack(steal, real + 1);
  }
  // How many tasks a thief claims: ceil(half of what is queued); 0 when another thief is
  // mid-steal or the queue is empty.
  static constexpr std::uint32_t steal_amount(std::uint64_t head, std::uint32_t tail) noexcept {
    if (steal_of(head) != real_of(head))
      return 0;
    const std::uint32_t available = tail - real_of(head);
    return available - available / 2;
  }
  // Claiming n tasks advances `real` only: [steal, real + n) is now the thief's.
  static constexpr std::uint64_t head_after_claim(std::uint64_t head, std::uint32_t n) noexcept {
    return pack(steal_of(head), real_of(head) + n);
  }
  // Ending a steal brings `steal` level with `real` (which the owner may have moved on).
  static constexpr std::uint64_t head_after_steal(std::uint64_t head) noexcept {
    return pack(real_of(head), real_of(head));
  }
  // Overflow takes the oldest half, [real, real + half), for the owner itself.
  static constexpr std::uint64_t head_after_overflow(std::uint32_t real) noexcept {
    return pack(real + half, real + half);
  }

  // ---- Owner ----

  // Tasks the owner can still pop. Owner only: its own tail needs no ordering (relaxed);
  // head acquire as everywhere (rule R).
  std::uint32_t len() const noexcept {
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    return tail_.load(std::memory_order_relaxed) - real_of(h);
  }

  // Free slots; a batch being stolen still occupies its slots. Owner only (as len).
  std::uint32_t remaining_slots() const noexcept {
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    return Capacity - (tail_.load(std::memory_order_relaxed) - steal_of(h));
  }

  bool has_tasks() const noexcept { return len() != 0; }

  // Appends a batch (tasks just pulled from the inject queue, oldest first). The caller
  // has made room (remaining_slots() >= batch size): an overfull batch is a bug, asserted.
  // Runs per global-queue pull; no allocation, no lock.
  template <std::ranges::input_range Tasks>
  requires std::convertible_to<std::ranges::range_reference_t<Tasks>, header*> void
  push_back(Tasks&& tasks) noexcept {
    // Owner's own tail: relaxed.
    const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    // Acquire, rule S: pairs with the release CAS ending a steal, so the slots that thief
    // copied out are ours to rewrite.
    const std::uint32_t steal = steal_of(head_.load(std::memory_order_acquire));
    if constexpr (std::ranges::sized_range<Tasks>) {
      SWARM_ASSERT(std::ranges::size(tasks) <= Capacity - (tail - steal) &&
                   "local_queue::push_back: batch does not fit");
    }
    std::uint32_t i = tail;
    for (header* task : tasks) {
      SWARM_ASSERT(i - steal < Capacity && "local_queue::push_back: batch does not fit");
      buffer_[i & mask] = task; // slot outside [steal, tail): nobody else reads it until published
      ++i;
    }
    // Release, rule T: pairs with the thieves' acquire loads of tail; publishes the batch.
    tail_.store(i, std::memory_order_release);
  }

  // Appends one task; when the ring is full, moves the oldest half plus `task` to
  // `overflow` as one linked batch (Tokio 1.48).
  //
  // Tokio 1.52 (PR #8029) moves the *newest* half instead, and places tasks pulled from the
  // inject queue only in the first half of the ring, so that a task just taken from the
  // global queue is not sent straight back to it before it was polled. We keep 1.48's
  // choice because the rest of swarm ports 1.48, and 1.48's queue tests (queue.rs, loom_queue.rs) and
  // overflow metric describe this behaviour, which is also Go's runq. The bounce 1.52
  // avoids needs a worker that keeps overflowing while pulling from the global queue; if
  // overflow shows up in profiles, switch with a benchmark to back it (and record it in
  // doc/design.md).
  //
  // Runs per local spawn/wake; no allocation, no lock (the overflow target may lock).
  template <overflow_target Overflow>
  push_outcome push_back_or_overflow(header* task, Overflow& overflow) noexcept {
    // Owner's own tail: relaxed.
    const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    for (;;) {
      // Acquire, rule S: pairs with the release CAS ending a steal (the slots it copied
      // are free for us to write), and rule R.
      const std::uint64_t h = head_.load(std::memory_order_acquire);
      if (has_room(h, tail)) {
        buffer_[tail & mask] = task; // slot `tail` is outside [steal, tail): ours alone
        // Release, rule T: pairs with the thieves' acquire loads of tail.
        tail_.store(tail + 1, std::memory_order_release);
        return push_outcome::pushed;
      }
      if (steal_of(h) != real_of(h)) {
        // A thief is copying a batch out and will free its slots: overflow this task only.
        task->queue_next = nullptr;
        overflow.push_batch(task, task, 1);
        return push_outcome::overflowed_one;
      }
      if (push_overflow(task, real_of(h), tail, overflow))
        return push_outcome::overflowed_half;
      // A thief claimed a batch between our load and our CAS: there may be room now.
    }
  }

  // Takes the oldest task, or nullptr. Runs per task poll; no allocation, no lock.
  header* pop() noexcept {
    // Owner's own tail: relaxed.
    const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
    // Acquire, as the CAS's failure ordering below (same value flows into the loop).
    std::uint64_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::optional<std::uint64_t> next = head_after_pop(h, tail);
      if (!next)
        return nullptr;
      // Success acq_rel: the release is rule R (a thief that sees the new real sees a tail
      // past it). The acquire is not needed for the slot we read (we wrote it ourselves);
      // it is the ordering the spec ports from Tokio. Failure acquire: the value retried
      // with must obey rule R like the first load.
      if (head_.compare_exchange_strong(h, *next, std::memory_order_acq_rel, std::memory_order_acquire)) {
        // Index real_of(h) left the ring for us: no thief can claim it any more.
        return buffer_[real_of(h) & mask];
      }
    }
  }

  // ---- Thief: called on the victim by the owner of `dst` ----

  // Moves ceil(half) of the victim's queued tasks into `dst`, returning the last of them to
  // be run now; the others are published in `dst`. Refuses (returns nothing) when `dst` is
  // more than half full counting steals from it in flight, when another thief is mid-steal
  // on the victim, or when the victim is empty. Runs per steal attempt; no allocation, no
  // lock.
  [[nodiscard]] steal_result steal_into(local_queue& dst) noexcept {
    SWARM_ASSERT(&dst != this);
    // The caller owns dst: its own tail, relaxed.
    const std::uint32_t dst_tail = dst.tail_.load(std::memory_order_relaxed);
    // Acquire, rule S on dst: pairs with the release CAS ending a steal *from dst*, so the
    // dst slots that thief copied out are free for us to write.
    const std::uint32_t dst_steal = steal_of(dst.head_.load(std::memory_order_acquire));
    if (dst_tail - dst_steal > half)
      return {};

    const std::uint32_t n = steal_into2(dst, dst_tail);
    if (n == 0)
      return {};
    // dst slots [dst_tail, dst_tail + n) were written by this thread and are unpublished.
    header* const task = dst.buffer_[(dst_tail + n - 1) & mask];
    if (n > 1) {
      // Release, rule T on dst: pairs with acquire loads of dst's tail by dst's thieves.
      dst.tail_.store(dst_tail + n - 1, std::memory_order_release);
    }
    return {task, n};
  }

  // ---- Any thread ----

  // A snapshot of the number of queued tasks (metrics, searching heuristics).
  std::uint32_t remote_len() const noexcept {
    // Head, then tail, both acquire: rule R keeps the difference from underflowing.
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_acquire);
    return t - real_of(h);
  }
  bool remote_is_empty() const noexcept { return remote_len() == 0; }

private:
  // The ring is full (tail - real == Capacity, no steal in flight): claim the oldest half
  // for ourselves and send it, with `task`, to the overflow target. False when a thief
  // changed head first.
  template <class Overflow>
  bool push_overflow(header* task, std::uint32_t real, std::uint32_t tail, Overflow& overflow) noexcept {
    SWARM_ASSERT(tail - real == Capacity);
    std::uint64_t expected = pack(real, real);
    // Success release, rule R (and S: the new steal is a freed boundary thieves may trust
    // like any other). No acquire: the slots we read next were written by this thread.
    // Failure relaxed: the value is discarded; the caller's loop reloads head with acquire.
    if (!head_.compare_exchange_strong(expected, head_after_overflow(real), std::memory_order_release,
                                       std::memory_order_relaxed)) {
      return false;
    }
    // [real, real + half) left the ring for us: thieves start at the new real and only we
    // write slots, so we may read and relink them freely.
    header* const first = buffer_[real & mask];
    header* prev = first;
    for (std::uint32_t i = 1; i < half; ++i) {
      header* const next = buffer_[(real + i) & mask];
      prev->queue_next = next;
      prev = next;
    }
    prev->queue_next = task;
    task->queue_next = nullptr;
    overflow.push_batch(first, task, std::size_t{half} + 1);
    return true;
  }

  // Claims up to `half` tasks, copies them into dst from dst_tail on, releases the claim;
  // returns how many were copied (0: nothing claimed).
  std::uint32_t steal_into2(local_queue& dst, std::uint32_t dst_tail) noexcept {
    // Phase 1: claim by advancing real alone. Acquire, rule R: pairs with the release of
    // whichever CAS last moved head, so the tail loaded next is not older than its real.
    std::uint64_t h = head_.load(std::memory_order_acquire);
    std::uint64_t claimed;
    std::uint32_t n;
    for (;;) {
      // Acquire, rule T: pairs with the owner's release stores of tail; the slots up to it
      // are visible.
      const std::uint32_t t = tail_.load(std::memory_order_acquire);
      n = steal_amount(h, t);
      if (n == 0)
        return 0;
      claimed = head_after_claim(h, n);
      // Success acq_rel: the release is rule R for the real we move (we saw a tail past it);
      // the acquire keeps the head we claimed from ordered like the loads above. Failure
      // acquire: we retry with the observed head, which must obey rule R as the first load.
      if (head_.compare_exchange_strong(h, claimed, std::memory_order_acq_rel, std::memory_order_acquire))
        break;
    }
    SWARM_ASSERT(n <= half);

    // [steal, steal + n) is ours until phase 2: the owner cannot write these slots (it sees
    // tail - steal as occupied) and no other thief claims while steal != real.
    const std::uint32_t first = steal_of(claimed);
    for (std::uint32_t i = 0; i < n; ++i) {
      dst.buffer_[(dst_tail + i) & mask] = buffer_[(first + i) & mask];
    }

    // Phase 2: release the claim. Success acq_rel: the release is rule S (pairs with the
    // acquire head loads before writing slots) and rule R. Failure acquire: the owner popped
    // meanwhile (moving real); retry with its value.
    h = claimed;
    for (;;) {
      SWARM_ASSERT(steal_of(h) != real_of(h));
      if (head_.compare_exchange_strong(h, head_after_steal(h), std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        return n;
      }
    }
  }

  // Written by the owner (pop, overflow) and by thieves (claim, release): its own line.
  alignas(cache_line) std::atomic<std::uint64_t> head_{0};
  // Written only by the owner, read by thieves: its own line, so pops and steals on head
  // do not invalidate it.
  alignas(cache_line) std::atomic<std::uint32_t> tail_{0};
  // Plain storage: each slot's accesses are ordered by rules T and S (see the top). Left
  // uninitialised: a slot is read only after it was written.
  alignas(cache_line) header* buffer_[Capacity];
};

} // namespace swarm::detail
