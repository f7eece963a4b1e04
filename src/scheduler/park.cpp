#include <swarm/scheduler/park.hpp>

#include <cassert>
#include <cstdlib>

namespace swarm::detail {

void parker::park() {
  // A wake-up already pending: consume it. Acquire pairs with the release in unpark, so
  // whatever the waker did before unparking is visible now.
  int expected = notified;
  if (state_.compare_exchange_strong(expected, empty, std::memory_order_acquire))
    return;
  if (driver_.try_lock()) {
    park_driver();
    driver_.unlock();
  } else {
    park_condvar();
  }
}

void parker::park_condvar() {
  std::unique_lock lock(mutex_);
  int expected = empty;
  if (!state_.compare_exchange_strong(expected, parked_condvar, std::memory_order_acquire)) {
    // Only an unpark can have intervened.
    assert(expected == notified);
    state_.store(empty, std::memory_order_relaxed); // acquired by the failed CAS above
    return;
  }
  for (;;) {
    condvar_.wait(lock);
    // Spurious wake-ups loop; acquire pairs with the release in unpark.
    expected = notified;
    if (state_.compare_exchange_strong(expected, empty, std::memory_order_acquire))
      return;
  }
}

void parker::park_driver() {
  int expected = empty;
  if (!state_.compare_exchange_strong(expected, parked_driver, std::memory_order_acquire)) {
    assert(expected == notified);
    state_.store(empty, std::memory_order_relaxed);
    return;
  }
  driver_.drv->park(std::nullopt);
  // Whatever woke us (unpark, an event, a spurious return), reset; acquire pairs with an
  // unpark's release if there was one.
  state_.exchange(empty, std::memory_order_acquire);
}

void parker::park_timeout_zero() {
  if (driver_.try_lock()) {
    driver_.drv->park(std::chrono::nanoseconds(0));
    driver_.unlock();
  }
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

void parker::shutdown() {
  if (driver_.try_lock()) {
    driver_.drv->shutdown();
    driver_.unlock();
  }
  { std::lock_guard lock(mutex_); }
  condvar_.notify_all();
}

} // namespace swarm::detail
