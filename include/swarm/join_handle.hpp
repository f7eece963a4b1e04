// join_handle<T>: the right to await a task's value with any Asio completion token, and to
// abort it. Move-only; destroying it detaches the task (it keeps running) and completes a
// wait still pending with operation_aborted.
#pragma once

#include <swarm/asio/boost_shim.hpp>
#include <swarm/asio/completion_delivery.hpp>
#include <swarm/asio/exclusive_use.hpp>
#include <swarm/asio/task.hpp>
#include <swarm/asio/task_executor.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/runtime.hpp>
#include <swarm/task/abort.hpp>
#include <swarm/task/join.hpp>
#include <swarm/task/join_error.hpp>
#include <swarm/task/tracking.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace swarm {

template <class T>
class join_handle;

namespace detail {

// What swarm::coro's join await uses of a join_handle: Tokio's JoinHandle poll.
struct join_handle_access {
  // False once the handle was waited on with async_wait (a join_waiter owns the task).
  template <class T>
  static bool pollable(const join_handle<T>& h) noexcept;
  // The (exception, value) pair if the task completed; otherwise registers `w`.
  template <class T>
  static auto poll(join_handle<T>& h, const waker& w);
};

// The initiation of join_handle<T>::async_wait. A named type, so that swarm::coro can tell
// `co_await h.async_wait(use_coro)` from other operations and poll the handle as it polls
// `co_await h` (coro.hpp), with no handler.
template <class T>
class join_wait_initiation {
public:
  explicit join_wait_initiation(join_handle<T>& h) noexcept : handle_(&h) {}

  join_handle<T>& handle() const noexcept { return *handle_; }

  template <class Handler>
  void operator()(Handler&& handler) const {
    handle_->start_wait(std::forward<Handler>(handler));
  }

private:
  join_handle<T>* handle_;
};

// Aborts an Asio task: before it started, Tokio's way (it never runs); after, by emitting
// terminal cancellation on co_spawn's slot from inside the task. Idempotent.
SWARM_DECL void abort_asio_task(header* h);

// Turns what a task produced into the (exception, value) pair of a join completion.
template <class V>
std::pair<std::exception_ptr, V> join_result(task_id id, outcome<task_output<V>>&& o) {
  if (!o.has_value())
    return {std::make_exception_ptr(o.error()), V{}};
  task_output<V>& out = o.value();
  if (!out.error)
    return {nullptr, std::move(out.value)};
  if (out.abort_requested)
    return {std::make_exception_ptr(join_error::cancelled(id)), V{}};
  return {std::make_exception_ptr(join_error::panic(id, out.error)), V{}};
}

// The state behind a join handle's waits, created at the first wait. It owns the raw join
// handle from then on; the handle, registered wakers, deliveries on their way and
// cancellation handlers hold references (completion_delivery.hpp).
template <class T>
class join_waiter : public shared_completion_state<join_waiter<T>> {
  using V = stored_t<T>;
  friend class shared_completion_state<join_waiter>;

public:
  using handler_type = join_handler<T>;

  join_waiter(detail::context_core* core, raw_join_handle<task_output<V>> raw)
      : core_(core), raw_(std::move(raw)), id_(raw_.id()) {}
  // The last reference: a handler still held (a delivery dropped unrun at shutdown) is
  // destroyed with us, and its unit of work with it.
  ~join_waiter() {
    if (holds_work_)
      core_->work_finished();
  }

  raw_join_handle<task_output<V>>& raw() noexcept { return raw_; }
  task_id id() const noexcept { return id_; }

  // A new wait. An earlier wait still pending, or whose value is on its way but not yet
  // handed over, completes with operation_aborted and the value stays for this one.
  void start_wait(handler_type h) {
    std::unique_lock lock(mutex_);
    std::optional<handler_type> old = take_pending();
    if (inflight_gen_ != 0)
      inflight_cancelled_ = true;
    if (taken_ || (!raw_ && !stash_)) {
      const bool release = release_work_locked();
      lock.unlock();
      if (old)
        post_error(std::move(*old), boost::asio::error::operation_aborted);
      post_exception(std::move(h),
                     std::make_exception_ptr(std::logic_error(
                         "swarm::join_handle: the task's value was already delivered to an earlier wait")));
      if (release)
        core_->work_finished();
      return;
    }
    const std::uint64_t gen = ++next_gen_;
    boost::asio::cancellation_slot slot = boost::asio::get_associated_cancellation_slot(h);
    pending_.emplace(std::move(h));
    pending_gen_ = gen;
    hold_work_locked();
    if (slot.is_connected())
      slot.template emplace<cancel_wait>(counted_ref<join_waiter>::share(this), gen);
    if (!stash_)
      read_outcome(); // registers the join waker if not ready yet
    const bool send = prepare_delivery();
    lock.unlock();
    if (old)
      post_error(std::move(*old), boost::asio::error::operation_aborted);
    if (send)
      send_delivery();
  }

  // The handle went away: a wait pending or in flight ends with operation_aborted; the raw
  // handle is dropped (detaching the task). Called with the handle's reference held.
  void detach() {
    std::unique_lock lock(mutex_);
    std::optional<handler_type> old = take_pending();
    if (inflight_gen_ != 0)
      inflight_cancelled_ = true;
    detached_ = true;
    raw_join_handle<task_output<V>> raw = std::move(raw_);
    const bool release = release_work_locked();
    lock.unlock();
    if (old)
      post_error(std::move(*old), boost::asio::error::operation_aborted);
    if (release)
      core_->work_finished();
  }

private:
  // Installed in a wait's cancellation slot: cancels that wait only; the task runs on and
  // its value stays for the next wait.
  struct cancel_wait {
    counted_ref<join_waiter> w;
    std::uint64_t gen;
    cancel_wait(counted_ref<join_waiter> ww, std::uint64_t g) noexcept : w(std::move(ww)), gen(g) {}
    void operator()(boost::asio::cancellation_type) {
      std::unique_lock lock(w->mutex_);
      if (w->pending_ && w->pending_gen_ == gen) {
        std::optional<handler_type> h = w->take_pending();
        const bool release = w->release_work_locked();
        lock.unlock();
        // Completed by posting, never inline in the emitter (|| emits while its group is
        // completing).
        w->post_error(std::move(*h), boost::asio::error::operation_aborted);
        if (release)
          w->core_->work_finished();
      } else if (w->inflight_gen_ == gen) {
        w->inflight_cancelled_ = true; // decided on the handler's executor
      }
    }
  };

  // A wait is outstanding work, as an Asio operation is (its handler's work guard): while
  // a handler is pending or on its way here, run() does not return. Under mutex_.
  void hold_work_locked() {
    if (!holds_work_) {
      holds_work_ = true;
      core_->work_started();
    }
  }
  // Under mutex_: true when no wait is left, and the caller must call work_finished()
  // once it has unlocked and posted what it completes (a posted job is work itself).
  [[nodiscard]] bool release_work_locked() {
    if (!holds_work_ || pending_ || inflight_handler_)
      return false;
    holds_work_ = false;
    return true;
  }

  std::optional<handler_type> take_pending() {
    std::optional<handler_type> h = std::move(pending_);
    pending_.reset();
    return h;
  }

  // Under mutex_: moves the task's outcome into stash_ if it is ready.
  void read_outcome() {
    if (!raw_ || stash_)
      return;
    maybe<outcome<task_output<V>>> out = poll_raw();
    if (out)
      stash_.emplace(join_result<V>(id_, std::move(*out)));
  }

  // Under mutex_: if a value is stashed and a wait is pending (and none in flight), makes
  // that wait the one in flight and returns true: the caller then calls send_delivery()
  // after unlocking. Whether the wait still wants the value is decided on the handler's
  // own executor (serialised with whoever could cancel it), in decide().
  [[nodiscard]] bool prepare_delivery() {
    if (!stash_ || !pending_ || inflight_gen_ != 0)
      return false;
    inflight_handler_.emplace(std::move(*pending_));
    pending_.reset();
    inflight_gen_ = pending_gen_;
    inflight_cancelled_ = false;
    this->ref(); // the delivery's, see decide_fn
    return true;
  }

  // Not under mutex_: a runtime that is shutting down drops the job inline, and the
  // dropped job goes on too. The job hops to the in-flight handler's executor (never from
  // the initiating call or a waker, where the handler could run inline), where decide()
  // runs: a wait must always complete.
  void send_delivery() {
    core_->post_job(delivery_job(decide_fn{counted_ref<join_waiter>::adopt(this)}), false);
  }

  // The step of a delivery: holds the reference taken by prepare_delivery. Dropped unrun
  // (the awaiting task or the runtime shut down), it destroys the in-flight handler.
  struct decide_fn {
    counted_ref<join_waiter> w;

    explicit decide_fn(counted_ref<join_waiter> r) noexcept : w(std::move(r)) {}
    decide_fn(decide_fn&&) noexcept = default;
    decide_fn& operator=(decide_fn&&) = delete;
    ~decide_fn() {
      if (w)
        w->drop_inflight();
    }

    boost::asio::any_completion_executor executor() const {
      std::lock_guard lock(w->mutex_);
      return handler_executor(*w->inflight_handler_, w->core_);
    }
    void operator()() {
      counted_ref<join_waiter> r = std::move(w); // given back also when the handler throws
      r->decide();
    }
  };

  // What ending the wait in flight leaves to do once the lock is released.
  struct ended_wait {
    explicit ended_wait(handler_type h) noexcept : handler(std::move(h)) {}

    handler_type handler;
    std::optional<std::pair<std::exception_ptr, V>> value; // empty: the wait gets none
    bool release = false;                                  // give back the waits' work unit
  };

  // Ends the wait in flight. It takes the stashed value unless it was cancelled meanwhile
  // or its delivery was dropped; then a newer wait, if any, is sent the value instead.
  ended_wait end_inflight(bool dropped) {
    std::unique_lock lock(mutex_);
    // Moved by construction: Boost 1.81's any_completion_handler move assignment wraps the
    // source in a new handler instead of taking it (it recursed without end here).
    ended_wait e(std::move(*inflight_handler_));
    inflight_handler_.reset();
    inflight_gen_ = 0;
    bool send = false;
    if (!dropped && !inflight_cancelled_) {
      e.value.emplace(std::move(*stash_));
      stash_.reset();
      taken_ = true;
    } else {
      send = !detached_ && prepare_delivery();
    }
    e.release = release_work_locked();
    lock.unlock();
    if (send)
      send_delivery();
    return e;
  }

  // A delivery dropped unrun: its handler goes now, not with the waiter. It may own the
  // awaiting coroutine (an Asio coroutine's frames belong to the handler it waits on), whose
  // frame owns the join handle and so this waiter: kept here, neither would ever be freed.
  // Destroyed outside the lock, since the handle's reset takes it.
  void drop_inflight() noexcept {
    ended_wait e = end_inflight(true);
    e.handler = nullptr; // destroyed before the work it stood for is given back
    if (e.release)
      core_->work_finished();
  }

  void decide() {
    ended_wait e = end_inflight(false);
    // The job running us is work until the handler returns.
    if (e.release)
      core_->work_finished();
    if (e.value)
      invoke_join_handler<T>(std::move(e.handler), std::move(e.value->first), std::move(e.value->second));
    else
      invoke_join_handler<T>(
          std::move(e.handler),
          std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)), V{});
  }

  // The join waker fired: the task completed, on this thread (its harness is on the
  // stack, so no handler may run here). A wait whose handler runs on a swarm task (a
  // coroutine awaiting the handle) gets its delivery queued on that task at once, as Tokio's
  // join waker wakes the awaiting task: one scheduling of the awaiter, no runtime job. Any
  // other handler gets a must-run job that hops to its executor.
  void on_wake() {
    std::unique_lock lock(mutex_);
    read_outcome();
    if (!prepare_delivery())
      return;
    // Keeps the awaiting task's cell alive until the delivery is queued on it.
    boost::asio::any_completion_executor ex = handler_executor(*inflight_handler_, core_);
    lock.unlock();
    const task_executor* awaiter = ex.template target<task_executor>();
    if (awaiter && awaiter->core() == core_)
      submit_to_task(awaiter->task_header(),
                     serial_op_impl<decide_fn>::create(decide_fn{counted_ref<join_waiter>::adopt(this)}));
    else
      send_delivery();
  }

  // Polls the raw handle with a borrowed join waker (the harness clones it to keep it).
  maybe<outcome<task_output<V>>> poll_raw() {
    waker w = this->borrowed_waker();
    struct forget {
      waker& w;
      ~forget() { w.forget(); }
    } guard{w};
    return raw_.poll(w);
  }

  // Completions that decide nothing (errors): through the runtime, then on the handler's
  // executor, where its slot is cleared and it is invoked. Never inline in the initiating
  // call or in an emitter.
  void post_exception(handler_type h, std::exception_ptr e) {
    post_error_completion<T>(core_, std::move(h), std::move(e));
  }
  void post_error(handler_type h, boost::system::error_code ec) {
    post_exception(std::move(h), std::make_exception_ptr(boost::system::system_error(ec)));
  }

  detail::context_core* core_;
  std::mutex mutex_;
  // All under mutex_.
  raw_join_handle<task_output<V>> raw_;
  std::optional<handler_type> pending_; // the wait not yet given a value
  std::uint64_t pending_gen_ = 0;
  std::uint64_t next_gen_ = 0;
  std::optional<handler_type> inflight_handler_; // the wait a value is on its way to
  std::uint64_t inflight_gen_ = 0;               // 0: none
  bool inflight_cancelled_ = false;
  std::optional<std::pair<std::exception_ptr, V>> stash_; // read from the task, not yet handed over
  bool taken_ = false;                                    // handed over to a wait
  bool detached_ = false;
  bool holds_work_ = false; // one unit of the runtime's outstanding work, see hold_work_locked
  task_id id_;
};

} // namespace detail

// The handle of a task: await its result (any completion token), abort it, detach it by
// destroying the handle.
//
// Thread safety, as Asio's I/O objects: distinct handles are safe; one handle is not. Its
// waits, moves, assignment and destruction must come from one thread at a time (builds
// with asserts catch two threads at once and abort with a message). abort(), id() and
// is_finished() may be called from any thread at any time, as may everything on an
// abort_handle, which can be copied and shared freely (as Tokio's AbortHandle).
template <class T>
class join_handle {
  static_assert(std::is_void_v<T> || std::is_default_constructible_v<T>,
                "swarm::join_handle<T> needs T default-constructible (as co_spawn's void(exception_ptr, T))");

public:
  using value_type = T;
  using signature = detail::join_signature<T>;

  join_handle() noexcept = default;
  join_handle(detail::context_core* core,
              detail::raw_join_handle<detail::task_output<detail::stored_t<T>>> raw) noexcept
      : core_(core), raw_(std::move(raw)) {}
  join_handle(join_handle&& o) noexcept
      : core_(o.core_), raw_(std::move(o.raw_)), waiter_(std::exchange(o.waiter_, nullptr)) {}
  join_handle& operator=(join_handle&& o) noexcept {
    if (this != &o) {
      reset();
      core_ = o.core_;
      raw_ = std::move(o.raw_);
      waiter_ = std::exchange(o.waiter_, nullptr);
    }
    return *this;
  }
  ~join_handle() { reset(); }

  explicit operator bool() const noexcept { return header() != nullptr; }

  // Idempotent and thread-safe.
  void abort() const {
    if (detail::header* h = header())
      h->vtable->abort(h);
  }
  bool is_finished() const noexcept {
    detail::header* h = header();
    return h && h->state.load().is_complete();
  }
  abort_handle get_abort_handle() const {
    detail::header* h = checked_header();
    h->state.ref_inc();
    return abort_handle(h);
  }
  task_id id() const noexcept {
    detail::header* h = header();
    return h ? detail::get_id(h) : task_id();
  }

  // Completes with (nullptr, value), or (join_error, T{}) when the task was aborted or
  // threw. Cancel-safe: cancelling the wait completes it with operation_aborted and leaves
  // the task running; wait again to get the value. The value is delivered once.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(signature) CompletionToken>
  auto async_wait(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, signature>(detail::join_wait_initiation<T>(*this),
                                                                   token);
  }

  // So that `co_await std::move(h)` works: the handle is itself an async operation.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(signature) CompletionToken>
  auto operator()(CompletionToken&& token) {
    return async_wait(std::forward<CompletionToken>(token));
  }

  // Internal (join_set): gives up the raw handle; the handle is empty afterwards.
  detail::raw_join_handle<detail::task_output<detail::stored_t<T>>> release_raw() {
    if (waiter_)
      throw std::logic_error("swarm::join_handle: cannot hand over a handle that is being awaited");
    return std::move(raw_);
  }

private:
  detail::header* header() const noexcept {
    if (waiter_)
      return waiter_->raw().raw().get();
    return raw_.raw().get();
  }
  detail::header* checked_header() const {
    detail::header* h = header();
    if (!h)
      throw std::logic_error("swarm::join_handle: empty handle (moved from or default-constructed)");
    return h;
  }

  template <class Handler>
  void start_wait(Handler&& handler) {
    detail::exclusive_use::scope in_use(in_use_, "join_handle", "async_wait");
    detail::note_current_wait(detail::wait_kind::join, id().value()); // for dump(), if tracked
    if (!waiter_) {
      checked_header();
      waiter_ = new detail::join_waiter<T>(core_, std::move(raw_));
    }
    waiter_->start_wait(typename detail::join_waiter<T>::handler_type(std::forward<Handler>(handler)));
  }

  void reset() noexcept {
    detail::exclusive_use::scope in_use(in_use_, "join_handle", "reset");
    if (detail::join_waiter<T>* w = std::exchange(waiter_, nullptr)) {
      w->detach();
      w->unref();
    }
    raw_.reset();
  }

  friend struct detail::join_handle_access;
  friend class detail::join_wait_initiation<T>;

  detail::context_core* core_ = nullptr;
  detail::raw_join_handle<detail::task_output<detail::stored_t<T>>> raw_;
  detail::join_waiter<T>* waiter_ = nullptr;
  detail::exclusive_use in_use_;
};

template <class T>
bool detail::join_handle_access::pollable(const join_handle<T>& h) noexcept {
  return h.waiter_ == nullptr;
}

template <class T>
auto detail::join_handle_access::poll(join_handle<T>& h, const waker& w) {
  using V = stored_t<T>;
  exclusive_use::scope in_use(h.in_use_, "join_handle", "co_await");
  h.checked_header();
  std::optional<std::pair<std::exception_ptr, V>> r;
  maybe<outcome<task_output<V>>> o = h.raw_.poll(w);
  if (o)
    r.emplace(join_result(h.raw_.id(), std::move(*o)));
  else
    note_current_wait(wait_kind::join, h.raw_.id().value()); // for dump(), if tracked
  return r;
}

} // namespace swarm
