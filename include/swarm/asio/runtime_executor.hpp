// The executor of a swarm::runtime (runtime::executor_type): the standard executor properties
// and the Networking TS members, as io_context's executor_type has them. Lives in the Asio
// binding, beside the core it runs on; the runtime names it.
#pragma once

#include <swarm/asio/context_core.hpp>
#include <swarm/asio/io_driver.hpp>
#include <swarm/scheduler/job.hpp>
#include <swarm/task/swallowed_exception.hpp>

#include <boost/asio/execution.hpp>
#include <boost/asio/multiple_exceptions.hpp>

#include <cstddef>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace swarm::detail {

struct runtime_executor_bits {
  static constexpr unsigned blocking_never = 1;
  static constexpr unsigned relationship_continuation = 2;
  static constexpr unsigned outstanding_work_tracked = 4;
};

template <class Allocator, unsigned Bits>
class runtime_executor : private Allocator {
public:
  // The executor of `core`'s runtime, with the default properties.
  explicit runtime_executor(context_core* core) noexcept : core_(core), bits_(0) {}
  runtime_executor(const runtime_executor& o) noexcept
      : Allocator(static_cast<const Allocator&>(o)), core_(o.core_), bits_(o.bits_) {
    if constexpr ((Bits & runtime_executor_bits::outstanding_work_tracked) != 0)
      if (core_)
        core_->work_started();
  }
  runtime_executor(runtime_executor&& o) noexcept
      : Allocator(static_cast<Allocator&&>(o)), core_(o.core_), bits_(o.bits_) {
    if constexpr ((Bits & runtime_executor_bits::outstanding_work_tracked) != 0)
      o.core_ = nullptr;
  }
  ~runtime_executor() {
    if constexpr ((Bits & runtime_executor_bits::outstanding_work_tracked) != 0)
      if (core_)
        core_->work_finished();
  }
  runtime_executor& operator=(const runtime_executor& o) noexcept {
    if (this != &o) {
      runtime_executor tmp(o);
      swap(tmp);
    }
    return *this;
  }
  runtime_executor& operator=(runtime_executor&& o) noexcept {
    if (this != &o) {
      runtime_executor tmp(std::move(o));
      swap(tmp);
    }
    return *this;
  }

  // Properties (found by boost::asio::query / require / prefer).
  constexpr runtime_executor require(boost::asio::execution::blocking_t::possibly_t) const {
    return runtime_executor(core_, *this, bits_ & ~runtime_executor_bits::blocking_never);
  }
  constexpr runtime_executor require(boost::asio::execution::blocking_t::never_t) const {
    return runtime_executor(core_, *this, bits_ | runtime_executor_bits::blocking_never);
  }
  constexpr runtime_executor require(boost::asio::execution::relationship_t::fork_t) const {
    return runtime_executor(core_, *this, bits_ & ~runtime_executor_bits::relationship_continuation);
  }
  constexpr runtime_executor require(boost::asio::execution::relationship_t::continuation_t) const {
    return runtime_executor(core_, *this, bits_ | runtime_executor_bits::relationship_continuation);
  }
  constexpr runtime_executor<Allocator, Bits | runtime_executor_bits::outstanding_work_tracked>
  require(boost::asio::execution::outstanding_work_t::tracked_t) const {
    return runtime_executor<Allocator, Bits | runtime_executor_bits::outstanding_work_tracked>(core_, *this,
                                                                                               bits_);
  }
  constexpr runtime_executor<Allocator, Bits & ~runtime_executor_bits::outstanding_work_tracked>
  require(boost::asio::execution::outstanding_work_t::untracked_t) const {
    return runtime_executor<Allocator, Bits & ~runtime_executor_bits::outstanding_work_tracked>(core_, *this,
                                                                                                bits_);
  }
  template <class OtherAllocator>
  constexpr runtime_executor<OtherAllocator, Bits>
  require(boost::asio::execution::allocator_t<OtherAllocator> a) const {
    return runtime_executor<OtherAllocator, Bits>(core_, a.value(), bits_);
  }
  constexpr runtime_executor<std::allocator<void>, Bits>
  require(boost::asio::execution::allocator_t<void>) const {
    return runtime_executor<std::allocator<void>, Bits>(core_, std::allocator<void>(), bits_);
  }

  static constexpr boost::asio::execution::mapping_t query(boost::asio::execution::mapping_t) noexcept {
    return boost::asio::execution::mapping.thread;
  }
  runtime& query(boost::asio::execution::context_t) const noexcept { return core_->owner(); }
  constexpr boost::asio::execution::blocking_t query(boost::asio::execution::blocking_t) const noexcept {
    return (bits_ & runtime_executor_bits::blocking_never)
               ? boost::asio::execution::blocking_t(boost::asio::execution::blocking.never)
               : boost::asio::execution::blocking_t(boost::asio::execution::blocking.possibly);
  }
  constexpr boost::asio::execution::relationship_t
  query(boost::asio::execution::relationship_t) const noexcept {
    return (bits_ & runtime_executor_bits::relationship_continuation)
               ? boost::asio::execution::relationship_t(boost::asio::execution::relationship.continuation)
               : boost::asio::execution::relationship_t(boost::asio::execution::relationship.fork);
  }
  static constexpr boost::asio::execution::outstanding_work_t
  query(boost::asio::execution::outstanding_work_t) noexcept {
    return (Bits & runtime_executor_bits::outstanding_work_tracked)
               ? boost::asio::execution::outstanding_work_t(boost::asio::execution::outstanding_work.tracked)
               : boost::asio::execution::outstanding_work_t(
                     boost::asio::execution::outstanding_work.untracked);
  }
  template <class OtherAllocator>
  constexpr Allocator query(boost::asio::execution::allocator_t<OtherAllocator>) const noexcept {
    return static_cast<const Allocator&>(*this);
  }
  constexpr Allocator query(boost::asio::execution::allocator_t<void>) const noexcept {
    return static_cast<const Allocator&>(*this);
  }
  std::size_t query(boost::asio::execution::occupancy_t) const noexcept {
    return core_->scheduler().num_workers();
  }

  bool running_in_this_thread() const noexcept { return core_->running_in_this_thread(); }

  friend bool operator==(const runtime_executor& a, const runtime_executor& b) noexcept {
    return a.core_ == b.core_ && a.bits_ == b.bits_ &&
           static_cast<const Allocator&>(a) == static_cast<const Allocator&>(b);
  }
  friend bool operator!=(const runtime_executor& a, const runtime_executor& b) noexcept { return !(a == b); }

  // Runs `f` inline when allowed (blocking.possibly) and this thread is a worker of the
  // runtime, as io_context does; otherwise queues it. Per handler; hot.
  template <class F>
  void execute(F&& f) const {
    if ((bits_ & runtime_executor_bits::blocking_never) == 0 && core_->running_in_this_thread()) {
      using mode = detail::io_driver_thread_state::mode;
      detail::io_driver_thread_state& d = detail::io_driver_here;
      if (d.in == mode::run_inline && core_->scheduler().idle_worker_would_take_io())
        d.in = mode::queue; // the rest of this poll queues
      if (d.in == mode::queue) {
        // An I/O completion for another worker to take (see io_driver).
        ++d.queued;
        core_->post_job(std::forward<F>(f), false);
        return;
      }
      try {
        std::decay_t<F> tmp(std::forward<F>(f));
        std::move(tmp)();
      } catch (...) {
        // As io_context: the exception leaves run() on this thread, not execute().
        capture_inline_exception();
      }
      return;
    }
    core_->post_job(std::forward<F>(f), (bits_ & runtime_executor_bits::relationship_continuation) != 0);
  }

  // Networking TS members.
  runtime& context() const noexcept { return core_->owner(); }
  void on_work_started() const noexcept { core_->work_started(); }
  void on_work_finished() const noexcept { core_->work_finished(); }
  template <class F, class A>
  void dispatch(F&& f, const A&) const {
    if (detail::io_driver_here.in != detail::io_driver_thread_state::mode::queue &&
        core_->running_in_this_thread()) {
      std::decay_t<F> tmp(std::forward<F>(f));
      std::move(tmp)();
      return;
    }
    core_->post_job(std::forward<F>(f), false);
  }
  template <class F, class A>
  void post(F&& f, const A&) const {
    core_->post_job(std::forward<F>(f), false);
  }
  template <class F, class A>
  void defer(F&& f, const A&) const {
    core_->post_job(std::forward<F>(f), true);
  }

private:
  friend class swarm::runtime;
  template <class, unsigned>
  friend class runtime_executor;

  // Keeps the exception of a handler run inline for run() to rethrow, as io_context's
  // capture_current_exception: the first is kept, a second turns it into
  // multiple_exceptions, later ones are dropped. Rare; out of the hot path.
  static void capture_inline_exception() {
    std::exception_ptr* sink = detail::job_exception_sink();
    if (!sink)
      throw;
    if (!*sink) {
      *sink = std::current_exception();
      return;
    }
    try {
      std::rethrow_exception(*sink);
    } catch (const boost::asio::multiple_exceptions&) {
      detail::count_swallowed_exception(); // a third or later one: dropped, as io_context does
    } catch (...) {
      // A second exception: io_context reports the first as multiple_exceptions.
      *sink = std::make_exception_ptr(boost::asio::multiple_exceptions(*sink));
    }
  }

  constexpr runtime_executor(context_core* core, const Allocator& a, unsigned b) noexcept
      : Allocator(a), core_(core), bits_(b) {
    if constexpr ((Bits & runtime_executor_bits::outstanding_work_tracked) != 0)
      if (core_)
        core_->work_started();
  }

  void swap(runtime_executor& o) noexcept {
    std::swap(static_cast<Allocator&>(*this), static_cast<Allocator&>(o));
    std::swap(core_, o.core_);
    std::swap(bits_, o.bits_);
  }

  context_core* core_;
  unsigned bits_;
};

} // namespace swarm::detail
