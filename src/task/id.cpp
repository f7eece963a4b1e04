#include <swarm/task/id.hpp>

#include <atomic>
#include <ostream>
#include <stdexcept>

namespace swarm {
namespace {

// Ids are handed to threads in blocks, so that a spawn takes no shared counter (one
// fetch_add per block instead of one per task, which bounced between workers in the spawn
// shapes). Ids are unique, increasing per thread, not ordered across threads.
constexpr std::uint64_t id_block = 256;

// Relaxed: ids only need to be unique, not ordered with anything else.
std::atomic<std::uint64_t> next_id_block{1};

// This thread's unused ids: [next, end).
constinit thread_local std::uint64_t next_local_id = 0;
constinit thread_local std::uint64_t end_local_id = 0;

thread_local task_id current_id;

} // namespace

task_id task_id::next() noexcept {
  for (;;) {
    if (next_local_id == end_local_id) {
      next_local_id = next_id_block.fetch_add(id_block, std::memory_order_relaxed);
      end_local_id = next_local_id + id_block;
    }
    const std::uint64_t v = next_local_id++;
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
