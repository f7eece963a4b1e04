#include <swarm/detail/assert.hpp>
#include <swarm/scheduler/park.hpp>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <utility>

namespace swarm::detail {

std::size_t parker::park(std::optional<std::chrono::steady_clock::time_point> deadline, std::size_t limit,
                         bool run_here) {
  // A wake-up already pending: consume it. Acquire pairs with the release in unpark, so
  // whatever the waker did before unparking is visible now.
  int expected = notified;
  if (state_.compare_exchange_strong(expected, empty, std::memory_order_acquire))
    return 0;
  if (driver_.try_lock()) {
    struct unlock_driver {
      shared_driver& d;
      ~unlock_driver() { d.unlock(); }
    } guard{driver_}; // a driver may throw (an Asio handler run inside it)
    return park_driver(deadline, limit, run_here);
  }
  park_condvar(deadline);
  return 0;
}

void parker::park_condvar(std::optional<std::chrono::steady_clock::time_point> deadline) {
  std::unique_lock lock(mutex_);
  int expected = empty;
  if (!state_.compare_exchange_strong(expected, parked_condvar, std::memory_order_acquire)) {
    // Only an unpark can have intervened.
    SWARM_ASSERT(expected == notified);
    state_.store(empty, std::memory_order_relaxed); // acquired by the failed CAS above
    return;
  }
  for (;;) {
    if (deadline) {
      if (condvar_.wait_until(lock, *deadline) == std::cv_status::timeout) {
        // Leave parked_condvar, unless an unpark got in first (then consume it).
        state_.exchange(empty, std::memory_order_acquire);
        return;
      }
    } else {
      condvar_.wait(lock);
    }
    // Spurious wake-ups loop; acquire pairs with the release in unpark.
    expected = notified;
    if (state_.compare_exchange_strong(expected, empty, std::memory_order_acquire))
      return;
  }
}

std::size_t parker::park_driver(std::optional<std::chrono::steady_clock::time_point> deadline,
                                std::size_t limit, bool run_here) {
  int expected = empty;
  if (!state_.compare_exchange_strong(expected, parked_driver, std::memory_order_acquire)) {
    SWARM_ASSERT(expected == notified);
    state_.store(empty, std::memory_order_relaxed);
    return 0;
  }
  struct reset_state {
    std::atomic<int>& s;
    // Whatever woke us (unpark, an event, a timeout, an exception), reset; acquire pairs
    // with an unpark's release if there was one.
    ~reset_state() { s.exchange(empty, std::memory_order_acquire); }
  } guard{state_};
  std::optional<std::chrono::nanoseconds> timeout;
  if (deadline)
    timeout = std::max(std::chrono::nanoseconds(0), std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                        *deadline - std::chrono::steady_clock::now()));
  return driver_.drv->park_counted(timeout, limit, run_here);
}

std::size_t parker::park_timeout_zero(std::size_t limit, bool run_here) {
  if (!driver_.try_lock())
    return 0;
  struct unlock_driver {
    shared_driver& d;
    ~unlock_driver() { d.unlock(); }
  } guard{driver_};
  return driver_.drv->park_counted(std::chrono::nanoseconds(0), limit, run_here);
}

void parker::unpark() {
  // Release: what the waker did before is visible to the woken thread.
  switch (state_.exchange(notified, std::memory_order_release)) {
  case empty:
  case notified:
    break;
  case parked_condvar:
    // Lock and unlock so that the sleeper is either before its check (and sees notified)
    // or inside wait (and gets the notification): no lost wake-up.
    { std::lock_guard lock(mutex_); }
    condvar_.notify_one();
    break;
  case parked_driver:
    driver_.drv->unpark();
    break;
  default:
    std::abort();
  }
}

void shared_driver::shutdown() {
  if (!drv)
    return;
  // Nobody should hold the lock now; if a park were still in progress, wake it and wait.
  while (!try_lock()) {
    drv->unpark();
    std::this_thread::yield();
  }
  const bool first = !std::exchange(shut_down_, true);
  struct unlock_driver {
    shared_driver& d;
    ~unlock_driver() { d.unlock(); }
  } guard{*this};
  if (first)
    drv->shutdown();
}

void parker::shutdown() {
  { std::lock_guard lock(mutex_); }
  condvar_.notify_all();
}

} // namespace swarm::detail
