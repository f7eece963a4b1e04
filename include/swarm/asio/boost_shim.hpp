// Every Boost.Asio internal name swarm relies on, in one place, keyed on BOOST_ASIO_VERSION.
// The rest of swarm uses only what this file exports. Supported: Boost 1.81 through 1.89
// (Asio 1.26.0 through 1.36.0); tested against 1.81, 1.83, 1.87 and 1.89 (scripts/test).
//
// What changed across that range, for the names used here:
//   Boost 1.82 (Asio 1.28.0)  co_await of a void(std::exception_ptr, T) operation works;
//                             the awaitable_async_op specialisation at the end is for 1.81.
//   Boost 1.87 (Asio 1.34.0)  scheduler(ctx, concurrency_hint, own_thread) became
//                             scheduler(ctx, own_thread): the scheduler and the reactor read
//                             the hint from the context's config_service instead.
//   Boost 1.87 (Asio 1.34; fixed by 1.89, 1.88 untested and assumed like 1.87):
//                             config::get formats an integer into a one-byte buffer
//                             (max_digits10 is 0 for integers), so the hint reads as 0 and a hint
//                             of 1 loses the scheduler's one-thread mode (io_context{1} too).
//                             Harmless for swarm (0 is what multi-worker runtimes use), but
//                             io_context{1} then runs a handler's defers after all of its
//                             posts, not in the order made: one_thread_hint_works below.
//   unchanged through 1.89    reactor, thread_context, thread_call_stack::context,
//                             thread_info_base, and the scheduler members io_driver calls.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/detail/thread_context.hpp>
#include <boost/asio/detail/thread_info_base.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/version.hpp>

#if BOOST_ASIO_VERSION < 102600 || BOOST_ASIO_VERSION > 103600
// Outside the range the internal names above are unchecked: extend this shim (and
// scripts/test's asio-versions phase) before using another version.
#error "swarm supports Boost.Asio 1.26.0 to 1.36.0 (Boost 1.81 to 1.89): extend swarm/asio/boost_shim.hpp"
#endif

#if BOOST_ASIO_VERSION >= 103400
#include <boost/asio/config.hpp>
#endif

namespace swarm::detail::asio_shim {

// Asio's scheduler: its op queue, its reactor task and its outstanding-work count.
using scheduler = boost::asio::detail::scheduler;
using reactor = boost::asio::detail::reactor;

// Whether a concurrency hint of 1 gives Asio's scheduler its one-thread mode, in which a
// handler's posts and defers are queued together, in the order made (see the history above).
inline constexpr bool one_thread_hint_works = BOOST_ASIO_VERSION < 103400 || BOOST_ASIO_VERSION >= 103600;

// Registers Asio's scheduler in `ctx` before any other service, with no thread of its own:
// our workers drive it. Must be the first service created in the context, so that I/O
// objects find it and it shuts down last.
inline scheduler& install_scheduler(boost::asio::execution_context& ctx, int concurrency_hint) {
#if BOOST_ASIO_VERSION >= 103400
  // Boost 1.87+: the hint reaches the scheduler and the reactor through the context's
  // config_service, as for io_context(int); installed first, since the first config() lookup
  // would create a default one (hint 0) that can no longer be replaced.
  if (!boost::asio::has_service<boost::asio::config_service>(ctx))
    boost::asio::config_from_concurrency_hint(concurrency_hint).make(ctx);
  auto* s = new scheduler(ctx, /*own_thread=*/false);
#else
  auto* s = new scheduler(ctx, concurrency_hint, /*own_thread=*/false);
#endif
  boost::asio::add_service<scheduler>(ctx, s); // the registry owns it now
  return *s;
}

// The reactor, created eagerly so that the scheduler's task is in place before the first
// wait, and so that interrupt() can reach it.
inline reactor& install_reactor(boost::asio::execution_context& ctx, scheduler& s) {
  reactor& r = boost::asio::use_service<reactor>(ctx);
  s.init_task();
  return r;
}

// Asio's per-thread handler-memory cache. Asio allocates awaitable frames,
// executor_functions, cancellation handlers and parallel-group state through
// thread_info_base::allocate(tag, top_of_thread_call_stack(), n): with a thread_info_base
// on the thread's call stack a freed block is kept (a few per tag) and the next allocation
// of that kind reuses it; with none, every allocation is operator new. Asio installs one
// only inside its own run()/poll(); a thread driving a swarm worker installs this one for
// as long as it drives (a nested Asio run() pushes its own above it).
class handler_memory : private boost::asio::detail::thread_context {
public:
  handler_memory() = default;
  handler_memory(const handler_memory&) = delete;
  handler_memory& operator=(const handler_memory&) = delete;

  // Whether the calling thread has any Asio thread context (then it has a cache already).
  static bool thread_has_one() noexcept { return top_of_thread_call_stack() != nullptr; }

  // A call-stack entry making `m` the calling thread's cache for its scope. Entries are
  // strictly nested (the stack is a per-thread list); `m` must outlive the entry.
  class scope {
  public:
    explicit scope(handler_memory& m) : entry_(&m, m.info_) {}
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

  private:
    thread_call_stack::context entry_;
  };

private:
  // Freed blocks, released when the handler_memory is destroyed.
  boost::asio::detail::thread_info_base info_;
};

} // namespace swarm::detail::asio_shim

namespace swarm {
template <class T>
class join_handle;
} // namespace swarm

#if BOOST_ASIO_VERSION < 102800
// Asio 1.26 cannot co_await an async operation whose signature is
// void(std::exception_ptr, T) with T not void: awaitable_async_op_handler::resume tests its
// result struct as a bool (chriskohlhoff/asio#1172, fixed in Boost 1.82). `co_await h` on a
// join_handle<T> is such an operation; this specialisation does what the generic one
// means to do, for join handles only.
namespace boost::asio::detail {

template <class T, class Executor>
class awaitable_async_op<void(std::exception_ptr, T), swarm::join_handle<T>, Executor> {
public:
  using handler_type = awaitable_async_op_handler<void(std::exception_ptr, T), Executor>;

  template <class Op>
  awaitable_async_op(Op&& op, awaitable_frame_base<Executor>* frame) : op_(&op), frame_(frame), result_() {}

  bool await_ready() const noexcept { return false; }

  void await_suspend(coroutine_handle<void>) {
    frame_->after_suspend(
        [](void* arg) {
          auto* self = static_cast<awaitable_async_op*>(arg);
          (*self->op_)(handler_type(self->frame_->detach_thread(), self->result_));
        },
        this);
  }

  T await_resume() {
    if (*result_.ex_) {
      std::exception_ptr ex = std::exchange(*result_.ex_, nullptr);
      std::rethrow_exception(ex);
    }
    return std::move(*result_.value_);
  }

private:
  swarm::join_handle<T>* op_;
  awaitable_frame_base<Executor>* frame_;
  typename handler_type::result_type result_;
};

} // namespace boost::asio::detail
#endif
