// A test-and-test-and-set lock for critical sections of a few stores (the owned-task
// shards): taking it is one exchange, releasing it one plain release store, where
// std::mutex's unlock is a second read-modify-write (it must learn whether to wake a
// sleeper).
//
// A waiter pauses while it spins and yields the thread after a few rounds: on an
// oversubscribed machine the holder may be preempted, and spinning through its time slice
// would only delay it.
#pragma once

#include <atomic>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace swarm::detail {

class spin_lock {
public:
  void lock() noexcept {
    // Acquire: pairs with the release in unlock(), so the holder's writes are visible.
    if (!locked_.exchange(true, std::memory_order_acquire)) [[likely]]
      return;
    lock_slow();
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
  void lock_slow() noexcept {
    for (int spins = 0;;) {
      // Read-only while held, so that waiters do not steal the line from the holder.
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          _mm_pause();
#endif
        } else {
          std::this_thread::yield();
        }
      }
      if (!locked_.exchange(true, std::memory_order_acquire))
        return;
    }
  }

  std::atomic<bool> locked_{false};
};

} // namespace swarm::detail
