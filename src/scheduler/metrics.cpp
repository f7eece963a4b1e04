#include <swarm/scheduler/metrics.hpp>

namespace swarm::detail {

namespace {
// base^n by squaring, as Tokio's powi: std::pow's general path was ~1.5 % of a yield_now
// loop on one worker (perf), and batches are usually one or a few polls.
double power(double base, std::uint64_t n) noexcept {
  double r = 1.0;
  for (; n != 0; n >>= 1, base *= base)
    if (n & 1)
      r *= base;
  return r;
}
} // namespace

void poll_timing::end_batch(worker_counters& counters) noexcept {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double, std::nano>(now - batch_start).count();
  counters.busy_duration_ns += static_cast<std::uint64_t>(elapsed);
  if (polls_in_batch > 0) {
    const double n = static_cast<double>(polls_in_batch);
    const double w = 1.0 - power(1.0 - ewma_weight, polls_in_batch);
    mean_poll_time_ns = w * (elapsed / n) + (1.0 - w) * mean_poll_time_ns;
    counters.mean_poll_time_ns = static_cast<std::uint64_t>(mean_poll_time_ns);
  }
  batch_start = {};
}

} // namespace swarm::detail
