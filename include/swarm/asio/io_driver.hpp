// The I/O driver: Asio's scheduler and reactor, driven by swarm's workers instead of a
// thread of their own. The worker that parks holding the driver slot blocks in epoll; a
// wake interrupts it. Completions run on that worker, with no thread hop.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/scheduler/driver.hpp>

#include <boost/asio/execution_context.hpp>

namespace swarm::detail {

// Per thread: whether it is inside the I/O driver (running Asio's scheduler) with the
// handlers of the runtime's executor queued as jobs, and how many it queued there. The
// scheduler picks, per driver poll, between that (so that a batch of completions spreads
// over idle workers) and running them inline, as io_context's thread does (doc/design.md,
// "Asio binding", I/O completions).
struct io_driver_thread_state {
  enum class mode : unsigned char {
    outside,    // not in a driver poll
    queue,      // in a driver poll that queues the runtime's handlers
    run_inline, // in a driver poll that runs them here, until it starts queueing
  };
  mode in = mode::outside;
  std::size_t queued = 0;
};
inline thread_local io_driver_thread_state io_driver_here;

class io_driver final : public driver {
public:
  // Installs Asio's scheduler and reactor in `ctx`; call first in the context's constructor.
  SWARM_DECL io_driver(boost::asio::execution_context& ctx, int concurrency_hint);

  SWARM_DECL void park(std::optional<std::chrono::nanoseconds> timeout) override;
  SWARM_DECL std::size_t park_counted(std::optional<std::chrono::nanoseconds> timeout, std::size_t limit,
                                      bool run_here) override;

  // Handlers one poll runs inline at most (run_here). A poll goes on while the reactor
  // finds more, and inline handlers start operations that complete within it, so without a
  // cap one poll could serve the whole load while the worker's own queue waits.
  static constexpr std::size_t max_inline_handlers = 32;
  // Installs the thread's Asio handler-memory cache, unless it has one.
  SWARM_DECL void* enter_worker() override;
  SWARM_DECL void leave_worker(void* token) noexcept override;
  SWARM_DECL void unpark() override;
  SWARM_DECL void shutdown() override;

private:
  void* scheduler_; // asio_shim::scheduler, kept opaque to keep Asio internals out of this header
  void* reactor_;
};

} // namespace swarm::detail
