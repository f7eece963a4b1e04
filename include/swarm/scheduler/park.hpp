// Per-worker parking. All parkers share one driver behind a try-lock: whichever parking
// worker takes it blocks in the driver, the others sleep on their own condition variable.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/scheduler/driver.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <condition_variable>
#include <mutex>

namespace swarm::detail {

// The driver and its lock, shared by every parker of one scheduler.
struct shared_driver {
  driver* drv = nullptr; // null: no driver, parkers only sleep
  std::atomic<bool> locked{false};

  // Acquire on success: the previous holder's driver work happens before ours.
  bool try_lock() noexcept { return drv && !locked.exchange(true, std::memory_order_acquire); }
  void unlock() noexcept { locked.store(false, std::memory_order_release); }

  // Calls driver::shutdown() exactly once, holding the lock (driver.hpp). The scheduler
  // calls it when no worker can park any more; a park still in progress is interrupted.
  SWARM_DECL void shutdown();

private:
  bool shut_down_ = false; // under the lock
};

class parker {
public:
  explicit parker(shared_driver& d) noexcept : driver_(d) {}
  parker(const parker&) = delete;
  parker& operator=(const parker&) = delete;

  // Sleeps until unpark() or the deadline; returns at once if an unpark is pending. May
  // return spuriously. Returns the number of handlers the driver ran (at most `limit`;
  // `run_here`: see driver::park_counted).
  SWARM_DECL std::size_t park(std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
                              std::size_t limit = driver::no_limit, bool run_here = false);
  // Polls the driver without sleeping, if it is free; returns as park().
  SWARM_DECL std::size_t park_timeout_zero(std::size_t limit = driver::no_limit, bool run_here = false);
  // Wakes the parked thread, or makes its next park return at once. Thread-safe.
  SWARM_DECL void unpark();
  // Wakes the thread for good (the scheduler is shutting down). The driver is shut down
  // separately, once, through shared_driver::shutdown().
  SWARM_DECL void shutdown();

private:
  enum : int { empty, parked_condvar, parked_driver, notified };

  void park_condvar(std::optional<std::chrono::steady_clock::time_point> deadline);
  std::size_t park_driver(std::optional<std::chrono::steady_clock::time_point> deadline, std::size_t limit,
                          bool run_here);

  std::atomic<int> state_{empty};
  std::mutex mutex_;
  std::condition_variable condvar_;
  shared_driver& driver_;
};

} // namespace swarm::detail
