// The executor of one task: everything executed on it joins the task's handler queue and
// runs inside the task, one handler at a time (a strand merged into the task). It runs a
// handler inline only when blocking.possibly allows it and the calling thread is already
// running this task's handlers. It holds a task reference, so it stays valid after the task
// completes; it then behaves as a plain strand on the runtime.
#pragma once

#include <swarm/asio/context_core.hpp>
#include <swarm/asio/task.hpp>

#include <boost/asio/execution.hpp>

#include <memory>
#include <utility>

namespace swarm::detail {

template <unsigned Bits>
class basic_task_executor {
  static constexpr unsigned blocking_never = 1;
  static constexpr unsigned relationship_continuation = 2;
  static constexpr unsigned outstanding_work_tracked = 4;

public:
  // Adopts nothing: takes its own reference.
  basic_task_executor(context_core* core, header* h, unsigned bits = 0) noexcept
      : core_(core), h_(h), bits_(bits) {
    h_->state.ref_inc();
    if constexpr ((Bits & outstanding_work_tracked) != 0)
      core_->work_started();
  }
  basic_task_executor(const basic_task_executor& o) noexcept : basic_task_executor(o.core_, o.h_, o.bits_) {}
  basic_task_executor(basic_task_executor&& o) noexcept
      : core_(o.core_), h_(std::exchange(o.h_, nullptr)), bits_(o.bits_) {}
  basic_task_executor& operator=(basic_task_executor o) noexcept {
    std::swap(core_, o.core_);
    std::swap(h_, o.h_);
    std::swap(bits_, o.bits_);
    return *this;
  }
  ~basic_task_executor() {
    if (!h_)
      return;
    if constexpr ((Bits & outstanding_work_tracked) != 0)
      core_->work_finished();
    raw_task(h_).drop_reference();
  }

  header* task_header() const noexcept { return h_; }
  context_core* core() const noexcept { return core_; }

  constexpr basic_task_executor require(boost::asio::execution::blocking_t::possibly_t) const {
    return basic_task_executor(core_, h_, bits_ & ~blocking_never);
  }
  constexpr basic_task_executor require(boost::asio::execution::blocking_t::never_t) const {
    return basic_task_executor(core_, h_, bits_ | blocking_never);
  }
  constexpr basic_task_executor require(boost::asio::execution::relationship_t::fork_t) const {
    return basic_task_executor(core_, h_, bits_ & ~relationship_continuation);
  }
  constexpr basic_task_executor require(boost::asio::execution::relationship_t::continuation_t) const {
    return basic_task_executor(core_, h_, bits_ | relationship_continuation);
  }
  basic_task_executor<Bits | outstanding_work_tracked> require(boost::asio::execution::outstanding_work_t::tracked_t) const {
    return basic_task_executor<Bits | outstanding_work_tracked>(core_, h_, bits_);
  }
  basic_task_executor<Bits & ~outstanding_work_tracked>
  require(boost::asio::execution::outstanding_work_t::untracked_t) const {
    return basic_task_executor<Bits & ~outstanding_work_tracked>(core_, h_, bits_);
  }
  template <class A>
  basic_task_executor require(boost::asio::execution::allocator_t<A>) const {
    return *this; // handlers are allocated by the task's queue
  }

  static constexpr boost::asio::execution::mapping_t query(boost::asio::execution::mapping_t) noexcept {
    return boost::asio::execution::mapping.thread;
  }
  runtime& query(boost::asio::execution::context_t) const noexcept { return core_->owner(); }
  constexpr boost::asio::execution::blocking_t query(boost::asio::execution::blocking_t) const noexcept {
    return (bits_ & blocking_never) ? boost::asio::execution::blocking_t(boost::asio::execution::blocking.never)
                                    : boost::asio::execution::blocking_t(boost::asio::execution::blocking.possibly);
  }
  constexpr boost::asio::execution::relationship_t query(boost::asio::execution::relationship_t) const noexcept {
    return (bits_ & relationship_continuation)
               ? boost::asio::execution::relationship_t(boost::asio::execution::relationship.continuation)
               : boost::asio::execution::relationship_t(boost::asio::execution::relationship.fork);
  }
  static constexpr boost::asio::execution::outstanding_work_t
  query(boost::asio::execution::outstanding_work_t) noexcept {
    return (Bits & outstanding_work_tracked)
               ? boost::asio::execution::outstanding_work_t(boost::asio::execution::outstanding_work.tracked)
               : boost::asio::execution::outstanding_work_t(boost::asio::execution::outstanding_work.untracked);
  }
  template <class A>
  std::allocator<void> query(boost::asio::execution::allocator_t<A>) const noexcept {
    return {};
  }

  // Whether the calling thread is running this task's handlers right now.
  bool running_in_this_thread() const noexcept {
    const drain_scope* d = drain_scope::current();
    return d && d->queue == &task_sched::of(h_).queue();
  }

  friend bool operator==(const basic_task_executor& a, const basic_task_executor& b) noexcept {
    return a.h_ == b.h_ && a.bits_ == b.bits_;
  }
  friend bool operator!=(const basic_task_executor& a, const basic_task_executor& b) noexcept { return !(a == b); }

  // Per handler; hot. Allocates the queue node.
  template <class F>
  void execute(F&& f) const {
    if ((bits_ & blocking_never) == 0 && running_in_this_thread()) {
      std::decay_t<F> tmp(std::forward<F>(f));
      std::move(tmp)();
      return;
    }
    submit_to_task(h_, serial_op_impl<std::decay_t<F>>::create(std::forward<F>(f)));
  }

  // Networking TS members.
  runtime& context() const noexcept { return core_->owner(); }
  void on_work_started() const noexcept { core_->work_started(); }
  void on_work_finished() const noexcept { core_->work_finished(); }
  template <class F, class A>
  void dispatch(F&& f, const A&) const {
    require(boost::asio::execution::blocking.possibly).execute(std::forward<F>(f));
  }
  template <class F, class A>
  void post(F&& f, const A&) const {
    require(boost::asio::execution::blocking.never).execute(std::forward<F>(f));
  }
  template <class F, class A>
  void defer(F&& f, const A&) const {
    require(boost::asio::execution::blocking.never).execute(std::forward<F>(f));
  }

private:
  template <unsigned>
  friend class basic_task_executor;

  context_core* core_;
  header* h_;
  unsigned bits_;
};

using task_executor = basic_task_executor<0>;

static_assert(sizeof(task_executor) <= 24, "any_io_executor stores executors up to 24 bytes in place");

} // namespace swarm::detail
