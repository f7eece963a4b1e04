// The most recent failures nobody will see: tasks that threw after their join handle was
// dropped (dump.hpp's unobserved_failure). A few, bounded; written only when such a task
// completes, so a mutex is cheap enough.
#pragma once

#include <swarm/scheduler/dump.hpp>

#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

namespace swarm::detail {

class failure_log {
public:
  static constexpr std::size_t capacity = 32;

  void record(unobserved_failure f) {
    std::lock_guard lock(mutex_);
    if (entries_.size() == capacity)
      entries_.pop_front();
    entries_.push_back(std::move(f));
  }

  // Oldest first.
  std::vector<unobserved_failure> snapshot() const {
    std::lock_guard lock(mutex_);
    return {entries_.begin(), entries_.end()};
  }

private:
  mutable std::mutex mutex_;
  std::deque<unobserved_failure> entries_;
};

} // namespace swarm::detail
