// The low-level join handle: the right to read a task's outcome, polled with a waker. The
// Asio-facing swarm::join_handle<T> is built on it.
#pragma once

#include <swarm/task/abort.hpp>
#include <swarm/task/core.hpp>
#include <swarm/task/join_waker.hpp>
#include <swarm/task/raw_task.hpp>

#include <optional>
#include <utility>

namespace swarm::detail {

template <class T>
class raw_join_handle {
public:
  using output_type = T;

  raw_join_handle() noexcept = default;
  // Adopts one reference and the join_interest bit.
  explicit raw_join_handle(header* h) noexcept : raw_(h) {}
  raw_join_handle(raw_join_handle&& other) noexcept : raw_(std::exchange(other.raw_, raw_task())) {}
  raw_join_handle& operator=(raw_join_handle&& other) noexcept {
    if (this != &other) {
      reset();
      raw_ = std::exchange(other.raw_, raw_task());
    }
    return *this;
  }
  // Detaches: the task keeps running and its output is discarded.
  ~raw_join_handle() { reset(); }

  explicit operator bool() const noexcept { return static_cast<bool>(raw_); }
  raw_task raw() const noexcept { return raw_; }

  // The outcome if the task completed; otherwise registers the waker and returns empty.
  // Cancel-safe: the outcome stays in the task until a poll returns it. Reading it twice
  // throws std::logic_error.
  maybe<outcome<T>> poll(const waker& w) {
    maybe<outcome<T>> out;
    raw_.get()->vtable->try_read_output(raw_.get(), &out, w);
    return out;
  }

  // Registers `w` to be woken at completion without reading; wakes it now if the task
  // already completed. Returns true in that case.
  bool set_join_waker(const waker& w) {
    header* h = raw_.get();
    if (!can_read_output(h, get_trailer(h), w))
      return false;
    w.wake_by_ref();
    return true;
  }

  void abort() const { raw_.get()->vtable->abort(raw_.get()); }
  bool is_finished() const noexcept { return raw_.state().load().is_complete(); }
  task_id id() const noexcept { return raw_.id(); }

  abort_handle get_abort_handle() const noexcept {
    raw_.ref_inc();
    return abort_handle(raw_.get());
  }

  void reset() noexcept {
    if (!raw_)
      return;
    header* h = std::exchange(raw_, raw_task()).get();
    // Fast path: nothing happened to the task since it was spawned.
    if (!h->state.drop_join_handle_fast())
      h->vtable->drop_join_handle_slow(h);
  }

private:
  raw_task raw_;
};

} // namespace swarm::detail
