#include <swarm/scheduler/coop.hpp>
#include <swarm/scheduler/metrics.hpp>
#include <swarm/task/tracking.hpp>

namespace swarm::detail::coop {
namespace {
thread_local budget current_budget;
} // namespace

budget& current() noexcept { return current_budget; }

void budget::check_time() noexcept {
  const std::uint64_t now = steady_now_ns();
  if (first_check_ns_ == 0)
    first_check_ns_ = now;
  else if (now - first_check_ns_ >= time_limit_ns_)
    value_ = 0;
}

void note_forced_yield() noexcept {
  if (worker_stats* m = current_worker_metrics())
    ++m->batch.budget_forced_yield_count;
}

} // namespace swarm::detail::coop
