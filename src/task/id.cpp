#include <swarm/task/id.hpp>

#include <atomic>
#include <ostream>
#include <stdexcept>

namespace swarm {
namespace {

// Relaxed: ids only need to be unique, not ordered with anything else.
std::atomic<std::uint64_t> next_task_id{1};

thread_local task_id current_id;

} // namespace

task_id task_id::next() noexcept {
  for (;;) {
    const std::uint64_t v = next_task_id.fetch_add(1, std::memory_order_relaxed);
    if (v != 0) // skipped on wrap-around: 0 means "no task"
      return task_id(v);
  }
}

std::ostream& operator<<(std::ostream& os, task_id id) { return os << id.value(); }

std::optional<task_id> try_current_task_id() noexcept {
  if (current_id)
    return current_id;
  return std::nullopt;
}

task_id current_task_id() {
  if (!current_id)
    throw std::logic_error("swarm::current_task_id: not called from inside a task");
  return current_id;
}

namespace detail {

current_task_id_guard::current_task_id_guard(task_id id) noexcept : prev_(current_id) { current_id = id; }

current_task_id_guard::~current_task_id_guard() { current_id = prev_; }

} // namespace detail
} // namespace swarm
