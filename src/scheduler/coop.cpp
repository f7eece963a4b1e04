#include <swarm/scheduler/coop.hpp>
#include <swarm/scheduler/metrics.hpp>

namespace swarm::detail::coop {
namespace {
thread_local budget current_budget;
} // namespace

budget& current() noexcept { return current_budget; }

void note_forced_yield() noexcept {
  if (worker_stats* m = current_worker_metrics())
    ++m->batch.budget_forced_yield_count;
}

} // namespace swarm::detail::coop
