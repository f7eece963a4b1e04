#include <swarm/asio/task.hpp>

#include <boost/asio/cancellation_type.hpp>

#include <exception>
#include <thread>
#include <utility>

namespace swarm::detail {

drain_scope*& drain_scope::current() noexcept {
  thread_local drain_scope* scope = nullptr;
  return scope;
}

namespace {

// Destroys, unrun, everything queued on a task, including what those destructions queue,
// then gives up the caller's reference. The caller holds the drain responsibility, and
// cannot hand it on (nothing may be posted any more): it drains until the count is zero.
void destroy_queued(header* task) noexcept {
  struct destroy_hooks {
    static bool stop() noexcept { return false; }
    // Counted but not linked yet: a pusher is mid-push.
    static bool mid_push() noexcept {
      std::this_thread::yield();
      return true;
    }
    static void thrown(bool) noexcept {} // then terminate: a destruction that throws leaves noexcept
  };
  task_sched::of(task).queue().drain(false, destroy_hooks{});
  raw_task(task).drop_reference();
}

// Drains a task's queue in strand mode, as a runtime job holding one task reference.
struct strand_drain {
  header* h;

  strand_drain(header* task) noexcept : h(task) {}
  strand_drain(strand_drain&& o) noexcept : h(std::exchange(o.h, nullptr)) {}
  ~strand_drain() {
    // Dropped unrun (the runtime shuts down). What is queued cannot wait for the cell's
    // destructor: queued handlers often hold the task's executor, so a reference to this
    // very cell (awaitable frames whose pending operations the reactor abandoned, an
    // abort's emission), and the cell would never be freed. Destroy them now.
    if (h)
      destroy_queued(std::exchange(h, nullptr));
  }

  void operator()() {
    header* task = std::exchange(h, nullptr);
    task_sched& s = task_sched::of(task);
    serial_queue& q = s.queue();
    // A task that never started must never run its coroutine: destroy its handlers unrun.
    const bool run = s.start_state().load(std::memory_order_acquire) == task_start_state::started;
    struct strand_hooks {
      header* task;
      // Out of budget: continue later, behind other work.
      static bool stop() { return !coop::current().decrement(); }
      // A pusher is mid-push: come back (a later job finds it linked).
      static bool mid_push() noexcept { return false; }
      // The exception leaves the job (run() rethrows it, as io_context does). Hand on what
      // is left with our reference.
      void thrown(bool released) {
        if (released)
          raw_task(task).drop_reference();
        else
          post_strand_drain(task);
      }
    };
    serial_queue::drained d;
    {
      drain_scope scope(&q, nullptr);
      d = q.drain(run, strand_hooks{task});
    }
    if (!d.released && !(d.ran != 0 && q.release(d.ran))) {
      // Still responsible: continue later, behind other work (the reference moves on).
      post_strand_drain(task);
      return;
    }
    raw_task(task).drop_reference();
  }
};

// Emits cancellation into a started task, from inside it.
struct emit_abort {
  header* h;
  boost::asio::cancellation_type type;
  emit_abort(header* task, boost::asio::cancellation_type t) noexcept : h(task), type(t) {}
  emit_abort(emit_abort&& o) noexcept : h(std::exchange(o.h, nullptr)), type(o.type) {}
  ~emit_abort() {
    if (h)
      raw_task(h).drop_reference();
  }
  void operator()() {
    header* task = std::exchange(h, nullptr);
    const drain_scope* d = drain_scope::current();
    // Only into a live coroutine (a task poll); after completion there is nothing to cancel.
    if (d && d->future)
      task_sched::of(task).abort_signal().emit(type);
    raw_task(task).drop_reference();
  }
};

} // namespace

void post_strand_drain(header* h) { task_sched::of(h).core()->post_job(strand_drain(h), false); }

void abort_asio_task(header* h) {
  // A finished task has nothing to abort; a handle that outlived its runtime (whose
  // shutdown finished every task) must not reach the runtime through it.
  if (h->state.load().is_complete())
    return;
  task_sched& s = task_sched::of(h);
  if (s.abort_requested().exchange(true, std::memory_order_acq_rel))
    return; // idempotent
  task_start_state expected = task_start_state::not_started;
  if (s.start_state().compare_exchange_strong(expected, task_start_state::aborted_before_start,
                                              std::memory_order_acq_rel)) {
    // Tokio's rule: a task aborted before its first poll never runs.
    raw_task(h).remote_abort();
    return;
  }
  // Started: deliver terminal cancellation at its current await, serialised with it. The
  // op holds a reference, so the task state outlives the emission (Asio 1.81's co_spawn
  // cancellation proxy must not be freed under it).
  forward_cancellation(h, boost::asio::cancellation_type::terminal);
}

void forward_cancellation(header* h, boost::asio::cancellation_type type) {
  h->state.ref_inc(); // held by the op
  submit_to_task(h, serial_op_impl<emit_abort>::create(emit_abort(h, type)));
}

void task_sched::abort(header* h) { abort_asio_task(h); }

void task_sched::record_unobserved_failure(header* h, const std::exception_ptr& e) {
  const task_identity& ident = identity_of(h);
  unobserved_failure f;
  f.id = ident.id;
  if (const task_extra* x = ident.extra.in_cell())
    f.name = x->name.view();
  f.spawn_file = ident.location.file_name();
  f.spawn_line = ident.location.line();
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    f.what = x.what();
  } catch (...) {
    f.what = "an exception not derived from std::exception";
  }
  core_->scheduler().unobserved_failures().record(std::move(f));
}

} // namespace swarm::detail
