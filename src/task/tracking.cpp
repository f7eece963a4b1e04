#include <swarm/task/tracking.hpp>

namespace swarm::detail {

task_stats*& current_task_stats() noexcept {
  thread_local task_stats* current = nullptr;
  return current;
}

} // namespace swarm::detail
