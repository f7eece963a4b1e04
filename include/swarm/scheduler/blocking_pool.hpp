// The blocking pool: threads for work that blocks (spawn_blocking) and for the workers
// themselves. Threads start on demand up to a cap, wait `keep_alive` for more work, then
// exit. A task that has not started when the pool shuts down is cancelled, unless it is
// mandatory (a worker), which always runs.
#pragma once

#include <swarm/detail/assert.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/scheduler/coop.hpp>
#include <swarm/scheduler/options.hpp>
#include <swarm/scheduler/thread.hpp>
#include <swarm/task/new_task.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <type_traits>
#include <unordered_map>

namespace swarm::detail {

// The scheduler of blocking tasks: they live in no owner list and are never re-scheduled.
struct blocking_schedule {
  void schedule(notified<blocking_schedule>) noexcept {
    // A blocking task is polled once, by the pool; nothing can wake it. (Abort before it
    // starts finds the initial notified bit set and never schedules.)
    SWARM_ASSERT(false && "blocking tasks are never scheduled");
  }
  void yield_now(notified<blocking_schedule> n) noexcept { schedule(std::move(n)); }
  task<blocking_schedule> release(raw_task) noexcept { return {}; }
  void unhandled_exception(std::exception_ptr) noexcept {}
};

// The future of a blocking task: runs the function on its only poll, unconstrained by the
// cooperative budget.
template <class Fn>
class blocking_future {
public:
  using result_type = std::invoke_result_t<Fn&>;
  using output_type = std::conditional_t<std::is_void_v<result_type>, unit, result_type>;

  explicit blocking_future(Fn fn) : fn_(std::move(fn)) {}

  std::optional<output_type> poll(poll_context&) {
    coop::budget_scope unconstrained(coop::budget::unconstrained());
    if constexpr (std::is_void_v<result_type>) {
      fn_();
      return unit{};
    } else {
      return fn_();
    }
  }

private:
  Fn fn_;
};

class blocking_pool {
public:
  // The cap on threads is options.max_blocking_threads, plus what reserve_threads adds.
  SWARM_DECL explicit blocking_pool(const scheduler_options& options);
  SWARM_DECL ~blocking_pool();
  blocking_pool(const blocking_pool&) = delete;
  blocking_pool& operator=(const blocking_pool&) = delete;

  // Runs `fn` on a pool thread. After shutdown the task is cancelled and the handle
  // resolves as cancelled.
  template <class Fn>
  raw_join_handle<typename blocking_future<std::decay_t<Fn>>::output_type>
  spawn_blocking(Fn&& fn, std::source_location location = std::source_location::current()) {
    new_unowned_result<blocking_future<std::decay_t<Fn>>, blocking_schedule> t =
        new_unowned(blocking_future<std::decay_t<Fn>>(std::forward<Fn>(fn)), blocking_schedule{},
                    task_id::next(), location, terminate_hook_);
    submit(std::move(t.task), false);
    return std::move(t.join);
  }

  // Raises the cap by `n` threads that will run something other than blocking tasks (the
  // launched workers, as Tokio's multi-thread builder adds worker_threads to the cap; a
  // current-thread runtime launches none and keeps max_blocking_threads).
  SWARM_DECL void reserve_threads(std::size_t n);

  // Runs `fn` on a pool thread even during shutdown (workers). Throws if the pool was
  // already shut down.
  SWARM_DECL void spawn_mandatory(std::function<void()> fn);

  // Stops accepting work, cancels queued non-mandatory tasks, waits up to `timeout` for
  // the threads to exit and joins them. A zero timeout does not wait. Idempotent.
  SWARM_DECL void shutdown(std::chrono::nanoseconds timeout);

  SWARM_DECL std::size_t num_threads() const;
  SWARM_DECL std::size_t num_idle_threads() const;
  SWARM_DECL std::size_t queue_depth() const;

  // The state shared with the pool threads (defined below; used by the implementation).
  struct shared_state;

private:
  SWARM_DECL void submit(unowned_task<blocking_schedule> t, bool mandatory);

  // Shared with the threads, which may outlive the pool after a timed-out shutdown.
  std::shared_ptr<shared_state> shared_;
  // Points into shared_, so it lives as long as any blocking task can complete.
  const task_hook* terminate_hook_ = nullptr;
};

struct blocking_pool::shared_state {
  task_hook on_terminate;
  struct job {
    std::optional<unowned_task<blocking_schedule>> task;
    std::function<void()> fn; // a mandatory raw job (a worker), when task is empty
    bool mandatory = false;
  };

  mutable std::mutex mutex;
  std::condition_variable condvar;
  std::condition_variable shutdown_condvar;
  std::deque<job> queue;
  std::size_t num_threads = 0;
  std::size_t num_idle = 0;
  std::size_t num_notify = 0;
  bool shutdown = false;
  std::size_t next_thread_id = 0;
  std::unordered_map<std::size_t, os_thread> threads;
  std::optional<os_thread> last_exiting;

  std::size_t cap = 0;
  std::chrono::nanoseconds keep_alive{0};
  std::string thread_name;
  std::size_t stack_size = 0;
  std::function<void()> on_thread_start;
  std::function<void()> on_thread_stop;
};

} // namespace swarm::detail
