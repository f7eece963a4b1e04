// Which workers are parked and how many are searching for work. At most about half the
// workers search at once, and a notification wakes one parked worker only when nobody is
// searching already: that throttles wake-ups, which cost microseconds each.
#pragma once

#include <swarm/detail/config.hpp>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <optional>
#include <vector>

namespace swarm::detail {

class idle {
public:
  explicit idle(std::size_t num_workers)
      : state_(num_workers << unparked_shift), num_workers_(num_workers) {
    sleepers_.reserve(num_workers);
  }

  std::size_t num_workers() const noexcept { return num_workers_; }

  // Every read-modify-write on the state is seq_cst: the searching/parked protocol relies
  // on a single total order of these counters with the queue checks around them (a worker
  // going to sleep and a notifier must not both miss each other's update).

  // Refuses when half the workers or more already search; the check is racy on purpose.
  bool transition_worker_to_searching() noexcept {
    const std::size_t s = state_.load(std::memory_order_seq_cst);
    if (2 * searching(s) >= num_workers_)
      return false;
    state_.fetch_add(1, std::memory_order_seq_cst);
    return true;
  }

  // Returns true if this was the last searcher: the caller must notify another worker so
  // that someone keeps looking for the work it just found.
  bool transition_worker_from_searching() noexcept {
    const std::size_t prev = state_.fetch_sub(1, std::memory_order_seq_cst);
    return searching(prev) == 1;
  }

  // The worker to wake, counted as unparked and searching on its behalf; empty if someone
  // is searching already or nobody sleeps.
  std::optional<std::size_t> worker_to_notify() {
    if (!notify_should_wakeup())
      return std::nullopt;
    std::lock_guard lock(mutex_);
    if (!notify_should_wakeup())
      return std::nullopt;
    state_.fetch_add(one_unparked | 1, std::memory_order_seq_cst);
    const std::size_t idx = sleepers_.back();
    sleepers_.pop_back();
    return idx;
  }

  // Returns true if nobody searches once this worker is parked: the caller must then look
  // at the queues before it sleeps. If it was the last searcher, work may have come in
  // while it searched. If it was not searching, the last searcher may have found work and
  // notified before this worker was a sleeper, with nobody to wake (worker_to_notify), and
  // left part of that work in its own queue; a searcher still counted here notifies later
  // and then finds this worker among the sleepers (the same lock, the same seq_cst order).
  bool transition_worker_to_parked(std::size_t idx, bool is_searching) {
    std::lock_guard lock(mutex_);
    const std::size_t dec = one_unparked | (is_searching ? 1 : 0);
    const std::size_t prev = state_.fetch_sub(dec, std::memory_order_seq_cst);
    sleepers_.push_back(idx);
    return searching(prev) == (is_searching ? 1u : 0u);
  }

  // Removes `idx` from the sleepers if it is there (it woke by itself with work).
  bool unpark_worker_by_id(std::size_t idx) {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < sleepers_.size(); ++i) {
      if (sleepers_[i] == idx) {
        sleepers_[i] = sleepers_.back();
        sleepers_.pop_back();
        state_.fetch_add(one_unparked, std::memory_order_seq_cst);
        return true;
      }
    }
    return false;
  }

  bool is_parked(std::size_t idx) {
    std::lock_guard lock(mutex_);
    for (std::size_t s : sleepers_)
      if (s == idx)
        return true;
    return false;
  }

  // Whether a worker other than the caller is parked or searching (`caller_parked`: the
  // caller counts among the parked). One relaxed load: a hint for where work should run,
  // never a decision that must not miss a sleeper (those go through the read-modify-writes
  // above).
  bool others_idle_hint(bool caller_parked) const noexcept {
    const std::size_t s = state_.load(std::memory_order_relaxed);
    return num_workers_ - unparked(s) > (caller_parked ? 1u : 0u) || searching(s) != 0;
  }
  std::size_t num_searching() const noexcept { return searching(state_.load(std::memory_order_seq_cst)); }
  std::size_t num_unparked() const noexcept { return unparked(state_.load(std::memory_order_seq_cst)); }

private:
  static constexpr unsigned unparked_shift = 16;
  static constexpr std::size_t searching_mask = (std::size_t{1} << unparked_shift) - 1;
  static constexpr std::size_t one_unparked = std::size_t{1} << unparked_shift;

  static constexpr std::size_t searching(std::size_t s) noexcept { return s & searching_mask; }
  static constexpr std::size_t unparked(std::size_t s) noexcept { return s >> unparked_shift; }

  bool notify_should_wakeup() noexcept {
    // A read through an RMW so that it takes part in the seq_cst order of the counters.
    const std::size_t s = state_.fetch_add(0, std::memory_order_seq_cst);
    return searching(s) == 0 && unparked(s) < num_workers_;
  }

  std::atomic<std::size_t> state_;
  const std::size_t num_workers_;
  std::mutex mutex_;
  std::vector<std::size_t> sleepers_; // under mutex_
};

} // namespace swarm::detail
