// Exhaustive interleaving checker for the task state machine: the transitions of state.hpp and
// the flows of harness.hpp (Tokio's runtime/task/state.rs and harness.rs).
//
// Every transition of swarm::detail::state is one atomic read-modify-write of one word, so the
// transitions on a task are totally ordered and every execution is an interleaving of the
// actors' steps. Each harness flow is written below as a small program whose steps are
// either exactly one call of the REAL state transition (run on a state built from the stored
// word, the result read back with load()) or one non-atomic action on data the protocol says
// is protected (the stage, the join-waker slot, the run queue, the owned-task list). A
// breadth-first search over worlds = (word, every actor's program counter and the refs it
// holds, the visible data) therefore covers every interleaving.
//
// Checked in every world: ghost reference accounting (the refs every party believes it holds
// add up to the word's count), RUNNING held by exactly the actor that believes it holds it, at
// most one notified, NOTIFIED of an idle task ⇔ a notified exists, JOIN_WAKER ⇒ the slot holds a
// waker, JOIN_INTEREST ⇔ the join handle exists. Checked at each step: the transition's
// precondition (so the state's own asserts never fire), no step touches the task after its
// dealloc, dealloc only at ref count zero and only once, the stage touched only by the RUNNING
// holder (or, after COMPLETE, by the join handle or the runtime without join interest), no poll
// after COMPLETE, output read once and only after COMPLETE, the join-waker slot accessed only
// per the JOIN_WAKER rules (harness.hpp), and a happens-before race detector on the stage and the slot
// (release/acquire of each step per the orderings of state.hpp; the queue and the list locks are not
// counted as synchronisation, which can only report more races, not fewer). Checked where no
// mandatory step is left (quiescence): no lost wake (a task that is not complete must have been
// polled after the last wake), a registered join waker was woken, every reference was released,
// and the task was deallocated exactly once. Also: no unnecessary poll (a re-queue after a poll
// needs a wake during that poll), and bounds on polls, refs and worlds, so that a broken model
// fails instead of exploring forever.
//
// Modelling choices. One poller runs every queued notified; its own ref after a re-queue is
// dropped by a pseudo actor at any later point, so another worker may run the task first.
// Wakers are cloned by the future in its first poll (or exist from spawn); abort handles exist
// from spawn. A polled join handle may also, optionally, be dropped while pending or be polled
// once more without a wake (same or another waker). After owner shutdown a popped notified may
// be dropped unpolled (closed scheduler). Every real transition result is required to be reached
// (see the coverage test), except to_idle::ok_dealloc, which the owned list makes unreachable.
//
// Limitation: the model is sequentially consistent. That is exact for the read-modify-writes
// (they are totally ordered on one word); a stale acquire load() behaves as an earlier load.
// Orderings are checked only through the release/acquire bookkeeping of the race detector.
#include <swarm/task/state.hpp>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

namespace d = swarm::detail;

// ---------------------------------------------------------------------------------------------
// Actors and configurations

enum class kind : std::uint8_t {
  poller,            // the scheduler: takes queued notifieds and runs them (poll, complete)
  yield_dropper,     // the poller's own ref after it re-queued the task, dropped "later"
  wake_by_val,       // a waker consumed by wake()
  wake_by_ref,       // wake_by_ref(), then the waker is dropped
  abort_handle,      // abort(), then the handle is dropped
  abort_handle_drop, // an abort handle dropped without aborting
  join_poll,         // polled until ready (JOIN_WAKER handshake), output read, dropped
  join_drop,         // dropped at once: fast path, else slow path
  owner_shutdown,    // the owner list is closed and the task shut down
};

enum class arming : std::uint8_t {
  at_spawn,      // its reference is already counted in the task's first word
  by_first_poll, // the future clones it during its first poll (state::ref_inc)
};

// Deliberately broken protocol variants: the checker must catch each of them.
enum class mutation : std::uint8_t {
  none,
  idle_ignores_notified,       // transition_to_idle does not look at NOTIFIED
  join_skips_unset_waker,      // the join handle overwrites a registered waker without unset_waker
  complete_forgets_join_waker, // complete() never wakes the join waker
  release_ignores_list_ref,    // complete() drops one ref even when the list handed its ref back
  relaxed_join_load,           // the join handle's load() in can_read_output is relaxed
};

// Results of the real transitions and branches of the flows that the exploration reached.
enum cover_point : unsigned {
  running_success,
  running_cancelled,
  running_failed,
  running_dealloc,
  idle_ok,
  idle_ok_notified,
  idle_ok_dealloc,
  idle_cancelled,
  by_val_do_nothing,
  by_val_submit,
  by_val_dealloc,
  by_ref_do_nothing,
  by_ref_submit,
  abort_submit,
  abort_no_submit,
  shutdown_was_idle,
  shutdown_was_busy,
  complete_no_join_interest,
  complete_join_waker,
  complete_no_join_waker,
  terminal_last,
  terminal_not_last,
  unset_after_complete_interested,
  unset_after_complete_not_interested,
  fast_drop_ok,
  fast_drop_failed,
  fast_drop_spurious_failure,
  dropped_waker_only,
  dropped_output_and_waker,
  dropped_output_only,
  set_join_waker_ok,
  set_join_waker_failed,
  unset_waker_ok,
  unset_waker_failed,
  ref_dec_last,
  ref_dec_not_last,
  join_will_wake,
  closed_drops_notified,
  cover_count
};

const char* const cover_names[cover_count] = {"to_running::success",
                                              "to_running::cancelled",
                                              "to_running::failed",
                                              "to_running::dealloc",
                                              "to_idle::ok",
                                              "to_idle::ok_notified",
                                              "to_idle::ok_dealloc",
                                              "to_idle::cancelled",
                                              "by_val::do_nothing",
                                              "by_val::submit",
                                              "by_val::dealloc",
                                              "by_ref::do_nothing",
                                              "by_ref::submit",
                                              "abort submits",
                                              "abort does not submit",
                                              "shutdown of an idle task",
                                              "shutdown of a running/complete task",
                                              "complete without join interest",
                                              "complete with a join waker",
                                              "complete without a join waker",
                                              "terminal: last refs",
                                              "terminal: not last",
                                              "unset_waker_after_complete: handle alive",
                                              "unset_waker_after_complete: handle gone",
                                              "drop_join_handle_fast ok",
                                              "drop_join_handle_fast failed",
                                              "drop_join_handle_fast spurious failure",
                                              "handle dropped: waker only",
                                              "handle dropped: output and waker",
                                              "handle dropped: output only",
                                              "set_join_waker ok",
                                              "set_join_waker failed (complete)",
                                              "unset_waker ok",
                                              "unset_waker failed (complete)",
                                              "ref_dec: last",
                                              "ref_dec: not last",
                                              "join handle: same waker already registered",
                                              "closed scheduler drops a notified"};

struct actor_spec {
  kind what;
  arming arm = arming::at_spawn;
};

struct config {
  std::vector<actor_spec> actors; // beside the poller
  mutation mutant = mutation::none;
  bool check_notified_token = true; // turned off to show the lost-wake check on its own
};

// Program counters of all actors.
enum pc : std::uint8_t {
  done,
  unarmed, // a waker the future has not cloned yet
  dealloc,
  drop_ref,
  // the poller, and the runtime flows it shares with owner shutdown
  p_take_notified,
  p_poll,
  p_to_idle,
  p_yield,
  p_cancel,
  p_complete,
  p_drop_output,
  p_wake_join_waker,
  p_unset_waker_after_complete,
  p_destroy_join_waker,
  p_release,
  p_terminal,
  s_pop_from_list,
  s_shutdown,
  // wakers and abort handles
  w_wake_by_val,
  w_wake_by_ref,
  w_abort,
  w_schedule,
  // the join handle
  j_poll,
  j_unset_waker,
  j_write_slot,
  j_set_join_waker,
  j_clear_slot,
  j_wait,
  j_read_output,
  j_drop_fast,
  j_drop_slow,
  j_drop_output,
  j_drop_waker,
  pc_count
};

const char* pc_name(unsigned p) {
  static const char* const names[pc_count] = {"done",
                                              "unarmed",
                                              "dealloc",
                                              "drop_ref",
                                              "take_notified",
                                              "poll",
                                              "transition_to_idle",
                                              "yield (re-queue)",
                                              "cancel_task",
                                              "transition_to_complete",
                                              "drop_output (no join interest)",
                                              "wake join waker",
                                              "unset_waker_after_complete",
                                              "destroy join waker",
                                              "release from owned list",
                                              "transition_to_terminal",
                                              "pop from owned list",
                                              "transition_to_shutdown",
                                              "transition_to_notified_by_val",
                                              "transition_to_notified_by_ref",
                                              "transition_to_notified_and_cancel",
                                              "schedule notified",
                                              "poll (load)",
                                              "unset_waker",
                                              "write waker slot",
                                              "set_join_waker",
                                              "clear waker slot",
                                              "wait for join wake",
                                              "read output",
                                              "drop_join_handle_fast",
                                              "transition_to_join_handle_dropped",
                                              "drop output",
                                              "drop waker slot"};
  return p < pc_count ? names[p] : "?";
}

const char* kind_name(kind k) {
  switch (k) {
  case kind::poller:
    return "poller";
  case kind::yield_dropper:
    return "yield-dropper";
  case kind::wake_by_val:
    return "wake_by_val";
  case kind::wake_by_ref:
    return "wake_by_ref";
  case kind::abort_handle:
    return "abort_handle";
  case kind::abort_handle_drop:
    return "abort_handle_drop";
  case kind::join_poll:
    return "join_poll";
  case kind::join_drop:
    return "join_drop";
  case kind::owner_shutdown:
    return "owner_shutdown";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// The world: everything a step may read or change. Plain bytes, hashed and compared whole.

constexpr int max_actors = 8;
constexpr unsigned max_polls = 8;
constexpr unsigned max_refs = 16;
constexpr std::size_t max_states = 20'000'000;
constexpr std::uint8_t nobody = 0xFF;

enum stage_t : std::uint8_t { stage_future, stage_finished, stage_consumed };

struct actor_state {
  std::uint8_t pc;
  std::uint8_t refs;  // references this actor believes it holds (ghost)
  std::uint8_t aux;   // flags carried between its steps
  std::uint8_t waker; // join handle: id of the waker it polls with (1 or 2)
};

// Happens-before bookkeeping of one non-atomic location, per actor bit.
struct race_state {
  std::uint8_t pending;       // actors with an access not yet followed by a release of theirs
  std::uint8_t seen_all;      // actors that every access so far happens before
  std::uint8_t seen_write;    // actors the last write happens before
  std::uint8_t last_writer;   // actor index, or nobody
  std::uint8_t write_pending; // the last writer has not released since the write
  std::uint8_t pad[3];
};

struct world {
  std::uint64_t word;
  std::uint8_t stage;
  std::uint8_t slot;   // join-waker slot: 0 empty, else the stored waker's id
  std::uint8_t queued; // notifieds in the run queue
  std::uint8_t deallocs;
  std::uint8_t polls;
  std::uint8_t holder; // 1 + index of the actor holding RUNNING, 0 for none
  std::uint8_t output_taken;
  std::uint8_t join_woken;       // the join handle's task was woken and has not polled since
  std::uint8_t in_list;          // the owned-task list still links the task and holds its ref
  std::uint8_t closed;           // the owner shut down: popped notifieds may be dropped unpolled
  std::uint8_t woken_since_poll; // a wake arrived after the last successful transition_to_running
  std::uint8_t pad[5];
  race_state race[2];
  actor_state actor[max_actors];
};
static_assert(std::has_unique_object_representations_v<world>);
static_assert(sizeof(world) % 8 == 0);

enum location : int { stage_loc = 0, slot_loc = 1 };
const char* location_name(int l) { return l == stage_loc ? "the stage" : "the join-waker slot"; }

// aux bits
constexpr std::uint8_t aux_join_interest = 1; // complete(): JOIN_INTEREST in its snapshot
constexpr std::uint8_t aux_join_waker = 2;    // complete(): JOIN_WAKER in its snapshot
constexpr std::uint8_t aux_drop_output = 1;   // join drop: drop_output
constexpr std::uint8_t aux_drop_waker = 2;    // join drop: drop_waker
constexpr std::uint8_t aux_gave_up = 4;       // join poll: dropped while waiting
constexpr std::uint8_t aux_repolled = 8;      // join poll: polled again with another waker

struct violation {
  std::string what;
};

[[noreturn]] void fail(const std::string& what) { throw violation{what}; }
void need(bool ok, const char* what) {
  if (!ok)
    fail(what);
}

std::string describe_word(std::uint64_t w) {
  std::ostringstream out;
  out << "refs=" << ((w & d::ref_count_mask) >> d::ref_count_shift);
  const char* sep = " ";
  for (auto [bit, name] : {std::pair{d::running, "RUNNING"},
                           {d::complete, "COMPLETE"},
                           {d::notified_bit, "NOTIFIED"},
                           {d::join_interest, "JOIN_INTEREST"},
                           {d::join_waker, "JOIN_WAKER"},
                           {d::cancelled, "CANCELLED"}}) {
    if (w & bit) {
      out << sep << name;
      sep = "|";
    }
  }
  return out.str();
}

struct verdict {
  std::uint64_t covered = 0; // bit per cover_point
  bool ok = true;
  std::size_t states = 0;
  double seconds = 0;
  std::string message; // the violation
  std::string trace;   // the steps that lead to it
};

// ---------------------------------------------------------------------------------------------
// The model

class model {
public:
  explicit model(config c) : cfg_(std::move(c)) {
    kinds_.push_back(kind::poller);
    kinds_.push_back(kind::yield_dropper);
    for (const auto& a : cfg_.actors) {
      if (a.what == kind::join_poll || a.what == kind::join_drop)
        join_ = static_cast<int>(kinds_.size());
      kinds_.push_back(a.what);
    }
    if (kinds_.size() > max_actors)
      throw std::logic_error("too many actors");
  }

  verdict explore();

private:
  struct successor {
    world next;
    std::uint8_t actor;
    std::uint8_t branch;
    bool optional; // a choice the actor may also never make (a join handle giving up)
  };

  world initial() const;
  void step(const world& from, int i, std::vector<successor>& out) const;
  void check_world(const world& w) const;
  void check_quiescent(const world& w) const;

  int actors() const { return static_cast<int>(kinds_.size()); }
  std::string actor_name(int i) const { return std::string(kind_name(kinds_[i])) + "#" + std::to_string(i); }
  static unsigned ghost_refs(const world& w) {
    unsigned n = w.queued + w.in_list;
    for (const auto& a : w.actor)
      n += a.refs;
    return n;
  }
  unsigned notified_tokens(const world& w) const {
    unsigned n = w.queued;
    for (int i = 0; i < actors(); ++i)
      n += w.actor[i].pc == w_schedule || (kinds_[i] == kind::poller && w.actor[i].pc == p_yield);
    return n;
  }
  bool join_alive(const world& w) const {
    if (join_ < 0)
      return false;
    switch (w.actor[join_].pc) {
    case done:
    case dealloc:
    case drop_ref:
    case j_drop_output:
    case j_drop_waker:
      return false;
    default:
      return true;
    }
  }
  pc after_flow(const world& w, int i) const {
    switch (kinds_[i]) {
    case kind::poller:
      return p_take_notified;
    case kind::yield_dropper:
      return w.actor[i].refs ? drop_ref : done;
    default:
      return done;
    }
  }
  std::string describe(const world& w) const;

  void cover(cover_point p) const { covered_ |= std::uint64_t{1} << p; }

  config cfg_;
  mutable std::uint64_t covered_ = 0;
  std::vector<kind> kinds_; // index 0: the poller, 1: its yield dropper, then cfg_.actors
  int join_ = -1;           // the join handle's index; -1: dropped at spawn
};

// --- step helpers ---------------------------------------------------------------------------

d::snapshot snap(const world& w) { return d::snapshot(static_cast<std::uintptr_t>(w.word)); }

// One call of the real transition on a state holding the stored word.
template <class F>
auto transition(world& w, F f) {
  d::state s(static_cast<std::uintptr_t>(w.word));
  auto r = f(s);
  w.word = s.load().bits();
  return r;
}

void touch(const world& w) { need(w.deallocs == 0, "use after free: the task is touched after its dealloc"); }

void acquire(world& w, int i) {
  const std::uint8_t me = std::uint8_t(1u << i);
  for (auto& r : w.race) {
    if ((r.pending & ~me) == 0)
      r.seen_all |= me;
    if (!r.write_pending || r.last_writer == i)
      r.seen_write |= me;
  }
}

void release(world& w, int i) {
  const std::uint8_t me = std::uint8_t(1u << i);
  for (auto& r : w.race) {
    r.pending &= std::uint8_t(~me);
    if (r.last_writer == i)
      r.write_pending = 0;
  }
}

void acq_rel(world& w, int i) {
  release(w, i);
  acquire(w, i);
}

void access(world& w, int loc, int i, bool write) {
  race_state& r = w.race[loc];
  const std::uint8_t me = std::uint8_t(1u << i);
  if (write && !(r.seen_all & me))
    fail(std::string("data race: unsynchronised write to ") + location_name(loc) +
         " (an earlier access does not happen before it)");
  if (!write && !(r.seen_write & me))
    fail(std::string("data race: unsynchronised read of ") + location_name(loc) +
         " (the last write does not happen before it)");
  r.pending |= me;
  r.seen_all &= me;
  if (write) {
    r.last_writer = std::uint8_t(i);
    r.write_pending = 1;
    r.seen_write = me;
  }
}

world model::initial() const {
  world w;
  std::memset(&w, 0, sizeof w);
  std::uint64_t word = d::initial_state; // list ref, notified ref, join handle ref
  w.queued = 1;                          // the first notified, handed to the scheduler
  w.in_list = 1;
  w.stage = stage_future;
  for (auto& r : w.race) {
    r.seen_all = r.seen_write = 0xFF; // the spawner's writes happen before everything
    r.last_writer = nobody;
  }
  w.actor[0].pc = p_take_notified;
  w.actor[1].pc = done;
  for (int i = 2; i < actors(); ++i) {
    actor_state& a = w.actor[i];
    const actor_spec& spec = cfg_.actors[i - 2];
    switch (spec.what) {
    case kind::wake_by_val:
      a.pc = w_wake_by_val;
      break;
    case kind::wake_by_ref:
      a.pc = w_wake_by_ref;
      break;
    case kind::abort_handle:
      a.pc = w_abort;
      break;
    case kind::abort_handle_drop:
      a.pc = drop_ref;
      break;
    case kind::join_poll:
      a.pc = j_poll;
      a.refs = 1;
      a.waker = 1;
      continue;
    case kind::join_drop:
      a.pc = j_drop_fast;
      a.refs = 1;
      continue;
    case kind::owner_shutdown:
      a.pc = s_pop_from_list;
      continue;
    default:
      throw std::logic_error("bad actor");
    }
    if (spec.arm == arming::by_first_poll) {
      a.pc = unarmed;
    } else {
      a.refs = 1;
      word += d::ref_one;
    }
  }
  if (join_ < 0)
    word = (word - d::ref_one) & ~d::join_interest; // the handle was dropped at spawn
  w.word = word;
  return w;
}

// All successors of actor i in world `from`; none when it is blocked or done.
void model::step(const world& from, int i, std::vector<successor>& out) const {
  world w = from;
  actor_state& me = w.actor[i];
  const d::snapshot s = snap(w);
  const mutation mutant = cfg_.mutant;
  auto emit = [&](const world& next, int branch = 0, bool optional = false) {
    out.push_back({next, std::uint8_t(i), std::uint8_t(branch), optional});
  };
  // Shared tail: give up one reference.
  auto give_up_ref = [&](world& x, pc next) {
    actor_state& a = x.actor[i];
    need(snap(x).ref_count() >= 1, "ref_dec precondition: no reference left");
    const bool last = transition(x, [](d::state& st) { return st.ref_dec(); });
    acq_rel(x, i);
    cover(last ? ref_dec_last : ref_dec_not_last);
    a.refs -= 1;
    a.pc = last ? dealloc : next;
  };
  auto note_wake = [&](world& x) {
    if (!s.is_complete())
      x.woken_since_poll = 1;
  };

  switch (me.pc) {
  case done:
  case unarmed:
    return;

  case dealloc: {
    need(w.deallocs == 0, "double dealloc");
    need(s.ref_count() == 0, "dealloc while the word still counts references");
    need(me.refs == 0 && ghost_refs(w) == 0, "dealloc while some party still holds a reference");
    access(w, stage_loc, i, true); // the cell is destroyed
    access(w, slot_loc, i, true);
    w.deallocs = 1;
    me.pc = after_flow(w, i);
    emit(w);
    return;
  }

  case drop_ref:
    touch(w);
    give_up_ref(w, done);
    if (me.pc != dealloc)
      me.pc = after_flow(w, i);
    emit(w);
    return;

  // ---- the poller ---------------------------------------------------------------------------
  case p_take_notified: {
    if (w.queued == 0)
      return; // nothing to run
    touch(w);
    w.queued -= 1;
    me.refs += 1; // the notified's ref is ours now
    if (w.closed) {
      // A closed scheduler drops what it pops: only the ref is released.
      world x = w;
      give_up_ref(x, p_take_notified);
      cover(closed_drops_notified);
      emit(x, 1);
    }
    need(s.is_notified(), "transition_to_running precondition: NOTIFIED clear");
    const d::to_running r = transition(w, [](d::state& st) { return st.transition_to_running(); });
    acq_rel(w, i);
    cover(r == d::to_running::success     ? running_success
          : r == d::to_running::cancelled ? running_cancelled
          : r == d::to_running::failed    ? running_failed
                                          : running_dealloc);
    switch (r) {
    case d::to_running::success:
    case d::to_running::cancelled:
      need(w.holder == 0, "two actors hold RUNNING");
      w.holder = std::uint8_t(i + 1);
      w.woken_since_poll = 0; // every earlier wake is seen by this poll
      me.pc = r == d::to_running::success ? p_poll : p_cancel;
      break;
    case d::to_running::failed:
      me.refs -= 1;
      me.pc = p_take_notified;
      break;
    case d::to_running::dealloc:
      me.refs -= 1;
      me.pc = dealloc;
      break;
    }
    emit(w);
    return;
  }

  case p_poll: {
    touch(w);
    need(!s.is_complete(), "poll after COMPLETE");
    need(w.holder == i + 1 && s.is_running(), "the stage is polled without holding RUNNING");
    need(w.stage == stage_future, "poll of a future that is no longer in the stage");
    access(w, stage_loc, i, true);
    w.polls += 1;
    // The future clones the wakers it will be woken by.
    for (int j = 2; j < actors(); ++j) {
      if (w.actor[j].pc != unarmed)
        continue;
      transition(w, [](d::state& st) {
        st.ref_inc();
        return 0;
      });
      w.actor[j].refs = 1;
      w.actor[j].pc = kinds_[j] == kind::wake_by_val ? w_wake_by_val : w_wake_by_ref;
    }
    world ready = w;
    me.pc = p_to_idle; // Pending
    emit(w, 0);
    ready.stage = stage_finished; // Ready: the output is stored
    ready.actor[i].pc = p_complete;
    emit(ready, 1);
    return;
  }

  case p_to_idle: {
    touch(w);
    need(s.is_running() && w.holder == i + 1, "transition_to_idle precondition: RUNNING not ours");
    d::to_idle r;
    if (mutant == mutation::idle_ignores_notified) {
      // BROKEN ON PURPOSE: clears RUNNING and drops the poll's ref without looking at NOTIFIED.
      d::snapshot m = s;
      if (m.is_cancelled()) {
        r = d::to_idle::cancelled;
      } else {
        m.unset_running();
        m.ref_dec();
        w.word = m.bits();
        r = m.ref_count() == 0 ? d::to_idle::ok_dealloc : d::to_idle::ok;
      }
    } else {
      r = transition(w, [](d::state& st) { return st.transition_to_idle(); });
    }
    cover(r == d::to_idle::ok            ? idle_ok
          : r == d::to_idle::ok_notified ? idle_ok_notified
          : r == d::to_idle::ok_dealloc  ? idle_ok_dealloc
                                         : idle_cancelled);
    if (r == d::to_idle::cancelled) {
      acquire(w, i); // no write: acquire only
      me.pc = p_cancel;
    } else {
      acq_rel(w, i);
      w.holder = 0;
      switch (r) {
      case d::to_idle::ok:
        me.refs -= 1;
        me.pc = p_take_notified;
        break;
      case d::to_idle::ok_dealloc:
        me.refs -= 1;
        me.pc = dealloc;
        break;
      case d::to_idle::ok_notified:
        // A re-poll must be asked for by a wake that arrived during this poll.
        need(w.woken_since_poll, "unnecessary poll: re-queued although no wake arrived during the poll");
        me.refs += 1;
        me.pc = p_yield;
        break;
      case d::to_idle::cancelled:
        break;
      }
    }
    emit(w);
    return;
  }

  case p_yield: {
    // yield_now(new notified), then drop our own ref. The drop is handed to a pseudo actor so
    // that another worker may run the re-queued task before it happens.
    touch(w);
    w.queued += 1;
    me.refs -= 2;
    actor_state& dropper = w.actor[1];
    dropper.refs += 1;
    dropper.pc = drop_ref;
    me.pc = p_take_notified;
    emit(w);
    return;
  }

  // ---- runtime flows shared by the poller and owner shutdown --------------------------------
  case p_cancel: {
    touch(w);
    need(w.holder == i + 1 && s.is_running(), "cancel_task without holding RUNNING");
    need(w.stage == stage_future, "cancel_task found no future in the stage");
    access(w, stage_loc, i, true);
    w.stage = stage_finished; // Err(cancelled)
    me.pc = p_complete;
    emit(w);
    return;
  }

  case p_complete: {
    touch(w);
    need(s.is_running() && !s.is_complete() && w.holder == i + 1,
         "transition_to_complete precondition: RUNNING not ours or already COMPLETE");
    need(w.stage == stage_finished, "completing without an output in the stage");
    const d::snapshot done_snap = transition(w, [](d::state& st) { return st.transition_to_complete(); });
    acq_rel(w, i);
    need(done_snap.bits() == w.word, "transition_to_complete returned a word other than the stored one");
    w.holder = 0;
    bool jw = done_snap.is_join_waker_set();
    if (mutant == mutation::complete_forgets_join_waker)
      jw = false; // BROKEN ON PURPOSE
    me.aux =
        std::uint8_t((done_snap.is_join_interested() ? aux_join_interest : 0) | (jw ? aux_join_waker : 0));
    cover(!done_snap.is_join_interested() ? complete_no_join_interest
          : done_snap.is_join_waker_set() ? complete_join_waker
                                          : complete_no_join_waker);
    me.pc = !done_snap.is_join_interested() ? p_drop_output : jw ? p_wake_join_waker : p_release;
    emit(w);
    return;
  }

  case p_drop_output: {
    // Nobody will read the output: the runtime destroys it now.
    touch(w);
    need(s.is_complete() && !s.is_join_interested(),
         "the runtime destroyed the output while a join handle may read it");
    need(w.stage == stage_finished, "no output to destroy");
    access(w, stage_loc, i, true);
    w.stage = stage_consumed;
    me.pc = p_release;
    emit(w);
    return;
  }

  case p_wake_join_waker: {
    touch(w);
    need(s.is_complete() && s.is_join_waker_set(),
         "the runtime read the join-waker slot without COMPLETE and JOIN_WAKER (rule 4)");
    need(w.slot != 0, "JOIN_WAKER set but the slot is empty");
    access(w, slot_loc, i, false);
    w.join_woken = 1;
    me.pc = p_unset_waker_after_complete;
    emit(w);
    return;
  }

  case p_unset_waker_after_complete: {
    touch(w);
    need(s.is_complete() && s.is_join_waker_set(), "unset_waker_after_complete precondition");
    const d::snapshot after = transition(w, [](d::state& st) { return st.unset_waker_after_complete(); });
    acq_rel(w, i);
    cover(after.is_join_interested() ? unset_after_complete_interested : unset_after_complete_not_interested);
    me.pc = after.is_join_interested() ? p_release : p_destroy_join_waker;
    emit(w);
    return;
  }

  case p_destroy_join_waker: {
    touch(w);
    need(s.is_complete() && !s.is_join_interested() && !s.is_join_waker_set(),
         "the runtime destroyed the join waker without exclusive access (rule 7)");
    access(w, slot_loc, i, true);
    w.slot = 0;
    me.pc = p_release;
    emit(w);
    return;
  }

  case p_release: {
    // Unlink from the owned list (under its lock); the list's ref comes back if it was there.
    touch(w);
    if (w.in_list) {
      w.in_list = 0;
      me.refs += 1;
    }
    me.pc = p_terminal;
    emit(w);
    return;
  }

  case p_terminal: {
    touch(w);
    std::uint8_t n = me.refs;
    if (mutant == mutation::release_ignores_list_ref)
      n = 1; // BROKEN ON PURPOSE
    need(n >= 1 && s.ref_count() >= n, "transition_to_terminal precondition: too few refs");
    const bool last = transition(w, [n](d::state& st) { return st.transition_to_terminal(n); });
    acq_rel(w, i);
    cover(last ? terminal_last : terminal_not_last);
    me.refs -= n;
    me.pc = last ? dealloc : after_flow(w, i);
    emit(w);
    return;
  }

  // ---- owner shutdown -----------------------------------------------------------------------
  case s_pop_from_list: {
    w.closed = 1;
    if (w.in_list) {
      touch(w);
      w.in_list = 0;
      me.refs = 1; // the list's ref, handed to shutdown()
      me.pc = s_shutdown;
    } else {
      me.pc = done; // already released by complete()
    }
    emit(w);
    return;
  }

  case s_shutdown: {
    touch(w);
    const bool was_idle = transition(w, [](d::state& st) { return st.transition_to_shutdown(); });
    acq_rel(w, i);
    cover(was_idle ? shutdown_was_idle : shutdown_was_busy);
    if (was_idle) {
      need(w.holder == 0, "two actors hold RUNNING");
      w.holder = std::uint8_t(i + 1);
      me.pc = p_cancel;
    } else {
      me.pc = drop_ref;
    }
    emit(w);
    return;
  }

  // ---- wakers and abort handles -------------------------------------------------------------
  case w_wake_by_val: {
    touch(w);
    need(s.ref_count() >= (s.is_running() ? 2u : 1u), "wake_by_val precondition: refs");
    const auto r = transition(w, [](d::state& st) { return st.transition_to_notified_by_val(); });
    acq_rel(w, i);
    note_wake(w);
    cover(r == d::to_notified_by_val::do_nothing ? by_val_do_nothing
          : r == d::to_notified_by_val::submit   ? by_val_submit
                                                 : by_val_dealloc);
    switch (r) {
    case d::to_notified_by_val::submit:
      me.refs += 1;
      me.pc = w_schedule;
      break;
    case d::to_notified_by_val::do_nothing:
      me.refs -= 1;
      me.pc = done;
      break;
    case d::to_notified_by_val::dealloc:
      me.refs -= 1;
      me.pc = dealloc;
      break;
    }
    emit(w);
    return;
  }

  case w_wake_by_ref: {
    touch(w);
    const auto r = transition(w, [](d::state& st) { return st.transition_to_notified_by_ref(); });
    if (s.is_complete())
      acquire(w, i); // no write
    else
      acq_rel(w, i);
    note_wake(w);
    cover(r == d::to_notified_by_ref::submit ? by_ref_submit : by_ref_do_nothing);
    if (r == d::to_notified_by_ref::submit) {
      me.refs += 1;
      me.pc = w_schedule;
    } else {
      me.pc = drop_ref;
    }
    emit(w);
    return;
  }

  case w_abort: {
    touch(w);
    const bool submit = transition(w, [](d::state& st) { return st.transition_to_notified_and_cancel(); });
    if (s.is_cancelled() || s.is_complete())
      acquire(w, i); // no write
    else
      acq_rel(w, i);
    note_wake(w);
    cover(submit ? abort_submit : abort_no_submit);
    if (submit) {
      me.refs += 1;
      me.pc = w_schedule;
    } else {
      me.pc = drop_ref;
    }
    emit(w);
    return;
  }

  case w_schedule: {
    touch(w);
    w.queued += 1; // the new notified's ref goes with it
    me.refs -= 1;
    me.pc = drop_ref; // our own ref, only after schedule() returned
    emit(w);
    return;
  }

  // ---- the join handle ----------------------------------------------------------------------
  case j_poll: {
    // can_read_output(waker)
    touch(w);
    if (mutant != mutation::relaxed_join_load) // BROKEN ON PURPOSE when it is
      acquire(w, i);                           // load()
    if (s.is_complete()) {
      me.pc = j_read_output;
    } else if (s.is_join_waker_set()) {
      access(w, slot_loc, i, false); // will_wake: the handle may read the slot (rule 3)
      if (w.slot == me.waker) {
        cover(join_will_wake);
        me.pc = j_wait; // the same waker is registered already
      } else
        me.pc = mutant == mutation::join_skips_unset_waker ? j_write_slot : j_unset_waker;
    } else {
      me.pc = j_write_slot;
    }
    emit(w);
    return;
  }

  case j_unset_waker: {
    touch(w);
    need(s.is_join_interested() && (s.is_complete() || s.is_join_waker_set()), "unset_waker precondition");
    const d::update_result r = transition(w, [](d::state& st) { return st.unset_waker(); });
    cover(r.ok ? unset_waker_ok : unset_waker_failed);
    if (r.ok) {
      acq_rel(w, i);
      me.pc = j_write_slot;
    } else {
      acquire(w, i);
      need(r.value.is_complete(), "unset_waker failed on a task that is not complete");
      me.pc = j_read_output;
    }
    emit(w);
    return;
  }

  case j_write_slot: {
    touch(w);
    need(!s.is_join_waker_set() && s.is_join_interested(),
         "the join handle wrote the waker slot while JOIN_WAKER was set (rule 2)");
    access(w, slot_loc, i, true);
    w.slot = me.waker;
    me.pc = j_set_join_waker;
    emit(w);
    return;
  }

  case j_set_join_waker: {
    touch(w);
    need(s.is_join_interested() && !s.is_join_waker_set(), "set_join_waker precondition");
    const d::update_result r = transition(w, [](d::state& st) { return st.set_join_waker(); });
    cover(r.ok ? set_join_waker_ok : set_join_waker_failed);
    if (r.ok) {
      acq_rel(w, i);
      me.pc = j_wait; // registered: Pending
    } else {
      acquire(w, i);
      need(r.value.is_complete(), "set_join_waker failed on a task that is not complete");
      me.pc = j_clear_slot; // lost the race with completion: the slot is still ours
    }
    emit(w);
    return;
  }

  case j_clear_slot: {
    touch(w);
    need(!s.is_join_waker_set(), "the join handle cleared the waker slot while JOIN_WAKER was set");
    access(w, slot_loc, i, true);
    w.slot = 0;
    me.pc = j_read_output;
    emit(w);
    return;
  }

  case j_wait: {
    // Pending. Ways on: woken by the runtime (mandatory once woken), or, optionally, dropped
    // while pending, or polled once more without a wake (once), with the same waker or with
    // another task's.
    if (w.join_woken) {
      world x = w;
      x.join_woken = 0;
      x.actor[i].pc = j_poll;
      emit(x, 0);
    }
    {
      world x = w;
      x.actor[i].aux |= aux_gave_up;
      x.actor[i].pc = j_drop_fast;
      emit(x, 1, true);
    }
    if (!(me.aux & aux_repolled)) {
      for (std::uint8_t waker : {std::uint8_t{1}, std::uint8_t{2}}) { // same task, or another
        world x = w;
        x.actor[i].aux |= aux_repolled;
        x.actor[i].waker = waker;
        x.actor[i].pc = j_poll;
        emit(x, 1 + waker, true);
      }
    }
    return;
  }

  case j_read_output: {
    touch(w);
    need(s.is_complete(), "output read before COMPLETE");
    need(!w.output_taken, "output read twice");
    need(w.stage == stage_finished, "no output in the stage to read");
    access(w, stage_loc, i, true);
    w.stage = stage_consumed;
    w.output_taken = 1;
    me.pc = j_drop_fast;
    emit(w);
    return;
  }

  case j_drop_fast: {
    touch(w);
    const std::uint64_t before = w.word;
    const bool ok = transition(w, [](d::state& st) { return st.drop_join_handle_fast(); });
    if (ok)
      need(before == d::initial_state && w.word == 132,
           "drop_join_handle_fast succeeded other than 204 -> 132");
    else
      need(w.word == before, "a failed drop_join_handle_fast changed the word");
    if (ok) {
      release(w, i);         // success: release only
      world spurious = from; // a weak CAS may also fail spuriously: explore the slow path too
      spurious.actor[i].pc = j_drop_slow;
      cover(fast_drop_spurious_failure);
      emit(spurious, 1);
      cover(fast_drop_ok);
      me.refs -= 1;
      me.pc = done;
    } else {
      cover(fast_drop_failed);
      me.pc = j_drop_slow; // relaxed failure: no synchronisation
    }
    emit(w);
    return;
  }

  case j_drop_slow: {
    touch(w);
    need(s.is_join_interested(), "transition_to_join_handle_dropped precondition: JOIN_INTEREST clear");
    const d::join_handle_dropped t =
        transition(w, [](d::state& st) { return st.transition_to_join_handle_dropped(); });
    acq_rel(w, i);
    need(t.drop_output || t.drop_waker, "a dropped join handle must own the output or the slot");
    cover(!t.drop_output ? dropped_waker_only
          : t.drop_waker ? dropped_output_and_waker
                         : dropped_output_only);
    me.aux = std::uint8_t((me.aux & ~(aux_drop_output | aux_drop_waker)) |
                          (t.drop_output ? aux_drop_output : 0) | (t.drop_waker ? aux_drop_waker : 0));
    me.pc = t.drop_output ? j_drop_output : t.drop_waker ? j_drop_waker : drop_ref;
    emit(w);
    return;
  }

  case j_drop_output: {
    touch(w);
    need(s.is_complete(), "the join handle destroyed the output before COMPLETE");
    need(w.stage == stage_finished || (w.stage == stage_consumed && w.output_taken),
         "the output the join handle drops was destroyed by someone else");
    access(w, stage_loc, i, true);
    w.stage = stage_consumed;
    me.pc = (me.aux & aux_drop_waker) ? j_drop_waker : drop_ref;
    emit(w);
    return;
  }

  case j_drop_waker: {
    touch(w);
    need(!s.is_join_waker_set(), "the dropped join handle cleared the slot while JOIN_WAKER was set");
    access(w, slot_loc, i, true);
    w.slot = 0;
    me.pc = drop_ref;
    emit(w);
    return;
  }

  default:
    fail("unknown program counter");
  }
}

// Invariants of every reachable world.
void model::check_world(const world& w) const {
  const d::snapshot s = snap(w);
  // Bounds that keep a broken model from exploring forever: with a handful of wakes a task is
  // polled a handful of times.
  need(w.polls <= max_polls, "unbounded polling: more polls than the actors can ask for");
  need(s.ref_count() <= max_refs, "unbounded reference count");
  need(!(s.is_running() && s.is_complete()), "RUNNING and COMPLETE both set");
  if (w.deallocs) {
    need(s.ref_count() == 0 && ghost_refs(w) == 0, "references remain after dealloc");
    return;
  }
  if (ghost_refs(w) != s.ref_count())
    fail("ref count " + std::to_string(s.ref_count()) + " in the word, but the parties hold " +
         std::to_string(ghost_refs(w)));
  need((w.holder != 0) == s.is_running(), "RUNNING does not match the actor that believes it holds it");
  const unsigned tokens = notified_tokens(w);
  need(tokens <= 1, "more than one notified exists");
  if (cfg_.check_notified_token) {
    if (!w.closed && s.is_idle())
      need(s.is_notified() == (tokens == 1),
           "an idle task's NOTIFIED does not match the notifieds that exist");
    if (w.holder == 1)
      need(tokens == 0, "a notified exists while the poller holds RUNNING");
  }
  need(!s.is_join_waker_set() || w.slot != 0, "JOIN_WAKER set but the slot is empty");
  need(s.is_join_interested() == join_alive(w), "JOIN_INTEREST does not match the join handle's existence");
  need(!w.output_taken || s.is_complete(), "output taken before COMPLETE");
}

// A world where nothing has to happen any more (only optional steps are left).
void model::check_quiescent(const world& w) const {
  const d::snapshot s = snap(w);
  if (w.deallocs == 0 && !s.is_complete()) {
    need(!w.woken_since_poll,
         "lost wake: the task is idle for good, yet a wake arrived after its last poll started");
    need(!w.closed, "the owner shut down but the task never completed");
    return; // parked forever, waiting for a wake that never comes: legal
  }
  need(s.is_complete(), "the task was deallocated without completing");
  for (int i = 0; i < actors(); ++i) {
    const actor_state& a = w.actor[i];
    if (a.pc == j_wait)
      fail("lost join wake: the task completed but the join handle's registered waker was never woken");
    if (a.refs != 0)
      fail("leak: " + actor_name(i) + " still holds " + std::to_string(a.refs) + " reference(s)");
    need(a.pc == done || a.pc == unarmed || (i == 0 && a.pc == p_take_notified), "an actor is stuck");
    if (kinds_[i] == kind::join_poll)
      need(w.output_taken || (a.aux & aux_gave_up), "the join handle finished without the output");
  }
  need(w.queued == 0 && !w.in_list, "leak: a reference is still queued or listed");
  need(s.ref_count() == 0, "leak: the word still counts references");
  need(w.deallocs == 1, "the task was never deallocated");
}

std::string model::describe(const world& w) const {
  static const char* const stages[] = {"future", "finished", "consumed"};
  std::ostringstream out;
  out << "[" << describe_word(w.word) << "] stage=" << stages[w.stage] << " slot=" << int(w.slot)
      << " queued=" << int(w.queued) << " in_list=" << int(w.in_list) << " polls=" << int(w.polls)
      << (w.closed ? " closed" : "") << (w.deallocs ? " DEALLOCATED" : "")
      << (w.join_woken ? " join_woken" : "") << (w.output_taken ? " output_taken" : "");
  return out.str();
}

// Open-addressing set of world indices.
class world_set {
public:
  explicit world_set(const std::vector<world>& worlds) : worlds_(worlds), slots_(1u << 16, 0) {}

  // Returns {index, inserted}; `w` is appended to the vector by the caller when inserted.
  std::pair<std::uint32_t, bool> find_or_reserve(const world& w) {
    if ((used_ + 1) * 2 > slots_.size())
      grow();
    std::size_t mask = slots_.size() - 1;
    for (std::size_t h = hash(w) & mask;; h = (h + 1) & mask) {
      if (slots_[h] == 0) {
        slots_[h] = static_cast<std::uint32_t>(worlds_.size()) + 1;
        ++used_;
        return {static_cast<std::uint32_t>(worlds_.size()), true};
      }
      const world& other = worlds_[slots_[h] - 1];
      if (std::memcmp(&other, &w, sizeof w) == 0)
        return {slots_[h] - 1, false};
    }
  }

private:
  static std::size_t hash(const world& w) {
    std::uint64_t words[sizeof(world) / 8];
    std::memcpy(words, &w, sizeof w);
    std::uint64_t h = 0x9E3779B97F4A7C15ull;
    for (std::uint64_t x : words) {
      h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
      h *= 0xBF58476D1CE4E5B9ull;
    }
    return static_cast<std::size_t>(h ^ (h >> 31));
  }
  void grow() {
    std::vector<std::uint32_t> old(slots_.size() * 2, 0);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (std::uint32_t v : old) {
      if (v == 0)
        continue;
      std::size_t h = hash(worlds_[v - 1]) & mask;
      while (slots_[h] != 0)
        h = (h + 1) & mask;
      slots_[h] = v;
    }
  }

  const std::vector<world>& worlds_;
  std::vector<std::uint32_t> slots_;
  std::size_t used_ = 0;
};

verdict model::explore() {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<world> worlds;
  std::vector<std::uint32_t> parent;
  std::vector<std::uint32_t> label; // actor | pc before << 8 | branch << 16
  world_set seen(worlds);
  verdict v;

  auto trace = [&](std::uint32_t index, std::string last) {
    std::vector<std::uint32_t> path;
    for (std::uint32_t x = index; x != 0; x = parent[x])
      path.push_back(x);
    std::ostringstream out;
    out << "  start: " << describe(worlds[0]) << "\n";
    int n = 1;
    for (auto it = path.rbegin(); it != path.rend(); ++it, ++n) {
      const std::uint32_t l = label[*it];
      out << "  " << n << ". " << actor_name(int(l & 0xFF)) << " " << pc_name((l >> 8) & 0xFF);
      if (l >> 16)
        out << " (branch " << (l >> 16) << ")";
      out << " -> " << describe(worlds[*it]) << "\n";
    }
    if (!last.empty())
      out << "  " << n << ". " << last << "\n";
    return out.str();
  };
  auto finish = [&](bool ok) {
    v.covered = covered_;
    v.ok = ok;
    v.states = worlds.size();
    v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return v;
  };

  const world start = initial();
  seen.find_or_reserve(start);
  worlds.push_back(start);
  parent.push_back(0);
  label.push_back(0);
  try {
    check_world(start);
  } catch (const violation& e) {
    v.message = e.what;
    return finish(false);
  }

  std::vector<successor> out;
  for (std::uint32_t cur = 0; cur < worlds.size(); ++cur) {
    const world w = worlds[cur]; // a copy: `worlds` grows below
    out.clear();
    for (int i = 0; i < actors(); ++i) {
      try {
        step(w, i, out);
      } catch (const violation& e) {
        v.message = e.what;
        v.trace = trace(cur, actor_name(i) + " " + pc_name(w.actor[i].pc) + ": VIOLATION");
        return finish(false);
      }
    }
    bool mandatory = false;
    for (const auto& s : out)
      mandatory |= !s.optional;
    if (!mandatory) {
      try {
        check_quiescent(w);
      } catch (const violation& e) {
        v.message = e.what;
        v.trace = trace(cur, "(nothing more has to happen)");
        return finish(false);
      }
    }
    for (const auto& s : out) {
      const auto [index, inserted] = seen.find_or_reserve(s.next);
      if (!inserted)
        continue;
      if (worlds.size() >= max_states) {
        v.message = "the state space exceeds " + std::to_string(max_states) + " worlds";
        return finish(false);
      }
      worlds.push_back(s.next);
      parent.push_back(cur);
      label.push_back(s.actor | std::uint32_t(w.actor[s.actor].pc) << 8 | std::uint32_t(s.branch) << 16);
      try {
        check_world(s.next);
      } catch (const violation& e) {
        v.message = e.what;
        v.trace = trace(index, "");
        return finish(false);
      }
    }
  }
  return finish(true);
}

verdict explore(const char* name, config c) {
  model m(std::move(c));
  verdict v = m.explore();
  std::cout << name << ": explored " << v.states << " states in " << v.seconds << " s"
            << (v.ok ? "" : " (violation found)") << std::endl;
  return v;
}

void expect_caught(const char* name, config c, const std::string& expected) {
  const verdict v = explore(name, std::move(c));
  BOOST_TEST(!v.ok);
  BOOST_TEST(v.message.find(expected) != std::string::npos,
             "expected a violation containing \"" << expected << "\", got \"" << v.message << "\"");
  std::cout << "  caught: " << v.message << "\n" << v.trace;
}

constexpr actor_spec wake_val_from_poll{kind::wake_by_val, arming::by_first_poll};
constexpr actor_spec wake_ref_from_poll{kind::wake_by_ref, arming::by_first_poll};
constexpr actor_spec abort_handle{kind::abort_handle};
constexpr actor_spec abort_handle_drop{kind::abort_handle_drop};
constexpr actor_spec join_poll{kind::join_poll};
constexpr actor_spec join_drop{kind::join_drop};
constexpr actor_spec owner_shutdown{kind::owner_shutdown};

// The positive configurations: the poller plus at least three concurrent actors each.
struct named_config {
  const char* name;
  config cfg;
};

const named_config positive[] = {
    {"wake_by_val + wake_by_ref + abort (join handle dropped at spawn)",
     {{wake_val_from_poll, wake_ref_from_poll, abort_handle}}},
    {"join poll/drop + abort + shutdown", {{join_poll, abort_handle, owner_shutdown}}},
    {"abort handle drop + wake_by_val + join drop", {{abort_handle_drop, wake_val_from_poll, join_drop}}},
    {"join drop (fast path possible) + wake_by_val + wake_by_ref + shutdown",
     {{join_drop, wake_val_from_poll, wake_ref_from_poll, owner_shutdown}}},
    {"join poll/drop + wake_by_val + wake_by_ref", {{join_poll, wake_val_from_poll, wake_ref_from_poll}}},
    {"join poll/drop + wake_by_val + abort + shutdown",
     {{join_poll, wake_val_from_poll, abort_handle, owner_shutdown}}},
    {"wake_by_val + abort handle drop + abort + shutdown (join handle dropped at spawn)",
     {{wake_val_from_poll, abort_handle_drop, abort_handle, owner_shutdown}}},
    {"join poll/drop + abort + abort handle drop + wake_by_ref",
     {{join_poll, abort_handle, abort_handle_drop, wake_ref_from_poll}}},
};
constexpr std::size_t positive_count = std::size(positive);

// Each positive configuration is explored once per run; the coverage test reuses the verdicts.
const verdict& explore_positive(std::size_t index) {
  static std::optional<verdict> done[positive_count];
  if (!done[index])
    done[index] = explore(positive[index].name, positive[index].cfg);
  return *done[index];
}

void expect_clean(std::size_t index) {
  const verdict& v = explore_positive(index);
  BOOST_TEST(v.ok, "violation: " << v.message << "\n" << v.trace);
  BOOST_TEST(v.states > 1000u);
}

} // namespace

BOOST_AUTO_TEST_SUITE(interleaving_test)

BOOST_AUTO_TEST_CASE(wakes_by_value_and_by_reference_racing_an_abort_never_lose_a_wake) { expect_clean(0); }

BOOST_AUTO_TEST_CASE(a_polled_join_handle_racing_abort_and_shutdown_gets_its_output_or_its_wake) {
  expect_clean(1);
}

BOOST_AUTO_TEST_CASE(dropping_abort_and_join_handles_during_a_wake_frees_the_task_exactly_once) {
  expect_clean(2);
}

BOOST_AUTO_TEST_CASE(the_join_handle_fast_drop_races_wakers_and_shutdown_safely) { expect_clean(3); }

BOOST_AUTO_TEST_CASE(a_polled_join_handle_is_woken_whatever_the_wakers_do) { expect_clean(4); }

BOOST_AUTO_TEST_CASE(a_polled_join_handle_racing_a_waker_an_abort_and_shutdown_stays_consistent) {
  expect_clean(5);
}

BOOST_AUTO_TEST_CASE(a_detached_task_racing_a_wake_two_abort_handles_and_shutdown_is_freed_once) {
  expect_clean(6);
}

BOOST_AUTO_TEST_CASE(a_polled_join_handle_racing_two_abort_handles_and_a_waker_gets_output_or_wake) {
  expect_clean(7);
}

// Guards the checker against silently shrinking: together the configurations must reach every
// result of every transition (and the interesting flow branches). The only one missing is
// to_idle::ok_dealloc: while the poll is pending, the owned list still holds its ref, and once
// owner shutdown took that ref away it has set CANCELLED, so transition_to_idle says cancelled.
BOOST_AUTO_TEST_CASE(the_configurations_together_reach_every_result_of_every_transition) {
  std::uint64_t covered = 0;
  for (std::size_t i = 0; i < positive_count; ++i) {
    const verdict& v = explore_positive(i);
    BOOST_TEST_REQUIRE(v.ok, positive[i].name << ": " << v.message);
    covered |= v.covered;
  }
  for (unsigned p = 0; p < cover_count; ++p) {
    const bool expected = p != idle_ok_dealloc;
    BOOST_TEST(bool(covered >> p & 1) == expected,
               cover_names[p] << (expected ? " never reached" : " reached"));
  }
}

// ---- negative controls: the checker must be able to fail --------------------------------------

BOOST_AUTO_TEST_CASE(a_transition_to_idle_that_ignores_notified_is_caught) {
  expect_caught("MUTANT transition_to_idle ignores NOTIFIED",
                {{wake_val_from_poll, join_drop}, mutation::idle_ignores_notified},
                "NOTIFIED does not match");
}

BOOST_AUTO_TEST_CASE(a_transition_to_idle_that_ignores_notified_is_caught_as_a_lost_wake) {
  expect_caught("MUTANT transition_to_idle ignores NOTIFIED (structural check off)",
                {{wake_val_from_poll, join_drop}, mutation::idle_ignores_notified, false}, "lost wake");
}

BOOST_AUTO_TEST_CASE(a_join_handle_overwriting_a_registered_waker_is_caught) {
  expect_caught("MUTANT join handle skips unset_waker", {{join_poll}, mutation::join_skips_unset_waker},
                "JOIN_WAKER was set");
}

BOOST_AUTO_TEST_CASE(a_completion_that_never_wakes_the_join_waker_is_caught) {
  expect_caught("MUTANT complete forgets the join waker",
                {{join_poll, wake_val_from_poll}, mutation::complete_forgets_join_waker}, "lost join wake");
}

BOOST_AUTO_TEST_CASE(a_completion_that_forgets_the_list_reference_is_caught) {
  expect_caught("MUTANT release ignores the list's reference",
                {{join_drop, wake_val_from_poll}, mutation::release_ignores_list_ref}, "leak");
}

BOOST_AUTO_TEST_CASE(a_join_handle_reading_complete_with_a_relaxed_load_is_caught_as_a_data_race) {
  expect_caught("MUTANT join handle loads the word relaxed",
                {{join_poll, wake_val_from_poll}, mutation::relaxed_join_load}, "data race");
}

BOOST_AUTO_TEST_SUITE_END()
