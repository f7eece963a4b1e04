#include <swarm/asio/boost_shim.hpp>
#include <swarm/asio/io_driver.hpp>

#include <boost/system/error_code.hpp>

#include <algorithm>
#include <climits>
#include <optional>

namespace swarm::detail {
namespace {

asio_shim::scheduler& sched(void* p) { return *static_cast<asio_shim::scheduler*>(p); }

// The thread's handler-memory cache: its freed blocks live as long as the thread, so a
// thread that drives workers again and again (run_one loops) keeps them. Installed on
// Asio's call stack only while the thread drives a worker.
thread_local asio_shim::handler_memory memory;
thread_local std::optional<asio_shim::handler_memory::scope> memory_scope;

// Of the `ops` Asio ran, those that ran a handler here rather than queue one. A handler
// run here may itself queue several, hence the floor at zero.
std::size_t handlers_run(std::size_t ops) noexcept {
  return ops > io_driver_here.queued ? ops - io_driver_here.queued : 0;
}

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
  park_counted(timeout, no_limit, false);
}

std::size_t io_driver::park_counted(std::optional<std::chrono::nanoseconds> timeout, std::size_t limit,
                                    bool run_here) {
  asio_shim::scheduler& s = sched(scheduler_);
  boost::system::error_code ec;
  // Unless they run here, handlers whose executor is this runtime's are queued as jobs while
  // we are in here (runtime::executor_type::execute): Asio counts them as run, we do not;
  // they count when their job runs.
  if (run_here)
    limit = std::min(limit, max_inline_handlers);
  struct driver_scope {
    explicit driver_scope(bool inline_handlers) noexcept {
      using mode = io_driver_thread_state::mode;
      io_driver_here = {inline_handlers ? mode::run_inline : mode::queue, 0};
    }
    ~driver_scope() { io_driver_here = {}; }
  } scope(run_here);
  // Runs what is ready without blocking, at most `max` handlers (poll_one runs one; with
  // no limit, poll runs them all under fewer lock round trips).
  auto poll_up_to = [&](std::size_t max) -> std::size_t {
    if (max == no_limit)
      return s.poll(ec);
    std::size_t n = 0;
    while (n < max && s.poll_one(ec) != 0)
      ++n;
    return n;
  };
  if (timeout && timeout->count() == 0) {
    // Includes a non-blocking epoll pass if the reactor is idle.
    return handlers_run(poll_up_to(limit));
  }
  long usec = -1; // epoll_wait with no timeout
  if (timeout) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(*timeout).count();
    usec = us <= 0 ? 1 : (us > LONG_MAX ? LONG_MAX : static_cast<long>(us));
  }
  // Blocks in the reactor (we are the only thread in Asio's scheduler) and runs one
  // completion, then, within the limit, the rest of what became ready without blocking.
  std::size_t n = s.wait_one(usec, ec);
  if (n != 0 && limit != 1)
    n += poll_up_to(limit == no_limit ? no_limit : limit - 1);
  return handlers_run(n);
}

void* io_driver::enter_worker() {
  // A thread that already has an Asio thread context (ours from an outer drive, or an
  // io_context's run) allocates from that one.
  if (asio_shim::handler_memory::thread_has_one())
    return nullptr;
  memory_scope.emplace(memory);
  return &memory_scope;
}

void io_driver::leave_worker(void* token) noexcept {
  if (token)
    memory_scope.reset();
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
