// An Asio task: a coroutine spawned with co_spawn onto the task's own serial executor, run
// by the task state machine of include/swarm/task.
//
// The cell of an Asio task stores:
//   - as its scheduler value (task_sched): the runtime, the task's handler queue, the
//     cancellation signal bound to co_spawn's completion, and the start/abort state. These
//     live until the cell is freed, because executors and pending operations outlive the
//     coroutine;
//   - as its future (task_future<T>): the result slot. A poll drains the handler queue
//     (each handler costs one unit of coop budget) until the coroutine delivered its result.
//
// Abort: before the first poll, Tokio's path (the cancelled bit; the coroutine never runs).
// After it, Asio's: terminal cancellation is emitted on co_spawn's slot from inside the
// task, serialised with the coroutine, which unwinds at its current await.
#pragma once

#include <swarm/asio/context_core.hpp>
#include <swarm/asio/serial_queue.hpp>
#include <swarm/scheduler/coop.hpp>
#include <swarm/task/core.hpp>
#include <swarm/task/task.hpp>
#include <swarm/task/tracking.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution.hpp>

#include <atomic>
#include <exception>
#include <type_traits>

namespace swarm::detail {

// What an Asio task produces: its value, or the exception that ended it, and whether an
// abort was requested before it ended (an exception then means "cancelled").
template <class T>
struct task_output {
  std::exception_ptr error;
  bool abort_requested = false;
  T value{};
};

class task_sched;

// The serial queue being drained on this thread, and the live future of its task, if the
// drain is a task poll (null in strand mode).
struct drain_scope {
  const serial_queue* queue;
  void* future;
  drain_scope* prev;
  bool yield_requested = false; // yield_now() ran: stop draining, come back after the driver
  SWARM_DECL static drain_scope*& current() noexcept;
  drain_scope(const serial_queue* q, void* f) noexcept : queue(q), future(f), prev(current()) { current() = this; }
  ~drain_scope() { current() = prev; }
  drain_scope(const drain_scope&) = delete;
  drain_scope& operator=(const drain_scope&) = delete;
};

// Start state of an Asio task. Only a started task runs what is queued on it; the others
// destroy it unrun (a coroutine that never started, or one whose task was dropped
// unfinished at shutdown, never resumes: as Tokio drops a future, and as io_context's
// shutdown destroys handlers).
enum class task_start_state : int { not_started, started, aborted_before_start, dropped };

// The scheduler value (task_scheduler) of an Asio task: it schedules as
// multi_thread::handle_ref does, through the runtime's scheduler, and also holds the task's
// Asio state, which must live as long as the cell.
class task_sched {
public:
  explicit task_sched(context_core* core) noexcept : core_(core) {}
  // Moved only into the cell, before the task is published: nothing but core_ is set yet.
  task_sched(task_sched&& o) noexcept : core_(o.core_) {}

  context_core* core() const noexcept { return core_; }
  serial_queue& queue() noexcept { return queue_; }
  boost::asio::cancellation_signal& abort_signal() noexcept { return abort_signal_; }
  std::atomic<task_start_state>& start_state() noexcept { return start_state_; }
  std::atomic<bool>& abort_requested() noexcept { return abort_requested_; }

  // The first poll's claim to run the task. False when an abort got there first: nothing
  // may run, and the harness cancels the task when the poll ends. acq_rel: orders against
  // abort's CAS on the same word (one of the two wins).
  bool try_start() noexcept {
    task_start_state expected = task_start_state::not_started;
    return start_state_.compare_exchange_strong(expected, task_start_state::started,
                                                std::memory_order_acq_rel);
  }

  // The scheduler concept.
  void schedule(notified<task_sched> n) {
    core_->scheduler().schedule_task(multi_thread::notified_task(std::move(n).into_raw()), false);
  }
  void yield_now(notified<task_sched> n) {
    core_->scheduler().schedule_task(multi_thread::notified_task(std::move(n).into_raw()), true);
  }
  task<task_sched> release(raw_task t) {
    return task<task_sched>(core_->scheduler().owned().remove(t).release());
  }
  void unhandled_exception(std::exception_ptr e) {
    multi_thread::handle_ref{&core_->scheduler()}.unhandled_exception(e);
  }

  static task_sched& of(header* h) noexcept { return get_scheduler<task_sched>(h); }

  // The harness's hook for an outcome nobody will read: a task that threw is logged for
  // dump() (a cancellation is not: whoever aborted knows).
  template <class V>
  void unobserved_output(header* h, const outcome<task_output<V>>& o) {
    if (o.has_value()) {
      if (o.value().error && !o.value().abort_requested)
        record_unobserved_failure(h, o.value().error);
    } else if (std::exception_ptr e = o.error().try_panic()) {
      record_unobserved_failure(h, e);
    }
  }
  SWARM_DECL void record_unobserved_failure(header* h, const std::exception_ptr& e);

  // Abort through the harness (abort_handle, raw join handles).
  SWARM_DECL static void abort(header* h);

private:
  context_core* core_;
  serial_queue queue_;
  boost::asio::cancellation_signal abort_signal_;
  std::atomic<task_start_state> start_state_{task_start_state::not_started};
  std::atomic<bool> abort_requested_{false};
};

// Runs the queued handlers of a completed (or never started) task, outside any task poll,
// as a strand would. Holds one task reference. A task that never started has its handlers
// destroyed unrun instead: its coroutine must never run.
SWARM_DECL void post_strand_drain(header* h);

// Emits `type` on co_spawn's slot from inside the task (serialised with its coroutine);
// nothing happens if the coroutine is already done. Used for partial and total
// cancellation forwarded from a slot bound to the spawn token.
SWARM_DECL void forward_cancellation(header* h, boost::asio::cancellation_type type);

// Pushes `op` to the task's queue and makes sure someone drains it.
inline void submit_to_task(header* h, serial_op* op) {
  switch (task_sched::of(h).queue().push(op)) {
  case serial_queue::push_result::queued:
    break;
  case serial_queue::push_result::wake_task:
    raw_task(h).wake_by_ref();
    break;
  case serial_queue::push_result::post_drainer:
    h->state.ref_inc(); // for the drain job
    post_strand_drain(h);
    break;
  }
}

// What a poll's drain of the task's queue left, and how the poll hands it on.
struct queue_drain : serial_queue::drained {
  // The future is not done: account for what ran. Whatever a push adds after that wakes
  // the task again.
  void settle(serial_queue& q) noexcept {
    if (!released && ran != 0)
      q.release(ran);
  }

  // The future is done: hand the queue to strand mode while we still hold the
  // responsibility, then account for what ran; whatever is left is owed a drainer. Also
  // frees what sits in the abort slot (co_spawn's proxy, or the last operation's
  // cancellation handler): it may hold an executor, so a reference to this task.
  void finish(header* h) {
    task_sched& s = task_sched::of(h);
    s.abort_signal().slot().clear();
    // After the switch no poll drains again, so a non-zero count is ours to hand on: held
    // as the drainer (ran != 0), or left by a task-mode pusher whose wake found us polling.
    const std::size_t pending = s.queue().to_strand_mode();
    if (ran != 0 ? !s.queue().release(ran) : pending != 0) {
      h->state.ref_inc();
      post_strand_drain(h);
    }
  }
};

// The future of a task is dropped before it finished (aborted before start, or shutdown),
// by the harness, which holds `running`: no drain runs. From now on nothing queued on the
// task runs; it is destroyed unrun. No poll will drain the queue again: a pending count
// means a drainer is owed, and the responsibility is ours.
inline void drop_unfinished(header* h) {
  task_sched& s = task_sched::of(h);
  s.start_state().store(task_start_state::dropped, std::memory_order_release);
  if (s.queue().to_strand_mode() != 0) {
    h->state.ref_inc();
    post_strand_drain(h);
  }
}

// Runs the handlers queued on a task, inside its poll, until `done()` (checked after each
// handler), the queue is empty and released, yield_now() asked to stop, or the coop budget
// ran out (the task is then woken to come back after other work). Shared by every future
// that drains a task's queue.
template <class Done>
queue_drain drain_in_poll(task_sched& s, drain_scope& scope, poll_context& cx, Done done) {
  serial_queue& q = s.queue();
  if (done())
    return {};
  // yield_now(): run again only after the worker has polled the driver (Tokio's defer),
  // behind the other runnable tasks. Its continuation waits in the queue or in the future.
  if (scope.yield_requested) {
    s.core()->scheduler().defer(cx.get_waker());
    return {};
  }
  // Nothing counted: nothing to drain and no responsibility held (a push from now on wakes
  // the task). Most polls of a coro task end here, without the exchange of next().
  if (q.pending() == 0)
    return {};
  struct poll_hooks {
    task_sched& s;
    drain_scope& scope;
    poll_context& cx;
    Done& done;

    bool stop() {
      if (done())
        return true;
      if (scope.yield_requested) {
        s.core()->scheduler().defer(cx.get_waker());
        return true;
      }
      if (!coop::current().decrement()) {
        // Out of budget: keep the responsibility and come back after other work.
        cx.get_waker().wake_by_ref();
        return true;
      }
      return false;
    }
    // Counted but not linked yet: a pusher is mid-push. Come back shortly.
    bool mid_push() {
      cx.get_waker().wake_by_ref();
      return false;
    }
    // A handler threw out of the task (the task panics). If ops are left, the future's
    // destructor finds them pending and owes them a drainer.
    static void thrown(bool) noexcept {}
  };
  return {q.drain(true, poll_hooks{s, scope, cx, done})};
}

template <class T>
class task_future {
public:
  using output_type = task_output<T>;

  // A live task is outstanding work.
  explicit task_future(context_core* core) noexcept : core_(core) { core_->work_started(); }
  task_future(task_future&& o) noexcept : core_(std::exchange(o.core_, nullptr)), h_(o.h_) {}
  task_future& operator=(task_future&&) = delete;

  ~task_future() {
    if (!core_)
      return;
    // Dropped before the coroutine delivered (aborted before start, or shutdown): its
    // frames go with what is queued. co_spawn's cancellation proxy stays until then (the
    // frames point into it): spawn_completion frees it when the entry frame goes.
    if (h_ && !done_)
      drop_unfinished(h_);
    core_->work_finished();
  }

  void attach(header* h) noexcept { h_ = h; }

  // The co_spawn completion: called inside our own drain.
  void deliver(std::exception_ptr e, T&& v) {
    out_.error = std::move(e);
    out_.value = std::move(v);
    done_ = true;
  }

  // Drains the handler queue under `running`. Per poll; hot.
  std::optional<task_output<T>> poll(poll_context& cx) {
    task_sched& s = task_sched::of(h_);
    if (!started_) {
      if (!s.try_start())
        return std::nullopt; // aborted before it started: the harness cancels it
      started_ = true;
    }
    queue_drain d;
    {
      drain_scope scope(&s.queue(), this);
      d = drain_in_poll(s, scope, cx, [this] { return done_; });
    }
    if (!done_) {
      d.settle(s.queue());
      // The coroutine is suspended in an Asio operation (a join's wait noted itself).
      note_current_wait_if_unknown(wait_kind::asio_operation);
      return std::nullopt;
    }
    d.finish(h_);
    out_.abort_requested = s.abort_requested().load(std::memory_order_acquire);
    return std::move(out_);
  }

private:
  context_core* core_;
  header* h_ = nullptr;
  task_output<T> out_;
  bool done_ = false;
  bool started_ = false;
};

// The completion handler given to co_spawn: runs on the task's executor, inside the task's
// drain, and hands the result to the future.
template <class T>
struct spawn_completion;

} // namespace swarm::detail
