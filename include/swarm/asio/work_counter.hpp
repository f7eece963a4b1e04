// Outstanding work (queued handlers, pending I/O, live tasks, work guards), counted without
// a shared hot counter: each worker counts into its own slot, other threads into a shared
// one. Every slot holds two monotonic counters, started and finished.
//
// Why reading them is exact enough: a unit of work is started before it is finished, and
// whoever finishes it has seen (happens-after) its start. The reader loads every `finished`
// (acquire) before any `started`, so every finish it counts has its start counted too:
// started - finished >= 0, and == 0 means every start it saw was finished. A start it did
// not see was not ordered before the read; io_context has the same race with a thread
// that adds work from outside just as run() runs out.
#pragma once

#include <swarm/detail/config.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

namespace swarm::detail {

class work_counter {
public:
  explicit work_counter(std::size_t workers) : slots_(new slot[workers + 1]), count_(workers + 1) {}

  // `slot` is the calling worker's index, or external() off the workers.
  std::size_t external() const noexcept { return count_ - 1; }

  // Relaxed: a start only needs to be visible through the release of a later finish (or
  // of whatever hands the work to another thread).
  void started(std::size_t slot) noexcept { slots_[slot].started.fetch_add(1, std::memory_order_relaxed); }
  // Release: publishes the start (and everything before) to the reader's acquire.
  void finished(std::size_t slot) noexcept { slots_[slot].finished.fetch_add(1, std::memory_order_release); }

  std::int64_t outstanding() const noexcept {
    std::uint64_t fin = 0, sta = 0;
    for (std::size_t i = 0; i < count_; ++i)
      fin += slots_[i].finished.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < count_; ++i)
      sta += slots_[i].started.load(std::memory_order_acquire);
    return static_cast<std::int64_t>(sta - fin);
  }

private:
  struct alignas(cache_line) slot {
    std::atomic<std::uint64_t> started{0};
    std::atomic<std::uint64_t> finished{0};
  };
  std::unique_ptr<slot[]> slots_;
  std::size_t count_;
};

} // namespace swarm::detail
