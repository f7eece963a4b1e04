// Every Boost.Asio internal name swarm relies on, in one place, keyed on BOOST_ASIO_VERSION.
// The rest of swarm uses only what this file exports. Supported: Boost 1.81 (Asio 1.26).
#pragma once

#include <boost/asio/detail/scheduler.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/version.hpp>

#if BOOST_ASIO_VERSION < 102600 || BOOST_ASIO_VERSION >= 102800
// Boost 1.87 drops the concurrency-hint parameter of scheduler's constructor and later
// versions change own_thread; extend this shim (and test it) before using another version.
#error "swarm supports Boost.Asio 1.26 (Boost 1.81); see include/swarm/asio/boost_shim.hpp"
#endif

namespace swarm::detail::asio_shim {

// Asio's scheduler: its op queue, its reactor task and its outstanding-work count.
using scheduler = boost::asio::detail::scheduler;
using reactor = boost::asio::detail::reactor;

// Registers Asio's scheduler in `ctx` before any other service, with no thread of its own:
// our workers drive it. Must be the first service created in the context, so that I/O
// objects find it and it shuts down last.
inline scheduler& install_scheduler(boost::asio::execution_context& ctx, int concurrency_hint) {
  auto* s = new scheduler(ctx, concurrency_hint, /*own_thread=*/false);
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

} // namespace swarm::detail::asio_shim
