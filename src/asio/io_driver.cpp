#include <swarm/asio/boost_shim.hpp>
#include <swarm/asio/io_driver.hpp>

#include <boost/system/error_code.hpp>

#include <climits>

namespace swarm::detail {
namespace {

asio_shim::scheduler& sched(void* p) { return *static_cast<asio_shim::scheduler*>(p); }

} // namespace

io_driver::io_driver(boost::asio::execution_context& ctx, int concurrency_hint) {
  asio_shim::scheduler& s = asio_shim::install_scheduler(ctx, concurrency_hint);
  // One permanent unit of work: Asio's run/poll/wait_one stop and return when its count
  // reaches zero, and we decide ourselves when the runtime is out of work.
  s.work_started();
  reactor_ = &asio_shim::install_reactor(ctx, s);
  scheduler_ = &s;
}

void io_driver::park(std::optional<std::chrono::nanoseconds> timeout) {
  asio_shim::scheduler& s = sched(scheduler_);
  boost::system::error_code ec;
  struct driver_scope {
    driver_scope() noexcept { in_io_driver = true; }
    ~driver_scope() { in_io_driver = false; }
  } scope;
  if (timeout && timeout->count() == 0) {
    // Runs what is ready, including a non-blocking epoll pass if the reactor is idle.
    s.poll(ec);
    return;
  }
  long usec = -1; // epoll_wait with no timeout
  if (timeout) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(*timeout).count();
    usec = us <= 0 ? 1 : (us > LONG_MAX ? LONG_MAX : static_cast<long>(us));
  }
  // Blocks in the reactor (we are the only thread in Asio's scheduler), runs one
  // completion, then the rest of what became ready without blocking again.
  if (s.wait_one(usec, ec))
    s.poll(ec);
}

void io_driver::unpark() {
  // An epoll_ctl on the reactor's eventfd: wakes an epoll_wait in progress, and one that
  // has not started yet (the edge stays armed), so no wake is lost.
  static_cast<asio_shim::reactor*>(reactor_)->interrupt();
}

void io_driver::shutdown() {
  // Nothing here: Asio's services shut down with the execution context, after our workers
  // are gone (runtime's destructor).
}

} // namespace swarm::detail
