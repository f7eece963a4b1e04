// Catches two threads inside one object that is not thread-safe, as Asio documents its I/O
// objects ("distinct objects: safe; shared objects: unsafe"). With asserts on (SWARM_ASSERTS,
// swarm/detail/assert.hpp), an operation that finds another one in progress aborts the process
// with a message naming the object and both operations; with asserts off it checks nothing and costs
// nothing but its pointer.
#pragma once

#include <swarm/detail/assert.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace swarm::detail {

class exclusive_use {
public:
  exclusive_use() noexcept = default;
  // A copy or a move is another object: it starts unused.
  exclusive_use(const exclusive_use&) noexcept {}
  exclusive_use& operator=(const exclusive_use&) noexcept { return *this; }

#if SWARM_ASSERTS
  // Marks `op` of `object` in progress for the scope's lifetime.
  class scope {
  public:
    scope(const exclusive_use& u, const char* object, const char* op) noexcept : u_(u) {
      const char* other = nullptr;
      // Acquire/release: a later user sees the earlier one's writes to the object.
      if (!u_.op_.compare_exchange_strong(other, op, std::memory_order_acquire, std::memory_order_relaxed)) {
        std::fprintf(stderr,
                     "swarm: %s::%s called while another thread is in %s on the same %s; one %s is not "
                     "thread-safe: use it from one thread at a time\n",
                     object, op, other, object, object);
        std::abort();
      }
    }
    ~scope() { u_.op_.store(nullptr, std::memory_order_release); }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;

  private:
    const exclusive_use& u_;
  };
#else
  class scope {
  public:
    scope(const exclusive_use&, const char*, const char*) noexcept {}
  };
#endif

private:
  // Present either way, so that the owner's layout does not depend on SWARM_ASSERTS.
  mutable std::atomic<const char*> op_{nullptr};
};

} // namespace swarm::detail
