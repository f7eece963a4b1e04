// The handler queue of a task: what is executed on a task's executor waits here until the
// task runs it, one at a time, so everything a task does (its coroutine, children made with
// ||, && and parallel_group, cancellation delivered to it) is serialised: a strand merged
// into the task.
//
// Any thread pushes; exactly one drainer at a time pops. Who drains is decided by one
// atomic word, `control` = (pending count << 1) | strand bit:
//   - the pusher that moves the count from 0 to 1 is responsible for getting a drainer: in
//     task mode it wakes the task (its poll drains), in strand mode (after the task
//     completed) it posts a drain job to the runtime;
//   - a drainer keeps that responsibility until its own decrement brings the count to 0.
// The mode bit lives in the same word so that a pusher learns count and mode from one
// read-modify-write: switching to strand mode can never race a pusher's choice.
#pragma once

#include <swarm/detail/assert.hpp>

#include <boost/asio/recycling_allocator.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

namespace swarm::detail {

// A type-erased queued handler. `complete(op, run)` runs it (run = true) or destroys it
// unrun, and frees it either way.
struct serial_op {
  serial_op* next = nullptr;
  void (*complete)(serial_op* op, bool run) = nullptr;
};

// A queued function object. Its memory comes from Asio's per-thread recycling cache, as
// io_context's own queued functions do (with its default allocator): a handler queued and
// run on a worker reuses a block the worker freed, instead of a malloc and a free that are
// often on two threads. Freed before the function runs, so that the function can queue
// the next one into the block just freed.
template <class F>
struct serial_op_impl : serial_op {
  using allocator = boost::asio::recycling_allocator<serial_op_impl>;

  F f;

  template <class G>
  explicit serial_op_impl(G&& g) : f(std::forward<G>(g)) {
    complete = &do_complete;
  }

  template <class G>
  static serial_op* create(G&& g) {
    allocator a;
    serial_op_impl* mem = a.allocate(1);
    try {
      return ::new (static_cast<void*>(mem)) serial_op_impl(std::forward<G>(g));
    } catch (...) {
      // Not built: free the memory, the caller sees the exception.
      a.deallocate(mem, 1);
      throw;
    }
  }

  static void do_complete(serial_op* base, bool run) {
    auto* op = static_cast<serial_op_impl*>(base);
    F local(std::move(op->f));
    op->~serial_op_impl();
    allocator().deallocate(op, 1);
    if (run)
      std::move(local)();
  }
};

class serial_queue {
public:
  enum class push_result {
    queued,       // someone else is responsible for draining
    wake_task,    // the caller must wake the task (task mode)
    post_drainer, // the caller must post a strand drain job (strand mode)
  };

  serial_queue() noexcept = default;
  serial_queue(const serial_queue&) = delete;
  serial_queue& operator=(const serial_queue&) = delete;

  // Destroys whatever was never run (the task's cell is being freed: nobody can push).
  ~serial_queue() {
    if (pushed_.load(std::memory_order_acquire))
      take_pushed();
    while (serial_op* op = pop_local())
      op->complete(op, false);
  }

  // Any thread. acq_rel: the pusher that becomes responsible synchronises with the
  // drainer's releasing decrement (it sees the mode the drainer set before releasing).
  push_result push(serial_op* op) noexcept {
    const std::uintptr_t prev = control_.fetch_add(one, std::memory_order_acq_rel);
    // Link after counting: a drainer that sees the count but not yet the op retries.
    op->next = pushed_.load(std::memory_order_relaxed);
    // Release: publishes the op's contents to the drainer's acquire exchange.
    while (
        !pushed_.compare_exchange_weak(op->next, op, std::memory_order_release, std::memory_order_relaxed)) {
    }
    if ((prev >> 1) != 0)
      return push_result::queued;
    return (prev & strand_bit) ? push_result::post_drainer : push_result::wake_task;
  }

  // ---- The drainer only (holding the responsibility) ----

  // What a drain left: ops completed but not yet accounted for, and whether the count
  // reached zero (the responsibility is released: the queue must not be touched again).
  struct drained {
    std::size_t ran = 0;
    bool released = false;
  };

  // The drain loop of a task's handler queue, for its three drainers: a poll of the task,
  // the strand drain job after the task ended, and the unrun destruction. Completes ops in FIFO order (run = false destroys them
  // unrun) and accounts for them in batches: when none is visible, what ran is released,
  // and the loop ends if that brought the count to zero. Otherwise the responsibility
  // stays with the caller, and `hooks` decide the rest:
  //   - stop(), after each op: true ends the loop, with `ran` still to account for;
  //   - mid_push(), when ops are counted but none is visible and none ran since the last
  //     release (a pusher is between its count and its link): true retries, false ends
  //     the loop;
  //   - thrown(released), when an op throws, after what ran was accounted for, the thrower
  //     included, so that the count stays true; the exception then propagates.
  template <class Hooks>
  drained drain(bool run, Hooks&& hooks) {
    drained d;
    for (;;) {
      serial_op* op = next();
      if (!op) {
        if (d.ran != 0) {
          d.released = release(d.ran);
          d.ran = 0;
          if (d.released)
            return d;
          continue;
        }
        if (hooks.mid_push())
          continue;
        return d;
      }
      ++d.ran;
      try {
        op->complete(op, run);
      } catch (...) {
        hooks.thrown(release(d.ran));
        throw;
      }
      if (hooks.stop())
        return d;
    }
  }

  // The next op in FIFO order, or null if none is visible yet (a pusher may be between
  // its count and its link: the count says whether to retry).
  serial_op* next() noexcept {
    if (!local_)
      take_pushed();
    return pop_local();
  }

  // Accounts for `n` ops run. Returns true when that brought the count to zero: the
  // responsibility is released and the caller must not touch the queue again.
  bool release(std::size_t n) noexcept {
    SWARM_ASSERT(n > 0);
    const std::uintptr_t prev = control_.fetch_sub(n * one, std::memory_order_acq_rel);
    SWARM_ASSERT((prev >> 1) >= n);
    return (prev >> 1) == n;
  }

  // Switches to strand mode (the task completed or was cancelled). Returns the pending
  // count at that moment: non-zero means a drainer is owed, and it is the caller (who
  // holds, or inherits from the task, the responsibility).
  std::size_t to_strand_mode() noexcept {
    return control_.fetch_or(strand_bit, std::memory_order_acq_rel) >> 1;
  }

  std::size_t pending() const noexcept { return control_.load(std::memory_order_acquire) >> 1; }
  bool is_strand_mode() const noexcept { return control_.load(std::memory_order_acquire) & strand_bit; }

private:
  static constexpr std::uintptr_t strand_bit = 1;
  static constexpr std::uintptr_t one = 2;

  void take_pushed() noexcept {
    // Acquire: pairs with the pushers' release; reverse the LIFO stack into FIFO order.
    serial_op* stack = pushed_.exchange(nullptr, std::memory_order_acquire);
    serial_op* fifo = nullptr;
    while (stack) {
      serial_op* n = stack->next;
      stack->next = fifo;
      fifo = stack;
      stack = n;
    }
    if (!local_) {
      local_ = fifo;
    } else {
      serial_op* tail = local_;
      while (tail->next)
        tail = tail->next;
      tail->next = fifo;
    }
  }

  serial_op* pop_local() noexcept {
    serial_op* op = local_;
    if (op)
      local_ = op->next;
    return op;
  }

  std::atomic<std::uintptr_t> control_{0};
  std::atomic<serial_op*> pushed_{nullptr};
  serial_op* local_ = nullptr; // taken from pushed_, not yet run; drainer only
};

} // namespace swarm::detail
