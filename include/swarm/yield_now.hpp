// yield_now(): lets other tasks run, as Tokio's task::yield_now.
#pragma once

#include <swarm/asio/task.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace swarm {

// `co_await swarm::yield_now();` Inside a task, the task goes behind the other runnable
// tasks and runs again only after its worker has polled the I/O driver. Elsewhere, the
// coroutine is re-posted to its executor.
inline boost::asio::awaitable<void> yield_now() {
  co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void()>(
      [](auto handler) {
        if (detail::drain_scope* d = detail::drain_scope::current(); d && d->future)
          d->yield_requested = true; // the drain stops after this handler
        // Queued on the task (never inline): its continuation.
        auto ex = boost::asio::get_associated_executor(handler);
        boost::asio::post(ex, std::move(handler));
      },
      boost::asio::use_awaitable);
}

} // namespace swarm
