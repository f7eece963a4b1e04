// swarm::runtime: Tokio's work-stealing scheduler as a Boost.Asio execution context, a
// drop-in for io_context. Threads that call run() become workers (io_context's model);
// start() makes the runtime own its workers instead (Tokio's model).
#pragma once

#include <swarm/asio/io_driver.hpp>
#include <swarm/asio/work_counter.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/scheduler/job.hpp>
#include <swarm/scheduler/metrics.hpp>
#include <swarm/scheduler/multi_thread.hpp>
#include <swarm/scheduler/options.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/multiple_exceptions.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

namespace swarm {

template <class T>
class coro;
template <class T>
class join_handle;

// Which scheduler a runtime runs, as Tokio's Builder::new_multi_thread and
// Builder::new_current_thread.
enum class runtime_flavor {
  // options.worker_threads workers, driven by threads that call run() (io_context's model)
  // or owned by the runtime after start() (Tokio's); work stealing between them.
  multi_thread,
  // One worker, driven only by threads inside run(), poll(), block_on(), ... (one at a time,
  // as io_context(1) is); no owned threads: start() throws std::logic_error, and
  // worker_threads is ignored. No LIFO slot: a task woken by the running task queues behind
  // the others, as in Tokio's current-thread scheduler.
  current_thread,
};

// Tokio's Builder, with Tokio's defaults.
struct runtime_options : scheduler_options {
  runtime_flavor flavor = runtime_flavor::multi_thread;
};

// A snapshot of a runtime's metrics (Tokio's RuntimeMetrics).
struct runtime_metrics {
  std::size_t num_workers = 0;
  std::size_t num_alive_tasks = 0;
  std::uint64_t spawned_tasks_count = 0;
  std::size_t global_queue_depth = 0;
  std::uint64_t remote_schedule_count = 0;
  std::uint64_t budget_forced_yield_count = 0;
  std::size_t num_blocking_threads = 0;
  std::size_t num_idle_blocking_threads = 0;
  std::size_t blocking_queue_depth = 0;
  // Exceptions dropped because nothing could take them (a hook's, a destructor's of an
  // output nobody reads): process-wide, every runtime's (swarm/task/swallowed_exception.hpp).
  std::uint64_t swallowed_exception_count = 0;
  std::vector<worker_metrics_snapshot> workers;
};

class runtime : public boost::asio::execution_context {
  struct bits {
    static constexpr unsigned blocking_never = 1;
    static constexpr unsigned relationship_continuation = 2;
    static constexpr unsigned outstanding_work_tracked = 4;
  };

public:
  template <class Allocator, unsigned Bits>
  class basic_executor_type;
  using executor_type = basic_executor_type<std::allocator<void>, 0>;

  // Worker slots = the hardware concurrency.
  SWARM_DECL runtime();
  // As io_context(int): `concurrency_hint` worker slots (at least 1).
  SWARM_DECL explicit runtime(int concurrency_hint);
  SWARM_DECL explicit runtime(runtime_options options);

  // Stops the workers, cancels every task, destroys unrun handlers. Destroying a runtime
  // from one of its own threads is a fatal misuse (the process aborts with a message).
  SWARM_DECL ~runtime();

  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  executor_type get_executor() noexcept;

  // io_context's loop control. The calling thread drives a worker while inside.
  SWARM_DECL std::size_t run();
  SWARM_DECL std::size_t run_one();
  SWARM_DECL std::size_t poll();
  SWARM_DECL std::size_t poll_one();
  template <class Rep, class Period>
  std::size_t run_for(std::chrono::duration<Rep, Period> d) {
    return run_until(std::chrono::steady_clock::now() + d);
  }
  template <class Clock, class Duration>
  std::size_t run_until(std::chrono::time_point<Clock, Duration> t) {
    const auto left = t - Clock::now();
    return run_until_steady(std::chrono::steady_clock::now() +
                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(left));
  }
  SWARM_DECL void stop();
  SWARM_DECL bool stopped() const noexcept;
  SWARM_DECL void restart();

  // Tokio's model: the runtime starts options.worker_threads threads of its own. A
  // current_thread runtime has none: it throws std::logic_error.
  SWARM_DECL void start();

  runtime_flavor flavor() const noexcept { return flavor_; }

  // Runs `aw` as a task and returns its value, or rethrows the exception the coroutine
  // threw (that exception itself, not a join_error); a task cancelled by a shutdown throws
  // join_error (is_cancelled()). Without owned workers the calling thread drives the
  // runtime, as run() does, until the task is done; on a stopped runtime it throws
  // std::logic_error. Defined in <swarm/spawn.hpp>.
  template <class T, class E>
  T block_on(boost::asio::awaitable<T, E> aw);
  // The same for a swarm::coro.
  template <class T>
  T block_on(coro<T> c);
  // Cancels every task and stops every thread, waiting at most `timeout` for blocking work.
  SWARM_DECL void shutdown(std::chrono::nanoseconds timeout = std::chrono::nanoseconds::max());

  SWARM_DECL runtime_metrics metrics() const;

  // Whether the calling thread is one of this runtime's workers.
  bool running_in_this_thread() const noexcept { return scheduler_->is_current_worker(); }

  // Internal: the scheduler (for the task layer built on it).
  detail::multi_thread::handle& scheduler() noexcept { return *scheduler_; }

  // Outstanding work, as io_context's work_started / work_finished.
  void work_started() noexcept { work_.started(work_slot()); }
  SWARM_DECL void work_finished() noexcept;

  // Internal: queues `f` as a job.
  template <class F>
  void post_job(F&& f, bool continuation);

private:
  struct resolved_tag {};
  runtime(runtime_options options, resolved_tag);

  std::size_t work_slot() const noexcept;
  std::size_t drive(detail::multi_thread::run_limits limits);
  // block_on's wait for the task of `h`.
  template <class T>
  T wait_blocking(join_handle<T> h);
  SWARM_DECL std::size_t run_until_steady(std::chrono::steady_clock::time_point t);
  bool out_of_work();

  runtime_flavor flavor_;
  // Installed first: Asio's scheduler must be the first service of the context.
  detail::io_driver driver_;
  std::unique_ptr<detail::multi_thread::handle> scheduler_;
  detail::work_counter work_;
  std::mutex mutex_;
  std::condition_variable stopped_cv_;
  bool started_ = false;  // owned workers are running (start()); false after shutdown
  bool launched_ = false; // start() launched them (once: they outlive a stop)
};

// A callable queued as a job, counting as outstanding work until it ran or was destroyed.
namespace detail {

template <class F>
class counted_handler {
public:
  counted_handler(runtime* rt, F&& f) : rt_(rt), f_(std::move(f)) { rt_->work_started(); }
  counted_handler(counted_handler&& o) noexcept(std::is_nothrow_move_constructible_v<F>)
      : rt_(std::exchange(o.rt_, nullptr)), f_(std::move(o.f_)) {}
  counted_handler& operator=(counted_handler&&) = delete;
  ~counted_handler() {
    if (rt_)
      rt_->work_finished();
  }

  void operator()() && {
    // Finished after the handler ran (or threw), as io_context counts it.
    counted_handler self(std::move(*this));
    std::move(self.f_)();
  }

private:
  runtime* rt_;
  F f_;
};

} // namespace detail

template <class F>
void runtime::post_job(F&& f, bool continuation) {
  using fn_type = detail::counted_handler<std::decay_t<F>>;
  detail::header* h = detail::job<fn_type>::create(fn_type(this, std::decay_t<F>(std::forward<F>(f))));
  // fork: behind the other runnable work, FIFO as io_context posts run; continuation: the
  // LIFO slot, next on this worker.
  scheduler_->schedule_task(detail::multi_thread::notified_task(h), !continuation);
}

// The executor: the standard executor properties and the Networking TS members.
template <class Allocator, unsigned Bits>
class runtime::basic_executor_type : private Allocator {
public:
  basic_executor_type(const basic_executor_type& o) noexcept
      : Allocator(static_cast<const Allocator&>(o)), rt_(o.rt_), bits_(o.bits_) {
    if constexpr ((Bits & bits::outstanding_work_tracked) != 0)
      if (rt_)
        rt_->work_started();
  }
  basic_executor_type(basic_executor_type&& o) noexcept
      : Allocator(static_cast<Allocator&&>(o)), rt_(o.rt_), bits_(o.bits_) {
    if constexpr ((Bits & bits::outstanding_work_tracked) != 0)
      o.rt_ = nullptr;
  }
  ~basic_executor_type() {
    if constexpr ((Bits & bits::outstanding_work_tracked) != 0)
      if (rt_)
        rt_->work_finished();
  }
  basic_executor_type& operator=(const basic_executor_type& o) noexcept {
    if (this != &o) {
      basic_executor_type tmp(o);
      swap(tmp);
    }
    return *this;
  }
  basic_executor_type& operator=(basic_executor_type&& o) noexcept {
    if (this != &o) {
      basic_executor_type tmp(std::move(o));
      swap(tmp);
    }
    return *this;
  }

  // Properties (found by boost::asio::query / require / prefer).
  constexpr basic_executor_type require(boost::asio::execution::blocking_t::possibly_t) const {
    return basic_executor_type(rt_, *this, bits_ & ~bits::blocking_never);
  }
  constexpr basic_executor_type require(boost::asio::execution::blocking_t::never_t) const {
    return basic_executor_type(rt_, *this, bits_ | bits::blocking_never);
  }
  constexpr basic_executor_type require(boost::asio::execution::relationship_t::fork_t) const {
    return basic_executor_type(rt_, *this, bits_ & ~bits::relationship_continuation);
  }
  constexpr basic_executor_type require(boost::asio::execution::relationship_t::continuation_t) const {
    return basic_executor_type(rt_, *this, bits_ | bits::relationship_continuation);
  }
  constexpr basic_executor_type<Allocator, Bits | bits::outstanding_work_tracked>
  require(boost::asio::execution::outstanding_work_t::tracked_t) const {
    return basic_executor_type<Allocator, Bits | bits::outstanding_work_tracked>(rt_, *this, bits_);
  }
  constexpr basic_executor_type<Allocator, Bits & ~bits::outstanding_work_tracked>
  require(boost::asio::execution::outstanding_work_t::untracked_t) const {
    return basic_executor_type<Allocator, Bits & ~bits::outstanding_work_tracked>(rt_, *this, bits_);
  }
  template <class OtherAllocator>
  constexpr basic_executor_type<OtherAllocator, Bits>
  require(boost::asio::execution::allocator_t<OtherAllocator> a) const {
    return basic_executor_type<OtherAllocator, Bits>(rt_, a.value(), bits_);
  }
  constexpr basic_executor_type<std::allocator<void>, Bits>
  require(boost::asio::execution::allocator_t<void>) const {
    return basic_executor_type<std::allocator<void>, Bits>(rt_, std::allocator<void>(), bits_);
  }

  static constexpr boost::asio::execution::mapping_t query(boost::asio::execution::mapping_t) noexcept {
    return boost::asio::execution::mapping.thread;
  }
  runtime& query(boost::asio::execution::context_t) const noexcept { return *rt_; }
  constexpr boost::asio::execution::blocking_t query(boost::asio::execution::blocking_t) const noexcept {
    return (bits_ & bits::blocking_never)
               ? boost::asio::execution::blocking_t(boost::asio::execution::blocking.never)
               : boost::asio::execution::blocking_t(boost::asio::execution::blocking.possibly);
  }
  constexpr boost::asio::execution::relationship_t
  query(boost::asio::execution::relationship_t) const noexcept {
    return (bits_ & bits::relationship_continuation)
               ? boost::asio::execution::relationship_t(boost::asio::execution::relationship.continuation)
               : boost::asio::execution::relationship_t(boost::asio::execution::relationship.fork);
  }
  static constexpr boost::asio::execution::outstanding_work_t
  query(boost::asio::execution::outstanding_work_t) noexcept {
    return (Bits & bits::outstanding_work_tracked)
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
    return rt_->scheduler().num_workers();
  }

  bool running_in_this_thread() const noexcept { return rt_->running_in_this_thread(); }

  friend bool operator==(const basic_executor_type& a, const basic_executor_type& b) noexcept {
    return a.rt_ == b.rt_ && a.bits_ == b.bits_ &&
           static_cast<const Allocator&>(a) == static_cast<const Allocator&>(b);
  }
  friend bool operator!=(const basic_executor_type& a, const basic_executor_type& b) noexcept {
    return !(a == b);
  }

  // Runs `f` inline when allowed (blocking.possibly) and this thread is a worker of the
  // runtime, as io_context does; otherwise queues it. Per handler; hot.
  template <class F>
  void execute(F&& f) const {
    if ((bits_ & bits::blocking_never) == 0 && rt_->running_in_this_thread()) {
      if (detail::io_driver_here.inside) {
        // An I/O completion: queued, so that other workers can take it (see io_driver).
        ++detail::io_driver_here.queued;
        rt_->post_job(std::forward<F>(f), false);
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
    rt_->post_job(std::forward<F>(f), (bits_ & bits::relationship_continuation) != 0);
  }

  // Networking TS members.
  runtime& context() const noexcept { return *rt_; }
  void on_work_started() const noexcept { rt_->work_started(); }
  void on_work_finished() const noexcept { rt_->work_finished(); }
  template <class F, class A>
  void dispatch(F&& f, const A&) const {
    if (!detail::io_driver_here.inside && rt_->running_in_this_thread()) {
      std::decay_t<F> tmp(std::forward<F>(f));
      std::move(tmp)();
      return;
    }
    rt_->post_job(std::forward<F>(f), false);
  }
  template <class F, class A>
  void post(F&& f, const A&) const {
    rt_->post_job(std::forward<F>(f), false);
  }
  template <class F, class A>
  void defer(F&& f, const A&) const {
    rt_->post_job(std::forward<F>(f), true);
  }

private:
  friend class runtime;
  template <class, unsigned>
  friend class basic_executor_type;

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

  constexpr basic_executor_type(runtime* rt, const Allocator& a, unsigned b) noexcept
      : Allocator(a), rt_(rt), bits_(b) {
    if constexpr ((Bits & bits::outstanding_work_tracked) != 0)
      if (rt_)
        rt_->work_started();
  }

  void swap(basic_executor_type& o) noexcept {
    std::swap(static_cast<Allocator&>(*this), static_cast<Allocator&>(o));
    std::swap(rt_, o.rt_);
    std::swap(bits_, o.bits_);
  }

  runtime* rt_;
  unsigned bits_;
};

inline runtime::executor_type runtime::get_executor() noexcept {
  return executor_type(this, std::allocator<void>(), 0);
}

} // namespace swarm
