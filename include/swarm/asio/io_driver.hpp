// The I/O driver: Asio's scheduler and reactor, driven by swarm's workers instead of a
// thread of their own. The worker that parks holding the driver slot blocks in epoll; a
// wake interrupts it. Completions run on that worker, with no thread hop.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/scheduler/driver.hpp>

#include <boost/asio/execution_context.hpp>

namespace swarm::detail {

// True on a worker while it runs Asio's scheduler (completions are being collected).
// Handlers completing there are queued as jobs rather than run inline, so that a batch of
// I/O completions spreads over the workers instead of running on the driver's thread.
inline thread_local bool in_io_driver = false;

class io_driver final : public driver {
public:
  // Installs Asio's scheduler and reactor in `ctx`; call first in the context's constructor.
  SWARM_DECL io_driver(boost::asio::execution_context& ctx, int concurrency_hint);

  SWARM_DECL void park(std::optional<std::chrono::nanoseconds> timeout) override;
  SWARM_DECL void unpark() override;
  SWARM_DECL void shutdown() override;

private:
  void* scheduler_; // asio_shim::scheduler, kept opaque to keep Asio internals out of this header
  void* reactor_;
};

} // namespace swarm::detail
