// Spawning tasks on a runtime: swarm::spawn for coroutines and callables, and the
// use_join_handle completion token for asio::co_spawn.
#pragma once

#include <swarm/asio/coro_future.hpp>
#include <swarm/asio/task.hpp>
#include <swarm/asio/task_executor.hpp>
#include <swarm/coro.hpp>
#include <swarm/join_handle.hpp>
#include <swarm/runtime.hpp>
#include <swarm/spawn_options.hpp>
#include <swarm/task/tracking.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/query.hpp>
#include <boost/asio/use_future.hpp>

#include <future>

#include <source_location>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace swarm {
namespace detail {

// The runtime an executor belongs to: swarm's executors (and wrappers such as strand)
// name it in their context; an any_io_executor is checked through the runtime's service.
SWARM_DECL runtime* runtime_from_context(boost::asio::execution_context& ctx);

template <class Executor>
context_core& core_of_executor(const Executor& ex) {
  auto& ctx = boost::asio::query(ex, boost::asio::execution::context);
  using ctx_type = std::remove_cvref_t<decltype(ctx)>;
  if constexpr (std::is_same_v<ctx_type, runtime>) {
    return core_of(ctx);
  } else {
    static_assert(std::is_base_of_v<boost::asio::execution_context, ctx_type>,
                  "swarm::spawn needs an executor of a swarm::runtime");
    runtime* rt = runtime_from_context(ctx);
    if (!rt)
      throw std::invalid_argument("swarm::spawn: the executor does not belong to a swarm::runtime");
    return core_of(*rt);
  }
}

// co_spawn's completion handler for an Asio task. It runs inside the task's drain (its
// executor is the task's), where it hands the result to the live future.
//
// It also owns the end of co_spawn's cancellation proxy: co_spawn installs that proxy in the
// task's abort slot, and every frame of the coroutine points into the proxy's signal. The
// handler is a parameter of co_spawn's entry frame, destroyed after that frame's promise and
// after every frame above it, so a handler destroyed without having delivered (the coroutine
// was dropped: at shutdown, or by an operation that destroyed its handler) is the point where
// no frame can reach the proxy any more, and frees it there. A delivered result is followed
// by the future's own clear, when the poll that ran it sees the task done.
template <class V>
struct spawn_completion {
  header* h;
  using executor_type = task_executor;
  using cancellation_slot_type = boost::asio::cancellation_slot;

  explicit spawn_completion(header* task) noexcept : h(task) {}
  spawn_completion(spawn_completion&& o) noexcept : h(std::exchange(o.h, nullptr)) {}
  spawn_completion& operator=(spawn_completion&&) = delete;
  ~spawn_completion() {
    if (!h)
      return;
    // Dropped without delivering. Inside the live task, the join must still resolve: the
    // coroutine ended without a result, which the joiner sees as its error.
    if (task_future<V>* f = live_future())
      f->deliver(std::make_exception_ptr(std::logic_error(
                     "swarm: the task's coroutine was destroyed before it completed (an operation it awaited "
                     "dropped its handler)")),
                 V{});
    else
      task_sched::of(h).abort_signal().slot().clear();
  }

  executor_type get_executor() const noexcept { return task_executor(task_sched::of(h).core(), h); }
  cancellation_slot_type get_cancellation_slot() const noexcept { return task_sched::of(h).abort_signal().slot(); }

  void operator()(std::exception_ptr e) { deliver(std::move(e), V{}); }
  template <class U>
  void operator()(std::exception_ptr e, U&& v) {
    deliver(std::move(e), V(std::forward<U>(v)));
  }

private:
  // The future of this task, if the current drain is its poll (not strand mode).
  task_future<V>* live_future() const noexcept {
    const drain_scope* d = drain_scope::current();
    if (d && d->future && d->queue == &task_sched::of(h).queue())
      return static_cast<task_future<V>*>(d->future);
    return nullptr;
  }

  void deliver(std::exception_ptr e, V v) {
    if (task_future<V>* f = live_future()) {
      f->deliver(std::move(e), std::move(v));
      h = nullptr; // the poll that ran us clears the slot
    }
  }
};

// Creates a task running `future` on the runtime and schedules it. `before_publish`
// finishes the task while only this thread can reach it. `opts` may be null (the spawn had
// none), so that a spawn without options builds no spawn_options and no string.
template <class R, class F, class Init = no_before_publish>
join_handle<R> spawn_task(context_core& core, F future, std::source_location loc, const spawn_options* opts,
                          Init&& before_publish = {}) {
  multi_thread::handle& sched = core.scheduler();
  if (sched.is_shutdown())
    throw std::logic_error("swarm::spawn: the runtime is shut down");
  const task_id id = task_id::next();
  // A task with no name on a runtime that does not track gets no task_extra in its cell.
  const task_extra_request extra{opts ? std::string_view(opts->name) : std::string_view(),
                                 sched.task_timing_interval()};
  bind_result<F, task_sched> b =
      sched.owned().bind(std::move(future), task_sched(&core), id, loc, sched.terminate_hook(),
                         std::forward<Init>(before_publish), extra.wanted() ? &extra : nullptr);
  join_handle<R> jh(&core, std::move(b.join));
  sched.run_spawn_hook(task_meta{id, loc});
  if (b.first)
    sched.schedule_task(multi_thread::notified_task(std::move(*b.first).into_raw()), false);
  return jh;
}

// Creates and schedules an Asio task whose coroutine is `make()` (an awaitable).
template <class T, class AwEx, class Make>
join_handle<T> spawn_coroutine(context_core& core, Make&& make, std::source_location loc,
                               const spawn_options* opts) {
  // The coroutine's entry is queued on the task's executor before the task is published
  // (co_spawn also installs its cancellation proxy in the task's abort slot); the first
  // poll runs it. A task cancelled by a concurrent shutdown then finds it complete.
  auto launch = [&](header* h) {
    boost::asio::co_spawn(AwEx(task_executor(&core, h)), std::forward<Make>(make),
                          spawn_completion<stored_t<T>>(h));
  };
  return spawn_task<T>(core, task_future<stored_t<T>>(&core), loc, opts, launch);
}

// The future of a task that runs a plain callable once.
template <class Fn>
class callable_future {
public:
  using result_type = std::invoke_result_t<Fn&>;
  using V = stored_t<result_type>;
  using output_type = task_output<V>;

  callable_future(context_core* core, Fn fn) : core_(core), fn_(std::move(fn)) { core_->work_started(); }
  callable_future(callable_future&& o) noexcept(std::is_nothrow_move_constructible_v<Fn>)
      : core_(std::exchange(o.core_, nullptr)), fn_(std::move(o.fn_)), h_(o.h_) {}
  ~callable_future() {
    if (core_)
      core_->work_finished();
  }
  void attach(header* h) noexcept { h_ = h; }

  std::optional<output_type> poll(poll_context&) {
    task_sched& s = task_sched::of(h_);
    if (!s.try_start())
      return std::nullopt; // aborted before it started: the harness cancels it
    output_type out;
    try {
      if constexpr (std::is_void_v<result_type>)
        fn_();
      else
        out.value = fn_();
    } catch (...) {
      out.error = std::current_exception(); // the join handle reports it
    }
    out.abort_requested = s.abort_requested().load(std::memory_order_acquire);
    // An abort after the start queued an emission on the task (it has no coroutine to
    // reach, and holds a task reference). No poll will drain the queue again: hand it to
    // strand mode, and drain what is pending, as task_future does at completion.
    if (s.queue().to_strand_mode() != 0) {
      h_->state.ref_inc(); // for the drain job
      post_strand_drain(h_);
    }
    return out;
  }

private:
  context_core* core_;
  Fn fn_;
  header* h_ = nullptr;
};

template <class Fn>
join_handle<typename callable_future<Fn>::result_type>
spawn_callable(context_core& core, Fn fn, std::source_location loc, const spawn_options* opts) {
  return spawn_task<typename callable_future<Fn>::result_type>(
      core, callable_future<Fn>(&core, std::move(fn)), loc, opts);
}

template <class T>
struct is_awaitable : std::false_type {};
template <class T, class E>
struct is_awaitable<boost::asio::awaitable<T, E>> : std::true_type {
  using value_type = T;
  using executor_type = E;
};

} // namespace detail

// Spawns `aw` as a task on the runtime of `ex`. The task is scheduled, never run inline.
// Each spawn also takes spawn_options (a name for dump()) before the location; the overloads
// without them pass none down (null), so an unnamed spawn builds no string.
template <class Executor, class T, class AwEx>
join_handle<T> spawn(const Executor& ex, boost::asio::awaitable<T, AwEx> aw, const spawn_options& opts,
                     std::source_location loc = std::source_location::current()) {
  return detail::spawn_coroutine<T, AwEx>(detail::core_of_executor(ex), std::move(aw), loc, &opts);
}
template <class Executor, class T, class AwEx>
join_handle<T> spawn(const Executor& ex, boost::asio::awaitable<T, AwEx> aw,
                     std::source_location loc = std::source_location::current()) {
  return detail::spawn_coroutine<T, AwEx>(detail::core_of_executor(ex), std::move(aw), loc, nullptr);
}

namespace detail {
template <class Executor, class T>
join_handle<T> spawn_coro(const Executor& ex, coro<T> c, std::source_location loc,
                          const spawn_options* opts) {
  context_core& core = core_of_executor(ex);
  if (!c)
    throw std::invalid_argument("swarm::spawn: empty coro (moved from or default-constructed)");
  return spawn_task<T>(core, coro_future<coro<T>, coro<T>>(&core, std::move(c)), loc, opts);
}

// f() returning a coro or an awaitable: the task is that coroutine, f kept alive until it
// ends; anything else: the task runs f() once.
template <class Executor, class F>
auto spawn_invocable(const Executor& ex, F&& f, std::source_location loc, const spawn_options* opts) {
  context_core& core = core_of_executor(ex);
  using R = std::invoke_result_t<std::decay_t<F>&>;
  if constexpr (is_coro<R>::value) {
    using Fn = std::decay_t<F>;
    return spawn_task<typename R::value_type>(core, coro_future<R, Fn>(&core, Fn(std::forward<F>(f))), loc,
                                              opts);
  } else if constexpr (is_awaitable<R>::value) {
    using T = typename is_awaitable<R>::value_type;
    using AwEx = typename is_awaitable<R>::executor_type;
    return spawn_coroutine<T, AwEx>(core, std::forward<F>(f), loc, opts);
  } else {
    return spawn_callable(core, std::decay_t<F>(std::forward<F>(f)), loc, opts);
  }
}

// What the callable overloads of spawn accept: anything invocable with no arguments that is
// not itself a coroutine (those have overloads of their own).
template <class F>
concept spawnable_invocable = !is_awaitable<std::decay_t<F>>::value && !is_coro<std::decay_t<F>>::value &&
                              std::is_invocable_v<std::decay_t<F>&>;
} // namespace detail

// Spawns the coroutine `c` as a task on the runtime of `ex`: its frames are the task's,
// resumed by the task's polls (see swarm/coro.hpp). Scheduled, never run inline.
template <class Executor, class T>
join_handle<T> spawn(const Executor& ex, coro<T> c, const spawn_options& opts,
                     std::source_location loc = std::source_location::current()) {
  return detail::spawn_coro(ex, std::move(c), loc, &opts);
}
template <class Executor, class T>
join_handle<T> spawn(const Executor& ex, coro<T> c,
                     std::source_location loc = std::source_location::current()) {
  return detail::spawn_coro(ex, std::move(c), loc, nullptr);
}

// Spawns `f`: if f() returns an awaitable or a coro, the task is that coroutine and f is
// kept alive until it ends (as asio::co_spawn does), so lambda captures stay valid (a coro
// is created by the task's first poll); otherwise the task runs f() once.
template <class Executor, detail::spawnable_invocable F>
auto spawn(const Executor& ex, F&& f, const spawn_options& opts,
           std::source_location loc = std::source_location::current()) {
  return detail::spawn_invocable(ex, std::forward<F>(f), loc, &opts);
}
template <class Executor, detail::spawnable_invocable F>
auto spawn(const Executor& ex, F&& f, std::source_location loc = std::source_location::current()) {
  return detail::spawn_invocable(ex, std::forward<F>(f), loc, nullptr);
}

// Runs `f`, which may block, on the runtime's blocking pool. Abort only cancels a call that
// has not started. Throws std::logic_error after shutdown, as spawn does (a shutdown racing
// the call cancels the task instead: its handle resolves as cancelled).
template <class Executor, class F>
auto spawn_blocking(const Executor& ex, F&& f, std::source_location loc = std::source_location::current()) {
  detail::context_core& core = detail::core_of_executor(ex);
  if (core.scheduler().is_shutdown())
    throw std::logic_error("swarm::spawn_blocking: the runtime is shut down");
  using R = std::invoke_result_t<std::decay_t<F>&>;
  using V = detail::stored_t<R>;
  auto wrapped = [fn = std::decay_t<F>(std::forward<F>(f))]() mutable -> detail::task_output<V> {
    detail::task_output<V> out;
    try {
      if constexpr (std::is_void_v<R>)
        fn();
      else
        out.value = fn();
    } catch (...) {
      out.error = std::current_exception(); // the join handle reports it
    }
    return out;
  };
  return join_handle<R>(&core, core.scheduler().spawn_blocking(std::move(wrapped), loc));
}

template <class T, class E>
T runtime::block_on(boost::asio::awaitable<T, E> aw) {
  if (running_in_this_thread())
    throw std::logic_error("swarm::runtime::block_on: called from one of the runtime's own threads");
  return wait_blocking(spawn(get_executor(), std::move(aw)));
}

template <class T>
T runtime::block_on(coro<T> c) {
  if (running_in_this_thread())
    throw std::logic_error("swarm::runtime::block_on: called from one of the runtime's own threads");
  return wait_blocking(spawn(get_executor(), std::move(c)));
}

template <class T>
T runtime::wait_blocking(join_handle<T> h) {
  // The result, and a flag that makes this thread's drive leave once the result is in.
  // Shared with the wait's handler, which may outlive this call if it throws.
  struct result_state {
    std::promise<T> result;
    std::atomic<bool> done{false};
  };
  auto st = std::make_shared<result_state>();
  std::future<T> f = st->result.get_future();
  detail::multi_thread::handle* sched = &core_.scheduler();
  h.async_wait([st, sched](std::exception_ptr e, auto&&... v) {
    if (e)
      st->result.set_exception(std::move(e));
    else
      st->result.set_value(std::forward<decltype(v)>(v)...);
    st->done.store(true, std::memory_order_release);
    sched->wake_parked_workers(); // a drive parked on another thread re-checks the flag
  });
  bool owned;
  {
    std::lock_guard lock(mutex_);
    owned = started_ && !stopped();
  }
  if (!owned) {
    // Drive the runtime on this thread, as run() does, until the result is in.
    detail::multi_thread::run_limits limits;
    limits.leave_when_set = &st->done;
    while (!st->done.load(std::memory_order_acquire)) {
      if (stopped())
        throw std::logic_error("swarm::runtime::block_on: the runtime is stopped (call restart())");
      drive(limits);
    }
  }
  try {
    return f.get();
  } catch (const join_error& e) {
    // The coroutine's own exception, as Tokio's block_on resumes a panic; a cancelled task
    // (the runtime shut down under it) keeps the join_error that says so.
    if (e.is_panic())
      std::rethrow_exception(e.panic());
    throw;
  }
}

} // namespace swarm
