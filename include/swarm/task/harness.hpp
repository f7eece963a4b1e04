// The task harness: every flow that moves a task through its life (poll, cancel, complete,
// shutdown, dealloc, join-handle read and drop), written over the state transitions of
// state.hpp. Each flow says which references it consumes; the comments at the delicate
// spots say which bit or reference makes the access safe.
//
// A scheduler type S, stored by value in each cell, connects tasks to a runtime:
//   s.schedule(notified<S>)        make the task runnable (any thread)
//   s.yield_now(notified<S>)       as schedule, behind other runnable work
//   s.release(raw_task) -> task<S> unlink from the owner list, handing back its reference
//                                  (empty if the task is in no list, or already unlinked)
//   s.unhandled_exception(std::exception_ptr)  an exception escaped a task or its output
#pragma once

#include <swarm/task/core.hpp>
#include <swarm/task/join_waker.hpp>
#include <swarm/task/raw_task.hpp>
#include <swarm/task/task.hpp>
#include <swarm/task/tracking.hpp>

#include <concepts>
#include <exception>
#include <optional>

namespace swarm::detail {

template <class S>
concept task_scheduler = std::move_constructible<S> && requires(S& s, notified<S> n, raw_task t, std::exception_ptr e) {
  s.schedule(std::move(n));
  s.yield_now(std::move(n));
  { s.release(t) } -> std::same_as<task<S>>;
  s.unhandled_exception(e);
};

template <future F, class S>
class harness {
public:
  using cell_type = cell<F, S>;
  using output_type = typename F::output_type;
  // What try_read_output writes through its type-erased destination.
  using read_slot = maybe<outcome<output_type>>;

  static const struct vtable vtable;

  // Consumes one reference (the notified's).
  static void poll(header* h) {
    switch (poll_inner(h)) {
    case poll_action::notified:
      // transition_to_idle minted a reference for a new notified: the task woke itself
      // while running, so it goes behind other work.
      cell_type::scheduler(h).yield_now(notified<S>(h));
      // The poll's own reference, released only after yield_now returned.
      raw_task(h).drop_reference();
      break;
    case poll_action::complete:
      complete(h);
      break;
    case poll_action::dealloc:
      dealloc(h);
      break;
    case poll_action::done:
      break;
    }
  }

  // Consumes one reference. Cancels the task if idle; if it is running or complete, only
  // flags it cancelled (the poller cancels when its poll ends).
  static void shutdown(header* h) {
    if (!h->state.transition_to_shutdown()) {
      raw_task(h).drop_reference();
      return;
    }
    // We hold `running`: the stage is ours.
    cancel_task(h);
    complete(h);
  }

  static void schedule(header* h) { cell_type::scheduler(h).schedule(notified<S>(h)); }

  static void dealloc(header* h) noexcept { cell_type::destroy(h); }

  // The join handle's poll. `dst` points to a read_slot; it is filled when the output is
  // ready, otherwise `w` is registered to be woken at completion.
  static void try_read_output(header* h, void* dst, const waker& w) {
    if (can_read_output(h, cell_type::trailer_of(h), w)) {
      // complete is set and the join handle owns the stage.
      static_cast<read_slot*>(dst)->emplace(cell_type::stage_of(h).take());
    }
  }

  static void drop_join_handle_slow(header* h) noexcept {
    // First, because the task may complete concurrently.
    const join_handle_dropped t = h->state.transition_to_join_handle_dropped();
    if (t.drop_output) {
      // complete is set and we own the stage. Destroyed here, not at dealloc, because the
      // last reference may drop on any thread. Whoever drops a handle does not care for the
      // output's exception.
      current_task_id_guard guard(cell_type::id(h));
      try {
        cell_type::stage_of(h).drop();
      } catch (...) {
        count_swallowed_exception(); // as Tokio ignores a panic while dropping the output
      }
    }
    if (t.drop_waker) {
      // Either the task is not complete and we just cleared join_waker, or it completed
      // and the runtime already handed the slot back: exclusive access either way.
      cell_type::trailer_of(h).join_waker.reset();
    }
    raw_task(h).drop_reference();
  }

  static void drop_abort_handle(header* h) noexcept { raw_task(h).drop_reference(); }

  // Tokio's abort (remote_abort), unless the scheduler type defines its own (a runtime
  // whose tasks are cancelled cooperatively once started).
  static void abort(header* h) {
    if constexpr (requires { S::abort(h); })
      S::abort(h);
    else
      raw_task(h).remote_abort();
  }

private:
  enum class poll_action { done, notified, complete, dealloc };

  static poll_action poll_inner(header* h) {
    switch (h->state.transition_to_running()) {
    case to_running::success: {
      task_waker::borrowed w(h);
      poll_context cx(w.get());
      if (poll_future(h, cx))
        return poll_action::complete; // still holding the poll's reference
      switch (h->state.transition_to_idle()) {
      case to_idle::ok:
        return poll_action::done;
      case to_idle::ok_notified:
        return poll_action::notified;
      case to_idle::ok_dealloc:
        return poll_action::dealloc;
      case to_idle::cancelled:
        // Aborted while we polled; we still hold `running`.
        cancel_task(h);
        return poll_action::complete;
      }
      break;
    }
    case to_running::cancelled:
      // Aborted before this poll: the future never runs again.
      cancel_task(h);
      return poll_action::complete;
    case to_running::failed:
      return poll_action::done;
    case to_running::dealloc:
      return poll_action::dealloc;
    }
    return poll_action::done; // unreachable
  }

  // Polls the future once under `running`. Returns true when the task finished and its
  // outcome is stored; the future is then already destroyed.
  static bool poll_future(header* h, poll_context& cx) {
    stage<F>& st = cell_type::stage_of(h);
    task_identity& ident = cell_type::identity(h);
    const task_id id = ident.id;
    maybe<outcome<output_type>> out;
    {
      current_task_id_guard guard(id);
      // An untracked task reads no clock.
      poll_tracking_scope tracking(ident.extra);
      try {
        std::optional<output_type> r = st.future().poll(cx);
        if (!r) {
          tracking.pending();
          return false;
        }
        out.emplace(std::move(*r));
        // Destroyed now, with the id installed: a destructor that throws turns the value
        // into a panic, as it would in Tokio.
        st.drop();
      } catch (...) {
        // The poll threw (Tokio's panic): the join handle reports it, the policy sees it.
        std::exception_ptr e = std::current_exception();
        drop_after_panic(st);
        discard(out);
        out.emplace(join_error::panic(id, e));
        cell_type::scheduler(h).unhandled_exception(e);
      }
    }
    store(h, std::move(*out));
    return true;
  }

  // Caller holds `running`. Destroys the future (or output) and stores the cancellation;
  // a destructor that throws turns it into a panic.
  static void cancel_task(header* h) {
    stage<F>& st = cell_type::stage_of(h);
    const task_id id = cell_type::id(h);
    maybe<outcome<output_type>> out;
    {
      current_task_id_guard guard(id);
      try {
        st.drop();
        out.emplace(join_error::cancelled(id));
      } catch (...) {
        // Cancelling threw: the join handle reports a panic instead of the cancellation.
        out.emplace(join_error::panic(id, std::current_exception()));
      }
    }
    store(h, std::move(*out));
  }

  // Caller holds `running` and one reference, which this consumes.
  static void complete(header* h) {
    const snapshot s = h->state.transition_to_complete();
    const task_id id = cell_type::id(h);
    trailer& tr = cell_type::trailer_of(h);
    if (!s.is_join_interested()) {
      // Nobody will read the output. The join handle dropped the join waker when it went.
      // A scheduler that keeps the failures nobody sees (dump()) looks at it first.
      if constexpr (requires(S & sc, const outcome<output_type>& o) { sc.unobserved_output(h, o); }) {
        if (const outcome<output_type>* o = cell_type::stage_of(h).finished_output()) {
          try {
            cell_type::scheduler(h).unobserved_output(h, *o);
          } catch (...) {
            count_swallowed_exception(); // recording is best effort; the task still terminates
          }
        }
      }
      current_task_id_guard guard(id);
      try {
        cell_type::stage_of(h).drop();
      } catch (...) {
        count_swallowed_exception(); // as Tokio ignores a panic while dropping the output
      }
    } else if (s.is_join_waker_set()) {
      // complete and join_waker both set: the runtime may read the slot.
      try {
        tr.join_waker.wake_by_ref();
      } catch (...) {
        // A waker that throws must not stop the task from terminating and being released.
        count_swallowed_exception();
      }
      // Hand the slot back. If the handle went meanwhile, the slot is ours to clear.
      if (!h->state.unset_waker_after_complete().is_join_interested())
        tr.join_waker.reset();
    }
    if (tr.on_terminate) {
      try {
        (*tr.on_terminate)(task_meta{id, cell_type::identity(h).location});
      } catch (...) {
        count_swallowed_exception(); // hooks.hpp: a hook's exception is swallowed
      }
      poll_sampler::restart(); // user code ran between two polls
    }
    // The owner list hands back its reference, if it still held it.
    task<S> owned = cell_type::scheduler(h).release(raw_task(h));
    const std::uintptr_t count = owned ? 2 : 1;
    owned.release(); // accounted for in `count`
    if (h->state.transition_to_terminal(count))
      dealloc(h);
  }

  // After a poll threw: make sure the future is gone. A second exception from its
  // destructor is dropped; the first one is what the join handle reports.
  static void drop_after_panic(stage<F>& st) noexcept {
    if (st.current() == stage<F>::tag::running) {
      try {
        st.drop();
      } catch (...) {
        // The first exception is the one reported (Tokio aborts on a double panic).
        count_swallowed_exception();
      }
    }
  }

  static void discard(maybe<outcome<output_type>>& out) noexcept {
    try {
      out.reset();
    } catch (...) {
      // The first exception is the one reported (Tokio aborts on a double panic).
      count_swallowed_exception();
    }
  }

  static void store(header* h, outcome<output_type>&& o) {
    try {
      cell_type::stage_of(h).store(std::move(o));
    } catch (...) {
      // The output could not be moved in: the join handle then sees a panic.
      cell_type::stage_of(h).store(join_error::panic(cell_type::id(h), std::current_exception()));
      cell_type::scheduler(h).unhandled_exception(std::current_exception());
    }
  }
};

template <future F, class S>
const struct vtable harness<F, S>::vtable = {
    &harness::poll,
    &harness::schedule,
    &harness::dealloc,
    &harness::try_read_output,
    &harness::drop_join_handle_slow,
    &harness::drop_abort_handle,
    &harness::shutdown,
    &harness::abort,
    cell_layout<F, S>::trailer_offset,
    cell_layout<F, S>::scheduler_offset,
    cell_layout<F, S>::id_offset,
};

} // namespace swarm::detail
