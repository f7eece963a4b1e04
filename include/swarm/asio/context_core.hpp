// What the Asio binding needs of the execution context it runs on: the scheduler, io_context's
// count of outstanding work, and queuing a handler as a job. swarm::runtime owns one and is
// the only public face of it; the binding's types (tasks, their executors, delivery jobs) hold
// a context_core*, so that this layer never includes the runtime's public header.
#pragma once

#include <swarm/asio/work_counter.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/scheduler/job.hpp>
#include <swarm/scheduler/multi_thread.hpp>

#include <memory>
#include <type_traits>
#include <utility>

namespace swarm {

class runtime;

namespace detail {

class context_core {
public:
  // Called off the workers when the last unit of outstanding work finishes there (workers
  // notice it themselves when they run out of tasks): io_context's rule, stop when out of work.
  using out_of_work_fn = void (*)(runtime&) noexcept;

  context_core(runtime& owner, std::unique_ptr<multi_thread::handle> scheduler, out_of_work_fn out_of_work)
      : owner_(&owner), scheduler_(std::move(scheduler)), work_(scheduler_->num_workers()),
        out_of_work_(out_of_work) {}
  context_core(const context_core&) = delete;
  context_core& operator=(const context_core&) = delete;

  // The runtime this is the core of (an executor's context()).
  runtime& owner() const noexcept { return *owner_; }
  multi_thread::handle& scheduler() const noexcept { return *scheduler_; }

  // Whether the calling thread is one of this context's workers.
  bool running_in_this_thread() const noexcept { return scheduler_->is_current_worker(); }

  // Outstanding work, as io_context's work_started / work_finished.
  void work_started() noexcept { work_.started(work_slot()); }
  SWARM_DECL void work_finished() noexcept;
  std::int64_t outstanding_work() const noexcept { return work_.outstanding(); }

  // Queues `f` as a job counted as outstanding work. fork: behind the other runnable work,
  // FIFO as io_context's posts run; continuation: the LIFO slot, next on this worker.
  template <class F>
  void post_job(F&& f, bool continuation);

private:
  std::size_t work_slot() const noexcept {
    return scheduler_->current_worker_index().value_or(work_.external());
  }

  runtime* owner_;
  std::unique_ptr<multi_thread::handle> scheduler_;
  work_counter work_;
  out_of_work_fn out_of_work_;
};

// A callable queued as a job, counting as outstanding work until it ran or was destroyed.
template <class F>
class counted_handler {
public:
  counted_handler(context_core* core, F&& f) : core_(core), f_(std::move(f)) { core_->work_started(); }
  counted_handler(counted_handler&& o) noexcept(std::is_nothrow_move_constructible_v<F>)
      : core_(std::exchange(o.core_, nullptr)), f_(std::move(o.f_)) {}
  counted_handler& operator=(counted_handler&&) = delete;
  ~counted_handler() {
    if (core_)
      core_->work_finished();
  }

  void operator()() && {
    // Finished after the handler ran (or threw), as io_context counts it.
    counted_handler self(std::move(*this));
    std::move(self.f_)();
  }

private:
  context_core* core_;
  F f_;
};

template <class F>
void context_core::post_job(F&& f, bool continuation) {
  using fn_type = counted_handler<std::decay_t<F>>;
  header* h = job<fn_type>::create(fn_type(this, std::decay_t<F>(std::forward<F>(f))));
  scheduler_->schedule_task(multi_thread::notified_task(h), !continuation);
}

} // namespace detail
} // namespace swarm
