// The driver: what a parked worker blocks in when it holds the driver slot. The Asio layer
// plugs its reactor in here; without one, a worker just sleeps on its condition variable.
#pragma once

#include <chrono>
#include <cstddef>
#include <limits>
#include <optional>

namespace swarm::detail {

class driver {
public:
  // No limit on the handlers a park may run.
  static constexpr std::size_t no_limit = std::numeric_limits<std::size_t>::max();

  virtual ~driver() = default;
  // Blocks until unpark(), an event, or the timeout (empty: no limit). Events it handles
  // may schedule tasks on the calling thread. A zero timeout polls without sleeping.
  virtual void park(std::optional<std::chrono::nanoseconds> timeout) = 0;
  // As park(), but takes at most `limit` (>= 1) of its completions (Asio operations, whether
  // their handlers run here or are queued) and returns how many handlers it ran, so that
  // run_one / poll_one count them (io_context's loop control). With `run_here`, the
  // handlers of the completions it finds run on the calling thread, a bounded number of
  // them per call; otherwise they are scheduled as jobs, for any worker to take. A driver
  // that runs no handlers keeps this default.
  virtual std::size_t park_counted(std::optional<std::chrono::nanoseconds> timeout, std::size_t /*limit*/,
                                   bool /*run_here*/) {
    park(timeout);
    return 0;
  }
  // A thread starts driving one of the scheduler's workers (enter_worker) and stops
  // (leave_worker, given what enter_worker returned); calls nest. The Asio driver gives
  // the thread its handler-memory cache here.
  virtual void* enter_worker() { return nullptr; }
  virtual void leave_worker(void* /*token*/) noexcept {}
  // Interrupts a park in progress, or makes the next one return at once. Thread-safe.
  virtual void unpark() = 0;
  // The runtime is shutting down; called once, by the thread holding the driver slot.
  virtual void shutdown() = 0;
};

} // namespace swarm::detail
