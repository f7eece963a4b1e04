// Non-generic operations on a task, through its header and vtable: the reference count,
// wakes, abort, and the shared task waker vtable.
#pragma once

#include <swarm/task/header.hpp>

namespace swarm::detail {

// A plain pointer to a task: copyable, owns nothing. Every member documents which
// reference it consumes or requires the caller to hold.
class raw_task {
public:
  constexpr raw_task() noexcept = default;
  constexpr explicit raw_task(header* h) noexcept : header_(h) {}

  header* get() const noexcept { return header_; }
  explicit operator bool() const noexcept { return header_ != nullptr; }
  friend bool operator==(raw_task, raw_task) noexcept = default;

  class state& state() const noexcept { return header_->state; }
  task_id id() const noexcept { return get_id(header_); }

  // Consumes one reference (a notified's).
  void poll() const { header_->vtable->poll(header_); }
  // Consumes the reference minted for the new notified.
  void schedule() const { header_->vtable->schedule(header_); }
  void dealloc() const noexcept { header_->vtable->dealloc(header_); }
  // Consumes one reference.
  void shutdown() const { header_->vtable->shutdown(header_); }

  void ref_inc() const noexcept { header_->state.ref_inc(); }

  // Gives up one reference; the last one deallocates.
  void drop_reference() const noexcept {
    if (header_->state.ref_dec())
      dealloc();
  }

  // Wake consuming the caller's reference.
  void wake_by_val() const {
    switch (header_->state.transition_to_notified_by_val()) {
    case to_notified_by_val::submit:
      schedule();
      // Our own reference kept the cell alive while the scheduler ran, even if it dropped
      // the notified at once (a closed runtime); give it up only now.
      drop_reference();
      break;
    case to_notified_by_val::dealloc:
      dealloc();
      break;
    case to_notified_by_val::do_nothing:
      break;
    }
  }

  // Wake keeping the caller's reference.
  void wake_by_ref() const {
    if (header_->state.transition_to_notified_by_ref() == to_notified_by_ref::submit)
      schedule();
  }

  // Abort from a join or abort handle; the caller keeps its reference. The future is never
  // destroyed here: the owning scheduler runs the cancellation.
  void remote_abort() const {
    if (header_->state.transition_to_notified_and_cancel())
      schedule();
  }

private:
  header* header_ = nullptr;
};

// One vtable shared by all tasks, so that will_wake compares tasks across types. The data
// pointer is the task header; an owned task waker holds one reference.
struct task_waker {
  static void* clone(void* data) noexcept {
    static_cast<header*>(data)->state.ref_inc();
    return data;
  }
  static void wake(void* data) { raw_task(static_cast<header*>(data)).wake_by_val(); }
  static void wake_by_ref(void* data) { raw_task(static_cast<header*>(data)).wake_by_ref(); }
  static void drop(void* data) noexcept { raw_task(static_cast<header*>(data)).drop_reference(); }

  static constexpr waker_vtable vtable{&clone, &wake, &wake_by_ref, &drop};

  // A waker for the duration of a poll: not counted, never dropped (the poll's own
  // reference keeps the task alive). Cloning it makes a real, counted waker.
  class borrowed {
  public:
    explicit borrowed(header* h) noexcept : waker_(h, &vtable) {}
    ~borrowed() { waker_.forget(); }
    borrowed(const borrowed&) = delete;
    borrowed& operator=(const borrowed&) = delete;
    const waker& get() const noexcept { return waker_; }

  private:
    waker waker_;
  };
};

} // namespace swarm::detail
