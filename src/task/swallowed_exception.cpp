#include <swarm/task/swallowed_exception.hpp>

#include <atomic>

namespace swarm::detail {
namespace {

// Relaxed: a statistic; nothing is ordered by it.
std::atomic<std::uint64_t> swallowed{0};

} // namespace

void count_swallowed_exception() noexcept { swallowed.fetch_add(1, std::memory_order_relaxed); }

std::uint64_t swallowed_exception_count() noexcept { return swallowed.load(std::memory_order_relaxed); }

} // namespace swarm::detail
