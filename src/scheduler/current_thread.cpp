#include <swarm/scheduler/current_thread.hpp>

#include <stdexcept>
#include <thread>

namespace swarm::detail::current_thread {
namespace {

// The scheduler the calling thread drives right now, if any.
thread_local handle* current_handle = nullptr;

} // namespace

void handle_ref::unhandled_exception(std::exception_ptr) {
  if (h->options_.unhandled_exception == unhandled_exception_policy::shutdown_runtime) {
    h->inject_.close();
    h->unpark();
  }
}

handle::handle(scheduler_options options, driver* drv)
    : options_(std::move(options)), parker_(driver_), owned_(1), blocking_(options_, 0) {
  if (options_.global_queue_interval && *options_.global_queue_interval == 0)
    throw std::invalid_argument("swarm: global_queue_interval must be greater than 0");
  if (options_.event_interval == 0)
    throw std::invalid_argument("swarm: event_interval must be greater than 0");
  driver_.drv = drv;
}

handle::~handle() { shutdown(); }

bool handle::is_current_worker() const noexcept { return current_handle == this; }

void handle::push_local(header* t) noexcept {
  t->queue_next = nullptr; // we hold its notified: the link is ours
  if (local_tail_)
    local_tail_->queue_next = t;
  else
    local_head_ = t;
  local_tail_ = t;
  // Relaxed load and store: one writer; readers only want a recent value.
  local_len_.store(local_len_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  ++metrics_.batch.local_schedule_count;
}

header* handle::pop_local() noexcept {
  header* t = local_head_;
  if (t) {
    local_head_ = t->queue_next;
    if (!local_head_)
      local_tail_ = nullptr;
    local_len_.store(local_len_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  return t;
}

void handle::drain_local() noexcept {
  while (header* t = pop_local())
    raw_task(t).drop_reference();
}

void handle::schedule_task(notified_task n, bool /*is_yield*/) {
  header* t = std::move(n).into_raw();
  if (current_handle == this) {
    // The driving thread owns the local queue: no atomics, no lock. A yield goes to the
    // back like any other local schedule; one thread means no LIFO slot to bypass.
    push_local(t);
    return;
  }
  remote_schedule_count_.fetch_add(1, std::memory_order_relaxed);
  if (!inject_.push(t)) {
    raw_task(t).drop_reference(); // shut down: the task was cancelled
    return;
  }
  parker_.unpark();
}

void handle::unpark() { parker_.unpark(); }

void handle::defer(const waker& w) {
  if (current_handle != this) {
    w.wake_by_ref();
    return;
  }
  if (!defer_.empty() && defer_.back().will_wake(w))
    return;
  defer_.push_back(w.clone());
}

header* handle::next_task() {
  const std::uint32_t interval = options_.global_queue_interval.value_or(31);
  if (tick_ % interval == 0) {
    if (header* t = inject_.is_empty() ? nullptr : inject_.pop())
      return t;
    return pop_local();
  }
  if (header* t = pop_local())
    return t;
  return inject_.is_empty() ? nullptr : inject_.pop();
}

// Marks the calling thread as the driver for its scope.
struct handle::driving {
  handle& h;
  handle* prev = nullptr;
  struct worker_metrics* prev_metrics = nullptr;
  bool active = false; // this guard holds the driver role

  // Waits for the thread driving now to leave (it leaves once the inject queue is closed).
  explicit driving(handle& hh) : h(hh) {
    while (h.driven_.exchange(true, std::memory_order_acquire)) {
      h.parker_.unpark();
      std::this_thread::yield();
    }
    enter();
  }
  // Takes the driver role if it is free; `acquired` says whether it did.
  driving(handle& hh, bool& acquired) : h(hh) {
    // Acquire: pairs with the release in the destructor of the previous driver.
    acquired = !h.driven_.exchange(true, std::memory_order_acquire);
    if (acquired)
      enter();
  }
  void enter() noexcept {
    prev = std::exchange(current_handle, &h);
    prev_metrics = current_worker_metrics();
    set_current_worker_metrics(&h.metrics_);
    active = true;
  }
  ~driving() {
    if (!active)
      return;
    set_current_worker_metrics(prev_metrics);
    current_handle = prev;
    h.driven_.store(false, std::memory_order_release);
  }
};

std::size_t handle::run_until(const std::function<bool()>& done) {
  bool acquired = false;
  driving guard(*this, acquired);
  if (!acquired) {
    // shutdown() drives while it cancels: a run that races it finds nothing left to do.
    // The inject queue is closed before shutdown takes the driver role.
    if (inject_.is_closed())
      return 0;
    throw std::logic_error("swarm: a current-thread runtime is already driven by another thread");
  }
  std::size_t polls = 0;
  auto wake_deferred = [&] {
    while (!defer_.empty()) {
      waker w = std::move(defer_.back());
      defer_.pop_back();
      std::move(w).wake();
    }
  };
  const auto hook = [](const std::function<void()>& f) {
    if (f) {
      try {
        f();
      } catch (...) {
      }
    }
  };
  timing_.begin();
  while (!done()) {
    if (inject_.is_closed())
      break;
    ++tick_;
    if (tick_ % options_.event_interval == 0) {
      // Let the driver deliver I/O and timers even under load (not busy time, as on the
      // multi-thread workers).
      timing_.end(metrics_.batch);
      parker_.park_timeout_zero();
      wake_deferred();
      metrics_.submit();
      timing_.begin();
    }
    if (header* t = next_task()) {
      local_notified<handle_ref> task = owned_.assert_owner(notified_task::from_raw(t));
      ++metrics_.batch.poll_count;
      timing_.note_poll();
      ++polls;
      coop::budget_scope budget(coop::budget::initial());
      run_with_poll_hooks(std::move(task), options_);
      continue;
    }
    if (!defer_.empty()) {
      parker_.park_timeout_zero();
      wake_deferred();
      continue;
    }
    // Out of work: sleep until a remote schedule, an unpark or a driver event.
    timing_.end(metrics_.batch);
    hook(options_.on_thread_park);
    ++metrics_.batch.park_count;
    metrics_.batch.park_unpark_count += 2;
    if (metrics_.batch.poll_count == metrics_.polls_at_last_park)
      ++metrics_.batch.noop_count;
    metrics_.polls_at_last_park = metrics_.batch.poll_count;
    metrics_.submit();
    if (!done())
      parker_.park();
    wake_deferred();
    hook(options_.on_thread_unpark);
    timing_.begin();
  }
  timing_.end(metrics_.batch);
  metrics_.submit();
  return polls;
}

void handle::shutdown(std::chrono::nanoseconds timeout) {
  // Relaxed: only the exchange below decides, and it is an RMW on the same flag.
  if (shut_down_.load(std::memory_order_relaxed))
    return;
  if (current_handle == this)
    throw std::logic_error("swarm: a runtime cannot be shut down from inside one of its own tasks");
  // One caller proceeds; a concurrent second call returns at once, as before.
  if (shut_down_.exchange(true, std::memory_order_acq_rel))
    return;
  inject_.close();
  {
    // Destructors of cancelled tasks run as if on the driver, so their wakes and spawns
    // stay local and are dropped below.
    driving guard(*this);
    owned_.close_and_shutdown_all();
    drain_local();
    inject_.drain([](header* t) noexcept { raw_task(t).drop_reference(); });
    defer_.clear();
  }
  driver_.shutdown();
  parker_.shutdown();
  blocking_.shutdown(timeout);
}

worker_metrics_snapshot handle::worker_metrics(std::size_t worker) const {
  if (worker != 0)
    throw std::out_of_range("swarm: worker index out of range");
  worker_metrics_snapshot s;
  s.park_count = metrics_.park_count.load(std::memory_order_relaxed);
  s.park_unpark_count = metrics_.park_unpark_count.load(std::memory_order_relaxed);
  s.noop_count = metrics_.noop_count.load(std::memory_order_relaxed);
  s.poll_count = metrics_.poll_count.load(std::memory_order_relaxed);
  s.local_schedule_count = metrics_.local_schedule_count.load(std::memory_order_relaxed);
  s.total_busy_duration = std::chrono::nanoseconds(metrics_.busy_duration_ns.load(std::memory_order_relaxed));
  s.mean_poll_time = std::chrono::nanoseconds(metrics_.mean_poll_time_ns.load(std::memory_order_relaxed));
  s.local_queue_depth = local_len_.load(std::memory_order_relaxed);
  return s;
}

} // namespace swarm::detail::current_thread
