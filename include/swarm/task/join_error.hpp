// Why a task produced no value: it was cancelled, or an exception escaped it.
#pragma once

#include <swarm/detail/config.hpp>
#include <swarm/task/id.hpp>

#include <exception>
#include <memory>
#include <string>

namespace swarm {

class join_error : public std::exception {
public:
  SWARM_DECL static join_error cancelled(task_id id) noexcept;
  SWARM_DECL static join_error panic(task_id id, std::exception_ptr e);

  bool is_cancelled() const noexcept { return !payload_; }
  bool is_panic() const noexcept { return payload_ != nullptr; }

  // The exception that escaped the task. Throws std::logic_error for a cancelled task.
  SWARM_DECL std::exception_ptr panic() const;
  // As panic(), but empty for a cancelled task.
  std::exception_ptr try_panic() const noexcept { return payload_; }

  task_id id() const noexcept { return id_; }

  // "task N was cancelled", "task N panicked with message \"...\"" or "task N panicked".
  SWARM_DECL const char* what() const noexcept override;

private:
  join_error() noexcept = default;

  task_id id_;
  std::exception_ptr payload_;
  // Built on construction: the panic text is shared so that copies cannot throw; the
  // cancelled text fits in place, so cancelled() needs no allocation.
  std::shared_ptr<const std::string> message_;
  char cancelled_text_[48] = {};
};

} // namespace swarm
