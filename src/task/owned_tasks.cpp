#include <swarm/task/owned_tasks.hpp>

namespace swarm::detail {

std::uint64_t next_owner_id() noexcept {
  // Relaxed: ids only need to be unique.
  static std::atomic<std::uint64_t> next{1};
  for (;;) {
    const std::uint64_t v = next.fetch_add(1, std::memory_order_relaxed);
    if (v != 0)
      return v;
  }
}

} // namespace swarm::detail
