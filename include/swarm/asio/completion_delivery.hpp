// Cancel-safe completion delivery, shared by join_handle and join_set: how the handler of a
// join wait gets its completion, once, on its own executor, even when the runtime or that
// executor drops the work that carries it.
//
// Guarantees:
//   - Exactly once, delivered or destroyed. A completion travels as a step: a movable
//     callable with executor(). delivery_job(step) is a must_run_job: run by the runtime,
//     or destroyed unrun by a runtime that shuts down, it dispatches the step to
//     step.executor() exactly once. There the step runs and invokes its handler at most
//     once; destroyed unrun (that executor was stopped or destroyed), it runs its own
//     fallback (join_set: the result goes back to the set; join_handle: the handler is
//     destroyed then, not left in the waiter, whose handle the awaiting coroutine's frame
//     may own). So a handler is invoked exactly once unless its own executor drops it, and
//     then destroyed.
//   - Which executor: the handler's associated executor or, for a handler with no executor
//     of its own, the runtime's (handler_executor), as an Asio I/O object does. Never
//     inline in the initiating call, a waker or a cancellation emitter: always through a
//     runtime job (or a job queued on the awaiting swarm task).
//   - Cancellation slot: cleared on the handler's executor, the one the emitter runs on,
//     just before the handler is invoked (invoke_join_handler); the cancellation handler
//     installed there is destroyed then.
//   - References: the state behind the waits is a shared_completion_state, an intrusive
//     count. The owner (the handle or set), each join waker clone registered in a task,
//     each step on its way and each cancellation handler in a wait's slot holds one,
//     through counted_ref; the last one deletes the state.
//   - Thread safety and orderings: references are taken and given back on any thread.
//     ref() is relaxed: a new reference is made from one already held, which keeps the
//     object alive and orders nothing. unref() is acq_rel: the last owner sees every other
//     owner's writes before deleting. Everything else is the owning state's (its mutex).
#pragma once

#include <swarm/asio/context_core.hpp>
#include <swarm/asio/must_run_job.hpp>
#include <swarm/asio/runtime_executor.hpp>
#include <swarm/task/core.hpp>
#include <swarm/task/waker.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>

#include <atomic>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>

namespace swarm::detail {

// What a task of T stores (unit for void) and the signature of its join completion.
template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, unit, T>;
template <class T>
struct join_signature_of {
  using type = void(std::exception_ptr, T);
};
template <>
struct join_signature_of<void> {
  using type = void(std::exception_ptr);
};
template <class T>
using join_signature = typename join_signature_of<T>::type;
template <class T>
using join_handler = boost::asio::any_completion_handler<join_signature<T>>;

// Where a handler completes: its associated executor, or the runtime's if it has none.
template <class Handler>
auto handler_executor(const Handler& h, context_core* core) {
  return boost::asio::get_associated_executor(h, runtime_executor<std::allocator<void>, 0>(core));
}

// On the handler's executor: clears its cancellation slot (safe there: the emitter runs on
// that executor too), then invokes it with (e) or (e, v).
template <class T>
void invoke_join_handler(join_handler<T> h, std::exception_ptr e, stored_t<T> v) {
  boost::asio::get_associated_cancellation_slot(h).clear();
  if constexpr (std::is_void_v<T>)
    std::move(h)(std::move(e));
  else
    std::move(h)(std::move(e), std::move(v));
}

// The runtime job that carries a step to its executor; runs even when dropped.
template <class Step>
auto delivery_job(Step step) {
  return must_run_job([s = std::move(step)]() mutable {
    auto ex = s.executor();
    boost::asio::dispatch(ex, std::move(s));
  });
}

// A completion that decides nothing (an error): destroyed unrun, the handler goes with it.
template <class T>
struct error_completion {
  context_core* core;
  join_handler<T> h;
  std::exception_ptr e;

  auto executor() const { return handler_executor(h, core); }
  void operator()() { invoke_join_handler<T>(std::move(h), std::move(e), stored_t<T>{}); }
};

// Completes `h` with `e` through the runtime, then on the handler's executor.
template <class T>
void post_error_completion(context_core* core, join_handler<T> h, std::exception_ptr e) {
  core->post_job(delivery_job(error_completion<T>{core, std::move(h), std::move(e)}), false);
}

// The intrusive reference count of a state shared with wakers, steps and cancellation
// handlers (orderings: see the top of this file). Derived starts with one reference.
// Its join waker (borrowed_waker()) holds one reference per clone and calls
// Derived::on_wake() on a wake; Derived befriends this class if on_wake is private.
template <class Derived>
class shared_completion_state {
public:
  void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1)
      delete static_cast<Derived*>(this);
  }

  // A borrowed waker pointing at us (the task clones it to keep it): forget() it after use.
  waker borrowed_waker() noexcept { return waker(static_cast<Derived*>(this), vtable()); }

protected:
  shared_completion_state() = default;
  ~shared_completion_state() = default;

private:
  static const waker_vtable* vtable() noexcept {
    static constexpr waker_vtable v{&w_clone, &w_wake, &w_wake_by_ref, &w_drop};
    return &v;
  }
  static void* w_clone(void* p) noexcept {
    static_cast<Derived*>(p)->ref();
    return p;
  }
  static void w_wake(void* p) {
    struct release {
      Derived* d;
      ~release() { d->unref(); } // also when on_wake throws
    } guard{static_cast<Derived*>(p)};
    guard.d->on_wake();
  }
  static void w_wake_by_ref(void* p) { static_cast<Derived*>(p)->on_wake(); }
  static void w_drop(void* p) noexcept { static_cast<Derived*>(p)->unref(); }

  std::atomic<std::size_t> refs_{1};
};

// One counted reference to a shared_completion_state, given back when destroyed.
template <class State>
class counted_ref {
public:
  counted_ref() noexcept = default;
  // Takes over a reference the caller holds.
  static counted_ref adopt(State* s) noexcept { return counted_ref(s); }
  // Takes a new reference.
  static counted_ref share(State* s) noexcept {
    s->ref();
    return counted_ref(s);
  }
  counted_ref(counted_ref&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  counted_ref& operator=(counted_ref&&) = delete;
  ~counted_ref() {
    if (s_)
      s_->unref();
  }

  State* get() const noexcept { return s_; }
  State* operator->() const noexcept { return s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }
  // Hands the reference to the caller.
  State* release() noexcept { return std::exchange(s_, nullptr); }

private:
  explicit counted_ref(State* s) noexcept : s_(s) {}
  State* s_ = nullptr;
};

} // namespace swarm::detail
