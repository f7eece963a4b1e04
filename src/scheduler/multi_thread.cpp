#include <swarm/scheduler/multi_thread.hpp>

#include <swarm/task/cell_allocator.hpp>
#include <swarm/task/tracking.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <stdexcept>
#include <thread>

namespace swarm::detail::multi_thread {

// A small xorshift generator per core: picks steal victims and shutdown start shards.
struct fast_rand {
  std::uint32_t one;
  std::uint32_t two;

  std::uint32_t next() noexcept {
    std::uint32_t s1 = one;
    const std::uint32_t s0 = two;
    s1 ^= s1 << 17;
    s1 = s1 ^ s0 ^ (s1 >> 7) ^ (s0 >> 16);
    one = s0;
    two = s1;
    return s0 + s1;
  }
  std::uint32_t next_n(std::uint32_t n) noexcept {
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(next()) * n) >> 32);
  }
};


inline constexpr std::uint32_t no_poll_limit = 1u << 30;

// LIFO-slot polls in a row before the slot is disabled until the next task from the queue,
// so that two tasks waking each other cannot starve it: Tokio 1.48's
// MAX_LIFO_POLLS_PER_TICK (runtime/scheduler/multi_thread/worker.rs).
inline constexpr unsigned max_lifo_polls_per_tick = 3;

// Owned by exactly one thread at a time: the one driving the worker.
struct core {
  std::size_t index = 0;
  header* lifo_slot = nullptr; // one notified reference, not stealable
  bool lifo_enabled = true;
  // LIFO-slot polls since the last poll of a task from anywhere else. A due check can end a
  // tick with the LIFO task kept in its slot, so the count runs across ticks: counted per
  // tick, a chain of long polls would stay in the slot and starve the queue.
  unsigned lifo_polls = 0;
  bool took_lifo = false; // the task next_task returned came from the LIFO slot
  bool is_searching = false;
  bool is_shutdown = false;
  parker* park = nullptr; // null while this core is parked in the driver
  fast_rand rand{1, 1};

  // Fairness: the driver, and the global queue before the local one, get their turn when
  // either of two counts runs out (0: due).
  // - Ticks, passes of the worker loop (a pass polls a task, then up to
  //   max_lifo_polls_per_tick from the LIFO slot): Tokio's rule, event_interval and
  //   global_queue_interval. It bounds what the turns cost when polls are short.
  // - Polls, every task poll, LIFO-slot polls included: as many as make about
  //   poll_timing's target latency of task time at the mean poll time (none until the
  //   first measurement). It bounds the wait when polls are long: a spawn chain of tasks
  //   that compute 20 µs each would otherwise hold both for 61 x 4 polls.
  std::uint32_t ticks_to_driver = scheduler_options::default_event_interval;
  std::uint32_t polls_to_driver = no_poll_limit;
  std::uint32_t driver_polls = no_poll_limit;
  std::uint32_t ticks_to_global = poll_timing::initial_global_queue_interval;
  std::uint32_t global_queue_interval = poll_timing::initial_global_queue_interval; // ticks
  bool tune_global_queue = true;            // false: configured, ticks only
  std::uint32_t polls_to_global = no_poll_limit;
  std::uint32_t global_polls = no_poll_limit;
  bool took_global = false; // the last task taken came from the global queue, taken first

  // Busy time and the mean poll time that tunes the intervals.
  poll_timing timing;
  // The last value stored to this worker's worker_stats::run_state.
  worker_run_state run_state = worker_run_state::parked;

  // This worker's loop passes (published in remote::ticks), and each sibling's as this
  // worker's maintenance last read them (see take_from_stalled_siblings).
  std::uint32_t ticks = 0;
  std::vector<std::uint32_t> sibling_ticks;
  std::uint32_t next_sibling = 0;
};

// Siblings a maintenance pass looks at for stalls, so that the pass stays cheap with many
// workers; the others are looked at in the next passes.
inline constexpr std::uint32_t stall_checks_per_maintenance = 4;

namespace {

// The thread's worker context: which scheduler and worker it drives (the base, read inline
// by the header), the core while a task is polled or the worker parks, and the wakers
// deferred by yielding tasks. Every drive this_thread_drive points at is one of these.
struct context : current_drive {
  core* core_slot = nullptr;
  std::vector<waker> defer;
  const run_limits* limits = nullptr;
  std::size_t polls = 0;          // polls run by this drive
  std::exception_ptr error;       // thrown by a job or a driver handler: leave and rethrow
};

context* current_context() noexcept { return static_cast<context*>(this_thread_drive); }
thread_local worker_stats* current_metrics = nullptr;
// Whether this thread is one of the threads launch() started (or one that took a worker
// over from such a thread in block_in_place): it stays until shutdown.
thread_local bool in_owned_thread = false;

std::uint64_t seed_counter() noexcept {
  static std::atomic<std::uint64_t> n{0x9E3779B97F4A7C15ull};
  return n.fetch_add(0x9E3779B97F4A7C15ull, std::memory_order_relaxed);
}

} // namespace

} // namespace swarm::detail::multi_thread

namespace swarm::detail {

worker_stats* current_worker_metrics() noexcept { return multi_thread::current_metrics; }
void set_current_worker_metrics(worker_stats* m) noexcept { multi_thread::current_metrics = m; }

} // namespace swarm::detail

namespace swarm::detail::multi_thread {

void handle_ref::unhandled_exception(std::exception_ptr) {
  if (h->options_.unhandled_exception == unhandled_exception_policy::shutdown_runtime)
    h->close();
}

// The worker loop, as Tokio's multi_thread::worker; a friend of handle.
struct worker_loop {
  handle& h;
  context& cx;

  remote& own() const noexcept { return h.remotes_[cx.index]; }
  worker_counters& stats() const noexcept { return own().metrics.batch; }

  // Overflow target of the local queue: the inject queue, or, once it is closed, nowhere:
  // the references are released (the tasks were cancelled by shutdown).
  struct overflow {
    handle& h;
    void push_batch(header* first, header* last, std::size_t n) noexcept {
      if (h.inject_.push_batch(first, last, n))
        return;
      while (first) {
        header* next = first->queue_next;
        raw_task(first).drop_reference();
        first = next;
      }
    }
  };

  // One worker keeps every queued job in the order it was scheduled, as io_context's one
  // thread does: the local queue holds only entries older than all of the inject queue's.
  // A local push therefore goes behind the inject queue's entries when there are any (or
  // when the ring is full, instead of overflowing half of it), and next_task takes the
  // local queue first. One branch on a constant for several workers.
  bool one_worker() const noexcept { return h.remotes_.size() == 1; }

  void push_local(header* t) {
    if (one_worker() && (!h.inject_.is_empty() || own().queue.remaining_slots() == 0)) {
      if (!h.inject_.push(t))
        raw_task(t).drop_reference(); // closed: cancelled by shutdown
      return;
    }
    overflow o{h};
    if (own().queue.push_back_or_overflow(t, o) == push_outcome::overflowed_half)
      ++stats().overflow_count;
  }

  bool has_tasks(core* c) const noexcept { return c->lifo_slot || own().queue.has_tasks(); }

  // For dump(): a store only on a change (not per poll).
  void set_run_state(core* c, worker_run_state s) noexcept {
    if (c->run_state != s) {
      c->run_state = s;
      own().metrics.run_state.store(s, std::memory_order_relaxed);
    }
  }

  // A batch boundary: the driver, a park or the drive's end follows or precedes, so the
  // next tracked poll is timed (tracking.hpp, poll_sampler).
  void start_processing(core* c) noexcept {
    c->timing.begin();
    poll_sampler::restart();
  }
  void end_processing(core* c) noexcept {
    c->timing.end(stats());
    poll_sampler::restart();
  }

  void tune_global_queue_interval(core* c) noexcept {
    if (!c->tune_global_queue)
      return;
    const double raw = poll_timing::target_global_queue_latency_ns / std::max(c->timing.mean_poll_time_ns, 1.0);
    const auto next = static_cast<std::uint32_t>(std::clamp(
        raw, double{poll_timing::min_global_queue_interval}, double{poll_timing::max_global_queue_interval}));
    // Ignore jitter: change only on a difference above 2.
    if (next > c->global_queue_interval + 2 || next + 2 < c->global_queue_interval)
      c->global_queue_interval = next;
  }

  // The poll counts that make about the target latency of task time (at least 1).
  void tune_poll_intervals(core* c) noexcept {
    const double mean = std::max(c->timing.mean_poll_time_ns, 1.0);
    const auto polls = [mean](double target) {
      return static_cast<std::uint32_t>(std::clamp(target / mean, 1.0, static_cast<double>(no_poll_limit)));
    };
    c->driver_polls = polls(poll_timing::fair_driver_latency_ns);
    if (c->tune_global_queue)
      c->global_polls = polls(poll_timing::fair_global_queue_latency_ns);
  }

  // Counts one task poll. Per poll.
  void count_poll(core* c) noexcept {
    ++stats().poll_count;
    c->timing.note_poll();
    ++cx.polls;
    c->polls_to_driver -= c->polls_to_driver != 0;
    c->polls_to_global -= c->polls_to_global != 0;
  }

  // Counts one pass of the worker loop. Per tick.
  static void count_tick(core* c) noexcept {
    c->ticks_to_driver -= c->ticks_to_driver != 0;
    c->ticks_to_global -= c->ticks_to_global != 0;
  }

  static bool driver_due(const core* c) noexcept { return c->ticks_to_driver == 0 || c->polls_to_driver == 0; }
  // (One worker: its local queue is older than the inject queue, see push_local.)
  bool global_due(const core* c) const noexcept {
    return !one_worker() && (c->ticks_to_global == 0 || c->polls_to_global == 0);
  }

  header* next_local_task(core* c) noexcept {
    if (header* t = std::exchange(c->lifo_slot, nullptr)) {
      c->took_lifo = true;
      return t;
    }
    return own().queue.pop();
  }

  // Two tasks that keep waking each other must not starve the queue.
  static void count_lifo_poll(core* c) noexcept {
    if (++c->lifo_polls >= max_lifo_polls_per_tick)
      c->lifo_enabled = false;
  }

  header* next_task(core* c) {
    if (global_due(c)) {
      // Fairness: now and then look at the global queue first.
      tune_global_queue_interval(c);
      c->ticks_to_global = c->global_queue_interval;
      c->polls_to_global = c->global_polls;
      // Never two global tasks in a row while local work waits (with a tuned poll count
      // of 1, a stream of outside work would starve the local queue). A configured
      // interval is taken as said.
      const bool local_turn = c->tune_global_queue && c->took_global && has_tasks(c);
      c->took_global = false;
      if (!local_turn) {
        if (header* t = h.next_remote_task()) {
          c->took_global = true;
          return t;
        }
      }
      return next_local_task(c);
    }
    c->took_global = false;
    if (header* t = next_local_task(c))
      return t;
    if (h.inject_.is_empty())
      return nullptr;
    // Take a fair share of the global queue, at least one, at most half our ring.
    const std::size_t cap = std::min<std::size_t>(own().queue.remaining_slots(), local_queue<>::half);
    if (cap == 0)
      return h.next_remote_task();
    const std::size_t share = h.inject_.len() / h.remotes_.size() + 1;
    const std::size_t n = std::max<std::size_t>(1, std::min(share, cap));
    header* batch[local_queue<>::half];
    std::size_t got = 0;
    h.inject_.pop_n(n, [&](header* t) noexcept { batch[got++] = t; });
    if (got == 0)
      return nullptr;
    if (got > 1) {
      own().queue.push_back(std::span<header* const>(batch + 1, got - 1));
      // The tasks moved here were in the global queue, where a worker about to park would
      // have seen them, and are now reachable only by a steal; a parking worker's last look
      // can fall between our pop and our push and miss them in both places. They would
      // then wait for whatever this worker runs first, however long (io_context lets
      // another thread take them). A searching worker notifies when it starts that task
      // (transition_from_searching); otherwise notify here: the read-modify-write in
      // worker_to_notify follows the push, so either it finds the parked worker or that
      // worker's registration comes after it and its last look sees the push.
      if (!c->is_searching)
        h.notify_parked();
    }
    return batch[0];
  }

  header* steal_work(core* c) {
    if (!c->is_searching)
      c->is_searching = h.idle_.transition_worker_to_searching();
    if (!c->is_searching)
      return nullptr;
    set_run_state(c, worker_run_state::searching);
    const auto n = static_cast<std::uint32_t>(h.remotes_.size());
    const std::uint32_t start = c->rand.next_n(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::size_t victim = (start + i) % n;
      if (victim == cx.index)
        continue;
      const steal_result r = h.remotes_[victim].queue.steal_into(own().queue);
      if (r.task) {
        stats().steal_count += r.moved;
        ++stats().steal_operations;
        return r.task;
      }
    }
    // Nothing to steal: try the global queue directly.
    return h.next_remote_task();
  }

  void transition_from_searching(core* c) {
    if (!c->is_searching)
      return;
    c->is_searching = false;
    // The last searcher found work: wake another so that someone keeps looking.
    if (h.idle_.transition_worker_from_searching())
      h.notify_parked();
  }

  bool should_notify_others(core* c) const noexcept {
    // A searching worker will notify when it finds work.
    if (c->is_searching)
      return false;
    return (c->lifo_slot ? 1u : 0u) + own().queue.len() > 1;
  }

  void run_hooked(local_notified<handle_ref> t) { run_with_poll_hooks(std::move(t), h.options_); }

  // Polls `t`, then whatever lands in the LIFO slot, at most max_lifo_polls_per_tick in a
  // row, within one coop budget and until the driver or the global queue is due (the LIFO
  // task then stays in its slot and runs right after). Returns the core, or null when
  // block_in_place handed it away. Per poll.
  core* run_task(core* c, header* t) {
    local_notified<handle_ref> task = h.owned_.assert_owner(notified_task::from_raw(t));
    transition_from_searching(c);
    set_run_state(c, worker_run_state::running);
    count_poll(c);
    cx.core_slot = c;
    // (The constructor checked that the limit fits 32 bits of nanoseconds.)
    coop::budget_scope budget(
        coop::budget::initial(static_cast<std::uint32_t>(h.options_.coop_time_limit.count())));
    if (std::exchange(c->took_lifo, false))
      count_lifo_poll(c);
    else
      c->lifo_polls = 0;
    run_hooked(std::move(task));
    for (;;) {
      c = cx.core_slot;
      if (!c)
        return nullptr; // block_in_place took the core
      header* next = std::exchange(c->lifo_slot, nullptr);
      if (!next) {
        c->lifo_enabled = !h.options_.disable_lifo_slot;
        cx.core_slot = nullptr;
        return c;
      }
      if (!coop::has_budget_remaining() || must_leave()) {
        // Out of budget (or leaving): the LIFO task waits its turn in the queue.
        push_local(next);
        cx.core_slot = nullptr;
        return c;
      }
      if (driver_due(c) || global_due(c)) {
        // The loop polls the driver or takes from the global queue first; the LIFO task
        // keeps its slot (it is still the newest) and runs next.
        c->lifo_slot = next;
        cx.core_slot = nullptr;
        return c;
      }
      count_lifo_poll(c);
      count_poll(c);
      run_hooked(h.owned_.assert_owner(notified_task::from_raw(next)));
    }
  }

  // Whether this drive must stop: stop(), a handler's exception, or its limits.
  bool must_leave() const noexcept {
    if (cx.error || h.stop_requested())
      return true;
    const run_limits& l = *cx.limits;
    if (cx.polls >= l.max_polls)
      return true;
    // Acquire: pairs with the setter's release, which follows its write of the result.
    if (l.leave_when_set && l.leave_when_set->load(std::memory_order_acquire))
      return true;
    return l.deadline && std::chrono::steady_clock::now() >= *l.deadline;
  }

  void wake_deferred() {
    // Most recent first; each waker is consumed.
    while (!cx.defer.empty()) {
      waker w = std::move(cx.defer.back());
      cx.defer.pop_back();
      std::move(w).wake();
    }
  }

  enum class driver_poll { block, zero, none };

  // Polls the driver (blocking, or not), then wakes the deferred tasks, with the core in
  // the context: what the driver and the wakes schedule goes to this worker's queues, and
  // one notification of the other workers covers the batch. `none` only wakes them.
  core* poll_driver_then_wake(core* c, driver_poll poll) {
    // A blocking poll of the driver is the worker's sleep (park sets parked).
    if (poll == driver_poll::zero)
      set_run_state(c, worker_run_state::driving_io);
    parker* p = std::exchange(c->park, nullptr); // tells schedule_local we are in the driver
    cx.core_slot = c;
    if (poll != driver_poll::none) {
      // Handlers the driver runs count as polls of this drive (run_one runs one of them).
      const std::size_t max = cx.limits->max_polls;
      std::size_t limit =
          max == driver::no_limit ? driver::no_limit : max - std::min(max - 1, cx.polls); // >= 1
      // The completions' handlers run here unless another worker would take them sooner.
      const bool run_here = !h.idle_worker_would_take_io();
      if (!run_here && h.remotes_.size() > 1)
        limit = std::min(limit, handle::max_completions_queued_per_poll);
      try {
        cx.polls += poll == driver_poll::zero ? p->park_timeout_zero(limit, run_here)
                                              : p->park(cx.limits->deadline, limit, run_here);
      } catch (...) {
        // A handler run by the driver threw: finish tidily, then leave and rethrow. Its own
        // exception wins over one captured from an inline dispatch (as in job::poll).
        cx.error = std::current_exception();
      }
    }
    wake_deferred();
    c = std::exchange(cx.core_slot, nullptr);
    c->park = p;
    set_run_state(c, worker_run_state::running);
    if (poll != driver_poll::none)
      c->polls_to_driver = c->driver_polls; // (or another worker held it, polling it)
    if (should_notify_others(c))
      h.notify_parked();
    return c;
  }

  void core_maintenance(core* c) {
    own().metrics.submit();
    if (!c->is_shutdown)
      c->is_shutdown = h.inject_.is_closed();
  }

  core* maintenance(core* c) {
    if (driver_due(c)) {
      end_processing(c);
      tune_poll_intervals(c);
      c->ticks_to_driver = h.options_.event_interval;
      c = poll_driver_then_wake(c, driver_poll::zero);
      core_maintenance(c);
      take_from_stalled_siblings(c);
      start_processing(c);
    }
    return c;
  }

  // A busy worker steals only when its own queues run dry, so a task queued on a sibling
  // that stopped making progress (its thread preempted by the OS, stuck in a long poll, or
  // no thread drives it) would wait for that sibling however busy the others are: a time
  // slice or more, where io_context's shared queue lets any thread take it. A sibling whose
  // loop has not passed once between two of this worker's maintenance passes (about
  // event_interval ticks or fair_driver_latency of task time apart) is stalled; if its
  // queue has tasks, this worker steals half of them, as a searching worker would. Its LIFO
  // slot stays: one task, and not stealable.
  void take_from_stalled_siblings(core* c) {
    const auto n = static_cast<std::uint32_t>(h.remotes_.size());
    if (n == 1)
      return;
    for (std::uint32_t k = 0; k < std::min(n - 1, stall_checks_per_maintenance); ++k) {
      std::uint32_t v = c->next_sibling++ % n;
      if (v == cx.index)
        v = c->next_sibling++ % n;
      remote& r = h.remotes_[v];
      const std::uint32_t seen = r.ticks.load(std::memory_order_relaxed);
      const bool stalled = seen == c->sibling_ticks[v];
      c->sibling_ticks[v] = seen;
      if (!stalled || r.queue.remote_is_empty())
        continue;
      const steal_result st = r.queue.steal_into(own().queue);
      if (st.task) {
        stats().steal_count += st.moved;
        ++stats().steal_operations;
        push_local(st.task);
      }
    }
  }

  bool transition_to_parked(core* c) {
    if (has_tasks(c))
      return false;
    const bool nobody_searches = h.idle_.transition_worker_to_parked(cx.index, c->is_searching);
    c->is_searching = false;
    // With nobody left searching, this worker re-checks every queue before it sleeps: work
    // may have arrived while it searched, or a searcher's notification may have come just
    // before this worker could be woken (idle.hpp).
    if (nobody_searches)
      h.notify_if_work_pending();
    return true;
  }

  bool transition_from_parked(core* c) {
    if (has_tasks(c)) {
      // Woken with local work (the driver scheduled it here). If a notifier already
      // popped us from the sleepers, it counted us as searching.
      c->is_searching = !h.idle_.unpark_worker_by_id(cx.index);
      return true;
    }
    if (h.idle_.is_parked(cx.index))
      return false; // spurious: sleep again
    c->is_searching = true; // woken by worker_to_notify, which counted us as searching
    return true;
  }

  core* park(core* c) {
    const scheduler_options& o = h.options_;
    if (o.on_thread_park) {
      try {
        o.on_thread_park();
      } catch (...) {
        count_swallowed_exception(); // a thread hook must not take the worker down
      }
    }
    if (transition_to_parked(c)) {
      for (bool woken = false;; woken = true) {
        if (c->is_shutdown)
          break;
        // run() with no outstanding work: the last unit may have finished in a handler the
        // driver ran while we slept in it (a timer or an I/O completion), and nobody else
        // would notice. (Before the first sleep, run() has just checked.)
        if (must_leave() || (woken && cx.limits->idle_exit && cx.limits->idle_exit())) {
          // Leaving while registered as a sleeper: take ourselves out. If a notifier
          // already popped us, it counted us as searching; run() undoes that on leaving.
          c->is_searching = !h.idle_.unpark_worker_by_id(cx.index);
          break;
        }
        worker_stats& m = own().metrics;
        ++m.batch.park_count;
        ++m.batch.park_unpark_count;
        if (m.batch.poll_count == m.polls_at_last_park)
          ++m.batch.noop_count;
        m.polls_at_last_park = m.batch.poll_count;
        m.submit();
        set_run_state(c, worker_run_state::parked);
        // Cells a burst left in this thread's cache and nothing reused go back gradually.
        detail::release_idle_cells();
        c = poll_driver_then_wake(c, driver_poll::block);
        ++m.batch.park_unpark_count;
        core_maintenance(c);
        if (transition_from_parked(c))
          break;
      }
    }
    if (o.on_thread_unpark) {
      try {
        o.on_thread_unpark();
      } catch (...) {
        count_swallowed_exception(); // a thread hook must not take the worker down
      }
    }
    return c;
  }

  // Runs the loop until shutdown (the core is then shut down: returns null), a hand-off
  // by block_in_place (null), or until this drive must leave (returns the core).
  core* run(core* c) {
    set_run_state(c, worker_run_state::running);
    c->lifo_enabled = !h.options_.disable_lifo_slot;
    start_processing(c);
    while (!c->is_shutdown) {
      if (must_leave())
        return leave(c);
      count_tick(c);
      own().ticks.store(++c->ticks, std::memory_order_relaxed);
      c = maintenance(c);
      if (header* t = next_task(c)) {
        c = run_task(c, t);
        if (!c)
          return nullptr;
        continue;
      }
      // A steal, and the wake of tasks deferred by yield_now, keep the batch of polls going:
      // the worker is busy until it polls the driver, parks or leaves (a lone yielding task
      // then reads no clock per yield).
      if (header* t = steal_work(c)) {
        c = run_task(c, t);
        if (!c)
          return nullptr;
        continue;
      }
      const run_limits& l = *cx.limits;
      // poll(), or run() with no outstanding work.
      const bool last_look = !l.block || (l.idle_exit && l.idle_exit());
      if (!last_look && !cx.defer.empty() && !driver_due(c)) {
        // Only tasks deferred by yield_now are left. Tokio polls the driver before they
        // run again; that poll is a syscall (epoll_wait) that costs ten times the yield.
        // The driver's fairness interval (event_interval ticks, or the polls that make
        // fair_driver_latency) already bounds how long I/O waits behind any busy loop, so
        // while it has not run out they run again at once, and maintenance polls the
        // driver when it is due: a yield loop lets I/O in as often as a busy worker does.
        c = poll_driver_then_wake(c, driver_poll::none);
        continue;
      }
      end_processing(c);
      if (last_look) {
        // One last look at the driver, then leave if that produced nothing.
        c = poll_driver_then_wake(c, driver_poll::zero);
        if (!has_tasks(c) && h.inject_.is_empty())
          return leave(c);
        start_processing(c);
        continue;
      }
      c = cx.defer.empty() ? park(c) : poll_driver_then_wake(c, driver_poll::zero);
      start_processing(c);
    }
    end_processing(c);
    h.pre_shutdown(c);
    h.shutdown_core(c);
    return nullptr;
  }

  // Gives the core back to its slot, stealable, for the next drive.
  core* leave(core* c) {
    set_run_state(c, worker_run_state::parked);
    end_processing(c);
    if (header* t = std::exchange(c->lifo_slot, nullptr))
      push_local(t);
    transition_from_searching(c);
    own().metrics.submit();
    return c;
  }

  static void schedule_local(handle& h, context& cx, core* c, notified_task n, bool is_yield) {
    worker_loop w{h, cx};
    ++w.stats().local_schedule_count;
    header* t = std::move(n).into_raw();
    bool should_notify;
    // One worker runs jobs (Asio handlers) in the order they were posted: no LIFO slot.
    if (is_yield || !c->lifo_enabled || (w.one_worker() && t->owner_id == job_owner_id)) {
      w.push_local(t);
      should_notify = true;
    } else {
      // The newest task runs next; the one it displaces becomes stealable.
      header* prev = std::exchange(c->lifo_slot, t);
      if (prev)
        w.push_local(prev);
      should_notify = prev != nullptr;
    }
    // Inside the driver (park absent) the notification waits until after the park, in
    // should_notify_others, so that a batch of I/O wakes costs one notification.
    if (should_notify && c->park)
      h.notify_parked();
  }
};

handle::handle(scheduler_options options, driver* drv)
    : options_((options.worker_threads == 0 ? throw std::invalid_argument("swarm: worker_threads must be at least 1")
                                            : 0,
                std::move(options))),
      remotes_(options_.worker_threads), idle_(options_.worker_threads), owned_(options_.worker_threads),
      blocking_(options_) {
  if (options_.global_queue_interval && *options_.global_queue_interval == 0)
    throw std::invalid_argument("swarm: global_queue_interval must be greater than 0");
  if (options_.event_interval == 0)
    throw std::invalid_argument("swarm: event_interval must be greater than 0");
  if (options_.coop_time_limit.count() < 0 || options_.coop_time_limit.count() > UINT32_MAX)
    throw std::invalid_argument("swarm: coop_time_limit must be between 0 and 4 s");
  driver_.drv = drv;
  for (std::size_t i = 0; i < remotes_.size(); ++i) {
    remotes_[i].unparker = std::make_unique<parker>(driver_);
    auto c = std::make_unique<core>();
    c->index = i;
    c->park = remotes_[i].unparker.get();
    c->sibling_ticks.assign(remotes_.size(), 0);
    c->lifo_enabled = !options_.disable_lifo_slot;
    c->ticks_to_driver = options_.event_interval;
    if (options_.global_queue_interval) {
      c->global_queue_interval = *options_.global_queue_interval;
      c->tune_global_queue = false;
    }
    c->ticks_to_global = c->global_queue_interval;
    const std::uint64_t seed = seed_counter();
    c->rand = fast_rand{static_cast<std::uint32_t>(seed >> 32) | 1u, static_cast<std::uint32_t>(seed) | 1u};
    remotes_[i].core_slot.store(c.release(), std::memory_order_relaxed);
  }
}

handle::~handle() {
  shutdown();
  // After a timed-out shutdown, a thread blocked in place still uses this handle when its
  // call returns (end_block_in_place, its task's completion, worker_exited): wait for it.
  // Tokio's blocked thread keeps its handle alive by reference count; this handle belongs
  // to its creator, so its destruction waits instead.
  std::unique_lock lock(shutdown_mutex_);
  workers_done_.wait(lock, [&] { return active_workers_ == 0; });
}

void handle::launch() {
  blocking_.reserve_threads(remotes_.size());
  for (std::size_t i = 0; i < remotes_.size(); ++i) {
    {
      std::lock_guard lock(shutdown_mutex_);
      ++active_workers_;
    }
    try {
      blocking_.spawn_mandatory([this, i] { worker_job(i, true); });
    } catch (...) {
      // No thread for this worker: undo its count, the caller sees the exception.
      worker_exited();
      throw;
    }
  }
}

void handle::worker_job(std::size_t index, bool owned) {
  // A thread the scheduler owns drives worker `index` until shutdown. On stop() it leaves
  // the worker and waits here for clear_stop(), keeping its thread: a restart needs no new
  // thread and cannot race one that is still leaving. (A thread that took over the worker
  // of a run() caller in block_in_place just leaves on stop.) An exception that leaves the
  // loop (a handler's: no run() caller is there to receive it) goes to the
  // unhandled-exception policy, and the thread goes back to its worker.
  static const run_limits forever;
  in_owned_thread = owned;
  for (;;) {
    // Acquire: as in run_worker. Empty: another thread drives the worker (after a
    // block_in_place hand-off) and this one is surplus, or shutdown took the core.
    core* c = remotes_[index].core_slot.exchange(nullptr, std::memory_order_acq_rel);
    if (!c)
      break;
    try {
      run_core(c, forever);
    } catch (...) {
      // A handler threw on an owned thread: the unhandled-exception policy decides.
      handle_ref{this}.unhandled_exception(std::current_exception());
      continue; // run_core gave the core back before rethrowing
    }
    if (!owned)
      break;
    std::unique_lock lock(shutdown_mutex_);
    resumed_.wait(lock, [&] { return shutdown_started_ || !stop_requested(); });
    if (shutdown_started_)
      break;
  }
  in_owned_thread = false; // a blocking-pool thread: it may run other jobs next
  worker_exited();
}

void handle::worker_exited() {
  std::lock_guard lock(shutdown_mutex_);
  if (--active_workers_ == 0)
    workers_done_.notify_all();
}

void handle::run_worker(std::size_t index) {
  // Acquire: pairs with the release that stored the core (construction, hand-off, or a
  // drive that left), so everything its previous driver did to it is visible.
  core* c = remotes_[index].core_slot.exchange(nullptr, std::memory_order_acq_rel);
  if (!c)
    return; // someone else drives this worker
  static const run_limits forever;
  run_core(c, forever);
}

bool handle::idle_worker_would_take_io() const noexcept {
  if (remotes_.size() == 1)
    return true;
  // Inside a blocking driver poll this worker counts as parked itself (park registered it).
  const context* cx = current_context();
  const bool self_parked =
      cx && cx->h == this && cx->core_slot && cx->core_slot->run_state == worker_run_state::parked;
  return idle_.others_idle_hint(self_parked);
}

std::size_t handle::drive(const run_limits& limits) {
  if (is_current_worker())
    throw std::logic_error("swarm: a runtime's run/poll was called from inside one of its own handlers");
  std::unique_lock lock(shutdown_mutex_);
  for (;;) {
    if (shutdown_started_ || stop_requested())
      return 0;
    // Checked under the mutex that wake_parked_workers takes: a wake cannot fall between
    // this check and the wait below.
    if (limits.leave_when_set && limits.leave_when_set->load(std::memory_order_acquire))
      return 0;
    for (remote& r : remotes_) {
      if (core* c = r.core_slot.exchange(nullptr, std::memory_order_acq_rel)) {
        ++active_workers_;
        lock.unlock();
        struct exited {
          handle* h;
          ~exited() { h->worker_exited(); }
        } guard{this};
        return run_core(c, limits);
      }
    }
    // Every worker is driven by another thread: wait for one to become free.
    if (!limits.block)
      return 0;
    if (limits.deadline) {
      if (slot_freed_.wait_until(lock, *limits.deadline) == std::cv_status::timeout)
        return 0;
    } else {
      slot_freed_.wait(lock);
    }
    if (limits.idle_exit) {
      // Not under shutdown_mutex_: idle_exit may stop the runtime, and request_stop takes it.
      lock.unlock();
      const bool out_of_work = limits.idle_exit();
      lock.lock();
      if (out_of_work)
        return 0;
    }
  }
}

std::size_t handle::run_core(core* c, const run_limits& limits) {
  const std::size_t index = c->index;
  remotes_[index].metrics.thread_id_hash.store(std::hash<std::thread::id>{}(std::this_thread::get_id()),
                                               std::memory_order_relaxed);
  // The driver's per-thread state (Asio's handler-memory cache) for as long as we drive.
  struct driver_scope {
    driver* d;
    void* token;
    explicit driver_scope(driver* drv) : d(drv), token(drv ? drv->enter_worker() : nullptr) {}
    ~driver_scope() {
      if (d)
        d->leave_worker(token);
    }
  } drv_scope(driver_.drv);
  context cx{{this, index}, nullptr, {}, &limits, 0, nullptr};
  {
    // This thread's worker context for the drive; the previous one (a drive of another
    // runtime's worker, from one of its handlers) is back when the drive ends, even by an
    // exception. While it drives, the thread's cell cache holds bursts.
    struct drive_scope {
      current_drive* prev_drive;
      detail::worker_stats* prev_metrics;
      std::exception_ptr* prev_sink;
      bool prev_hold;
      drive_scope(context& cx, detail::worker_stats& metrics)
          : prev_drive(std::exchange(this_thread_drive, &cx)),
            prev_metrics(std::exchange(current_metrics, &metrics)),
            prev_sink(std::exchange(job_exception_sink(), &cx.error)),
            prev_hold(detail::hold_cell_bursts(true)) {}
      ~drive_scope() {
        detail::hold_cell_bursts(prev_hold);
        job_exception_sink() = prev_sink;
        current_metrics = prev_metrics;
        this_thread_drive = prev_drive;
      }
    } scope(cx, remotes_[index].metrics);
    worker_loop w{*this, cx};
    c = w.run(c);
    // Anything deferred is woken now, while this thread still counts as the worker.
    w.wake_deferred();
  }
  if (c)
    return_core(c);
  if (cx.error)
    std::rethrow_exception(cx.error);
  return cx.polls;
}

void handle::return_core(core* c) {
  bool shut;
  {
    std::lock_guard lock(shutdown_mutex_);
    shut = shutdown_started_;
    if (!shut) {
      // Release: pairs with the acquire exchange of the next drive.
      remotes_[c->index].core_slot.store(c, std::memory_order_release);
      slot_freed_.notify_one();
    }
  }
  if (shut) {
    // Shutdown swept the slots already: this core is ours to shut down.
    pre_shutdown(c);
    shutdown_core(c);
    return;
  }
  // Its queue may hold tasks: make sure a parked worker comes to steal them.
  if (!remotes_[c->index].queue.remote_is_empty())
    notify_parked();
}

void handle::request_stop() {
  stopped_.store(true, std::memory_order_release);
  notify_all();
  std::lock_guard lock(shutdown_mutex_);
  slot_freed_.notify_all();
}

void handle::clear_stop() noexcept {
  stopped_.store(false, std::memory_order_release);
  // Under the mutex: an owned worker checks the flag under it before it waits, so the
  // notification cannot fall between its check and its wait.
  std::lock_guard lock(shutdown_mutex_);
  resumed_.notify_all();
}

void handle::schedule_task(notified_task n, bool is_yield) {
  if (context* cx = current_context(); cx && cx->h == this) {
    if (core* c = cx->core_slot) {
      worker_loop::schedule_local(*this, *cx, c, std::move(n), is_yield);
      return;
    }
  }
  push_remote_task(std::move(n));
  notify_parked();
}

void handle::push_remote_task(notified_task n) {
  remote_schedule_count_.fetch_add(1, std::memory_order_relaxed);
  header* t = std::move(n).into_raw();
  if (!inject_.push(t))
    raw_task(t).drop_reference(); // closed: the task was or will be cancelled by shutdown
}

void handle::notify_parked() {
  if (auto idx = idle_.worker_to_notify())
    remotes_[*idx].unparker->unpark();
}

void handle::wake_parked_workers() {
  notify_all();
  std::lock_guard lock(shutdown_mutex_);
  slot_freed_.notify_all();
}

void handle::notify_all() {
  for (remote& r : remotes_)
    r.unparker->unpark();
}

bool handle::notify_if_work_pending() {
  for (remote& r : remotes_) {
    if (!r.queue.remote_is_empty()) {
      notify_parked();
      return true;
    }
  }
  if (!inject_.is_empty()) {
    notify_parked();
    return true;
  }
  return false;
}

header* handle::next_remote_task() {
  if (inject_.is_empty())
    return nullptr;
  return inject_.pop();
}

void handle::close() {
  if (inject_.close())
    notify_all();
}

void handle::pre_shutdown(core* c) {
  // Every worker does this in parallel, from a random shard, to spread the lock traffic.
  owned_.close_and_shutdown_all(c->rand.next_n(static_cast<std::uint32_t>(owned_.shard_count())));
  remotes_[c->index].metrics.submit();
}

void handle::shutdown_core(core* c) {
  remotes_[c->index].metrics.run_state.store(worker_run_state::parked, std::memory_order_relaxed);
  std::unique_lock lock(shutdown_mutex_);
  shutdown_cores_.push_back(c);
  if (shutdown_cores_.size() != remotes_.size())
    return;
  // The last core: drop what is still queued anywhere. Those are only notified references
  // of tasks that pre_shutdown already cancelled.
  for (core* sc : shutdown_cores_) {
    if (header* t = std::exchange(sc->lifo_slot, nullptr))
      raw_task(t).drop_reference();
    while (header* t = remotes_[sc->index].queue.pop())
      raw_task(t).drop_reference();
    remotes_[sc->index].unparker->shutdown();
  }
  // Every core is here: no worker can be in the driver or enter it again.
  driver_.shutdown();
  inject_.drain([](header* t) noexcept { raw_task(t).drop_reference(); });
  for (core* sc : shutdown_cores_)
    delete sc;
  shutdown_cores_.clear();
  all_cores_shut_down_ = true;
  workers_done_.notify_all();
}

void handle::shutdown(std::chrono::nanoseconds timeout) {
  if (is_current_worker())
    throw std::logic_error("swarm: a runtime cannot be shut down from one of its own worker threads");
  // One deadline for the threads blocked in place and the blocking pool; none for a
  // timeout too long to add to now.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (const auto now = std::chrono::steady_clock::now(); timeout < std::chrono::steady_clock::time_point::max() - now)
    deadline = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
  {
    std::lock_guard lock(shutdown_mutex_);
    if (shutdown_started_)
      return;
    shutdown_started_ = true;
    slot_freed_.notify_all();
    resumed_.notify_all();
  }
  close();
  // Cores no thread drives (never launched, or between hand-offs) are shut down here.
  for (remote& r : remotes_) {
    if (core* c = r.core_slot.exchange(nullptr, std::memory_order_acq_rel)) {
      pre_shutdown(c);
      shutdown_core(c);
    }
  }
  {
    // Workers finish cooperatively: a task that never yields would hold us here, as it
    // would hold Tokio's runtime drop.
    std::unique_lock lock(shutdown_mutex_);
    workers_done_.wait(lock, [&] { return all_cores_shut_down_; });
    // A worker loop still running now lost its core to block_in_place: its thread is
    // blocking work, waited for within `timeout` like the blocking pool (in Tokio it is a
    // pool thread). The loops that shut a core down leave at once.
    const auto no_workers = [&] { return active_workers_ == 0; };
    if (!deadline)
      workers_done_.wait(lock, no_workers);
    else
      workers_done_.wait_until(lock, *deadline, no_workers);
  }
  if (!deadline) {
    blocking_.shutdown(std::chrono::nanoseconds::max());
  } else {
    const auto left = *deadline - std::chrono::steady_clock::now();
    blocking_.shutdown(std::max(std::chrono::nanoseconds::zero(),
                                std::chrono::duration_cast<std::chrono::nanoseconds>(left)));
  }
}

bool handle::begin_block_in_place() {
  context* cx = current_context();
  if (!cx || cx->h != this)
    return false; // not on one of our workers: just run the function
  if (!cx->core_slot)
    return false; // nested: the core was handed away already
  // Tokio PR #7879: the wakers deferred by yield_now on this worker are woken now, while we
  // hold the core: the tasks go to its queue and whoever takes the worker over runs them.
  // Left in this thread's list they would wait for the blocking call, which may wait for
  // them.
  worker_loop{*this, *cx}.wake_deferred();
  core* c = std::exchange(cx->core_slot, nullptr);
  // The LIFO task must be stealable while we block.
  if (header* t = std::exchange(c->lifo_slot, nullptr)) {
    worker_loop w{*this, *cx};
    w.push_local(t);
  }
  // Release: pairs with the acquire exchange in run_worker on the new thread.
  remotes_[cx->index].core_slot.store(c, std::memory_order_release);
  {
    std::lock_guard lock(shutdown_mutex_);
    ++active_workers_;
  }
  try {
    blocking_.spawn_mandatory([this, i = cx->index, owned = in_owned_thread] { worker_job(i, owned); });
  } catch (...) {
    worker_exited();
    // No thread to hand to: keep the core.
    cx->core_slot = remotes_[cx->index].core_slot.exchange(nullptr, std::memory_order_acq_rel);
    return false;
  }
  return true;
}

void handle::end_block_in_place() {
  context* cx = current_context();
  // If the new thread has not taken the core yet, take it back; otherwise this thread
  // lost the worker and run_task will return when the current poll ends.
  if (core* c = remotes_[cx->index].core_slot.exchange(nullptr, std::memory_order_acq_rel)) {
    remotes_[cx->index].metrics.thread_id_hash.store(std::hash<std::thread::id>{}(std::this_thread::get_id()),
                                                     std::memory_order_relaxed);
    cx->core_slot = c;
  }
}

void handle::defer(const waker& w) {
  context* cx = current_context();
  if (!cx || cx->h != this || !cx->core_slot) {
    w.wake_by_ref();
    return;
  }
  if (!cx->defer.empty() && cx->defer.back().will_wake(w))
    return;
  cx->defer.push_back(w.clone());
}

worker_metrics_snapshot handle::worker_metrics(std::size_t worker) const {
  if (worker >= remotes_.size())
    throw std::out_of_range("swarm: worker index out of range");
  worker_metrics_snapshot s = remotes_[worker].metrics.snapshot();
  s.local_queue_depth = remotes_[worker].queue.remote_len();
  return s;
}

std::uint64_t handle::budget_forced_yield_count() const noexcept {
  std::uint64_t n = 0;
  for (const remote& r : remotes_)
    n += r.metrics.budget_forced_yield_count.load(std::memory_order_relaxed);
  return n;
}

} // namespace swarm::detail::multi_thread
