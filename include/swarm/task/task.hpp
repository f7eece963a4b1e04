// The reference-holding handles to a task. Each owns the references it documents and gives
// them up when destroyed; none of them is copyable.
//
//   task<S>          1 ref: the owned-task list's
//   notified<S>      1 ref: the task is scheduled (exists iff the notified bit is set)
//   local_notified<S> 1 ref: a notified checked to belong to this thread's owner list
//   unowned_task<S>  2 refs: a task in no owner list (blocking pool)
#pragma once

#include <swarm/task/raw_task.hpp>

#include <utility>

namespace swarm::detail {

// Shared by the handles: a raw_task that is moved, not copied.
class task_ref {
public:
  constexpr task_ref() noexcept = default;
  explicit task_ref(header* h) noexcept : raw_(h) {}
  task_ref(task_ref&& other) noexcept : raw_(std::exchange(other.raw_, raw_task())) {}
  task_ref& operator=(task_ref&&) = delete;

  raw_task raw() const noexcept { return raw_; }
  header* get() const noexcept { return raw_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(raw_); }
  task_id id() const noexcept { return raw_.id(); }

  // Gives up ownership without dropping the reference; the caller accounts for it.
  header* release() noexcept { return std::exchange(raw_, raw_task()).get(); }

protected:
  ~task_ref() = default;
  raw_task raw_;
};

template <class S>
class task : public task_ref {
public:
  task() noexcept = default;
  explicit task(header* h) noexcept : task_ref(h) {}
  task(task&&) noexcept = default;
  task& operator=(task&& other) noexcept {
    reset();
    raw_ = raw_task(other.release());
    return *this;
  }
  ~task() { reset(); }

  // Cancels the task if it is idle (or flags it cancelled if it runs); gives up this
  // reference.
  void shutdown() && { raw_task(release()).shutdown(); }

  void reset() noexcept {
    if (raw_)
      raw_task(release()).drop_reference();
  }
};

template <class S>
class notified : public task_ref {
public:
  notified() noexcept = default;
  explicit notified(header* h) noexcept : task_ref(h) {}
  notified(notified&&) noexcept = default;
  notified& operator=(notified&& other) noexcept {
    reset();
    raw_ = raw_task(other.release());
    return *this;
  }
  // Dropping a notified (a queue drained at shutdown) only gives up its reference; it does
  // not cancel the task.
  ~notified() { reset(); }

  // For intrusive queues: the pointer carries the reference.
  header* into_raw() && noexcept { return release(); }
  static notified from_raw(header* h) noexcept { return notified(h); }

  void reset() noexcept {
    if (raw_)
      raw_task(release()).drop_reference();
  }
};

template <class S>
class local_notified : public task_ref {
public:
  explicit local_notified(notified<S>&& n) noexcept : task_ref(n.release()) {}
  local_notified(local_notified&&) noexcept = default;
  ~local_notified() {
    if (raw_)
      raw_task(release()).drop_reference();
  }

  // Polls the task, consuming this reference.
  void run() && { raw_task(release()).poll(); }
};

template <class S>
class unowned_task : public task_ref {
public:
  explicit unowned_task(header* h) noexcept : task_ref(h) {}
  unowned_task(unowned_task&&) noexcept = default;
  ~unowned_task() {
    if (raw_) {
      header* h = release();
      if (h->state.ref_dec_twice())
        raw_task(h).dealloc();
    }
  }

  // Polls with one reference; the other keeps the cell valid until poll has fully
  // returned (release() finds no owner list, so completion drops only one).
  void run() && {
    raw_task r(release());
    task<S> keep(r.get());
    r.poll();
  }

  // Cancels the task without running it.
  void shutdown() && {
    raw_task r(release());
    r.drop_reference(); // cannot be the last: we hold two
    r.shutdown();
  }
};

} // namespace swarm::detail
