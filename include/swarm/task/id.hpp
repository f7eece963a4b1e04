// Task ids and the thread's current task id.
#pragma once

#include <swarm/detail/config.hpp>

#include <compare>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>

namespace swarm {

// Identifies a task for its whole life, unique across every runtime of the process. A
// default-constructed id means "no task"; no task is ever given it.
class task_id {
public:
  constexpr task_id() noexcept = default;
  constexpr explicit task_id(std::uint64_t value) noexcept : value_(value) {}

  constexpr std::uint64_t value() const noexcept { return value_; }
  constexpr explicit operator bool() const noexcept { return value_ != 0; }

  friend constexpr bool operator==(task_id, task_id) noexcept = default;
  friend constexpr auto operator<=>(task_id, task_id) noexcept = default;
  SWARM_DECL friend std::ostream& operator<<(std::ostream& os, task_id id);

  // The next unused id: non-zero, never repeated within the process.
  SWARM_DECL static task_id next() noexcept;

private:
  std::uint64_t value_ = 0;
};

// The id of the task this thread is running, or destroying a future or output of; empty
// elsewhere. block_on runs its awaitable as a spawned task, so inside the awaitable this
// is that task's id; the thread that called block_on, while it waits or drives the
// runtime between polls, is in no task.
SWARM_DECL std::optional<task_id> try_current_task_id() noexcept;

// As try_current_task_id(), but throws std::logic_error outside a task.
SWARM_DECL task_id current_task_id();

namespace detail {

// Installs `id` as the current task id for its scope and restores the previous value, so
// that nested tasks (a runtime driven from inside a task) see their own id.
class current_task_id_guard {
public:
  SWARM_DECL explicit current_task_id_guard(task_id id) noexcept;
  SWARM_DECL ~current_task_id_guard();
  current_task_id_guard(const current_task_id_guard&) = delete;
  current_task_id_guard& operator=(const current_task_id_guard&) = delete;

private:
  task_id prev_;
};

} // namespace detail
} // namespace swarm

template <>
struct std::hash<swarm::task_id> {
  std::size_t operator()(swarm::task_id id) const noexcept { return std::hash<std::uint64_t>{}(id.value()); }
};
