// Tokio's task_combinations matrix (tokio/src/runtime/tests/task_combinations.rs) for the
// task layer: every way a task can end (it panics on run, on drop, both, or not at all; its
// output panics on drop or not) crossed with every order in which its join handle is polled,
// consumed and dropped and in which it is aborted (through the join handle or through an
// abort handle that is dropped at each point), on the toy runtime driven by tick() and on a
// toy runtime with two worker threads.
//
// The task: signals its first poll, waits for a "complete" event, yields once, then maybe
// throws, else returns an output whose destructor reports (and maybe throws). Because the
// C++ harness destroys a future that threw inside the catch handler, not while unwinding,
// "panic on run and drop" is not a double panic here and runs in every combination.
#include "support.hpp"

#include <boost/test/unit_test.hpp>

#include <ostream>

using namespace swarm_test;
using swarm::abort_handle;

namespace {

enum class combi_task { no_panic, panic_on_run, panic_on_drop, panic_on_run_and_drop };
enum class combi_output { no_panic, panic_on_drop };
enum class combi_join_interest { polled, not_polled };
// The values are the points of the sequence at which the action happens (see run()).
enum class combi_join_handle { drop_immediately = 1, drop_first_poll = 2, drop_after_no_consume = 3, drop_after_consume = 4 };
enum class combi_abort { not_aborted = 0, immediately = 1, first_poll = 2, after_finish = 3, after_consume_output = 4 };
enum class combi_abort_source { join_handle, abort_handle };
// When the abort handle is dropped: none = no abort handle at all; never = kept to the end.
enum class combi_abort_handle { none = 0, drop_immediately = 1, drop_first_poll = 2, drop_after_no_consume = 3,
                                drop_after_consume = 4, never = 5 };

// The future's destructor throws after Ready while the output, whose destructor throws too,
// is alive. Tokio skips that pair (a double panic aborts). Here the harness discards the
// output inside its catch handler and swallows the second exception (task_test/a_future_
// and_its_output_that_both_throw_on_drop_do_not_terminate), so the pair runs too.
constexpr bool double_drop_panic_terminates = false;

struct combination {
  combi_task task;
  combi_output output;
  combi_join_interest ji;
  combi_join_handle jh;
  combi_abort abort;
  combi_abort_source source;
  combi_abort_handle ah;
};

const char* name(combi_task v) {
  static const char* n[] = {"no_panic", "panic_on_run", "panic_on_drop", "panic_on_run_and_drop"};
  return n[static_cast<int>(v)];
}
const char* name(combi_output v) { return v == combi_output::no_panic ? "no_panic" : "panic_on_drop"; }
const char* name(combi_join_interest v) { return v == combi_join_interest::polled ? "polled" : "not_polled"; }
const char* name(combi_join_handle v) {
  static const char* n[] = {"", "drop_immediately", "drop_first_poll", "drop_after_no_consume", "drop_after_consume"};
  return n[static_cast<int>(v)];
}
const char* name(combi_abort v) {
  static const char* n[] = {"not_aborted", "immediately", "first_poll", "after_finish", "after_consume_output"};
  return n[static_cast<int>(v)];
}
const char* name(combi_abort_source v) { return v == combi_abort_source::join_handle ? "join_handle" : "abort_handle"; }
const char* name(combi_abort_handle v) {
  static const char* n[] = {"none", "drop_immediately", "drop_first_poll", "drop_after_no_consume", "drop_after_consume",
                            "never"};
  return n[static_cast<int>(v)];
}

std::ostream& operator<<(std::ostream& os, const combination& c) {
  return os << "task=" << name(c.task) << " output=" << name(c.output) << " join_interest=" << name(c.ji)
            << " join_handle=" << name(c.jh) << " abort=" << name(c.abort) << " source=" << name(c.source)
            << " abort_handle=" << name(c.ah);
}

// Who is destroying something: the runtime (default, also on worker threads), the test
// while it drops the join handle, or the test destroying a consumed value.
enum class phase { runtime, handle_drop, consumer };
thread_local phase current_phase = phase::runtime;

struct scoped_phase {
  explicit scoped_phase(phase p) { current_phase = p; }
  ~scoped_phase() { current_phase = phase::runtime; }
};

struct combi_state {
  std::atomic<bool> first_poll{false};
  event complete;
  std::atomic<int> future_drops{0};
  std::atomic<int> outputs_created{0};
  std::atomic<int> output_drops{0};
  std::atomic<phase> future_drop_phase{phase::runtime};
  std::atomic<phase> output_drop_phase{phase::runtime};
  std::atomic<bool> future_dropped_on_test_thread{false};
  const std::thread::id test_thread = std::this_thread::get_id();
};

struct combi_output_value {
  combi_state* st;
  bool throws;
  live_token token{nullptr};
  combi_output_value(combi_state* s, bool t) : st(s), throws(t) {}
  combi_output_value(combi_output_value&&) noexcept = default;
  ~combi_output_value() noexcept(false) {
    if (!token.live())
      return;
    st->output_drop_phase.store(current_phase);
    st->output_drops.fetch_add(1);
    if (throws)
      throw test_panic("output destructor");
  }
};

struct combi_future {
  using output_type = combi_output_value;
  combi_state* st;
  combi_task kind;
  bool output_throws;
  int step = 0;
  live_token token{&global_futures()};

  combi_future(combi_state* s, combi_task k, bool ot) : st(s), kind(k), output_throws(ot) {}
  combi_future(combi_future&& o) noexcept
      : st(o.st), kind(o.kind), output_throws(o.output_throws), step(o.step), token(std::move(o.token)) {}
  ~combi_future() noexcept(false) {
    if (!token.live())
      return;
    st->future_drop_phase.store(current_phase);
    st->future_dropped_on_test_thread.store(std::this_thread::get_id() == st->test_thread);
    st->future_drops.fetch_add(1);
    if (kind == combi_task::panic_on_drop || kind == combi_task::panic_on_run_and_drop)
      throw test_panic("future destructor");
  }

  std::optional<combi_output_value> poll(poll_context& cx) {
    if (step == 0) {
      st->first_poll.store(true);
      step = 1;
    }
    if (step == 1) {
      if (!st->complete.poll(cx.get_waker()))
        return std::nullopt;
      step = 2;
      cx.get_waker().wake_by_ref(); // yield once
      return std::nullopt;
    }
    if (kind == combi_task::panic_on_run || kind == combi_task::panic_on_run_and_drop)
      throw test_panic("task panicked on run");
    st->outputs_created.fetch_add(1);
    return combi_output_value(st, output_throws);
  }
};

enum class result_kind { ok, cancelled, panic };

bool skipped(const combination& c) {
  const int abort_point = static_cast<int>(c.abort);
  if (c.source == combi_abort_source::abort_handle && c.ah == combi_abort_handle::none)
    return true; // nothing to abort with
  // An abort through a handle that was already dropped is impossible.
  if (c.abort != combi_abort::not_aborted) {
    if (c.source == combi_abort_source::join_handle && abort_point > static_cast<int>(c.jh))
      return true;
    if (c.source == combi_abort_source::abort_handle && abort_point > static_cast<int>(c.ah))
      return true;
  }
  const bool aborted_early = c.abort == combi_abort::immediately || c.abort == combi_abort::first_poll;
  if (double_drop_panic_terminates && !aborted_early && c.task == combi_task::panic_on_drop &&
      c.output == combi_output::panic_on_drop)
    return true;
  return false;
}

// Runs one combination; returns false if it was skipped.
bool run(std::size_t workers, const combination& c) {
  if (skipped(c))
    return false;
  BOOST_TEST_CONTEXT(c << " workers=" << workers) {
    const bool aborted_early = c.abort == combi_abort::immediately || c.abort == combi_abort::first_poll;
    const bool panics_on_run = c.task == combi_task::panic_on_run || c.task == combi_task::panic_on_run_and_drop;
    const bool panics_on_drop = c.task == combi_task::panic_on_drop || c.task == combi_task::panic_on_run_and_drop;
    const bool output_throws = c.output == combi_output::panic_on_drop;
    const result_kind expected = aborted_early ? (panics_on_drop ? result_kind::panic : result_kind::cancelled)
                                               : (panics_on_run || panics_on_drop ? result_kind::panic : result_kind::ok);
    const bool output_created = !aborted_early && !panics_on_run;
    // Who destroys the output, if there is one.
    phase output_destroyer = phase::runtime;
    if (output_created && !panics_on_drop) {
      if (c.jh == combi_join_handle::drop_after_no_consume)
        output_destroyer = phase::handle_drop;
      else if (c.jh == combi_join_handle::drop_after_consume)
        output_destroyer = phase::consumer;
    }
    // Without workers the task completes during the run after the point where it was
    // aborted early (or, otherwise, after `complete` was sent at point 2); a handle dropped
    // later was alive at completion. With workers an early abort lets a worker complete the
    // task at once, racing a handle dropped at the same point or at the next one (the wait
    // for the first poll ends when the future is destroyed, before completion).
    const int completion_point = c.abort == combi_abort::immediately ? 1 : 2;
    const bool handle_alive_at_completion = static_cast<int>(c.jh) > completion_point;
    const bool completion_races_handle_drop = workers > 0 && aborted_early &&
                                              static_cast<int>(c.jh) >= static_cast<int>(c.abort) &&
                                              static_cast<int>(c.jh) <= 2;

    const long futures_before = global_futures().alive();
    combi_state st;
    counting_waker cw;
    {
      toy_runtime rt(workers);
      std::optional<sd::raw_join_handle<combi_output_value>> jh(
          rt.spawn(combi_future(&st, c.task, output_throws)));
      std::optional<abort_handle> ah;
      if (c.ah != combi_abort_handle::none)
        ah.emplace(jh->get_abort_handle());

      auto at_point = [&](int point) {
        if (static_cast<int>(c.abort) == point) {
          if (c.source == combi_abort_source::join_handle)
            jh->abort();
          else
            ah->abort();
        }
        if (static_cast<int>(c.jh) == point) {
          scoped_phase p(phase::handle_drop);
          jh.reset(); // noexcept: a throwing output destructor is swallowed
        }
        if (static_cast<int>(c.ah) == point)
          ah.reset();
      };

      if (c.ji == combi_join_interest::polled)
        BOOST_TEST_REQUIRE(!jh->poll(cw.get())); // the task waits for `complete`: pending
      at_point(1);
      BOOST_TEST_REQUIRE(rt.run_until([&] { return st.first_poll.load() || st.future_drops.load() > 0; }));
      at_point(2);
      st.complete.set();
      BOOST_TEST_REQUIRE(rt.run_until([&] {
        return st.future_drops.load() > 0 && (!jh || jh->is_finished()) && (!ah || ah->is_finished());
      }));
      at_point(3);
      if (c.jh == combi_join_handle::drop_after_consume) {
        auto r = join(rt, *jh, cw);
        BOOST_TEST_REQUIRE(r.has_value());
        if (r->has_value()) {
          BOOST_TEST((expected == result_kind::ok));
          scoped_phase p(phase::consumer);
          BOOST_TEST(destroy_value_catching(r) == output_throws);
        } else if (r->error().is_cancelled()) {
          BOOST_TEST((expected == result_kind::cancelled));
          BOOST_TEST(r->error().id() == jh->id());
        } else {
          BOOST_TEST((expected == result_kind::panic));
          BOOST_TEST(r->error().id() == jh->id());
        }
        // The join completed exactly once: a second read is a misuse.
        BOOST_CHECK_THROW((void)jh->poll(cw.get()), std::logic_error);
      }
      at_point(4);
      ah.reset(); // combi_abort_handle::never
      BOOST_TEST(!jh.has_value());

      rt.shutdown();
      BOOST_TEST(rt.is_empty());
      BOOST_TEST(rt.cells_live() == 0);
      BOOST_TEST(rt.unhandled() == (!aborted_early && (panics_on_run || panics_on_drop) ? 1 : 0));
    }

    // The future is always destroyed, once, by the runtime (on a worker when there are any);
    // never by an abort on the aborting thread.
    BOOST_TEST(st.future_drops.load() == 1);
    BOOST_TEST((st.future_drop_phase.load() == phase::runtime));
    BOOST_TEST(st.future_dropped_on_test_thread.load() == (workers == 0));
    // A task that was never polled must have been aborted; without workers, exactly then.
    if (!st.first_poll.load())
      BOOST_TEST((c.abort == combi_abort::immediately));
    if (workers == 0)
      BOOST_TEST(st.first_poll.load() == (c.abort != combi_abort::immediately));
    // The output exists iff the task neither panicked on run nor was aborted before it
    // finished, and it is destroyed once, by whoever held it last.
    BOOST_TEST(st.outputs_created.load() == (output_created ? 1 : 0));
    BOOST_TEST(st.output_drops.load() == (output_created ? 1 : 0));
    if (output_created)
      BOOST_TEST((st.output_drop_phase.load() == output_destroyer));
    // The join waker registered by the early poll is woken once at completion if the handle
    // still existed then, and never leaks.
    BOOST_TEST(cw.live_clones() == 0);
    if (c.ji == combi_join_interest::polled) {
      BOOST_TEST(cw.clones() == 1);
      if (completion_races_handle_drop)
        BOOST_TEST(cw.total_wakes() <= 1);
      else
        BOOST_TEST(cw.total_wakes() == (handle_alive_at_completion ? 1 : 0));
    } else {
      BOOST_TEST(cw.total_wakes() == 0);
    }
    BOOST_TEST(global_futures().alive() == futures_before);
  }
  return true;
}

std::size_t run_matrix(std::size_t workers) {
  std::size_t ran = 0;
  for (auto task : {combi_task::no_panic, combi_task::panic_on_run, combi_task::panic_on_drop,
                    combi_task::panic_on_run_and_drop})
    for (auto output : {combi_output::no_panic, combi_output::panic_on_drop})
      for (auto ji : {combi_join_interest::polled, combi_join_interest::not_polled})
        for (auto jh : {combi_join_handle::drop_immediately, combi_join_handle::drop_first_poll,
                        combi_join_handle::drop_after_no_consume, combi_join_handle::drop_after_consume})
          for (auto abort : {combi_abort::not_aborted, combi_abort::immediately, combi_abort::first_poll,
                             combi_abort::after_finish, combi_abort::after_consume_output})
            for (auto source : {combi_abort_source::join_handle, combi_abort_source::abort_handle})
              for (auto ah : {combi_abort_handle::none, combi_abort_handle::drop_immediately,
                              combi_abort_handle::drop_first_poll, combi_abort_handle::drop_after_no_consume,
                              combi_abort_handle::drop_after_consume, combi_abort_handle::never})
                ran += run(workers, combination{task, output, ji, jh, abort, source, ah});
  return ran;
}

} // namespace

BOOST_AUTO_TEST_SUITE(task_combinations)

BOOST_AUTO_TEST_CASE(task_combinations_on_the_ticked_toy_runtime) {
  const std::size_t ran = run_matrix(0);
  BOOST_TEST_MESSAGE("ticked toy runtime: " << ran << " combinations");
  BOOST_TEST(ran > 2000u);
}

BOOST_AUTO_TEST_CASE(task_combinations_on_a_two_worker_toy_runtime) {
  const std::size_t ran = run_matrix(2);
  BOOST_TEST_MESSAGE("two-worker toy runtime: " << ran << " combinations");
  BOOST_TEST(ran > 2000u);
}

BOOST_AUTO_TEST_SUITE_END()
