// The task layer's behaviour, one test per sentence: creating and dropping the handles,
// shutdown, scheduling, the join handle (waker registration, output ownership), aborts,
// task ids, the terminate hook, join_error, misuse, and the owned-task lists.
//
// Sources: Tokio's task module (tokio/src/runtime/task/: harness.rs, join.rs, error.rs, id.rs,
// list.rs) and the tests of tokio/src/runtime/tests/task.rs, tokio/tests/task_id.rs and
// tokio/tests/task_hooks.rs, rewritten for the C++ task layer (unowned tasks with a no-op
// scheduler, or the toy runtime of support.hpp).
#include "support.hpp"

#include <boost/test/unit_test.hpp>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_set>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace swarm_test;
using swarm::abort_handle;
using swarm::join_error;
using swarm::task_id;

namespace {

template <class F>
auto unowned(F f) {
  return sd::new_unowned(std::move(f), noop_scheduler{}, task_id::next());
}

// For what a join-handle poll returns, whatever holds the outcome.
template <class R>
bool is_cancelled(R&& r) {
  return r && !r->has_value() && r->error().is_cancelled();
}

template <class R>
bool is_panic(R&& r) {
  return r && !r->has_value() && r->error().is_panic();
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Runs fn in a child process and returns its exit code, or -signal if it was killed (a
// std::terminate shows as -SIGABRT). For behaviours whose failure mode is std::terminate,
// so that a regression fails one test instead of killing the whole run.
int run_in_child(const std::function<void()>& fn) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Boost.Test's handlers would report the signal and go on running the suite here.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL})
      std::signal(sig, SIG_DFL);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0)
      ::dup2(devnull, 2); // keep "terminate called after..." out of the test log
    try {
      fn();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return WIFSIGNALED(status) ? -WTERMSIG(status) : -1000;
}

// A future whose destructor spawns a new task on the runtime that is destroying it.
struct spawns_on_drop {
  using output_type = unit;
  toy_runtime* rt;
  drop_probe* child_probe;
  std::optional<sd::raw_join_handle<unit>>* child;
  live_token token{&global_futures()};

  spawns_on_drop(toy_runtime* r, drop_probe* p, std::optional<sd::raw_join_handle<unit>>* c)
      : rt(r), child_probe(p), child(c) {}
  spawns_on_drop(spawns_on_drop&& o) noexcept
      : rt(o.rt), child_probe(o.child_probe), child(o.child), token(std::move(o.token)) {}
  ~spawns_on_drop() {
    if (token.live())
      child->emplace(rt->spawn(make_probed(pending_forever{}, child_probe)));
  }
  std::optional<unit> poll(poll_context& cx) {
    cx.get_waker().wake_by_ref(); // yields forever
    return std::nullopt;
  }
};

// A value that changes version, with every waiter's waker kept in a vector.
struct versioned {
  int version = 0;
  std::vector<waker> waiters;
  void bump() {
    ++version;
    for (waker& w : std::exchange(waiters, {}))
      std::move(w).wake();
  }
};

// Waits for version 1, then for version 2.
struct waits_twice {
  using output_type = int;
  versioned* v;
  int seen = 0;
  live_token token{&global_futures()};
  explicit waits_twice(versioned* x) : v(x) {}
  waits_twice(waits_twice&& o) noexcept : v(o.v), seen(o.seen), token(std::move(o.token)) {}
  std::optional<int> poll(poll_context& cx) {
    while (seen < 2) {
      if (v->version <= seen) {
        v->waiters.push_back(cx.get_waker().clone());
        return std::nullopt;
      }
      ++seen;
    }
    return seen;
  }
};

// A future that aborts its own task from inside its poll, then returns pending or ready.
struct aborts_itself {
  using output_type = int;
  std::shared_ptr<abort_handle> self;
  bool ready_after_abort;
  live_token token{&global_futures()};
  aborts_itself(std::shared_ptr<abort_handle> s, bool ready) : self(std::move(s)), ready_after_abort(ready) {}
  aborts_itself(aborts_itself&& o) noexcept
      : self(std::move(o.self)), ready_after_abort(o.ready_after_abort), token(std::move(o.token)) {}
  std::optional<int> poll(poll_context&) {
    self->abort();
    if (ready_after_abort)
      return 7;
    return std::nullopt;
  }
};

// Waits for an event, then returns a probed output made on the spot.
struct event_then_probed_output {
  using output_type = probed_output;
  event* ev;
  drop_probe* probe;
  live_token token{&global_futures()};
  event_then_probed_output(event* e, drop_probe* p) : ev(e), probe(p) {}
  event_then_probed_output(event_then_probed_output&& o) noexcept
      : ev(o.ev), probe(o.probe), token(std::move(o.token)) {}
  std::optional<probed_output> poll(poll_context& cx) {
    if (!ev->poll(cx.get_waker()))
      return std::nullopt;
    return probed_output(1, probe, false);
  }
};

struct futures_balanced {
  long before = global_futures().alive();
  ~futures_balanced() { BOOST_TEST(global_futures().alive() == before); }
};

} // namespace

BOOST_AUTO_TEST_SUITE(task_test)

// ---------------------------------------------------------------------------------------
// Tokio's runtime/tests/task.rs: creating and dropping

BOOST_AUTO_TEST_CASE(create_drop1_dropping_the_task_then_the_join_handle_destroys_the_future_last) {
  futures_balanced balance;
  drop_probe p;
  auto r = unowned(make_probed(pending_forever{}, &p));
  { auto t = std::move(r.task); }
  BOOST_TEST(!p.dropped());
  r.join.reset();
  BOOST_TEST(p.drops.load() == 1);
}

BOOST_AUTO_TEST_CASE(create_drop2_dropping_the_join_handle_then_the_task_destroys_the_future_last) {
  futures_balanced balance;
  drop_probe p;
  auto r = unowned(make_probed(pending_forever{}, &p));
  r.join.reset();
  BOOST_TEST(!p.dropped());
  { auto t = std::move(r.task); }
  BOOST_TEST(p.drops.load() == 1);
}

BOOST_AUTO_TEST_CASE(drop_abort_handle1_an_abort_handle_dropped_last_frees_the_task) {
  futures_balanced balance;
  drop_probe p;
  auto r = unowned(make_probed(pending_forever{}, &p));
  abort_handle ah = r.join.get_abort_handle();
  r.join.reset();
  { auto t = std::move(r.task); }
  BOOST_TEST(!p.dropped());
  ah = abort_handle();
  BOOST_TEST(p.drops.load() == 1);
}

BOOST_AUTO_TEST_CASE(drop_abort_handle2_an_abort_handle_dropped_first_does_not_free_or_abort) {
  futures_balanced balance;
  drop_probe p;
  auto r = unowned(make_probed(pending_forever{}, &p));
  {
    abort_handle ah = r.join.get_abort_handle();
    BOOST_TEST(ah.id() == r.join.id());
  }
  BOOST_TEST(!p.dropped());
  BOOST_TEST(!r.join.raw().state().load().is_cancelled()); // dropping never aborts
  { auto t = std::move(r.task); }
  BOOST_TEST(!p.dropped());
  r.join.reset();
  BOOST_TEST(p.drops.load() == 1);
}

BOOST_AUTO_TEST_CASE(drop_abort_handle_clone_the_last_of_the_clones_frees_the_task) {
  futures_balanced balance;
  drop_probe p;
  auto r = unowned(make_probed(pending_forever{}, &p));
  std::optional<abort_handle> a1(r.join.get_abort_handle());
  std::optional<abort_handle> a2(*a1); // copy: +1 reference
  abort_handle a3(*a1);
  abort_handle moved(std::move(a3)); // move: no new reference
  BOOST_TEST(!a3);
  BOOST_TEST(r.join.raw().state().load().ref_count() == 2 + 1 + 3);
  r.join.reset();
  { auto t = std::move(r.task); }
  a1.reset();
  BOOST_TEST(!p.dropped());
  a2.reset();
  BOOST_TEST(!p.dropped());
  moved = abort_handle();
  BOOST_TEST(p.drops.load() == 1);
}

BOOST_AUTO_TEST_CASE(create_shutdown1_shutdown_destroys_the_future_at_once_and_the_handle_sees_cancelled) {
  futures_balanced balance;
  drop_probe p;
  auto r = unowned(make_probed(pending_forever{}, &p));
  std::move(r.task).shutdown();
  BOOST_TEST(p.drops.load() == 1);
  BOOST_TEST(r.join.is_finished());
  auto out = r.join.poll(noop_waker());
  BOOST_TEST(is_cancelled(out));
  BOOST_TEST(out->error().id() == r.join.id());
}

BOOST_AUTO_TEST_CASE(create_shutdown2_shutdown_without_a_join_handle_destroys_the_future_and_frees_it) {
  futures_balanced balance;
  drop_probe p;
  auto r = unowned(make_probed(pending_forever{}, &p));
  r.join.reset();
  std::move(r.task).shutdown();
  BOOST_TEST(p.drops.load() == 1);
}

BOOST_AUTO_TEST_CASE(unowned_poll_running_a_task_that_is_ready_at_once_completes_it) {
  futures_balanced balance;
  auto r = unowned(ready_now<int>(42));
  std::move(r.task).run();
  BOOST_TEST(r.join.is_finished());
  auto out = r.join.poll(noop_waker());
  BOOST_REQUIRE(out);
  BOOST_REQUIRE(out->has_value());
  BOOST_TEST(out->value() == 42);
}

BOOST_AUTO_TEST_CASE(unowned_abort_before_start_never_schedules_and_never_runs) {
  futures_balanced balance;
  std::atomic<int> polls{0};
  noop_scheduler s;
  auto sched_count = s.scheduled;
  auto r = sd::new_unowned(pending_forever{&polls}, std::move(s), task_id::next());
  r.join.abort(); // the initial notified bit is set: only cancelled is set
  BOOST_TEST(sched_count->load() == 0);
  std::move(r.task).run();
  BOOST_TEST(polls.load() == 0);
  BOOST_TEST(is_cancelled(r.join.poll(noop_waker())));
}

// ---------------------------------------------------------------------------------------
// Tokio's runtime/tests/task.rs: the toy runtime

BOOST_AUTO_TEST_CASE(schedule_a_task_that_yields_once_is_polled_exactly_twice) {
  futures_balanced balance;
  toy_runtime rt;
  std::atomic<int> polls{0};
  auto jh = rt.spawn(yield_n<unit>(1, unit{}, &polls));
  BOOST_TEST(rt.tick() == 2u);
  BOOST_TEST(polls.load() == 2);
  BOOST_TEST(rt.core().yields.load() == 1);
  BOOST_TEST(jh.is_finished());
  BOOST_TEST(rt.is_empty());
}

BOOST_AUTO_TEST_CASE(shutdown_after_one_tick_leaves_no_task_and_drops_the_queued_notified) {
  futures_balanced balance;
  drop_probe p;
  {
    toy_runtime rt;
    { auto jh = rt.spawn(make_probed(yield_forever{}, &p)); }
    BOOST_TEST(rt.tick(1) == 1u);
    BOOST_TEST(rt.queued() == 1u); // it yielded: its notified is queued
    rt.shutdown();
    BOOST_TEST(rt.is_empty());
    BOOST_TEST(p.drops.load() == 1);
    BOOST_TEST(rt.queued() == 0u);
    BOOST_TEST(rt.cells_live() == 0);
  }
}

BOOST_AUTO_TEST_CASE(shutdown_immediately_cancels_a_task_that_never_ran) {
  futures_balanced balance;
  drop_probe p;
  std::atomic<int> polls{0};
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(yield_forever{&polls}, &p));
  rt.shutdown();
  BOOST_TEST(rt.is_empty());
  BOOST_TEST(polls.load() == 0);
  BOOST_TEST(p.drops.load() == 1);
  BOOST_TEST(is_cancelled(jh.poll(noop_waker())));
  jh.reset();
  BOOST_TEST(rt.cells_live() == 0);
}

BOOST_AUTO_TEST_CASE(spawn_during_shutdown_cancels_the_new_task_without_deadlock_or_leak) {
  futures_balanced balance;
  drop_probe child_probe;
  std::optional<sd::raw_join_handle<unit>> child;
  toy_runtime rt;
  { auto jh = rt.spawn(spawns_on_drop(&rt, &child_probe, &child)); }
  BOOST_TEST(rt.tick(3) == 3u);
  rt.shutdown(); // the destructor spawns while the list closes
  BOOST_REQUIRE(child.has_value());
  BOOST_TEST(child_probe.drops.load() == 1);
  BOOST_TEST(is_cancelled(child->poll(noop_waker())));
  child.reset();
  BOOST_TEST(rt.is_empty());
  BOOST_TEST(rt.cells_live() == 0);
}

BOOST_AUTO_TEST_CASE(a_task_waiting_twice_on_a_versioned_value_finishes_within_ten_ticks) {
  // The C++ analogue of spawn_niche_in_task (#6729): the waker stored during the first
  // wait, woken by value, makes the second wait and the completion happen.
  futures_balanced balance;
  versioned v;
  toy_runtime rt;
  counting_waker w;
  auto jh = rt.spawn(waits_twice(&v));
  int value = 0;
  for (int i = 0; i < 10 && value == 0; ++i) {
    rt.tick();
    if (auto out = jh.poll(w.get()))
      value = out->value();
    else
      v.bump();
  }
  BOOST_TEST(value == 2);
  BOOST_TEST(v.waiters.empty());
}

// ---------------------------------------------------------------------------------------
// The join handle's waker

BOOST_AUTO_TEST_CASE(join_poll_registers_a_clone_of_the_waker_and_completion_wakes_it_once) {
  futures_balanced balance;
  event sig;
  toy_runtime rt;
  counting_waker w;
  auto jh = rt.spawn(wait_event<int>(&sig, 5));
  BOOST_TEST(!jh.poll(w.get()));
  BOOST_TEST(w.clones() == 1);
  BOOST_TEST(w.live_clones() == 1);
  rt.tick();
  BOOST_TEST(w.total_wakes() == 0); // pending on the signal
  sig.set();
  rt.tick();
  BOOST_TEST(w.total_wakes() == 1);
  BOOST_TEST(w.wakes_by_ref() == 1); // by reference: the handle still owns the clone
  BOOST_TEST(w.live_clones() == 1);
  auto out = jh.poll(w.get());
  BOOST_REQUIRE(out);
  BOOST_TEST(out->value() == 5);
  BOOST_TEST(w.clones() == 1); // reading the output registers nothing
  jh.reset();
  BOOST_TEST(w.live_clones() == 0);
  BOOST_TEST(w.total_wakes() == 1);
}

BOOST_AUTO_TEST_CASE(a_second_poll_with_another_waker_replaces_the_first_which_is_dropped) {
  futures_balanced balance;
  event sig;
  toy_runtime rt;
  counting_waker w1, w2;
  auto jh = rt.spawn(wait_event<int>(&sig, 5));
  BOOST_TEST(!jh.poll(w1.get()));
  BOOST_TEST(!jh.poll(w2.get()));
  BOOST_TEST(w1.clones() == 1);
  BOOST_TEST(w1.live_clones() == 0); // dropped when replaced
  BOOST_TEST(w2.live_clones() == 1);
  sig.set();
  rt.tick();
  BOOST_TEST(w1.total_wakes() == 0);
  BOOST_TEST(w2.total_wakes() == 1);
  jh.reset();
  BOOST_TEST(w2.live_clones() == 0);
}

BOOST_AUTO_TEST_CASE(polling_again_with_a_waker_that_will_wake_the_same_registers_nothing) {
  futures_balanced balance;
  event sig;
  toy_runtime rt;
  counting_waker w;
  auto jh = rt.spawn(wait_event<int>(&sig, 5));
  for (int i = 0; i < 5; ++i)
    BOOST_TEST(!jh.poll(w.get()));
  BOOST_TEST(w.clones() == 1);
  BOOST_TEST(w.live_clones() == 1);
  sig.set();
  rt.tick();
  BOOST_TEST(w.total_wakes() == 1);
  BOOST_TEST(jh.poll(w.get()).has_value());
  jh.reset();
  BOOST_TEST(w.live_clones() == 0);
}

BOOST_AUTO_TEST_CASE(a_join_handle_dropped_before_completion_drops_its_waker_which_is_never_woken) {
  futures_balanced balance;
  event sig;
  toy_runtime rt;
  counting_waker w;
  auto jh = rt.spawn(wait_event<int>(&sig, 5));
  BOOST_TEST(!jh.poll(w.get()));
  rt.tick();
  jh.reset();
  BOOST_TEST(w.live_clones() == 0);
  sig.set();
  rt.tick();
  BOOST_TEST(w.total_wakes() == 0);
  BOOST_TEST(rt.cells_live() == 0);
}

BOOST_AUTO_TEST_CASE(a_handle_dropped_while_completion_wakes_it_leaves_the_waker_to_the_runtime) {
  // The join handle goes between the runtime's transition to complete and its handing back
  // of the waker slot (here: from inside the wake). The handle destroys the output but may
  // not touch the slot (join_waker is still set); the runtime then finds join_interest gone
  // and drops the waker itself.
  futures_balanced balance;
  drop_probe out_probe;
  event ev;
  toy_runtime rt;
  counting_waker w;
  std::optional<sd::raw_join_handle<probed_output>> jh(rt.spawn(event_then_probed_output(&ev, &out_probe)));
  const task_id id = jh->id();
  // Keeps the cell alive: otherwise dealloc would drop a forgotten waker and hide the bug.
  abort_handle keep_alive = jh->get_abort_handle();
  BOOST_TEST(!jh->poll(w.get()));
  rt.tick();
  bool in_slot_during_wake = false;
  w.on_wake([&] {
    in_slot_during_wake = w.live_clones() == 1;
    jh.reset();
  });
  ev.set();
  rt.tick();
  BOOST_TEST(!jh.has_value());
  BOOST_TEST(in_slot_during_wake);
  BOOST_TEST(w.wakes_by_ref() == 1);
  BOOST_TEST(w.live_clones() == 0); // dropped by the runtime, not left for dealloc
  BOOST_TEST(out_probe.drops.load() == 1); // by the handle, with the id installed
  BOOST_TEST((out_probe.seen_id() == std::optional<task_id>(id)));
  BOOST_TEST(rt.cells_live() == 1);
  keep_alive = abort_handle();
  BOOST_TEST(rt.cells_live() == 0);
}

BOOST_AUTO_TEST_CASE(set_join_waker_on_a_completed_task_wakes_at_once_and_keeps_the_output) {
  futures_balanced balance;
  toy_runtime rt;
  counting_waker w;
  auto jh = rt.spawn(ready_now<int>(3));
  rt.tick();
  BOOST_TEST(jh.set_join_waker(w.get()));
  BOOST_TEST(w.wakes_by_ref() == 1);
  BOOST_TEST(w.clones() == 0);
  auto out = jh.poll(w.get());
  BOOST_REQUIRE(out);
  BOOST_TEST(out->value() == 3);
}

BOOST_AUTO_TEST_CASE(set_join_waker_on_a_pending_task_registers_without_reading) {
  futures_balanced balance;
  event sig;
  toy_runtime rt;
  counting_waker w;
  auto jh = rt.spawn(wait_event<int>(&sig, 9));
  rt.tick();
  BOOST_TEST(!jh.set_join_waker(w.get()));
  BOOST_TEST(w.live_clones() == 1);
  sig.set();
  rt.tick();
  BOOST_TEST(w.total_wakes() == 1);
  auto out = jh.poll(w.get());
  BOOST_REQUIRE(out);
  BOOST_TEST(out->value() == 9);
}

// ---------------------------------------------------------------------------------------
// Dropping the join handle; who destroys the output

BOOST_AUTO_TEST_CASE(drop_join_handle_fast_path_only_gives_up_a_reference_and_the_interest) {
  futures_balanced balance;
  queue_scheduler s;
  auto r = sd::new_task(pending_forever{}, s, task_id::next());
  sd::header* h = r.join.raw().get();
  BOOST_TEST(h->state.load().bits() == sd::initial_state);
  r.join.reset();
  // 2 references | notified: exactly what the fast path writes.
  BOOST_TEST(h->state.load().bits() == (2 * sd::ref_one | sd::notified_bit));
  std::move(r.owned).shutdown();
  // r.first drops the last reference.
}

BOOST_AUTO_TEST_CASE(drop_join_handle_slow_path_after_a_poll_clears_interest_and_the_waker) {
  futures_balanced balance;
  queue_scheduler s;
  auto q = s.queue;
  auto r = sd::new_task(pending_forever{}, s, task_id::next());
  sd::header* h = r.join.raw().get();
  counting_waker w;
  BOOST_TEST(!r.join.poll(w.get())); // registers: the word is no longer the initial one
  BOOST_TEST(h->state.load().is_join_waker_set());
  r.join.reset();
  const sd::snapshot s1 = h->state.load();
  BOOST_TEST(!s1.is_join_interested());
  BOOST_TEST(!s1.is_join_waker_set());
  BOOST_TEST(s1.ref_count() == 2u);
  BOOST_TEST(w.live_clones() == 0);
  std::move(r.owned).shutdown();
}

BOOST_AUTO_TEST_CASE(the_output_is_destroyed_by_the_dropping_handle_with_the_task_id_installed) {
  futures_balanced balance;
  drop_probe out_probe;
  toy_runtime rt;
  auto jh = rt.spawn(ready_with([&] { return probed_output(1, &out_probe, false); }));
  const task_id id = jh.id();
  rt.tick();
  BOOST_TEST(jh.is_finished());
  BOOST_TEST(!out_probe.dropped()); // kept for the handle
  jh.reset();
  BOOST_TEST(out_probe.drops.load() == 1);
  BOOST_TEST(out_probe.on_test_thread.load());
  BOOST_TEST((out_probe.seen_id() == std::optional<task_id>(id)));
  BOOST_TEST(!swarm::try_current_task_id()); // restored
}

BOOST_AUTO_TEST_CASE(the_output_is_destroyed_by_the_runtime_when_the_handle_was_dropped_first) {
  futures_balanced balance;
  drop_probe out_probe;
  toy_runtime rt;
  auto jh = rt.spawn(ready_with([&] { return probed_output(1, &out_probe, false); }));
  const task_id id = jh.id();
  BOOST_TEST(!jh.poll(noop_waker())); // leaves the fast path
  jh.reset();
  BOOST_TEST(!out_probe.dropped());
  rt.tick();
  BOOST_TEST(out_probe.drops.load() == 1);
  BOOST_TEST((out_probe.seen_id() == std::optional<task_id>(id)));
  BOOST_TEST(rt.cells_live() == 0);
}

BOOST_AUTO_TEST_CASE(a_consumed_output_is_destroyed_by_its_reader_outside_any_task) {
  futures_balanced balance;
  drop_probe out_probe;
  toy_runtime rt;
  auto jh = rt.spawn(ready_with([&] { return probed_output(4, &out_probe, false); }));
  rt.tick();
  {
    auto out = jh.poll(noop_waker());
    BOOST_REQUIRE(out);
    BOOST_TEST(out->value().value == 4);
    jh.reset();
    BOOST_TEST(!out_probe.dropped()); // the reader owns it now
  }
  BOOST_TEST(out_probe.drops.load() == 1);
  BOOST_TEST((!out_probe.seen_id())); // take_output installs no id
}

BOOST_AUTO_TEST_CASE(panics_do_not_propagate_when_dropping_a_join_handle_whose_output_throws) {
  futures_balanced balance;
  drop_probe out_probe;
  toy_runtime rt;
  auto jh = rt.spawn(ready_with([&] { return probed_output(1, &out_probe, true); }));
  rt.tick();
  static_assert(noexcept(jh.reset()));
  jh.reset(); // swallowed (noexcept)
  BOOST_TEST(out_probe.drops.load() == 1);
  BOOST_TEST(rt.unhandled() == 0);
}

BOOST_AUTO_TEST_CASE(an_output_that_throws_destroyed_by_the_runtime_is_swallowed) {
  futures_balanced balance;
  drop_probe out_probe;
  toy_runtime rt;
  { auto jh = rt.spawn(ready_with([&] { return probed_output(1, &out_probe, true); })); } // fast path
  BOOST_CHECK_NO_THROW(rt.tick());
  BOOST_TEST(out_probe.drops.load() == 1);
  BOOST_TEST(rt.cells_live() == 0);
}

BOOST_AUTO_TEST_CASE(a_consumed_output_that_throws_can_be_destroyed_by_moving_it_out) {
  futures_balanced balance;
  drop_probe out_probe;
  toy_runtime rt;
  auto jh = rt.spawn(ready_with([&] { return probed_output(1, &out_probe, true); }));
  rt.tick();
  auto out = jh.poll(noop_waker());
  BOOST_REQUIRE(out);
  BOOST_TEST(destroy_value_catching(out));
  BOOST_TEST(out_probe.drops.load() == 1);
}

// ---------------------------------------------------------------------------------------
// Abort

BOOST_AUTO_TEST_CASE(abort_before_first_poll_never_runs_the_future) {
  futures_balanced balance;
  std::atomic<int> polls{0};
  drop_probe p;
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(pending_forever{&polls}, &p));
  jh.abort();
  BOOST_TEST(!p.dropped()); // never destroyed on the aborting thread
  BOOST_TEST(!jh.is_finished());
  rt.tick();
  BOOST_TEST(polls.load() == 0);
  BOOST_TEST(p.drops.load() == 1);
  BOOST_TEST(is_cancelled(jh.poll(noop_waker())));
}

BOOST_AUTO_TEST_CASE(abort_of_an_idle_task_schedules_it_and_the_runtime_cancels_it) {
  futures_balanced balance;
  drop_probe p;
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(pending_forever{}, &p));
  const task_id id = jh.id();
  rt.tick();
  BOOST_TEST(rt.queued() == 0u);
  abort_handle ah = jh.get_abort_handle();
  ah.abort();
  BOOST_TEST(rt.queued() == 1u);
  BOOST_TEST(!p.dropped());
  BOOST_TEST(!ah.is_finished()); // cancellation needs a poll turn
  rt.tick();
  BOOST_TEST(p.drops.load() == 1);
  BOOST_TEST((p.seen_id() == std::optional<task_id>(id))); // task_id_future_destructor_abort
  BOOST_TEST(ah.is_finished());
  auto out = jh.poll(noop_waker());
  BOOST_TEST(is_cancelled(out));
  BOOST_TEST(std::string(out->error().what()) == "task " + std::to_string(id.value()) + " was cancelled");
}

BOOST_AUTO_TEST_CASE(abort_is_idempotent_and_schedules_only_once) {
  futures_balanced balance;
  toy_runtime rt;
  auto jh = rt.spawn(pending_forever{});
  rt.tick();
  const long before = rt.core().schedules.load();
  jh.abort();
  jh.abort();
  jh.get_abort_handle().abort();
  BOOST_TEST(rt.core().schedules.load() == before + 1);
  BOOST_TEST(rt.tick() == 1u);
  BOOST_TEST(is_cancelled(jh.poll(noop_waker())));
}

BOOST_AUTO_TEST_CASE(abort_after_completion_keeps_the_value) {
  futures_balanced balance;
  toy_runtime rt;
  auto jh = rt.spawn(ready_now<int>(11));
  rt.tick();
  jh.abort();
  BOOST_TEST(rt.queued() == 0u);
  auto out = jh.poll(noop_waker());
  BOOST_REQUIRE(out);
  BOOST_REQUIRE(out->has_value());
  BOOST_TEST(out->value() == 11);
}

BOOST_AUTO_TEST_CASE(abort_during_a_poll_that_returns_pending_cancels_when_the_poll_ends) {
  futures_balanced balance;
  toy_runtime rt;
  auto self = std::make_shared<abort_handle>();
  auto jh = rt.spawn(aborts_itself(self, false));
  *self = jh.get_abort_handle();
  rt.tick();
  BOOST_TEST(is_cancelled(jh.poll(noop_waker())));
  *self = abort_handle();
}

BOOST_AUTO_TEST_CASE(abort_during_a_poll_that_returns_ready_loses_the_race) {
  futures_balanced balance;
  toy_runtime rt;
  auto self = std::make_shared<abort_handle>();
  auto jh = rt.spawn(aborts_itself(self, true));
  *self = jh.get_abort_handle();
  rt.tick();
  auto out = jh.poll(noop_waker());
  BOOST_REQUIRE(out);
  BOOST_REQUIRE(out->has_value());
  BOOST_TEST(out->value() == 7);
  *self = abort_handle();
  BOOST_TEST(rt.queued() == 0u);
}

BOOST_AUTO_TEST_CASE(abort_task_that_panics_on_drop_is_contained_and_returned_as_a_panic) {
  futures_balanced balance;
  drop_probe p;
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(pending_forever{}, &p, /*throws*/ true));
  rt.tick();
  BOOST_CHECK_NO_THROW(jh.abort());
  BOOST_CHECK_NO_THROW(rt.tick());
  BOOST_TEST(p.drops.load() == 1);
  auto out = jh.poll(noop_waker());
  BOOST_TEST(is_panic(out));
  BOOST_TEST(std::string(out->error().what()).find("future destructor") != std::string::npos);
  BOOST_TEST(rt.unhandled() == 0); // a cancellation's panic is not reported as unhandled
}

BOOST_AUTO_TEST_CASE(a_future_that_throws_yields_a_panic_and_is_reported_once) {
  futures_balanced balance;
  drop_probe p;
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(ready_with([]() -> int { throw test_panic("boom"); }), &p));
  rt.tick();
  BOOST_TEST(p.drops.load() == 1);
  auto out = jh.poll(noop_waker());
  BOOST_REQUIRE(is_panic(out));
  BOOST_TEST(rt.unhandled() == 1);
  BOOST_TEST(std::string(out->error().what()) ==
             "task " + std::to_string(jh.id().value()) + " panicked with message \"boom\"");
  BOOST_CHECK_THROW(std::rethrow_exception(out->error().panic()), test_panic);
}

BOOST_AUTO_TEST_CASE(a_future_whose_destructor_throws_after_ready_turns_the_value_into_a_panic) {
  futures_balanced balance;
  drop_probe p;
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(ready_now<int>(1), &p, /*throws*/ true));
  rt.tick();
  BOOST_TEST(p.drops.load() == 1);
  BOOST_TEST(is_panic(jh.poll(noop_waker())));
  BOOST_TEST(rt.unhandled() == 1);
}

BOOST_AUTO_TEST_CASE(a_future_that_throws_on_run_and_on_drop_reports_the_first_exception) {
  futures_balanced balance;
  drop_probe p;
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(ready_with([]() -> int { throw test_panic("run"); }), &p, /*throws*/ true));
  rt.tick();
  BOOST_TEST(p.drops.load() == 1);
  auto out = jh.poll(noop_waker());
  BOOST_REQUIRE(is_panic(out));
  BOOST_TEST(std::string(out->error().what()).find("\"run\"") != std::string::npos);
}

// ---------------------------------------------------------------------------------------
// Task ids (task/id.rs; tokio/tests/task_id.rs)

BOOST_AUTO_TEST_CASE(task_try_id_outside_a_task_is_empty_and_current_task_id_throws) {
  BOOST_TEST(!swarm::try_current_task_id());
  BOOST_CHECK_THROW(swarm::current_task_id(), std::logic_error);
  try {
    (void)swarm::current_task_id();
  } catch (const std::logic_error& e) {
    BOOST_TEST(std::string(e.what()).find("not called from inside a task") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(task_ids_match_the_id_seen_inside_the_poll_and_by_the_handles) {
  futures_balanced balance;
  drop_probe p;
  std::atomic<std::uint64_t> in_poll{0};
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(ready_now<int>(1), &p, false, &in_poll));
  abort_handle ah = jh.get_abort_handle();
  rt.tick();
  BOOST_TEST(in_poll.load() == jh.id().value());
  BOOST_TEST(ah.id() == jh.id());
  BOOST_TEST((p.seen_id() == std::optional<task_id>(jh.id()))); // task_id_future_destructor_completion
  BOOST_TEST(!swarm::try_current_task_id());
  BOOST_TEST(!abort_handle().id());
}

BOOST_AUTO_TEST_CASE(task_id_future_destructor_on_shutdown_sees_the_id) {
  futures_balanced balance;
  drop_probe p;
  toy_runtime rt;
  auto jh = rt.spawn(make_probed(pending_forever{}, &p));
  rt.tick();
  rt.shutdown();
  BOOST_TEST((p.seen_id() == std::optional<task_id>(jh.id())));
}

BOOST_AUTO_TEST_CASE(task_id_collision_two_tasks_get_different_ids) {
  futures_balanced balance;
  toy_runtime rt;
  auto a = rt.spawn(ready_now<>());
  auto b = rt.spawn(ready_now<>());
  BOOST_TEST(a.id() != b.id());
  BOOST_TEST(static_cast<bool>(a.id()));
}

BOOST_AUTO_TEST_CASE(task_ids_are_unique_increasing_on_one_thread_and_unique_across_threads) {
  task_id prev = task_id::next();
  for (int i = 0; i < 1000; ++i) {
    const task_id next = task_id::next();
    BOOST_TEST_REQUIRE(prev < next);
    prev = next;
  }
  constexpr int threads = 4, per_thread = 20000;
  std::vector<std::vector<task_id>> got(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      got[t].reserve(per_thread);
      for (int i = 0; i < per_thread; ++i)
        got[t].push_back(task_id::next());
    });
  for (auto& t : ts)
    t.join();
  std::unordered_set<task_id> all;
  for (auto& v : got)
    for (task_id id : v) {
      BOOST_TEST_REQUIRE(static_cast<bool>(id));
      all.insert(id);
    }
  BOOST_TEST(all.size() == std::size_t{threads * per_thread});
}

BOOST_AUTO_TEST_CASE(task_id_prints_its_number_hashes_and_compares) {
  const task_id a(17), b(18);
  std::ostringstream os;
  os << a;
  BOOST_TEST(os.str() == "17");
  BOOST_TEST(std::hash<task_id>{}(a) == std::hash<std::uint64_t>{}(17));
  BOOST_TEST(a < b);
  BOOST_TEST(a != b);
  BOOST_TEST(a == task_id(17));
  BOOST_TEST(!task_id());
  BOOST_TEST(task_id().value() == 0u);
  std::set<task_id> s{b, a};
  BOOST_TEST(s.begin()->value() == 17u);
}

BOOST_AUTO_TEST_CASE(the_current_task_id_guard_nests_and_restores) {
  BOOST_TEST(!swarm::try_current_task_id());
  {
    sd::current_task_id_guard outer(task_id(5));
    BOOST_TEST(swarm::current_task_id() == task_id(5));
    {
      sd::current_task_id_guard inner(task_id(6));
      BOOST_TEST(swarm::current_task_id() == task_id(6));
    }
    BOOST_TEST(swarm::current_task_id() == task_id(5));
  }
  BOOST_TEST(!swarm::try_current_task_id());
}

BOOST_AUTO_TEST_CASE(a_task_polling_another_runtime_sees_its_own_id_again_afterwards) {
  // The nested case: a task drives a second runtime inside its poll.
  futures_balanced balance;
  toy_runtime outer_rt, inner_rt;
  std::atomic<std::uint64_t> inner_seen{0}, before{0}, after{0};
  auto inner = inner_rt.spawn(make_probed(ready_now<>(), nullptr, false, &inner_seen));
  auto outer = outer_rt.spawn(ready_with([&] {
    before = swarm::current_task_id().value();
    inner_rt.tick();
    after = swarm::current_task_id().value();
    return 0;
  }));
  outer_rt.tick();
  BOOST_TEST(before.load() == outer.id().value());
  BOOST_TEST(after.load() == outer.id().value());
  BOOST_TEST(inner_seen.load() == inner.id().value());
}

// ---------------------------------------------------------------------------------------
// The terminate hook (tokio/tests/task_hooks.rs)

BOOST_AUTO_TEST_CASE(the_terminate_hook_fires_once_per_task_on_every_completion_path) {
  futures_balanced balance;
  std::vector<swarm::task_meta> seen;
  std::vector<task_id> expected;
  {
    toy_runtime rt;
    rt.set_on_terminate([&](const swarm::task_meta& m) { seen.push_back(m); });
    auto ok = rt.spawn(ready_now<>());
    auto panics = rt.spawn(ready_with([]() -> int { throw test_panic("x"); }));
    auto aborted_early = rt.spawn(pending_forever{});
    aborted_early.abort();
    auto aborted_late = rt.spawn(pending_forever{});
    auto shut_down = rt.spawn(pending_forever{});
    { auto detached = rt.spawn(yield_n<>(2)); }
    rt.tick();
    aborted_late.abort();
    rt.tick();
    BOOST_TEST(seen.size() == 5u);
    rt.shutdown();
    BOOST_TEST(seen.size() == 6u);
    auto after_close = rt.spawn(ready_now<>()); // cancelled at bind
    BOOST_TEST(seen.size() == 7u);
    for (auto* jh : {&ok, &aborted_early, &aborted_late, &shut_down, &after_close})
      expected.push_back(jh->id());
    expected.push_back(panics.id());
  }
  std::multiset<task_id> ids;
  for (const auto& m : seen) {
    ids.insert(m.id);
    BOOST_TEST(ends_with(m.location.file_name(), "task_test.cpp"));
  }
  for (task_id id : expected)
    BOOST_TEST(ids.count(id) == 1u);
  BOOST_TEST(std::set<task_id>(ids.begin(), ids.end()).size() == seen.size()); // each once
}

BOOST_AUTO_TEST_CASE(the_terminate_hook_fires_for_unowned_tasks_and_its_exception_is_swallowed) {
  futures_balanced balance;
  int calls = 0;
  task_id got;
  const swarm::task_hook hook = [&](const swarm::task_meta& m) {
    ++calls;
    got = m.id;
    throw test_panic("hook");
  };
  const task_id id = task_id::next();
  auto r = sd::new_unowned(ready_now<int>(1), noop_scheduler{}, id, std::source_location::current(), &hook);
  BOOST_CHECK_NO_THROW(std::move(r.task).run());
  BOOST_TEST(calls == 1);
  BOOST_TEST(got == id);
  auto out = r.join.poll(noop_waker());
  BOOST_REQUIRE(out);
  BOOST_TEST(out->value() == 1);
}

// ---------------------------------------------------------------------------------------
// join_error (task/error.rs; join_error_display in tokio/tests/task_abort.rs)

BOOST_AUTO_TEST_CASE(join_error_texts_for_each_payload_kind) {
  const task_id id(42);
  const join_error c = join_error::cancelled(id);
  BOOST_TEST(c.is_cancelled());
  BOOST_TEST(!c.is_panic());
  BOOST_TEST(std::string(c.what()) == "task 42 was cancelled");
  BOOST_TEST(c.id() == id);
  BOOST_TEST(!c.try_panic());
  BOOST_CHECK_THROW(c.panic(), std::logic_error);

  const join_error e = join_error::panic(id, std::make_exception_ptr(std::runtime_error("bad thing")));
  BOOST_TEST(e.is_panic());
  BOOST_TEST(!e.is_cancelled());
  BOOST_TEST(std::string(e.what()) == "task 42 panicked with message \"bad thing\"");
  BOOST_CHECK_THROW(std::rethrow_exception(e.panic()), std::runtime_error);
  BOOST_TEST(static_cast<bool>(e.try_panic()));

  const join_error s = join_error::panic(id, std::make_exception_ptr(std::string("a string")));
  BOOST_TEST(std::string(s.what()) == "task 42 panicked with message \"a string\"");

  const char* text = "a C string";
  const join_error cs = join_error::panic(id, std::make_exception_ptr(text));
  BOOST_TEST(std::string(cs.what()) == "task 42 panicked with message \"a C string\"");

  const join_error other = join_error::panic(id, std::make_exception_ptr(17));
  BOOST_TEST(std::string(other.what()) == "task 42 panicked");
  BOOST_CHECK_THROW(std::rethrow_exception(other.panic()), int);

  // Copies keep the text and payload (an exception object must be copyable).
  const join_error copy = e;
  BOOST_TEST(std::string(copy.what()) == e.what());
  BOOST_TEST((copy.try_panic() == e.try_panic()));
  const join_error ccopy = c;
  BOOST_TEST(std::string(ccopy.what()) == "task 42 was cancelled");
}

BOOST_AUTO_TEST_CASE(join_error_cancelled_text_holds_the_largest_id) {
  const join_error c = join_error::cancelled(task_id(~std::uint64_t{0}));
  BOOST_TEST(std::string(c.what()) == "task 18446744073709551615 was cancelled");
}

BOOST_AUTO_TEST_CASE(join_error_panic_message_of_a_thrown_string_reaches_the_handle) {
  futures_balanced balance;
  toy_runtime rt;
  auto a = rt.spawn(ready_with([]() -> int { throw std::string("from a string"); }));
  auto b = rt.spawn(ready_with([]() -> int { throw "from a literal"; }));
  auto c = rt.spawn(ready_with([]() -> int { throw 3.5; }));
  rt.tick();
  auto ra = a.poll(noop_waker()), rb = b.poll(noop_waker()), rc = c.poll(noop_waker());
  BOOST_REQUIRE(is_panic(ra));
  BOOST_REQUIRE(is_panic(rb));
  BOOST_REQUIRE(is_panic(rc));
  BOOST_TEST(std::string(ra->error().what()) ==
             "task " + std::to_string(a.id().value()) + " panicked with message \"from a string\"");
  BOOST_TEST(std::string(rb->error().what()) ==
             "task " + std::to_string(b.id().value()) + " panicked with message \"from a literal\"");
  BOOST_TEST(std::string(rc->error().what()) == "task " + std::to_string(c.id().value()) + " panicked");
  BOOST_TEST(rt.unhandled() == 3);
}

// ---------------------------------------------------------------------------------------
// Misuse

BOOST_AUTO_TEST_CASE(reading_an_output_twice_throws_a_logic_error_that_names_the_misuse) {
  futures_balanced balance;
  toy_runtime rt;
  auto jh = rt.spawn(ready_now<int>(1));
  rt.tick();
  BOOST_TEST(jh.poll(noop_waker()).has_value());
  try {
    (void)jh.poll(noop_waker());
    BOOST_FAIL("a second read did not throw");
  } catch (const std::logic_error& e) {
    BOOST_TEST(std::string(e.what()).find("read twice") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(assert_owner_on_a_foreign_list_throws_and_releases_the_notified) {
  futures_balanced balance;
  sd::owned_tasks<queue_scheduler> a(1), b(1);
  BOOST_TEST(a.id() != b.id());
  queue_scheduler s;
  auto r = a.bind(pending_forever{}, s, task_id::next());
  BOOST_REQUIRE(r.first);
  const sd::raw_task raw = r.join.raw();
  BOOST_CHECK_THROW(b.assert_owner(std::move(*r.first)), std::logic_error);
  BOOST_TEST(raw.state().load().ref_count() == 2u); // list + join handle: the notified went
  a.close_and_shutdown_all();
  BOOST_TEST(is_cancelled(r.join.poll(noop_waker())));
}

BOOST_AUTO_TEST_CASE(local_owned_tasks_used_from_another_thread_throws) {
  futures_balanced balance;
  sd::local_owned_tasks<queue_scheduler> list;
  bool bind_threw = false, close_threw = false;
  std::thread([&] {
    try {
      (void)list.bind(pending_forever{}, queue_scheduler{}, task_id::next());
    } catch (const std::logic_error&) {
      bind_threw = true;
    }
    try {
      list.close_and_shutdown_all();
    } catch (const std::logic_error&) {
      close_threw = true;
    }
  }).join();
  BOOST_TEST(bind_threw);
  BOOST_TEST(close_threw);
  BOOST_TEST(list.is_empty());
  BOOST_TEST(!list.is_closed());
}

BOOST_AUTO_TEST_CASE(local_owned_tasks_binds_runs_and_shuts_down_on_its_thread) {
  futures_balanced balance;
  sd::local_owned_tasks<queue_scheduler> list;
  queue_scheduler s;
  auto q = s.queue;
  drop_probe p;
  auto done = list.bind(ready_now<int>(2), s, task_id::next());
  auto idle = list.bind(make_probed(pending_forever{}, &p), s, task_id::next());
  BOOST_TEST(list.num_alive_tasks() == 2u);
  BOOST_TEST(list.spawned_tasks_count() == 2u);
  list.assert_owner(std::move(*done.first)).run();
  list.assert_owner(std::move(*idle.first)).run();
  BOOST_TEST(done.join.is_finished());
  // queue_scheduler::release hands back nothing, so the completed task is still listed.
  list.close_and_shutdown_all();
  BOOST_TEST(list.is_empty());
  BOOST_TEST(p.drops.load() == 1);
  BOOST_TEST(is_cancelled(idle.join.poll(noop_waker())));
  auto late = list.bind(pending_forever{}, s, task_id::next());
  BOOST_TEST(!late.first);
  BOOST_TEST(is_cancelled(late.join.poll(noop_waker())));
}

BOOST_AUTO_TEST_CASE(owned_tasks_shard_count_is_four_per_worker_rounded_to_a_power_of_two) {
  using list = sd::owned_tasks<queue_scheduler>;
  BOOST_TEST(list::shard_count_for(1) == 4u);
  BOOST_TEST(list::shard_count_for(2) == 8u);
  BOOST_TEST(list::shard_count_for(3) == 16u);
  BOOST_TEST(list::shard_count_for(4) == 16u);
  BOOST_TEST(list::shard_count_for(6) == 32u);
  BOOST_TEST(list::shard_count_for(64) == 256u);
  BOOST_TEST(list::shard_count_for(16384) == 65536u);
  BOOST_TEST(list::shard_count_for(100000) == 65536u);
  BOOST_TEST(list::shard_count_for(std::size_t{1} << 40) == 65536u);
  BOOST_TEST(list(6).shard_count() == 32u);
}

BOOST_AUTO_TEST_CASE(owned_tasks_shard_count_stays_at_most_65536_for_any_worker_count) {
  // bit_ceil(workers) * 4 overflows to 0 from 2^62 workers on, and bit_ceil itself is
  // undefined above 2^63 (it returned 4 for SIZE_MAX).
  using list = sd::owned_tasks<queue_scheduler>;
  BOOST_TEST(list::shard_count_for(std::size_t{1} << 62) == 65536u);
  BOOST_TEST(list::shard_count_for(std::size_t{1} << 63) == 65536u);
  BOOST_TEST(list::shard_count_for(~std::size_t{0}) == 65536u);
}

BOOST_AUTO_TEST_CASE(binding_after_close_cancels_the_task_and_returns_no_notified) {
  futures_balanced balance;
  sd::owned_tasks<queue_scheduler> list(2);
  list.close_and_shutdown_all();
  BOOST_TEST(list.is_closed());
  drop_probe p;
  std::atomic<int> polls{0};
  auto r = list.bind(make_probed(pending_forever{&polls}, &p), queue_scheduler{}, task_id::next());
  BOOST_TEST(!r.first);
  BOOST_TEST(p.drops.load() == 1); // destroyed on the spot
  BOOST_TEST(polls.load() == 0);
  BOOST_TEST(r.join.is_finished());
  BOOST_TEST(is_cancelled(r.join.poll(noop_waker())));
  BOOST_TEST(list.is_empty());
  BOOST_TEST(list.num_alive_tasks() == 0u);
  BOOST_TEST(list.spawned_tasks_count() == 0u);
}

BOOST_AUTO_TEST_CASE(owned_tasks_counts_alive_and_spawned_tasks) {
  futures_balanced balance;
  toy_runtime rt;
  auto a = rt.spawn(ready_now<>());
  auto b = rt.spawn(pending_forever{});
  BOOST_TEST(rt.owned().num_alive_tasks() == 2u);
  BOOST_TEST(rt.owned().spawned_tasks_count() == 2u);
  rt.tick();
  BOOST_TEST(rt.owned().num_alive_tasks() == 1u); // a completed and was released
  rt.shutdown();
  BOOST_TEST(rt.owned().num_alive_tasks() == 0u);
  BOOST_TEST(rt.owned().spawned_tasks_count() == 2u);
}

// ---------------------------------------------------------------------------------------
// Destructors that throw where the harness means to swallow or report them. These run in a
// child process because the failure mode is std::terminate: both did terminate while the
// outcome was held in a std::optional (whose reset and destructor are noexcept), before
// maybe<T> replaced it.

BOOST_AUTO_TEST_CASE(a_future_and_its_output_that_both_throw_on_drop_do_not_terminate) {
  // The future returns a value, then its destructor throws: the value becomes a panic and
  // is discarded; harness::discard swallows the output's own exception.
  const int rc = run_in_child([] {
    drop_probe fp, op;
    toy_runtime rt;
    auto jh = rt.spawn(
        make_probed(ready_with([&] { return probed_output(1, &op, true); }), &fp, /*future throws*/ true));
    rt.tick();
    auto out = jh.poll(noop_waker());
    if (!is_panic(out) || fp.drops.load() != 1 || op.drops.load() != 1)
      ::_exit(4);
  });
  BOOST_TEST(rc == 0, "child exit " << rc << " (-6: std::terminate)");
}

BOOST_AUTO_TEST_CASE(destroying_a_polled_outcome_whose_value_throws_propagates_the_exception) {
  // outcome<T>'s destructor is noexcept(false) to let T's exception out, and so must be
  // whatever the join handle returns it in: dropping a consumed value whose destructor
  // throws throws in the reader's code (Tokio: the panic unwinds there).
  const int rc = run_in_child([] {
    drop_probe op;
    toy_runtime rt;
    auto jh = rt.spawn(ready_with([&] { return probed_output(1, &op, true); }));
    rt.tick();
    bool threw = false;
    try {
      auto out = jh.poll(noop_waker());
    } catch (const test_panic&) {
      threw = true;
    }
    if (!threw)
      ::_exit(4);
  });
  BOOST_TEST(rc == 0, "child exit " << rc << " (-6: std::terminate)");
}

BOOST_AUTO_TEST_SUITE_END()
