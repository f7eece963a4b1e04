#include <swarm/scheduler/blocking_pool.hpp>

#include <stdexcept>
#include <vector>

namespace swarm::detail {
blocking_pool::blocking_pool(const scheduler_options& options)
    : shared_(std::make_shared<shared_state>()) {
  if (options.max_blocking_threads == 0)
    throw std::invalid_argument("swarm: max_blocking_threads must be greater than 0");
  shared_->on_terminate = options.on_task_terminate;
  shared_->cap = options.max_blocking_threads;
  shared_->keep_alive = options.thread_keep_alive;
  shared_->thread_name = options.thread_name;
  shared_->stack_size = options.thread_stack_size;
  shared_->on_thread_start = options.on_thread_start;
  shared_->on_thread_stop = options.on_thread_stop;
  terminate_hook_ = shared_->on_terminate ? &shared_->on_terminate : nullptr;
}

blocking_pool::~blocking_pool() { shutdown(std::chrono::nanoseconds::max()); }

namespace {

// The body of every pool thread.
void run_pool_thread(const std::shared_ptr<blocking_pool::shared_state>& sp, std::size_t id);

void start_thread_locked(const std::shared_ptr<blocking_pool::shared_state>& sp) {
  auto& s = *sp;
  const std::size_t id = s.next_thread_id++;
  os_thread t = os_thread::spawn(s.thread_name, s.stack_size, [sp, id] { run_pool_thread(sp, id); });
  ++s.num_threads;
  s.threads.emplace(id, std::move(t));
}

void run_job(blocking_pool::shared_state::job& j) {
  if (j.task)
    std::move(*j.task).run();
  else
    j.fn();
}

void run_pool_thread(const std::shared_ptr<blocking_pool::shared_state>& sp, std::size_t id) {
  auto& s = *sp;
  if (s.on_thread_start) {
    try {
      s.on_thread_start();
    } catch (...) {
      count_swallowed_exception(); // a thread hook must not take the thread down
    }
  }
  std::unique_lock lock(s.mutex);
  bool exiting_by_timeout = false;
  for (;;) {
    // Run everything queued, unlocking around each job. Once shutdown began, only the
    // drain below takes jobs (it runs the mandatory ones only).
    while (!s.shutdown && !s.queue.empty()) {
      blocking_pool::shared_state::job j = std::move(s.queue.front());
      s.queue.pop_front();
      lock.unlock();
      run_job(j);
      lock.lock();
    }
    if (s.shutdown)
      break;
    ++s.num_idle;
    bool woken = false;
    while (!s.shutdown) {
      const auto deadline = std::chrono::steady_clock::now() + s.keep_alive;
      const bool timed_out = s.condvar.wait_until(lock, deadline) == std::cv_status::timeout;
      if (s.num_notify > 0) {
        --s.num_notify;
        woken = true;
        break;
      }
      if (timed_out && !s.shutdown && std::chrono::steady_clock::now() >= deadline) {
        // Idle for keep_alive: leave. The next exiting thread (or shutdown) joins us.
        exiting_by_timeout = true;
        break;
      }
    }
    if (woken)
      continue; // num_idle was decremented by the notifier
    --s.num_idle;
    break;
  }
  if (s.shutdown) {
    // Drain: mandatory jobs run, the rest are cancelled without running.
    while (!s.queue.empty()) {
      blocking_pool::shared_state::job j = std::move(s.queue.front());
      s.queue.pop_front();
      lock.unlock();
      if (j.mandatory)
        run_job(j);
      else if (j.task)
        std::move(*j.task).shutdown();
      lock.lock();
    }
  }
  std::optional<os_thread> to_join;
  if (exiting_by_timeout) {
    auto it = s.threads.find(id);
    if (it != s.threads.end()) {
      to_join = std::exchange(s.last_exiting, std::move(it->second));
      s.threads.erase(it);
    }
  }
  --s.num_threads;
  const bool last = s.shutdown && s.num_threads == 0;
  lock.unlock();
  if (last)
    s.shutdown_condvar.notify_all();
  if (s.on_thread_stop) {
    try {
      s.on_thread_stop();
    } catch (...) {
      count_swallowed_exception(); // a thread hook must not take the thread down
    }
  }
  if (to_join)
    to_join->join();
}

} // namespace

void blocking_pool::submit(unowned_task<blocking_schedule> t, bool mandatory) {
  std::unique_lock lock(shared_->mutex);
  if (shared_->shutdown) {
    lock.unlock();
    std::move(t).shutdown(); // cancelled: the handle resolves as cancelled
    return;
  }
  shared_->queue.push_back({std::move(t), {}, mandatory});
  if (shared_->num_idle == 0) {
    if (shared_->num_threads < shared_->cap) {
      try {
        start_thread_locked(shared_);
      } catch (...) {
        // With a thread running the job stays queued for it; with none, it cannot run.
        if (shared_->num_threads == 0)
          throw;
      }
    }
  } else {
    --shared_->num_idle;
    ++shared_->num_notify;
    shared_->condvar.notify_one();
  }
}

void blocking_pool::reserve_threads(std::size_t n) {
  std::lock_guard lock(shared_->mutex);
  shared_->cap += n;
}

void blocking_pool::spawn_mandatory(std::function<void()> fn) {
  std::unique_lock lock(shared_->mutex);
  if (shared_->shutdown)
    throw std::logic_error("swarm: the blocking pool is shut down");
  shared_->queue.push_back({std::nullopt, std::move(fn), true});
  if (shared_->num_idle == 0) {
    start_thread_locked(shared_);
  } else {
    --shared_->num_idle;
    ++shared_->num_notify;
    shared_->condvar.notify_one();
  }
}

void blocking_pool::shutdown(std::chrono::nanoseconds timeout) {
  std::unique_lock lock(shared_->mutex);
  if (shared_->shutdown)
    return;
  shared_->shutdown = true;
  shared_->condvar.notify_all();
  // Jobs not started yet are cancelled here rather than by a pool thread: every thread may
  // be busy past the timeout (and a thread that finishes a job must not start a queued
  // one). Mandatory jobs (workers) stay queued; a pool thread runs them.
  std::vector<unowned_task<blocking_schedule>> cancelled;
  std::deque<shared_state::job> mandatory;
  for (shared_state::job& j : shared_->queue) {
    if (j.mandatory)
      mandatory.push_back(std::move(j));
    else if (j.task)
      cancelled.push_back(std::move(*j.task));
  }
  shared_->queue.clear();
  shared_->queue.swap(mandatory);
  if (!cancelled.empty()) {
    // Cancelling drops the callable and wakes join handles: not under the pool lock.
    lock.unlock();
    for (unowned_task<blocking_schedule>& t : cancelled)
      std::move(t).shutdown();
    lock.lock();
  }
  bool all_exited;
  if (timeout == std::chrono::nanoseconds::zero()) {
    all_exited = shared_->num_threads == 0;
  } else if (timeout == std::chrono::nanoseconds::max()) {
    shared_->shutdown_condvar.wait(lock, [&] { return shared_->num_threads == 0; });
    all_exited = true;
  } else {
    all_exited = shared_->shutdown_condvar.wait_for(lock, timeout, [&] { return shared_->num_threads == 0; });
  }
  auto threads = std::move(shared_->threads);
  shared_->threads.clear();
  std::optional<os_thread> last = std::move(shared_->last_exiting);
  shared_->last_exiting.reset();
  lock.unlock();
  if (all_exited) {
    if (last)
      last->join();
    for (auto& [id, t] : threads)
      t.join();
  } else {
    // Threads still running blocking work keep the shared state alive and exit by
    // themselves; we no longer wait for them.
    if (last)
      last->detach();
    for (auto& [id, t] : threads)
      t.detach();
  }
}

std::size_t blocking_pool::num_threads() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->num_threads;
}

std::size_t blocking_pool::num_idle_threads() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->num_idle;
}

std::size_t blocking_pool::queue_depth() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->queue.size();
}

} // namespace swarm::detail
