// Unit tests of the task state word (state.hpp, a port of Tokio's runtime/task/state.rs):
// every transition, table-driven. Each row is (input word, expected result, expected output
// word); the input is set with state's test constructor and the output read back with load().
#include <swarm/task/state.hpp>

#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace {

using namespace swarm::detail;
using word = std::uintptr_t;

constexpr word refs(word n) { return n * ref_one; }
constexpr word RUN = running;
constexpr word CMP = complete;
constexpr word NOT = notified_bit;
constexpr word JI = join_interest;
constexpr word JW = join_waker;
constexpr word CAN = cancelled;

// "refs=3 NOTIFIED|JOIN_INTEREST (204)"
std::string describe(word w) {
  std::ostringstream out;
  out << "refs=" << ((w & ref_count_mask) >> ref_count_shift);
  const char* sep = " ";
  for (auto [bit, name] : {std::pair{RUN, "RUNNING"},
                           {CMP, "COMPLETE"},
                           {NOT, "NOTIFIED"},
                           {JI, "JOIN_INTEREST"},
                           {JW, "JOIN_WAKER"},
                           {CAN, "CANCELLED"}}) {
    if (w & bit) {
      out << sep << name;
      sep = "|";
    }
  }
  out << " (" << w << ")";
  return out.str();
}

std::string_view name(to_running r) {
  switch (r) {
  case to_running::success:
    return "success";
  case to_running::cancelled:
    return "cancelled";
  case to_running::failed:
    return "failed";
  case to_running::dealloc:
    return "dealloc";
  }
  return "?";
}
std::string_view name(to_idle r) {
  switch (r) {
  case to_idle::ok:
    return "ok";
  case to_idle::ok_notified:
    return "ok_notified";
  case to_idle::ok_dealloc:
    return "ok_dealloc";
  case to_idle::cancelled:
    return "cancelled";
  }
  return "?";
}
std::string_view name(to_notified_by_val r) {
  switch (r) {
  case to_notified_by_val::do_nothing:
    return "do_nothing";
  case to_notified_by_val::submit:
    return "submit";
  case to_notified_by_val::dealloc:
    return "dealloc";
  }
  return "?";
}
std::string_view name(to_notified_by_ref r) {
  switch (r) {
  case to_notified_by_ref::do_nothing:
    return "do_nothing";
  case to_notified_by_ref::submit:
    return "submit";
  }
  return "?";
}

template <class Result>
struct row {
  word in;
  Result expected;
  word out;
};

// Runs `transition` on a state holding each row's input and checks result and output word.
template <class Result, std::size_t N, class Transition>
void check_rows(const row<Result> (&rows)[N], Transition transition) {
  for (const auto& r : rows) {
    BOOST_TEST_CONTEXT("input " << describe(r.in)) {
      state s(r.in);
      const Result got = transition(s);
      if constexpr (std::is_same_v<Result, bool>)
        BOOST_TEST(got == r.expected);
      else
        BOOST_TEST(name(got) == name(r.expected));
      BOOST_TEST(describe(s.load().bits()) == describe(r.out));
    }
  }
}

} // namespace

BOOST_AUTO_TEST_SUITE(state_test)

BOOST_AUTO_TEST_CASE(bit_layout_and_ref_count_field_match_the_spec) {
  BOOST_TEST(running == 0x01u);
  BOOST_TEST(complete == 0x02u);
  BOOST_TEST(lifecycle_mask == 0x03u);
  BOOST_TEST(notified_bit == 0x04u);
  BOOST_TEST(join_interest == 0x08u);
  BOOST_TEST(join_waker == 0x10u);
  BOOST_TEST(cancelled == 0x20u);
  BOOST_TEST(state_mask == 0x3Fu);
  BOOST_TEST(ref_count_mask == ~word{0x3F});
  BOOST_TEST(ref_count_shift == 6u);
  BOOST_TEST(ref_one == 64u);
}

BOOST_AUTO_TEST_CASE(a_new_task_holds_three_refs_and_is_notified_and_join_interested) {
  static_assert(initial_state == 204);
  const state s;
  const snapshot v = s.load();
  BOOST_TEST(v.bits() == 204u);
  BOOST_TEST(v.ref_count() == 3u);
  BOOST_TEST(v.is_notified());
  BOOST_TEST(v.is_join_interested());
  BOOST_TEST(v.is_idle());
  BOOST_TEST(!v.is_running());
  BOOST_TEST(!v.is_complete());
  BOOST_TEST(!v.is_cancelled());
  BOOST_TEST(!v.is_join_waker_set());
}

BOOST_AUTO_TEST_CASE(the_test_constructor_stores_the_word_verbatim) {
  for (word w : {word{0}, word{1}, word{204}, refs(7) | RUN | NOT | CAN, ~word{0}}) {
    const state s(w);
    BOOST_TEST(s.load().bits() == w);
  }
}

BOOST_AUTO_TEST_CASE(snapshot_predicates_read_one_bit_each) {
  struct expect {
    word w;
    bool idle, notified, running_, complete_, cancelled_, join_interested, join_waker_set;
    word ref_count;
  };
  const expect rows[] = {
      {0, true, false, false, false, false, false, false, 0},
      {RUN, false, false, true, false, false, false, false, 0},
      {CMP, false, false, false, true, false, false, false, 0},
      {NOT, true, true, false, false, false, false, false, 0},
      {JI, true, false, false, false, false, true, false, 0},
      {JW, true, false, false, false, false, false, true, 0},
      {CAN, true, false, false, false, true, false, false, 0},
      {refs(5) | RUN | NOT | JI | JW | CAN, false, true, true, false, true, true, true, 5},
      {refs(1) | CMP | JI, false, false, false, true, false, true, false, 1},
      {204, true, true, false, false, false, true, false, 3},
      {ref_count_mask | state_mask, false, true, true, true, true, true, true, ref_count_mask >> 6},
  };
  for (const auto& r : rows) {
    BOOST_TEST_CONTEXT("word " << describe(r.w)) {
      const snapshot s(r.w);
      BOOST_TEST(s.is_idle() == r.idle);
      BOOST_TEST(s.is_notified() == r.notified);
      BOOST_TEST(s.is_running() == r.running_);
      BOOST_TEST(s.is_complete() == r.complete_);
      BOOST_TEST(s.is_cancelled() == r.cancelled_);
      BOOST_TEST(s.is_join_interested() == r.join_interested);
      BOOST_TEST(s.is_join_waker_set() == r.join_waker_set);
      BOOST_TEST(s.ref_count() == r.ref_count);
    }
  }
}

BOOST_AUTO_TEST_CASE(snapshot_edits_change_only_their_own_bit_or_the_count) {
  const word base = refs(2) | JI;
  auto edited = [&](auto edit) {
    snapshot s(base);
    edit(s);
    return s.bits();
  };
  BOOST_TEST(edited([](snapshot& s) { s.set_running(); }) == (base | RUN));
  BOOST_TEST(edited([](snapshot& s) { s.set_notified(); }) == (base | NOT));
  BOOST_TEST(edited([](snapshot& s) { s.set_cancelled(); }) == (base | CAN));
  BOOST_TEST(edited([](snapshot& s) { s.set_join_waker(); }) == (base | JW));
  BOOST_TEST(edited([](snapshot& s) { s.unset_join_interested(); }) == refs(2));
  BOOST_TEST(edited([](snapshot& s) { s.ref_inc(); }) == (refs(3) | JI));
  BOOST_TEST(edited([](snapshot& s) { s.ref_dec(); }) == (refs(1) | JI));

  const word all = refs(2) | RUN | NOT | JI | JW | CAN;
  auto cleared = [&](auto edit) {
    snapshot s(all);
    edit(s);
    return s.bits();
  };
  BOOST_TEST(cleared([](snapshot& s) { s.unset_running(); }) == (all & ~RUN));
  BOOST_TEST(cleared([](snapshot& s) { s.unset_notified(); }) == (all & ~NOT));
  BOOST_TEST(cleared([](snapshot& s) { s.unset_join_waker(); }) == (all & ~JW));
  BOOST_TEST(cleared([](snapshot& s) { s.unset_join_interested(); }) == (all & ~JI));

  BOOST_TEST((snapshot(204) == snapshot(204)));
  BOOST_TEST(!(snapshot(204) == snapshot(205)));
  BOOST_TEST(snapshot().bits() == 0u);
}

BOOST_AUTO_TEST_CASE(transition_to_running_locks_an_idle_task_and_otherwise_drops_the_notified_ref) {
  const row<to_running> rows[] = {
      // idle: take RUNNING, clear NOTIFIED; the count is unchanged (the notified's ref becomes
      // the poll's ref)
      {204, to_running::success, refs(3) | RUN | JI},
      {refs(1) | NOT, to_running::success, refs(1) | RUN},
      {refs(2) | NOT | JI | JW, to_running::success, refs(2) | RUN | JI | JW},
      // idle and cancelled: the caller must cancel instead of polling
      {204 | CAN, to_running::cancelled, refs(3) | RUN | JI | CAN},
      {refs(1) | NOT | CAN, to_running::cancelled, refs(1) | RUN | CAN},
      // running elsewhere: only the notified's ref is dropped
      {refs(3) | RUN | NOT | JI, to_running::failed, refs(2) | RUN | NOT | JI},
      {refs(2) | RUN | NOT | CAN, to_running::failed, refs(1) | RUN | NOT | CAN},
      {refs(1) | RUN | NOT, to_running::dealloc, RUN | NOT},
      // complete: only the notified's ref is dropped; dealloc when it was the last
      {refs(2) | CMP | NOT | JI, to_running::failed, refs(1) | CMP | NOT | JI},
      {refs(1) | CMP | NOT, to_running::dealloc, CMP | NOT},
      {refs(1) | CMP | NOT | CAN | JW, to_running::dealloc, CMP | NOT | CAN | JW},
  };
  check_rows(rows, [](state& s) { return s.transition_to_running(); });
}

BOOST_AUTO_TEST_CASE(transition_to_idle_releases_the_lock_unless_cancelled_and_reschedules_when_notified) {
  const row<to_idle> rows[] = {
      // not notified: the poll consumed the notified's ref
      {refs(3) | RUN | JI, to_idle::ok, refs(2) | JI},
      {refs(2) | RUN | JI | JW, to_idle::ok, refs(1) | JI | JW},
      {refs(1) | RUN, to_idle::ok_dealloc, 0},
      // notified during the poll: a ref is minted for the new notified, NOTIFIED stays
      {refs(1) | RUN | NOT, to_idle::ok_notified, refs(2) | NOT},
      {refs(3) | RUN | NOT | JI | JW, to_idle::ok_notified, refs(4) | NOT | JI | JW},
      // cancelled: nothing is written, the caller keeps RUNNING, even with one ref left
      {refs(2) | RUN | CAN, to_idle::cancelled, refs(2) | RUN | CAN},
      {refs(3) | RUN | NOT | CAN | JI, to_idle::cancelled, refs(3) | RUN | NOT | CAN | JI},
      {refs(1) | RUN | CAN, to_idle::cancelled, refs(1) | RUN | CAN},
  };
  check_rows(rows, [](state& s) { return s.transition_to_idle(); });
}

BOOST_AUTO_TEST_CASE(transition_to_complete_swaps_running_for_complete_and_keeps_everything_else) {
  const word inputs[] = {refs(1) | RUN, refs(2) | RUN | JI, refs(3) | RUN | NOT | JI | JW | CAN,
                         refs(1) | RUN | JW};
  for (word in : inputs) {
    BOOST_TEST_CONTEXT("input " << describe(in)) {
      state s(in);
      const snapshot got = s.transition_to_complete();
      const word expected = (in & ~RUN) | CMP;
      BOOST_TEST(describe(got.bits()) == describe(expected));
      BOOST_TEST(describe(s.load().bits()) == describe(expected));
    }
  }
}

BOOST_AUTO_TEST_CASE(transition_to_terminal_drops_count_refs_and_reports_the_last) {
  struct terminal_row {
    word in;
    word count;
    bool last;
    word out;
  };
  const terminal_row rows[] = {
      {refs(2) | CMP, 2, true, CMP},
      {refs(1) | CMP, 1, true, CMP},
      {refs(3) | CMP | JI, 2, false, refs(1) | CMP | JI},
      {refs(2) | CMP | JI | JW | NOT | CAN, 1, false, refs(1) | CMP | JI | JW | NOT | CAN},
      {refs(1) | CMP | JW | NOT, 1, true, CMP | JW | NOT},
  };
  for (const auto& r : rows) {
    BOOST_TEST_CONTEXT("input " << describe(r.in) << ", count " << r.count) {
      state s(r.in);
      BOOST_TEST(s.transition_to_terminal(r.count) == r.last);
      BOOST_TEST(describe(s.load().bits()) == describe(r.out));
    }
  }
}

BOOST_AUTO_TEST_CASE(wake_by_val_consumes_the_wakers_ref_or_hands_it_to_a_new_notified) {
  const row<to_notified_by_val> rows[] = {
      // running: mark for a re-poll, drop the waker's ref (the poller still holds one)
      {refs(2) | RUN, to_notified_by_val::do_nothing, refs(1) | RUN | NOT},
      {refs(3) | RUN | NOT | JI, to_notified_by_val::do_nothing, refs(2) | RUN | NOT | JI},
      {refs(2) | RUN | CAN | JW, to_notified_by_val::do_nothing, refs(1) | RUN | NOT | CAN | JW},
      // complete: just drop the ref, dealloc at zero
      {refs(2) | CMP | JI, to_notified_by_val::do_nothing, refs(1) | CMP | JI},
      {refs(1) | CMP, to_notified_by_val::dealloc, CMP},
      {refs(1) | CMP | NOT | CAN, to_notified_by_val::dealloc, CMP | NOT | CAN},
      // already notified: just drop the ref, dealloc at zero
      {refs(4) | NOT | JI, to_notified_by_val::do_nothing, 204},
      {refs(1) | NOT, to_notified_by_val::dealloc, NOT},
      // idle, not notified: a ref is minted for the new notified; the caller keeps its own
      {refs(1), to_notified_by_val::submit, refs(2) | NOT},
      {refs(2) | JI | JW, to_notified_by_val::submit, refs(3) | NOT | JI | JW},
      {refs(2) | CAN, to_notified_by_val::submit, refs(3) | NOT | CAN},
  };
  check_rows(rows, [](state& s) { return s.transition_to_notified_by_val(); });
}

BOOST_AUTO_TEST_CASE(wake_by_ref_submits_only_an_idle_unnotified_task_and_never_drops_a_ref) {
  const row<to_notified_by_ref> rows[] = {
      // complete: nothing (no write)
      {refs(1) | CMP, to_notified_by_ref::do_nothing, refs(1) | CMP},
      {refs(2) | CMP | NOT | JI | JW, to_notified_by_ref::do_nothing, refs(2) | CMP | NOT | JI | JW},
      // already notified: same value written back
      {204, to_notified_by_ref::do_nothing, 204},
      {refs(2) | RUN | NOT, to_notified_by_ref::do_nothing, refs(2) | RUN | NOT},
      // running: request a re-poll, no ref
      {refs(2) | RUN | JI, to_notified_by_ref::do_nothing, refs(2) | RUN | NOT | JI},
      {refs(2) | RUN | CAN, to_notified_by_ref::do_nothing, refs(2) | RUN | NOT | CAN},
      // idle, not notified: notified with a fresh ref
      {refs(1), to_notified_by_ref::submit, refs(2) | NOT},
      {refs(2) | JI | JW, to_notified_by_ref::submit, refs(3) | NOT | JI | JW},
  };
  check_rows(rows, [](state& s) { return s.transition_to_notified_by_ref(); });
}

BOOST_AUTO_TEST_CASE(abort_sets_cancelled_once_and_submits_only_an_idle_unnotified_task) {
  const row<bool> rows[] = {
      // already cancelled or complete: no write
      {refs(2) | CAN, false, refs(2) | CAN},
      {refs(2) | RUN | CAN, false, refs(2) | RUN | CAN},
      {refs(1) | CMP | JI, false, refs(1) | CMP | JI},
      {refs(1) | CMP | NOT, false, refs(1) | CMP | NOT},
      // running: CANCELLED and NOTIFIED, no ref, nothing to submit
      {refs(2) | RUN | JI, false, refs(2) | RUN | NOT | CAN | JI},
      {refs(2) | RUN | NOT, false, refs(2) | RUN | NOT | CAN},
      // idle and notified: the queued notified will do the cancelling
      {204, false, 204 | CAN},
      // idle, not notified: a new notified with a fresh ref must be submitted
      {refs(2) | JI, true, refs(3) | NOT | CAN | JI},
      {refs(1) | JW, true, refs(2) | NOT | CAN | JW},
  };
  check_rows(rows, [](state& s) { return s.transition_to_notified_and_cancel(); });
}

BOOST_AUTO_TEST_CASE(shutdown_always_cancels_and_takes_the_lock_only_of_an_idle_task) {
  const row<bool> rows[] = {
      {204, true, 204 | RUN | CAN},
      {refs(1), true, refs(1) | RUN | CAN},
      {refs(2) | NOT | CAN, true, refs(2) | RUN | NOT | CAN},
      {refs(2) | JI | JW, true, refs(2) | RUN | CAN | JI | JW},
      {refs(2) | RUN, false, refs(2) | RUN | CAN},
      {refs(2) | RUN | CAN | NOT, false, refs(2) | RUN | CAN | NOT},
      {refs(1) | CMP | JI, false, refs(1) | CMP | CAN | JI},
      {refs(1) | CMP | CAN, false, refs(1) | CMP | CAN},
  };
  check_rows(rows, [](state& s) { return s.transition_to_shutdown(); });
}

BOOST_AUTO_TEST_CASE(the_join_handle_fast_drop_succeeds_only_on_exactly_204_and_leaves_132) {
  {
    state s;
    // A weak CAS may fail spuriously; the word is then unchanged and a retry is allowed.
    bool ok = false;
    for (int i = 0; i < 100 && !ok; ++i)
      ok = s.drop_join_handle_fast();
    BOOST_TEST(ok);
    BOOST_TEST(s.load().bits() == 132u);
    BOOST_TEST(describe(132) == describe(refs(2) | NOT));
  }
  const word others[] = {
      204 | CAN,          204 | JW,           refs(3) | RUN | JI, refs(3) | JI, refs(4) | NOT | JI,
      refs(2) | NOT | JI, refs(3) | CMP | JI, refs(3) | NOT,      132,          0,
  };
  for (word in : others) {
    BOOST_TEST_CONTEXT("input " << describe(in)) {
      state s(in);
      BOOST_TEST(!s.drop_join_handle_fast());
      BOOST_TEST(s.load().bits() == in);
    }
  }
}

BOOST_AUTO_TEST_CASE(dropping_the_join_handle_clears_interest_and_reclaims_the_waker_slot_unless_complete) {
  struct drop_row {
    word in;
    bool drop_waker;
    bool drop_output;
    word out;
  };
  const drop_row rows[] = {
      // not complete: the handle takes the slot back (JOIN_WAKER cleared) and must clear it
      {204, true, false, refs(3) | NOT},
      {refs(2) | JI | JW, true, false, refs(2)},
      {refs(2) | RUN | JI | JW | CAN, true, false, refs(2) | RUN | CAN},
      // complete: the handle destroys the output; the slot is the handle's only if the
      // runtime already cleared JOIN_WAKER
      {refs(1) | CMP | JI, true, true, refs(1) | CMP},
      {refs(1) | CMP | JI | JW, false, true, refs(1) | CMP | JW},
      {refs(2) | CMP | JI | JW | NOT | CAN, false, true, refs(2) | CMP | JW | NOT | CAN},
  };
  for (const auto& r : rows) {
    BOOST_TEST_CONTEXT("input " << describe(r.in)) {
      state s(r.in);
      const join_handle_dropped t = s.transition_to_join_handle_dropped();
      BOOST_TEST(t.drop_waker == r.drop_waker);
      BOOST_TEST(t.drop_output == r.drop_output);
      BOOST_TEST(describe(s.load().bits()) == describe(r.out));
    }
  }
}

BOOST_AUTO_TEST_CASE(set_join_waker_sets_the_bit_unless_the_task_completed) {
  struct update_row {
    word in;
    bool ok;
    word value; // Ok: the new word; Err: the word that made the update impossible
    word out;
  };
  const update_row rows[] = {
      {204, true, 204 | JW, 204 | JW},
      {refs(2) | RUN | JI, true, refs(2) | RUN | JI | JW, refs(2) | RUN | JI | JW},
      {refs(2) | JI | CAN | NOT, true, refs(2) | JI | CAN | NOT | JW, refs(2) | JI | CAN | NOT | JW},
      {refs(1) | CMP | JI, false, refs(1) | CMP | JI, refs(1) | CMP | JI},
      {refs(2) | CMP | JI | NOT, false, refs(2) | CMP | JI | NOT, refs(2) | CMP | JI | NOT},
  };
  for (const auto& r : rows) {
    BOOST_TEST_CONTEXT("input " << describe(r.in)) {
      state s(r.in);
      const update_result u = s.set_join_waker();
      BOOST_TEST(u.ok == r.ok);
      BOOST_TEST(describe(u.value.bits()) == describe(r.value));
      BOOST_TEST(describe(s.load().bits()) == describe(r.out));
    }
  }
}

BOOST_AUTO_TEST_CASE(unset_waker_clears_the_bit_unless_the_task_completed) {
  struct update_row {
    word in;
    bool ok;
    word value;
    word out;
  };
  const update_row rows[] = {
      {204 | JW, true, 204, 204},
      {refs(2) | RUN | JI | JW, true, refs(2) | RUN | JI, refs(2) | RUN | JI},
      {refs(1) | CMP | JI | JW, false, refs(1) | CMP | JI | JW, refs(1) | CMP | JI | JW},
      {refs(1) | CMP | JI, false, refs(1) | CMP | JI, refs(1) | CMP | JI},
  };
  for (const auto& r : rows) {
    BOOST_TEST_CONTEXT("input " << describe(r.in)) {
      state s(r.in);
      const update_result u = s.unset_waker();
      BOOST_TEST(u.ok == r.ok);
      BOOST_TEST(describe(u.value.bits()) == describe(r.value));
      BOOST_TEST(describe(s.load().bits()) == describe(r.out));
    }
  }
}

BOOST_AUTO_TEST_CASE(unset_waker_after_complete_hands_the_slot_back_and_reports_join_interest) {
  const word inputs[] = {refs(1) | CMP | JI | JW, refs(1) | CMP | JW, refs(2) | CMP | JI | JW | NOT | CAN};
  for (word in : inputs) {
    BOOST_TEST_CONTEXT("input " << describe(in)) {
      state s(in);
      const snapshot got = s.unset_waker_after_complete();
      BOOST_TEST(describe(got.bits()) == describe(in & ~JW));
      BOOST_TEST(describe(s.load().bits()) == describe(in & ~JW));
      BOOST_TEST(got.is_join_interested() == bool(in & JI));
    }
  }
}

BOOST_AUTO_TEST_CASE(ref_inc_adds_one_ref_and_touches_no_flag) {
  const word inputs[] = {refs(1), 204, refs(9) | RUN | NOT | JI | JW | CAN, CMP};
  for (word in : inputs) {
    state s(in);
    s.ref_inc();
    BOOST_TEST(s.load().bits() == in + ref_one);
  }
}

BOOST_AUTO_TEST_CASE(ref_dec_reports_the_last_ref) {
  struct dec_row {
    word in;
    bool last;
    word out;
  };
  const dec_row rows[] = {
      {refs(1), true, 0},
      {refs(1) | CMP | JW | CAN, true, CMP | JW | CAN},
      {refs(2) | CMP, false, refs(1) | CMP},
      {204, false, refs(2) | NOT | JI},
  };
  for (const auto& r : rows) {
    BOOST_TEST_CONTEXT("input " << describe(r.in)) {
      state s(r.in);
      BOOST_TEST(s.ref_dec() == r.last);
      BOOST_TEST(describe(s.load().bits()) == describe(r.out));
    }
  }
}

BOOST_AUTO_TEST_CASE(ref_dec_twice_reports_whether_those_were_the_last_two) {
  struct dec_row {
    word in;
    bool last;
    word out;
  };
  const dec_row rows[] = {
      {refs(2), true, 0},
      {refs(2) | CMP | NOT, true, CMP | NOT},
      {refs(3) | CMP, false, refs(1) | CMP},
      {204, false, refs(1) | NOT | JI},
  };
  for (const auto& r : rows) {
    BOOST_TEST_CONTEXT("input " << describe(r.in)) {
      state s(r.in);
      BOOST_TEST(s.ref_dec_twice() == r.last);
      BOOST_TEST(describe(s.load().bits()) == describe(r.out));
    }
  }
}

BOOST_AUTO_TEST_CASE(a_spawned_task_polled_to_completion_walks_the_documented_words) {
  // spawn (204) → first poll (201) → Ready → complete (202) → the list and poll refs are
  // released (74) → the join handle reads and drops (2, no refs): dealloc.
  state s;
  BOOST_TEST(name(s.transition_to_running()) == "success");
  BOOST_TEST(s.load().bits() == (refs(3) | RUN | JI));
  const snapshot done = s.transition_to_complete();
  BOOST_TEST(done.bits() == (refs(3) | CMP | JI));
  BOOST_TEST(!s.transition_to_terminal(2));
  BOOST_TEST(s.load().bits() == (refs(1) | CMP | JI));
  const join_handle_dropped t = s.transition_to_join_handle_dropped();
  BOOST_TEST(t.drop_output);
  BOOST_TEST(t.drop_waker);
  BOOST_TEST(s.ref_dec());
  BOOST_TEST(s.load().bits() == CMP);
}

BOOST_AUTO_TEST_SUITE_END()
