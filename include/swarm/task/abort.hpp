// abort_handle: aborts a task without the right to await it, as Tokio's AbortHandle.
#pragma once

#include <swarm/task/raw_task.hpp>

#include <utility>

namespace swarm {

class abort_handle {
public:
  abort_handle() noexcept = default;
  // Adopts one reference.
  explicit abort_handle(detail::header* h) noexcept : raw_(h) {}
  abort_handle(const abort_handle& other) noexcept : raw_(other.raw_) {
    if (raw_)
      raw_.ref_inc();
  }
  abort_handle(abort_handle&& other) noexcept : raw_(std::exchange(other.raw_, detail::raw_task())) {}
  abort_handle& operator=(abort_handle other) noexcept {
    std::swap(raw_, other.raw_);
    return *this;
  }
  // Dropping never aborts.
  ~abort_handle() {
    if (raw_)
      raw_.get()->vtable->drop_abort_handle(raw_.get());
  }

  explicit operator bool() const noexcept { return static_cast<bool>(raw_); }

  // Idempotent and thread-safe. A task aborted before its first poll never runs; a task
  // that completed first keeps its value.
  void abort() const {
    if (raw_)
      raw_.get()->vtable->abort(raw_.get());
  }

  bool is_finished() const noexcept { return raw_ && raw_.state().load().is_complete(); }

  task_id id() const noexcept { return raw_ ? raw_.id() : task_id(); }

  // Internal: the task's header, or null.
  detail::header* task_header() const noexcept { return raw_.get(); }

private:
  detail::raw_task raw_;
};

} // namespace swarm
