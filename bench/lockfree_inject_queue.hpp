// A lock-free alternative to inject_queue (same interface), on boost::lockfree::queue.
// Not part of the library: the scheduler uses inject_queue, and this one measured 3-5x
// slower (figures in doc/design.md, "Inject queue"). Kept beside the benchmark that
// compares the two (inject_queue_bench.cpp); test/scheduler/inject_queue_test.cpp holds it
// to inject_queue's semantics so that the comparison stays like for like.
//
// Differences from inject_queue that the interface hides:
// - Not intrusive: boost::lockfree::queue copies the header* into its own node, taken from
//   a lock-free free list that grows with `new` when empty (push may allocate; nodes are
//   kept and reused until the queue is destroyed). queue_next is not used.
// - No batch operations: push_batch and pop_n are loops of single lock-free operations,
//   so a batch is not atomic (another consumer may take part of it first) and the FIFO
//   order of one batch can interleave with concurrent pushes.
// - Closing and the exact count live in one atomic word beside the queue, `state_`:
//   bit 0 = closed (never unset), bits 1.. = tasks reserved by pushers minus tasks popped.
//   A push first reserves its place with a CAS that fails once closed, then enqueues; so
//   after close() returns, no push can succeed, and once the pushers already past their
//   reservation have finished, the count is exactly the number of queued tasks. Until
//   then it may count a task not yet visible to pop (pop then finds nothing, as it would
//   if the push had come a moment later).
#pragma once

#include <swarm/detail/assert.hpp>
#include <swarm/task/header.hpp>

#include <boost/lockfree/queue.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <thread>
#include <type_traits>

namespace swarm::detail {

class lockfree_inject_queue {
public:
  // Nodes pre-allocated in the free list; more are allocated on demand.
  static constexpr std::size_t initial_nodes = 256;

  lockfree_inject_queue() : queue_(initial_nodes) {}
  lockfree_inject_queue(const lockfree_inject_queue&) = delete;
  lockfree_inject_queue& operator=(const lockfree_inject_queue&) = delete;

  ~lockfree_inject_queue() {
    SWARM_ASSERT((std::uncaught_exceptions() > 0 || count(state_.load(std::memory_order_relaxed)) == 0) &&
                 "lockfree_inject_queue destroyed while holding tasks");
  }

  // Acquire: pairs with the release RMWs of push/pop, so a thread that sees a count also
  // sees what the pushers did before reserving.
  std::size_t len() const noexcept { return count(state_.load(std::memory_order_acquire)); }
  bool is_empty() const noexcept { return len() == 0; }

  // False when closed: the task was not taken and the caller must release its reference.
  // May allocate a node (see the top).
  [[nodiscard]] bool push(header* task) noexcept {
    if (!reserve(1))
      return false;
    enqueue(task);
    return true;
  }

  // n >= 1 tasks linked first -> ... -> last through queue_next. False when closed: none
  // was taken.
  [[nodiscard]] bool push_batch(header* first, [[maybe_unused]] header* last, std::size_t n) noexcept {
    SWARM_ASSERT(first != nullptr && last != nullptr && n >= 1);
    if (!reserve(n))
      return false;
    for (std::size_t i = 0; i < n; ++i) {
      // Read the link before publishing the task: a consumer may take it at once.
      header* const next = first->queue_next;
      SWARM_ASSERT((i + 1 < n || first == last) &&
                   "lockfree_inject_queue::push_batch: n does not match the chain");
      enqueue(first);
      first = next;
    }
    return true;
  }

  header* pop() noexcept {
    if (len() == 0)
      return nullptr;
    header* task = dequeue();
    if (task != nullptr)
      release(1);
    return task;
  }

  // Up to n tasks, oldest first as far as this consumer can tell, handed to `sink` (must
  // not throw) one by one. Not atomic as a batch.
  template <class Sink>
  std::size_t pop_n(std::size_t n, Sink&& sink) noexcept {
    static_assert(std::is_nothrow_invocable_v<Sink&, header*>, "inject_queue: the sink must be noexcept");
    if (n == 0 || len() == 0)
      return 0;
    std::size_t taken = 0;
    for (; taken < n; ++taken) {
      header* const task = dequeue();
      if (task == nullptr)
        break;
      sink(task);
    }
    if (taken != 0)
      release(taken);
    return taken;
  }

  // Takes everything. Once closed, also waits for pushers that reserved before the close to
  // finish enqueuing, so the queue is then empty for good.
  template <class Sink>
  std::size_t drain(Sink&& sink) noexcept {
    static_assert(std::is_nothrow_invocable_v<Sink&, header*>, "inject_queue: the sink must be noexcept");
    std::size_t taken = 0;
    for (;;) {
      if (header* const task = dequeue()) {
        release(1);
        sink(task);
        ++taken;
        continue;
      }
      const std::uint64_t s = state_.load(std::memory_order_acquire);
      if (count(s) == 0 || (s & closed_bit) == 0)
        return taken;
      std::this_thread::yield(); // a pusher is between its reservation and its enqueue
    }
  }

  // True only for the call that closed the queue. acq_rel: totally ordered with every
  // reservation CAS on state_ (one atomic word), which is what makes "no push succeeds
  // after close" hold; acquire for drain's view of the count.
  bool close() noexcept { return (state_.fetch_or(closed_bit, std::memory_order_acq_rel) & closed_bit) == 0; }

  bool is_closed() const noexcept { return (state_.load(std::memory_order_acquire) & closed_bit) != 0; }

private:
  static constexpr std::uint64_t closed_bit = 1;
  static constexpr std::uint64_t count_one = 2;
  static constexpr std::size_t count(std::uint64_t s) noexcept { return static_cast<std::size_t>(s >> 1); }

  // Reserves n places unless closed. Success acq_rel: the release pairs with len()'s
  // acquire; failure relaxed: the value is only re-examined.
  bool reserve(std::size_t n) noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    do {
      if (s & closed_bit)
        return false;
    } while (!state_.compare_exchange_weak(s, s + count_one * n, std::memory_order_acq_rel,
                                           std::memory_order_relaxed));
    return true;
  }

  // Release: pairs with len()'s acquire (a reader seeing the lower count sees the pop).
  void release(std::size_t n) noexcept { state_.fetch_sub(count_one * n, std::memory_order_release); }

  void enqueue(header* task) noexcept {
    // Fails only if a node cannot be allocated: treat like any allocation failure in a
    // noexcept path.
    if (!queue_.push(task))
      std::terminate();
  }

  header* dequeue() noexcept {
    header* task = nullptr;
    return queue_.pop(task) ? task : nullptr;
  }

  boost::lockfree::queue<header*> queue_;
  std::atomic<std::uint64_t> state_{0};
};

} // namespace swarm::detail
