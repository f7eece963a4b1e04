#include <swarm/scheduler/metrics.hpp>

#include <cmath>

namespace swarm::detail {

void poll_timing::end(worker_counters& counters) noexcept {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double, std::nano>(now - batch_start).count();
  counters.busy_duration_ns += static_cast<std::uint64_t>(elapsed);
  if (polls_in_batch > 0) {
    const double n = static_cast<double>(polls_in_batch);
    const double w = 1.0 - std::pow(1.0 - ewma_weight, n);
    mean_poll_time_ns = w * (elapsed / n) + (1.0 - w) * mean_poll_time_ns;
    counters.mean_poll_time_ns = static_cast<std::uint64_t>(mean_poll_time_ns);
  }
  batch_start = now;
  polls_in_batch = 0;
}

} // namespace swarm::detail
