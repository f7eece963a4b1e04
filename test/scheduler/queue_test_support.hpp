// Helpers shared by the queue tests: task accounting, a start gate for racing threads, an
// overflow target that records what it receives, and sizes scaled down under sanitizers.
#pragma once

#include "../sanitizer.hpp"

#include <swarm/task/header.hpp>

#include <atomic>
#include <cstddef>
#include <deque>
#include <initializer_list>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace swarm_test {

using swarm::detail::header;

// `n` normally, `n / divisor` (at least 1) under a sanitizer.
constexpr std::size_t scaled(std::size_t n, std::size_t divisor = 10) noexcept {
  return sanitized ? (n / divisor > 0 ? n / divisor : 1) : n;
}

// Checks that every header of `tasks` appears exactly once across `seen`. Returns an empty
// string when it does, else a description of the first problems found. Main thread only.
inline std::string accounted_once(const std::vector<header>& tasks,
                                  std::initializer_list<const std::vector<header*>*> seen) {
  std::vector<unsigned> count(tasks.size(), 0);
  std::ostringstream problems;
  for (const std::vector<header*>* list : seen) {
    for (header* h : *list) {
      if (h < tasks.data() || h >= tasks.data() + tasks.size()) {
        problems << "foreign pointer " << static_cast<const void*>(h) << "; ";
        continue;
      }
      ++count[static_cast<std::size_t>(h - tasks.data())];
    }
  }
  std::size_t reported = 0;
  for (std::size_t i = 0; i < count.size() && reported < 10; ++i) {
    if (count[i] != 1) {
      problems << "task " << i << " seen " << count[i] << " times; ";
      ++reported;
    }
  }
  return problems.str();
}

// Lets `parties` threads start their racing parts at the same moment.
class start_gate {
public:
  explicit start_gate(int parties) noexcept : waiting_(parties) {}
  void arrive_and_wait() noexcept {
    waiting_.fetch_sub(1, std::memory_order_acq_rel);
    while (waiting_.load(std::memory_order_acquire) > 0) std::this_thread::yield();
  }

private:
  std::atomic<int> waiting_;
};

// An overflow target for local_queue that keeps what it receives in FIFO order and checks
// the batch contract (n >= 1 tasks linked first..last, last->queue_next null). Callable
// from any thread; problems are counted, to be checked on the main thread.
class recording_overflow {
public:
  void push_batch(header* first, header* last, std::size_t n) noexcept {
    std::lock_guard guard(mutex_);
    ++batches_;
    last_batch_size_ = n;
    std::size_t k = 0;
    header* h = first;
    header* prev = nullptr;
    while (h != nullptr && k <= n) {
      tasks_.push_back(h);
      prev = h;
      h = h->queue_next;
      ++k;
    }
    if (k != n || prev != last || n == 0) ++contract_violations_;
  }

  header* pop() {
    std::lock_guard guard(mutex_);
    if (tasks_.empty()) return nullptr;
    header* h = tasks_.front();
    tasks_.pop_front();
    return h;
  }

  // Moves everything received so far to `out`.
  void drain_into(std::vector<header*>& out) {
    std::lock_guard guard(mutex_);
    out.insert(out.end(), tasks_.begin(), tasks_.end());
    tasks_.clear();
  }

  std::size_t size() {
    std::lock_guard guard(mutex_);
    return tasks_.size();
  }
  std::size_t batches() {
    std::lock_guard guard(mutex_);
    return batches_;
  }
  std::size_t last_batch_size() {
    std::lock_guard guard(mutex_);
    return last_batch_size_;
  }
  std::size_t contract_violations() {
    std::lock_guard guard(mutex_);
    return contract_violations_;
  }

private:
  std::mutex mutex_;
  std::deque<header*> tasks_;
  std::size_t batches_ = 0;
  std::size_t last_batch_size_ = 0;
  std::size_t contract_violations_ = 0;
};

// Pops everything left in a local queue (owner side) into `out`.
template <class Queue>
void drain_local(Queue& q, std::vector<header*>& out) {
  while (header* h = q.pop()) out.push_back(h);
}

} // namespace swarm_test
