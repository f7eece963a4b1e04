#include <swarm/runtime.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace swarm {
namespace detail {

// Marks a context as a swarm runtime, so that the runtime can be found from any executor
// of it (execution_context has no virtual members to cast through).
class runtime_service : public boost::asio::execution_context::service {
public:
  static boost::asio::execution_context::id id;
  runtime_service(boost::asio::execution_context& ctx, runtime* rt) : service(ctx), rt_(rt) {}
  // Only reached if looked up before registration; runtime_from_context checks first.
  explicit runtime_service(boost::asio::execution_context& ctx) : service(ctx), rt_(nullptr) {}
  runtime* get() const noexcept { return rt_; }

private:
  void shutdown() override {}
  runtime* rt_;
};

boost::asio::execution_context::id runtime_service::id;

runtime* runtime_from_context(boost::asio::execution_context& ctx) {
  if (!boost::asio::has_service<runtime_service>(ctx))
    return nullptr;
  return boost::asio::use_service<runtime_service>(ctx).get();
}

} // namespace detail

namespace {

// How often run() rechecks, while the owned workers drive the runtime, whether it was
// stopped or shut down: the unhandled-exception policy shuts the scheduler down from a
// worker without signalling stopped_cv_.
constexpr auto stop_recheck_interval = std::chrono::milliseconds(100);

runtime_options options_for(int concurrency_hint) {
  runtime_options o;
  if (concurrency_hint > 0)
    o.worker_threads = static_cast<std::size_t>(concurrency_hint);
  return o;
}

// A current-thread runtime is the one scheduler with one worker and no LIFO slot; the
// flavour itself (no owned threads) is enforced by start().
runtime_options resolved(runtime_options o) {
  if (o.poll_timing_interval == 0 || o.poll_timing_interval > (1u << 20))
    throw std::invalid_argument("swarm::runtime: poll_timing_interval must be in [1, 1048576]");
  if (o.flavor == runtime_flavor::current_thread) {
    static_cast<scheduler_options&>(o) = current_thread_options(o);
  } else if (o.flavor != runtime_flavor::multi_thread) {
    throw std::invalid_argument("swarm::runtime: unknown runtime_flavor");
  }
  return o;
}

int hint_for(const runtime_options& o) { return o.worker_threads == 1 ? 1 : 0; }

} // namespace

runtime::runtime() : runtime(runtime_options()) {}

runtime::runtime(int concurrency_hint) : runtime(options_for(concurrency_hint)) {}

runtime::runtime(runtime_options options) : runtime(resolved(std::move(options)), resolved_tag{}) {}

runtime::runtime(runtime_options options, resolved_tag)
    : flavor_(options.flavor), dump_options_(options.dump), driver_(*this, hint_for(options)),
      core_(*this, std::make_unique<detail::multi_thread::handle>(std::move(options), &driver_),
            &on_out_of_work) {
  // (options' own members survive the move of its scheduler_options base)
  core_.scheduler().set_track_tasks(options.track_tasks, options.poll_timing_interval);
  if (core_.scheduler().track_tasks())
    detail::stamp_clock::calibrate(); // once per process, about a millisecond
  boost::asio::add_service(*this, new detail::runtime_service(*this, this));
}

runtime::~runtime() {
  if (running_in_this_thread()) {
    std::fputs("swarm: a runtime was destroyed from one of its own threads; aborting\n", stderr);
    std::abort();
  }
  // Cancel every task and stop every thread first: nothing may run while Asio's services
  // shut down. Then the services destroy their pending operations; handlers that post
  // themselves while being destroyed (awaitable frames) meet a closed scheduler and are
  // destroyed on the spot.
  core_.scheduler().shutdown();
  boost::asio::execution_context::shutdown();
  boost::asio::execution_context::destroy();
}

bool runtime::out_of_work() {
  if (core_.outstanding_work() != 0)
    return false;
  // A runtime shutting down has nothing to stop, and its shutdown may hold the locks a stop
  // takes (cells freed while it drops queued tasks finish their work here).
  if (core_.scheduler().is_shutdown())
    return false;
  // io_context's rule: running out of work stops the context. A runtime with owned
  // workers runs until stop() or shutdown instead.
  {
    std::lock_guard lock(mutex_);
    if (started_)
      return false;
  }
  stop();
  return true;
}

std::size_t runtime::drive(detail::multi_thread::run_limits limits) {
  {
    std::unique_lock lock(mutex_);
    if (started_) {
      // The owned workers drive the runtime: run() waits until it is stopped or shut
      // down. The unhandled-exception policy shuts the scheduler down from a worker
      // without signalling stopped_cv_, hence the bounded waits.
      if (!limits.block)
        return 0;
      const auto done = [&] {
        return core_.scheduler().stop_requested() || !started_ || core_.scheduler().is_shutdown();
      };
      while (!done()) {
        auto until = std::chrono::steady_clock::now() + stop_recheck_interval;
        if (limits.deadline) {
          if (std::chrono::steady_clock::now() >= *limits.deadline)
            break;
          until = std::min(until, *limits.deadline);
        }
        stopped_cv_.wait_until(lock, until);
      }
      return 0;
    }
  }
  if (core_.scheduler().stop_requested())
    return 0;
  // block_on leaves by its flag: running out of work does not stop the runtime under it
  // (its own task is work until the result is in).
  if (!limits.leave_when_set) {
    if (core_.outstanding_work() == 0) {
      stop();
      return 0;
    }
    limits.idle_exit = [this] { return out_of_work(); };
  }
  std::size_t n = 0;
  do {
    n += core_.scheduler().drive(limits);
    // A drive leaves early only by its limits, stop, or running out of work.
  } while (limits.block && limits.max_polls == detail::driver::no_limit && !limits.deadline &&
           !core_.scheduler().stop_requested() && !core_.scheduler().is_shutdown() &&
           !(limits.leave_when_set && limits.leave_when_set->load(std::memory_order_acquire)));
  // io_context stops when its outstanding work reaches zero, whichever loop function ran
  // the last of it: a poll() or run_one() that did leaves the runtime stopped too.
  if (!limits.leave_when_set)
    out_of_work();
  return n;
}

std::size_t runtime::run() { return drive({}); }

std::size_t runtime::run_one() {
  detail::multi_thread::run_limits l;
  l.max_polls = 1;
  return drive(std::move(l));
}

std::size_t runtime::poll() {
  detail::multi_thread::run_limits l;
  l.block = false;
  return drive(std::move(l));
}

std::size_t runtime::poll_one() {
  detail::multi_thread::run_limits l;
  l.block = false;
  l.max_polls = 1;
  return drive(std::move(l));
}

std::size_t runtime::run_until_steady(std::chrono::steady_clock::time_point t) {
  detail::multi_thread::run_limits l;
  l.deadline = t;
  return drive(std::move(l));
}

void runtime::stop() {
  core_.scheduler().request_stop();
  std::lock_guard lock(mutex_);
  stopped_cv_.notify_all();
}

bool runtime::stopped() const noexcept { return core_.scheduler().stop_requested(); }

// Owned workers wait out a stop and go on when it is cleared (handle::launch), so
// restart() brings them back as it lets run() callers in again.
void runtime::restart() { core_.scheduler().clear_stop(); }

void runtime::start() {
  if (flavor_ == runtime_flavor::current_thread)
    throw std::logic_error(
        "swarm::runtime::start: a current_thread runtime has no threads of its own; drive it "
        "with run(), poll() or block_on()");
  std::lock_guard lock(mutex_);
  core_.scheduler().clear_stop();
  if (launched_)
    return; // the owned workers are there (and resume if they were stopped)
  launched_ = true;
  started_ = true;
  core_.scheduler().launch();
}

void runtime::shutdown(std::chrono::nanoseconds timeout) {
  if (running_in_this_thread())
    throw std::logic_error("swarm: a runtime cannot be shut down from one of its own threads");
  core_.scheduler().shutdown(timeout);
  std::lock_guard lock(mutex_);
  started_ = false;
  stopped_cv_.notify_all();
}

runtime_metrics runtime::metrics() const {
  const detail::multi_thread::handle& h = core_.scheduler();
  runtime_metrics m;
  m.num_workers = h.num_workers();
  m.num_alive_tasks = h.num_alive_tasks();
  m.spawned_tasks_count = h.spawned_tasks_count();
  m.global_queue_depth = h.global_queue_depth();
  m.remote_schedule_count = h.remote_schedule_count();
  m.budget_forced_yield_count = h.budget_forced_yield_count();
  m.num_blocking_threads = h.blocking().num_threads();
  m.num_idle_blocking_threads = h.blocking().num_idle_threads();
  m.blocking_queue_depth = h.blocking().queue_depth();
  m.swallowed_exception_count = detail::swallowed_exception_count();
  for (std::size_t i = 0; i < m.num_workers; ++i)
    m.workers.push_back(h.worker_metrics(i));
  return m;
}

namespace {

// What dump() copies from a task under its shard lock: raw values only (the strings of a
// source_location are static; the name is the one string copied there, as the cell may go
// once the lock is released).
struct raw_task_record {
  task_id id;
  std::source_location location;
  std::string name;
  detail::snapshot state;
  bool tracked = false;
  std::uint64_t polls = 0;
  std::uint64_t timed_polls = 0;
  std::uint64_t busy_stamps = 0;
  std::uint64_t longest_poll_stamps = 0;
  std::uint64_t last_poll_stamps = 0;
  std::uint64_t stamp = 0; // task_stats::stamp
  std::uint64_t wait = 0;  // task_stats::wait
  std::uint32_t wait_poll = 0; // task_stats::wait_poll
};

raw_task_record read_task(detail::header* h) {
  const detail::task_identity& ident = detail::identity_of(h);
  raw_task_record r;
  r.id = ident.id;
  r.location = ident.location;
  r.state = h->state.load();
  // Acquire: a stats block made by a first poll is read below (task_extra_slot).
  const std::uint64_t w = ident.extra.load_acquire();
  if (const detail::task_extra* x = detail::task_extra_slot::in_cell_of(w))
    r.name = x->name.view();
#if SWARM_TASK_TRACKING
  if (detail::task_extra_slot::is_lazy(w)) {
    // Not polled yet, or in or after a first poll that has no block (yet).
    r.tracked = true;
    r.polls = detail::task_extra_slot::lazy_polls(w);
    r.stamp = detail::task_extra_slot::lazy_stamp(w);
  } else if (const detail::task_stats* s = detail::task_extra_slot::stats_of(w); s && s->tracked()) {
    // Relaxed, as tracking.hpp says: each value is a statistic on its own.
    const detail::task_stats& st = *s;
    r.tracked = true;
    r.polls = st.polls.load(std::memory_order_relaxed);
    r.timed_polls = st.timed_polls.load(std::memory_order_relaxed);
    r.busy_stamps = st.busy_stamps.load(std::memory_order_relaxed);
    r.longest_poll_stamps = st.longest_poll_stamps.load(std::memory_order_relaxed);
    r.last_poll_stamps = st.last_poll_stamps.load(std::memory_order_relaxed);
    r.stamp = st.stamp.load(std::memory_order_relaxed);
    r.wait = st.wait.load(std::memory_order_relaxed);
    r.wait_poll = st.wait_poll.load(std::memory_order_relaxed);
  }
#endif
  return r;
}

task_run_state run_state_of(detail::snapshot s) noexcept {
  if (s.is_running())
    return task_run_state::running;
  if (s.is_complete())
    return task_run_state::completing;
  if (s.is_cancelled())
    return task_run_state::cancelled;
  if (s.is_notified())
    return task_run_state::scheduled;
  return task_run_state::idle;
}

// Stamps (tracking.hpp) to nanoseconds.
struct stamp_converter {
  std::uint64_t now;
  double ns_per_stamp;

  std::chrono::nanoseconds span(std::uint64_t stamps) const noexcept {
    return std::chrono::nanoseconds(static_cast<std::int64_t>(static_cast<double>(stamps) * ns_per_stamp));
  }
  // Clamped: a stamp read on another core may lie a little ahead.
  std::chrono::nanoseconds since(std::uint64_t then) const noexcept {
    return span(now > then ? now - then : 0);
  }
};

task_snapshot format_task(const raw_task_record& r, const stamp_converter& c, const dump_options& o) {
  task_snapshot t;
  t.id = r.id;
  t.state = run_state_of(r.state);
  t.name = r.name;
  t.spawn_file = r.location.file_name();
  t.spawn_line = r.location.line();
  t.spawn_function = r.location.function_name();
  if (!r.tracked)
    return t;
  t.poll_count = r.polls;
  t.timed_poll_count = r.timed_polls;
  // Scaled from the timed polls to all (tracking.hpp); exact when every poll is timed.
  if (r.timed_polls != 0)
    t.busy = c.span(static_cast<std::uint64_t>(
        static_cast<double>(r.busy_stamps) *
        (static_cast<double>(std::max(r.polls, r.timed_polls)) / static_cast<double>(r.timed_polls))));
  t.longest_poll = c.span(r.longest_poll_stamps);
  // A task never polled has no stamp (a spawn takes none): zero. It is scheduled, running
  // its first poll or cancelled, never idle, and the lost-waker rule needs a poll anyway.
  // Inside a poll, zero too.
  const bool in_poll = (r.stamp & detail::task_stats::in_poll_bit) != 0;
  const std::uint64_t stamp = r.stamp & ~detail::task_stats::in_poll_bit;
  if (r.stamp != 0 && !in_poll)
    t.since_last_poll = c.since(stamp);
  // The wait noted by the current poll, or by the last one (tracking.hpp).
  const std::uint64_t current_poll = in_poll ? r.polls : r.polls - 1;
  if (r.stamp != 0 && r.wait_poll == static_cast<std::uint32_t>(current_poll)) {
    t.waiting_on = static_cast<task_wait_kind>(detail::task_stats::wait_kind_of(r.wait));
    if (t.waiting_on == task_wait_kind::join)
      t.wait_target = task_id(detail::task_stats::wait_target_of(r.wait));
  }
  // Long poll: the poll in progress, or the last timed one, ran longer than the threshold.
  if ((in_poll && r.state.is_running() && c.since(stamp) > o.long_poll) ||
      c.span(r.last_poll_stamps) > o.long_poll)
    t.warnings |= warn_long_poll;
  // Lost waker: idle (not running, complete, notified or cancelled), polled at least once,
  // idle past the threshold, and holding no reference beyond the owned list's and the join
  // handle's: no waker, executor, pending operation or abort handle can reach it. An abort
  // handle counts as a holder, so a task with one is never flagged (a missed warning, never
  // a false one).
  const std::uintptr_t baseline = 1 + (r.state.is_join_interested() ? 1 : 0);
  if (t.state == task_run_state::idle && r.polls > 0 && t.since_last_poll > o.lost_waker_idle &&
      r.state.ref_count() <= baseline)
    t.warnings |= warn_lost_waker;
  return t;
}

} // namespace

runtime_dump runtime::dump() const {
  detail::multi_thread::handle& h = core_.scheduler();
  runtime_dump d;
  d.taken_at = std::chrono::system_clock::now();
  const auto steady = std::chrono::steady_clock::now();
  d.uptime = steady - created_at_;
  d.tracking = h.track_tasks();
  // Tasks: raw copies under each shard's lock, formatted after.
  std::vector<raw_task_record> raw;
  raw.reserve(h.num_alive_tasks() + 16);
  h.owned().for_each_linked([&](detail::header* t) { raw.push_back(read_task(t)); });
  // Read after the walk: a stamp taken by a poll during it must not lie in the future.
  const stamp_converter conv{detail::stamp_now(), d.tracking ? detail::stamp_clock::ns_per_stamp() : 1.0};
  d.tasks.reserve(raw.size());
  for (const raw_task_record& r : raw)
    d.tasks.push_back(format_task(r, conv, dump_options_));
  std::sort(d.tasks.begin(), d.tasks.end(),
            [](const task_snapshot& a, const task_snapshot& b) { return a.id < b.id; });
  // Workers.
  const double uptime_ns = static_cast<double>(std::max<std::int64_t>(d.uptime.count(), 1));
  for (std::size_t i = 0; i < h.num_workers(); ++i) {
    const worker_metrics_snapshot w = h.worker_metrics(i);
    worker_snapshot s;
    s.index = i;
    s.state = h.worker_state(i);
    s.local_queue_depth = w.local_queue_depth;
    s.poll_count = w.poll_count;
    s.steal_count = w.steal_count;
    s.busy = w.total_busy_duration;
    s.busy_ratio = std::clamp(static_cast<double>(s.busy.count()) / uptime_ns, 0.0, 1.0);
    s.parked_with_work = s.state == worker_run_state::parked && s.local_queue_depth != 0;
    d.workers.push_back(s);
  }
  d.global_queue_depth = h.global_queue_depth();
  d.num_blocking_threads = h.blocking().num_threads();
  d.num_idle_blocking_threads = h.blocking().num_idle_threads();
  d.blocking_queue_depth = h.blocking().queue_depth();
  d.unobserved_failures = h.unobserved_failures().snapshot();
  return d;
}

bool runtime::abort_task(task_id id) {
  detail::header* found = nullptr;
  // A reference taken under the shard lock keeps the cell alive once the lock is released.
  core_.scheduler().owned().with_linked(id, [&](detail::header* t) {
    t->state.ref_inc();
    found = t;
  });
  if (!found)
    return false;
  struct release {
    detail::header* h;
    ~release() { detail::raw_task(h).drop_reference(); }
  } guard{found};
  found->vtable->abort(found);
  return true;
}

} // namespace swarm
