// Exhaustive interleaving check of local_queue<4>: one owner running a script of pushes,
// batch pushes and pops, against one or two thieves each running steal_into a few times.
// Every atomic operation on the queue is one step; a breadth-first search over
// (queue state, each actor's position and locals) visits every reachable state, so every
// interleaving of the atomic steps is covered.
//
// What is modelled, and how faithfully:
// - Each actor below mirrors the loops of local_queue.hpp step for step: one atomic load,
//   store or CAS per step, the plain slot reads and writes as steps of their own. The index
//   arithmetic is not re-implemented: the steps call local_queue<4>'s own pure functions
//   (has_room, head_after_pop, steal_amount, head_after_claim, head_after_steal,
//   head_after_overflow), so a change there is checked here. The control flow around them
//   is restated; keep the two in sync when editing either.
// - Memory is sequentially consistent: this checks the algorithm's logic (conservation,
//   no slot overwritten or read at the wrong time), not the memory orderings, which the
//   comments in local_queue.hpp argue and the ThreadSanitizer runs of local_queue_test
//   exercise.
// - A thief's destination queue is private to it and emptied after each steal, so the
//   "destination more than half full" refusal never fires; the chained case (a queue that is
//   at once victim and destination) is covered by the real-thread tests.
// - CAS is strong (never fails spuriously), as in local_queue.hpp.
//
// Checked in every state: steal <= real <= tail and tail - steal <= capacity. Checked at
// each slot access: a slot the owner writes is not inside a batch a thief has claimed and
// not yet released (that would be a data race even if the thief had already copied it,
// since only the releasing CAS orders the thief's reads before the owner's write); a slot
// anyone reads holds the task last written at exactly that index. Checked at the end:
// every task pushed left the queue exactly once (popped, stolen or overflowed), and no
// steal is left in flight.
//
// Two deliberately broken variants confirm that the checker finds what it is for.
#include "queue_test_support.hpp"

#include <swarm/scheduler/local_queue.hpp>

#include <boost/test/unit_test.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using queue = swarm::detail::local_queue<4>;
constexpr std::uint32_t cap = queue::capacity;
constexpr std::uint32_t mask = queue::mask;
constexpr std::uint32_t half = queue::half;
constexpr int max_thieves = 2;
constexpr std::uint8_t no_task = 0xff;

enum class op : std::uint8_t {
  push,   // push_back_or_overflow of a new task
  pop,    // pop
  batch2, // push_back of min(2, remaining_slots()) new tasks (a refill from the inject queue)
  batch3, // the same with 3
};

enum class mutation : std::uint8_t {
  none,
  push_ignores_steal_in_flight, // push checks room against real instead of steal
  thief_releases_before_copy,   // phase 2 (release the claim) runs before the copy
};

struct owner_state {
  std::uint8_t op = 0; // index into the script
  std::uint8_t pc = 0;
  std::uint8_t k = 0; // batch size decided
  std::uint8_t i = 0; // loop counter
  std::uint64_t h = 0;
  std::uint32_t real = 0; // index claimed by pop or overflow
};

struct thief_state {
  std::uint8_t steals_left = 0;
  std::uint8_t pc = 0;
  std::uint32_t n = 0;
  std::uint32_t i = 0;
  std::uint64_t h = 0;
  std::uint64_t claimed = 0;
  bool holds_claim = false; // between its claim CAS and its release CAS
};

struct world {
  std::uint64_t head = 0;
  std::uint32_t tail = 0;
  std::array<std::uint8_t, cap> slot{};        // task id last written (no_task: never)
  std::array<std::uint32_t, cap> slot_index{}; // absolute index of that write
  std::uint8_t pushed = 0;                     // task ids issued so far: 0 .. pushed-1
  std::uint64_t taken = 0;                     // bit i: task i left the queue
  owner_state owner;
  std::array<thief_state, max_thieves> thieves;
  std::string error; // empty while fine

  std::string key() const {
    std::string k;
    auto put = [&](const auto& v) { k.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put(head);
    put(tail);
    for (auto s : slot) put(s);
    for (auto s : slot_index) put(s);
    put(pushed);
    put(taken);
    put(owner.op), put(owner.pc), put(owner.k), put(owner.i), put(owner.h), put(owner.real);
    for (const thief_state& t : thieves) {
      put(t.steals_left), put(t.pc), put(t.n), put(t.i), put(t.h), put(t.claimed), put(t.holds_claim);
    }
    return k;
  }
};

struct scenario {
  std::vector<op> owner_script;
  int thieves = 1;
  int steals_each = 1;
  mutation broken = mutation::none;
};

class checker {
public:
  checker(const scenario& sc, std::uint32_t first_index) : sc_(sc) {
    world w;
    w.head = queue::pack(first_index, first_index);
    w.tail = first_index;
    w.slot.fill(no_task);
    for (int t = 0; t < sc.thieves; ++t) w.thieves[t].steals_left = static_cast<std::uint8_t>(sc.steals_each);
    initial_ = w;
  }

  struct result {
    std::size_t states = 0;
    std::size_t terminal = 0;
    std::string error; // first violation found, with the schedule that led to it
  };

  result run() {
    result r;
    std::unordered_map<std::string, std::pair<std::string, char>> parent; // state -> (previous, actor)
    std::deque<world> frontier;
    parent.emplace(initial_.key(), std::make_pair(std::string(), '-'));
    frontier.push_back(initial_);
    while (!frontier.empty()) {
      world w = std::move(frontier.front());
      frontier.pop_front();
      ++r.states;
      bool any = false;
      for (int actor = -1; actor < sc_.thieves; ++actor) {
        if (!enabled(w, actor)) continue;
        any = true;
        world next = w;
        if (actor < 0) owner_step(next);
        else thief_step(next, next.thieves[actor]);
        if (next.error.empty()) check_invariants(next);
        const std::string key = next.key();
        const char name = actor < 0 ? 'O' : static_cast<char>('1' + actor);
        if (!next.error.empty()) {
          r.error = next.error + "; schedule " + schedule(parent, w.key()) + name;
          return r;
        }
        if (parent.emplace(key, std::make_pair(w.key(), name)).second) frontier.push_back(std::move(next));
      }
      if (!any) {
        ++r.terminal;
        finish(w);
        if (!w.error.empty()) {
          r.error = w.error + "; schedule " + schedule(parent, w.key());
          return r;
        }
      }
    }
    return r;
  }

private:
  static std::string schedule(const std::unordered_map<std::string, std::pair<std::string, char>>& parent,
                              std::string key) {
    std::string s;
    for (;;) {
      const auto& [prev, actor] = parent.at(key);
      if (actor == '-') break;
      s.insert(s.begin(), actor);
      key = prev;
    }
    return s;
  }

  bool enabled(const world& w, int actor) const {
    if (actor < 0) return w.owner.op < sc_.owner_script.size();
    const thief_state& t = w.thieves[actor];
    return t.steals_left > 0 || t.pc != 0;
  }

  static void fail(world& w, const std::string& what) {
    if (w.error.empty()) w.error = what;
  }

  static void take(world& w, std::uint8_t id, const char* by) {
    if (id == no_task) {
      fail(w, std::string(by) + " took a slot never written");
      return;
    }
    const std::uint64_t bit = std::uint64_t{1} << id;
    if (w.taken & bit) fail(w, std::string(by) + " took task " + std::to_string(id) + " a second time");
    w.taken |= bit;
  }

  // The owner writes the slot of absolute index x.
  static void owner_write(world& w, std::uint32_t x, std::uint8_t id) {
    for (const thief_state& t : w.thieves) {
      if (!t.holds_claim) continue;
      const std::uint32_t s = queue::steal_of(t.claimed);
      for (std::uint32_t j = 0; j < t.n; ++j) {
        if (((s + j) & mask) == (x & mask)) fail(w, "owner wrote a slot inside a thief's unreleased claim");
      }
    }
    w.slot[x & mask] = id;
    w.slot_index[x & mask] = x;
  }

  // Someone reads the slot of absolute index x, expecting the task written there.
  static std::uint8_t read_slot(world& w, std::uint32_t x, const char* by) {
    if (w.slot_index[x & mask] != x || w.slot[x & mask] == no_task) {
      fail(w, std::string(by) + " read slot index " + std::to_string(x) + " holding index " +
                  std::to_string(w.slot_index[x & mask]));
    }
    return w.slot[x & mask];
  }

  static void owner_read_check(world& w, std::uint32_t x) {
    for (const thief_state& t : w.thieves) {
      if (!t.holds_claim) continue;
      const std::uint32_t s = queue::steal_of(t.claimed);
      for (std::uint32_t j = 0; j < t.n; ++j) {
        if (((s + j) & mask) == (x & mask)) fail(w, "owner read a slot inside a thief's unreleased claim");
      }
    }
  }

  // Locals are cleared between operations so that states differing only in dead values
  // merge (and so that the state count does not depend on where the indices start).
  void next_op(world& w) const {
    const std::uint8_t op = w.owner.op;
    w.owner = owner_state{};
    w.owner.op = static_cast<std::uint8_t>(op + 1);
  }

  static void steal_done(thief_state& t) {
    const std::uint8_t left = t.steals_left;
    t = thief_state{};
    t.steals_left = static_cast<std::uint8_t>(left - 1);
  }

  // One atomic step of the owner (see local_queue.hpp: push_back_or_overflow, pop, push_back).
  void owner_step(world& w) const {
    owner_state& o = w.owner;
    switch (sc_.owner_script[o.op]) {
    case op::push:
      switch (o.pc) {
      case 0: // head.load(acquire)
        o.h = w.head;
        o.pc = 1;
        return;
      case 1: { // decide; then the slot write, or the overflow of one task, or the overflow CAS
        const bool room = sc_.broken == mutation::push_ignores_steal_in_flight
                              ? w.tail - queue::real_of(o.h) < cap
                              : queue::has_room(o.h, w.tail);
        if (room) {
          owner_write(w, w.tail, w.pushed);
          o.h = 0; // dead from here on
          o.pc = 2;
        } else if (queue::steal_of(o.h) != queue::real_of(o.h)) {
          take(w, w.pushed, "overflow of one"); // the overflow target's lock is its own step
          w.pushed++;
          next_op(w);
        } else if (w.head == o.h) { // CAS succeeds
          if (w.tail - queue::real_of(o.h) != cap) fail(w, "overflow with a ring that is not full");
          o.real = queue::real_of(o.h);
          w.head = queue::head_after_overflow(o.real);
          o.h = 0;
          o.pc = 3;
        } else {
          o.h = 0;
          o.pc = 0; // CAS failed: the loop reloads head
        }
        return;
      }
      case 2: // tail.store(tail + 1, release)
        w.tail++;
        w.pushed++;
        next_op(w);
        return;
      case 3: // read the claimed oldest half and hand it, with the new task, to the overflow target
        for (std::uint32_t j = 0; j < half; ++j) {
          owner_read_check(w, o.real + j);
          take(w, read_slot(w, o.real + j, "overflow"), "overflow");
        }
        take(w, w.pushed, "overflow");
        w.pushed++;
        next_op(w);
        return;
      }
      break;
    case op::pop:
      switch (o.pc) {
      case 0: // head.load(acquire)
        o.h = w.head;
        o.pc = 1;
        return;
      case 1: { // CAS (or return empty)
        const std::optional<std::uint64_t> next = queue::head_after_pop(o.h, w.tail);
        if (!next) {
          next_op(w);
        } else if (w.head == o.h) {
          w.head = *next;
          o.real = queue::real_of(o.h);
          o.h = 0;
          o.pc = 2;
        } else {
          o.h = w.head; // failure: the observed value
        }
        return;
      }
      case 2: // read the popped slot
        owner_read_check(w, o.real);
        take(w, read_slot(w, o.real, "pop"), "pop");
        next_op(w);
        return;
      }
      break;
    case op::batch2:
    case op::batch3: {
      const std::uint32_t want = sc_.owner_script[o.op] == op::batch2 ? 2 : 3;
      switch (o.pc) {
      case 0: { // remaining_slots(): head.load(acquire); decide the batch size
        const std::uint32_t remaining = cap - (w.tail - queue::steal_of(w.head));
        o.k = static_cast<std::uint8_t>(std::min(want, remaining));
        o.i = 0;
        if (o.k == 0) next_op(w);
        else o.pc = 1;
        return;
      }
      case 1: // push_back: head.load(acquire), assert the batch fits
        o.h = w.head;
        if (w.tail - queue::steal_of(o.h) > cap - o.k) fail(w, "push_back batch does not fit");
        o.h = 0;
        o.pc = 2;
        return;
      case 2: // one slot write
        owner_write(w, w.tail + o.i, static_cast<std::uint8_t>(w.pushed + o.i));
        if (++o.i == o.k) o.pc = 3;
        return;
      case 3: // tail.store(tail + k, release)
        w.tail += o.k;
        w.pushed = static_cast<std::uint8_t>(w.pushed + o.k);
        next_op(w);
        return;
      }
      break;
    }
    }
    fail(w, "owner: bad program counter");
  }

  // One atomic step of a thief (see local_queue.hpp: steal_into, steal_into2).
  void thief_step(world& w, thief_state& t) const {
    const bool early_release = sc_.broken == mutation::thief_releases_before_copy;
    switch (t.pc) {
    case 0: // head.load(acquire)
      t.h = w.head;
      t.pc = 1;
      return;
    case 1: // tail.load(acquire); decide how many
      t.n = queue::steal_amount(t.h, w.tail);
      if (t.n == 0) {
        steal_done(t);
      } else {
        t.pc = 2;
      }
      return;
    case 2: { // claim CAS
      const std::uint64_t claimed = queue::head_after_claim(t.h, t.n);
      if (w.head == t.h) {
        if (t.n > half) fail(w, "claimed more than half");
        w.head = claimed;
        t.claimed = claimed;
        t.holds_claim = true;
        t.i = 0;
        t.h = claimed;
        t.pc = early_release ? 4 : 3;
      } else {
        t.h = w.head; // failure: retry with the observed value; the loop reloads tail
        t.pc = 1;
      }
      return;
    }
    case 3: { // copy one slot
      const std::uint32_t x = queue::steal_of(t.claimed) + t.i;
      if (w.tail - x == 0 || w.tail - x > cap) fail(w, "thief read an unpublished slot");
      take(w, read_slot(w, x, "thief"), "thief");
      if (++t.i == t.n) {
        if (early_release) steal_done(t);
        else t.pc = 4;
      }
      return;
    }
    case 4: // release CAS
      if (queue::steal_of(t.h) == queue::real_of(t.h)) fail(w, "release with no steal in flight");
      if (w.head == t.h) {
        w.head = queue::head_after_steal(t.h);
        t.holds_claim = false;
        if (early_release) t.pc = 3;
        else steal_done(t);
      } else {
        t.h = w.head;
      }
      return;
    }
    fail(w, "thief: bad program counter");
  }

  static void check_invariants(world& w) {
    const std::uint32_t steal = queue::steal_of(w.head), real = queue::real_of(w.head);
    if (w.tail - steal > cap) fail(w, "tail - steal exceeds the capacity");
    if (real - steal > w.tail - steal) fail(w, "real is not between steal and tail");
  }

  // All actors done: the owner drains what is left; every task must be accounted for once.
  static void finish(world& w) {
    const std::uint32_t steal = queue::steal_of(w.head), real = queue::real_of(w.head);
    if (steal != real) fail(w, "a steal is still in flight at the end");
    for (std::uint32_t x = real; x != w.tail; ++x) take(w, read_slot(w, x, "final drain"), "final drain");
    const std::uint64_t all = w.pushed == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << w.pushed) - 1;
    if (w.taken != all) {
      std::ostringstream s;
      s << "tasks lost: taken mask " << std::hex << w.taken << " of " << all;
      fail(w, s.str());
    }
  }

  const scenario& sc_;
  world initial_;
};

constexpr std::uint32_t near_wrap = 0xffff'fffeu;

// Runs the scenario with indices starting at 0 and just below the 2^32 wrap. The two state
// graphs must be the same size: only differences of indices may matter.
void check_clean(const scenario& sc, const char* name) {
  std::vector<std::size_t> states;
  for (std::uint32_t first : {0u, near_wrap}) {
    checker c(sc, first);
    const checker::result r = c.run();
    BOOST_TEST_MESSAGE(name << " (indices from " << first << "): " << r.states << " states, " << r.terminal
                            << " end states");
    BOOST_TEST(r.error == "", name << ", indices from " << first << ": " << r.error);
    BOOST_TEST(r.terminal > 0u);
    states.push_back(r.states);
  }
  BOOST_TEST(states[0] == states[1], name << ": the wrap changed the number of states");
}

std::string first_error(const scenario& sc) { return checker(sc, 0).run().error; }

} // namespace

BOOST_AUTO_TEST_SUITE(local_queue_model_test)

using enum op;

BOOST_AUTO_TEST_CASE(pushes_and_pops_against_one_thief_stealing_three_times) {
  check_clean({{push, push, pop, push, pop, push, push, pop, push, pop}, 1, 3}, "push/pop vs 1 thief x3");
}

BOOST_AUTO_TEST_CASE(overflow_against_one_thief) {
  check_clean({{push, pop, push, push, push, push, push, push}, 1, 2}, "overflow vs 1 thief x2");
}

BOOST_AUTO_TEST_CASE(repeated_overflows_against_one_thief) {
  check_clean({{push, push, push, push, push, push, push, push, push, pop}, 1, 2}, "9 pushes vs 1 thief x2");
}

BOOST_AUTO_TEST_CASE(batch_pushes_against_one_thief) {
  check_clean({{batch2, push, pop, batch3, push, push, pop, batch2}, 1, 2}, "batches vs 1 thief x2");
}

BOOST_AUTO_TEST_CASE(two_thieves_against_an_owner_that_overflows_and_pops) {
  check_clean({{push, push, push, push, push, pop, push, pop}, 2, 1}, "overflow/pop vs 2 thieves");
}

BOOST_AUTO_TEST_CASE(two_thieves_stealing_twice_each) {
  check_clean({{push, push, push, pop, push, push}, 2, 2}, "push/pop vs 2 thieves x2");
}

// The two largest graphs (about 160 000 and 340 000 states, a few seconds) run only in
// uninstrumented builds: the search is single-threaded, so a sanitizer adds nothing but time.
BOOST_AUTO_TEST_CASE(a_long_mixed_script_against_one_thief_stealing_four_times) {
  if (swarm_test::sanitized) return;
  check_clean({{push, push, push, pop, batch2, push, push, pop, push, batch3, pop, push, push, push, pop, push}, 1, 4},
              "16 mixed ops vs 1 thief x4");
}

BOOST_AUTO_TEST_CASE(overflows_and_batches_against_two_thieves_stealing_twice_each) {
  if (swarm_test::sanitized) return;
  check_clean({{push, push, push, push, push, pop, batch2, push, pop}, 2, 2},
              "overflow/batch/pop vs 2 thieves x2");
}

BOOST_AUTO_TEST_CASE(checker_finds_a_push_that_ignores_a_steal_in_flight) {
  const std::string e = first_error({{push, push, push, push, pop, push, push}, 1, 1,
                                     mutation::push_ignores_steal_in_flight});
  BOOST_TEST_MESSAGE("broken push: " << e);
  BOOST_TEST(e != "");
}

BOOST_AUTO_TEST_CASE(checker_finds_a_thief_that_releases_its_claim_before_copying) {
  const std::string e =
      first_error({{push, push, push, pop, push, push}, 1, 1, mutation::thief_releases_before_copy});
  BOOST_TEST_MESSAGE("broken thief: " << e);
  BOOST_TEST(e != "");
}

BOOST_AUTO_TEST_SUITE_END()
