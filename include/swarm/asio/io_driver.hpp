// The I/O driver: Asio's scheduler and reactor, driven by swarm's workers instead of a
// thread of their own. The worker that parks holding the driver slot blocks in epoll; a
// wake interrupts it. Completions run on that worker, with no thread hop.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/scheduler/driver.hpp>

#include <boost/asio/execution_context.hpp>

namespace swarm::detail {

// Per thread: whether it is inside the I/O driver (running Asio's scheduler), and how many
// completions it queued as jobs there. Handlers completing in the driver are queued rather
// than run inline, so that a batch of I/O completions spreads over the workers instead of
// running one by one on the driver's thread (doc/design.md, "Asio binding").
struct io_driver_thread_state {
  bool inside = false;
  std::size_t queued = 0;
};
inline thread_local io_driver_thread_state io_driver_here;

class io_driver final : public driver {
public:
  // Installs Asio's scheduler and reactor in `ctx`; call first in the context's constructor.
  SWARM_DECL io_driver(boost::asio::execution_context& ctx, int concurrency_hint);

  SWARM_DECL void park(std::optional<std::chrono::nanoseconds> timeout) override;
  SWARM_DECL std::size_t park_counted(std::optional<std::chrono::nanoseconds> timeout,
                                      std::size_t limit) override;
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
