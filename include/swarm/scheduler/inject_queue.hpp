// The inject (global) queue: the FIFO through which tasks reach the workers from outside
// them, and where a worker's full local queue overflows (Tokio's runtime/scheduler/inject.rs).
//
// Intrusive: a singly linked list through header::queue_next, so pushing never allocates.
// Each queued header* stands for one owned `notified` reference, which travels with the
// pointer; the queue never touches reference counts. A task is in at most one queue at a
// time (it has one `notified`), so it has one queue_next link to spare.
//
// head and tail are guarded by the queue's own lock. `len` and the closed flag are atomics
// written under the lock and readable without it, so that a worker looking for work can
// skip an empty queue, and anyone can ask whether the queue is closed, without locking.
//
// The lock: std::mutex, kept as a template parameter so a whole-runtime benchmark can try
// another. bench/inject_queue_bench.cpp (1M tasks, median of 3, 2-core VM shared with
// other builds, load average 3 to 13, so +-30%) gave, in ns per task:
// (ranges over 6 runs; "1 thread" = push then pop on one thread; P = producer threads
// against one consumer)
//                        1 thread | pop()   1P      2P      4P  | pop_n(32) 1P   2P      4P
//   std::mutex            14-62   |       65-130  71-123  57-111 |     64-100  56-89   35-81
//   TTAS spin lock        35-64   |       49-82   50-81   41-88  |     31-58   32-60   37-71
//   boost::lockfree       91-191  |      247-389 301-573 393-707 |    169-369 317-500 317-519
// The spin lock wins under contention by about a third (no futex sleeps), but costs 2.5x
// the mutex uncontended (lock + unlock 23 ns vs 9 ns on this CPU), which is the common
// case for this queue (remote spawns, occasional overflow, a worker's refill), and a
// spinner gains nothing when the holder is preempted on an oversubscribed machine. The
// lock-free queue is 3-5x slower everywhere, allocates nodes, is not intrusive and has no
// atomic batches (bench/lockfree_inject_queue.hpp). Revisit with spawn_many_remote_busy.

#pragma once

#include <swarm/detail/assert.hpp>
#include <swarm/task/header.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <type_traits>

namespace swarm::detail {

template <class Lock = std::mutex>
class basic_inject_queue {
public:
  basic_inject_queue() noexcept = default;
  basic_inject_queue(const basic_inject_queue&) = delete;
  basic_inject_queue& operator=(const basic_inject_queue&) = delete;

  // Queued tasks would leak their references: shutdown drains the queue first (drain()).
  ~basic_inject_queue() {
    SWARM_ASSERT((std::uncaught_exceptions() > 0 || head_ == nullptr) &&
                 "inject_queue destroyed while holding tasks");
  }

  // Number of queued tasks, without locking. Acquire: pairs with the release stores made
  // under the lock, so a thread that sees a count also sees what the pushers did before
  // pushing. The queue's own memory is guarded by the lock; this is a hint for skipping it.
  std::size_t len() const noexcept { return len_.load(std::memory_order_acquire); }
  bool is_empty() const noexcept { return len() == 0; }

  // Appends one task. False when the queue is closed: the task was not taken, and the
  // caller must release its reference. Runs per remote spawn/wake; locks.
  [[nodiscard]] bool push(header* task) noexcept {
    task->queue_next = nullptr; // we hold the task's `notified`: its link is ours
    std::lock_guard guard(lock_);
    if (closed_.load(std::memory_order_relaxed))
      return false; // under the lock: exact
    append(task, task, 1);
    return true;
  }

  // Appends n >= 1 tasks already linked first -> ... -> last through queue_next, under one
  // lock acquisition (the linking was done by the caller, outside the lock). False when the
  // queue is closed: none was taken, and the caller must release all n references.
  [[nodiscard]] bool push_batch(header* first, header* last, std::size_t n) noexcept {
    SWARM_ASSERT(first != nullptr && last != nullptr && n >= 1);
    last->queue_next = nullptr;
    std::lock_guard guard(lock_);
    if (closed_.load(std::memory_order_relaxed))
      return false; // under the lock: exact
    append(first, last, n);
    return true;
  }

  // Takes the oldest task, or nullptr. Skips the lock when the queue looks empty.
  header* pop() noexcept {
    if (len() == 0)
      return nullptr;
    header* task;
    {
      std::lock_guard guard(lock_);
      if (head_ == nullptr)
        return nullptr;
      task = head_;
      head_ = task->queue_next;
      if (head_ == nullptr)
        tail_ = nullptr;
      store_len(len_.load(std::memory_order_relaxed) - 1);
    }
    task->queue_next = nullptr;
    return task;
  }

  // Takes up to n of the oldest tasks under one lock acquisition and hands them to `sink`
  // (a callable taking header*, which must not throw) oldest first, after unlocking; the
  // sink owns each task it receives. Returns how many were taken. Skips the lock when the
  // queue looks empty.
  template <class Sink>
  std::size_t pop_n(std::size_t n, Sink&& sink) noexcept {
    static_assert(std::is_nothrow_invocable_v<Sink&, header*>, "inject_queue: the sink must be noexcept");
    if (n == 0 || len() == 0)
      return 0;
    header* first;
    {
      std::lock_guard guard(lock_);
      const std::size_t len = len_.load(std::memory_order_relaxed); // under the lock: exact
      n = std::min(n, len);
      if (n == 0)
        return 0;
      first = head_;
      header* last = first;
      for (std::size_t i = 1; i < n; ++i)
        last = last->queue_next;
      head_ = last->queue_next;
      if (head_ == nullptr)
        tail_ = nullptr;
      last->queue_next = nullptr;
      store_len(len - n);
    }
    deliver(first, sink);
    return n;
  }

  // Takes every queued task under one lock acquisition and hands them to `sink` as pop_n
  // does. For shutdown: after close(), nothing can be added, so one drain empties the queue
  // for good.
  template <class Sink>
  std::size_t drain(Sink&& sink) noexcept {
    static_assert(std::is_nothrow_invocable_v<Sink&, header*>, "inject_queue: the sink must be noexcept");
    header* first;
    std::size_t n;
    {
      std::lock_guard guard(lock_);
      first = head_;
      n = len_.load(std::memory_order_relaxed);
      head_ = tail_ = nullptr;
      store_len(0);
    }
    deliver(first, sink);
    return n;
  }

  // Refuses every later push. True only for the call that closed the queue. Queued tasks
  // stay until popped or drained.
  bool close() noexcept {
    std::lock_guard guard(lock_);
    // Under the lock, the only writer. Release: pairs with is_closed()'s acquire.
    const bool first = !closed_.load(std::memory_order_relaxed);
    closed_.store(true, std::memory_order_release);
    return first;
  }

  // Without locking. Acquire: pairs with the release in close(), so a thread that sees the
  // queue closed also sees what the closer did before closing. A push racing with close()
  // is decided under the lock, not by this.
  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }

private:
  // Under the lock.
  void append(header* first, header* last, std::size_t n) noexcept {
    if (tail_ == nullptr)
      head_ = first;
    else
      tail_->queue_next = first;
    tail_ = last;
    store_len(len_.load(std::memory_order_relaxed) + n);
  }

  // Under the lock, the only writer: a plain store suffices. Release: pairs with the
  // acquire in len().
  void store_len(std::size_t n) noexcept { len_.store(n, std::memory_order_release); }

  // Outside the lock: the chain from `first` is ours alone.
  template <class Sink>
  static void deliver(header* first, Sink& sink) noexcept {
    while (first != nullptr) {
      header* const next = first->queue_next;
      first->queue_next = nullptr;
      sink(first);
      first = next;
    }
  }

  mutable Lock lock_;
  header* head_ = nullptr;          // oldest; null when empty
  header* tail_ = nullptr;          // newest; null when empty
  std::atomic<bool> closed_{false}; // once set, never unset; written under the lock
  std::atomic<std::size_t> len_{0};
};

using inject_queue = basic_inject_queue<>;

} // namespace swarm::detail
