// yield_now(): lets other tasks run, as Tokio's task::yield_now.
#pragma once

#include <swarm/asio/task.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>

#include <utility>

namespace swarm {
namespace detail {

// What yield_now() returns: an asynchronous operation that completes with no arguments.
// An asio::awaitable awaits it as any operation that takes a completion token; a
// swarm::coro recognises it and defers its task directly.
struct yield_now_op {
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(void()) CompletionToken>
  auto operator()(CompletionToken&& token) const {
    return boost::asio::async_initiate<CompletionToken, void()>(
        [](auto handler) {
          if (drain_scope* d = drain_scope::current(); d && d->future)
            d->yield_requested = true; // the drain stops after this handler
          // Queued on the task (never inline): its continuation.
          auto ex = boost::asio::get_associated_executor(handler);
          boost::asio::post(ex, std::move(handler));
        },
        token);
  }
};

} // namespace detail

// `co_await swarm::yield_now();` Inside a task, the task goes behind the other runnable
// tasks and runs again only after its worker has polled the I/O driver. Elsewhere, the
// coroutine is re-posted to its executor. Also an operation for any completion token:
// `swarm::yield_now()(handler)`.
inline detail::yield_now_op yield_now() noexcept { return {}; }

} // namespace swarm
