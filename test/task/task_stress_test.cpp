// Bounded stress tests with real threads: wakes, aborts, join-handle polls and drops,
// abort-handle drops and owner shutdown, each racing a task's completion on the toy
// runtime's worker threads. Every test checks exactly-once properties with counters (each
// future and each output destroyed once, each join resolved once) and that no cell is left
// (the toy scheduler counts live cells). Meant to be run under ThreadSanitizer too; each test
// stops after a fixed number of rounds or a time budget, whichever comes first.
#include "support.hpp"

#include <boost/test/unit_test.hpp>

#include <random>

using namespace swarm_test;
using swarm::abort_handle;

namespace {

using clock_type = std::chrono::steady_clock;

// Runs at least `min` rounds, then more until `max` rounds or the time budget is spent.
class rounds {
public:
  rounds(int min, int max, std::chrono::milliseconds budget) : min_(min), max_(max), end_(clock_type::now() + budget) {}
  bool next() {
    if (done_ >= max_ || (done_ >= min_ && clock_type::now() > end_))
      return false;
    ++done_;
    return true;
  }
  int done() const noexcept { return done_; }

private:
  int min_, max_, done_ = 0;
  clock_type::time_point end_;
};

struct counted_output {
  int value;
  live_token token;
  counted_output(int v, live_counter* c) : value(v), token(c) {}
};

// A waker slot and a counter of wakes sent, shared by a task and the threads waking it.
struct wake_slot {
  std::mutex m;
  waker w;
  int sent = 0;
};

// Ready once `target` wakes were sent; registers its waker on every pending poll.
struct wait_for_wakes {
  using output_type = counted_output;
  wake_slot* slot;
  int target;
  live_counter* outputs;
  live_token token{&global_futures()};
  wait_for_wakes(wake_slot* s, int t, live_counter* o) : slot(s), target(t), outputs(o) {}
  wait_for_wakes(wait_for_wakes&& o) noexcept
      : slot(o.slot), target(o.target), outputs(o.outputs), token(std::move(o.token)) {}
  std::optional<counted_output> poll(poll_context& cx) {
    {
      std::lock_guard lock(slot->m);
      if (slot->sent >= target)
        return counted_output(slot->sent, outputs);
      if (!slot->w.will_wake(cx.get_waker()))
        slot->w = cx.get_waker().clone();
    }
    // Still running: widens the window in which a wake must set notified for a re-poll.
    std::this_thread::yield();
    return std::nullopt;
  }
};

// Yields `n` times, then creates its output (counting the creation for task `index`).
struct yields_then_outputs {
  using output_type = counted_output;
  int remaining;
  int index;
  std::atomic<int>* created;
  live_counter* outputs;
  live_token token{&global_futures()};
  yields_then_outputs(int n, int i, std::atomic<int>* c, live_counter* o) : remaining(n), index(i), created(c), outputs(o) {}
  yields_then_outputs(yields_then_outputs&& o) noexcept
      : remaining(o.remaining), index(o.index), created(o.created), outputs(o.outputs), token(std::move(o.token)) {}
  std::optional<counted_output> poll(poll_context& cx) {
    if (remaining-- > 0) {
      cx.get_waker().wake_by_ref();
      return std::nullopt;
    }
    created[index].fetch_add(1);
    return counted_output(index, outputs);
  }
};

// Waits for an event, then creates its output (counting the creation for task `index`).
struct event_then_outputs {
  using output_type = counted_output;
  event* ev;
  int index;
  std::atomic<int>* created;
  live_counter* outputs;
  live_token token{&global_futures()};
  event_then_outputs(event* e, int i, std::atomic<int>* c, live_counter* o) : ev(e), index(i), created(c), outputs(o) {}
  event_then_outputs(event_then_outputs&& o) noexcept
      : ev(o.ev), index(o.index), created(o.created), outputs(o.outputs), token(std::move(o.token)) {}
  std::optional<counted_output> poll(poll_context& cx) {
    if (!ev->poll(cx.get_waker()))
      return std::nullopt;
    created[index].fetch_add(1);
    return counted_output(index, outputs);
  }
};

template <class T>
std::unique_ptr<T[]> array_of(std::size_t n) {
  return std::unique_ptr<T[]>(new T[n]());
}

struct futures_balanced {
  long before = global_futures().alive();
  ~futures_balanced() { BOOST_TEST(global_futures().alive() == before); }
};

} // namespace

BOOST_AUTO_TEST_SUITE(task_stress)

BOOST_AUTO_TEST_CASE(wakes_by_value_and_by_reference_from_several_threads_race_the_poller) {
  futures_balanced balance;
  constexpr int tasks = 48, target = 120, wakers = 3;
  live_counter outputs;
  rounds r(2, 20, std::chrono::milliseconds(400));
  while (r.next()) {
    auto slots = array_of<wake_slot>(tasks);
    auto join_wakers = std::make_unique<counting_waker[]>(tasks); // outlive the runtime
    toy_runtime rt(2);
    std::vector<sd::raw_join_handle<counted_output>> handles;
    for (int i = 0; i < tasks; ++i)
      handles.push_back(rt.spawn(wait_for_wakes(&slots[i], target, &outputs)));

    // Each thread sends its share of every task's wakes, in its own order and style.
    std::vector<std::thread> threads;
    for (int t = 0; t < wakers; ++t)
      threads.emplace_back([&, t] {
        std::mt19937 rng(1234 + t + 17 * r.done());
        int budget[tasks];
        for (int& b : budget)
          b = target / wakers + (t < target % wakers ? 1 : 0);
        int left = tasks;
        while (left > 0) {
          const int i = static_cast<int>(rng() % tasks);
          if (budget[i] == 0)
            continue;
          if (--budget[i] == 0)
            --left;
          wake_slot& s = slots[i];
          switch (rng() % 4) {
          case 0: { // wake a clone by value
            waker w;
            {
              std::lock_guard lock(s.m);
              ++s.sent;
              w = s.w.clone();
            }
            std::move(w).wake();
            break;
          }
          case 1: { // wake a clone by reference, then drop it
            waker w;
            {
              std::lock_guard lock(s.m);
              ++s.sent;
              w = s.w.clone();
            }
            w.wake_by_ref();
            break;
          }
          case 2: { // wake the stored waker by reference under the slot lock
            std::lock_guard lock(s.m);
            ++s.sent;
            s.w.wake_by_ref();
            break;
          }
          default: { // take the stored waker and wake it by value
            waker w;
            {
              std::lock_guard lock(s.m);
              ++s.sent;
              w = std::move(s.w);
            }
            std::move(w).wake();
            break;
          }
          }
        }
      });
    for (auto& t : threads)
      t.join();

    int resolved = 0;
    for (int i = 0; i < tasks; ++i) {
      auto out = join(rt, handles[i], join_wakers[i]);
      BOOST_TEST_REQUIRE(out.has_value()); // a lost wake-up would time out here
      BOOST_TEST_REQUIRE(out->has_value());
      BOOST_TEST(out->value().value == target);
      ++resolved;
      handles[i].reset();
    }
    BOOST_TEST(resolved == tasks);
    for (int i = 0; i < tasks; ++i)
      slots[i].w.reset(); // the last registered waker holds a reference
    rt.shutdown();
    BOOST_TEST(rt.cells_live() == 0);
    for (int i = 0; i < tasks; ++i) {
      BOOST_TEST(join_wakers[i].live_clones() == 0);
      BOOST_TEST(join_wakers[i].total_wakes() <= 1);
    }
    BOOST_TEST(outputs.alive() == 0);
  }
  BOOST_TEST(outputs.created.load() == long{tasks} * r.done());
  BOOST_TEST_MESSAGE("wakes race: " << r.done() << " rounds");
}

BOOST_AUTO_TEST_CASE(abort_races_completion_and_the_outcome_matches_what_ran) {
  futures_balanced balance;
  constexpr int tasks = 64;
  live_counter outputs;
  long ok = 0, cancelled = 0;
  toy_runtime rt(2);
  rounds r(4, 200, std::chrono::milliseconds(400));
  while (r.next()) {
    auto created = array_of<std::atomic<int>>(tasks);
    auto join_wakers = std::make_unique<counting_waker[]>(tasks);
    std::vector<sd::raw_join_handle<counted_output>> handles;
    std::vector<abort_handle> aborts;
    for (int i = 0; i < tasks; ++i) {
      handles.push_back(rt.spawn(yields_then_outputs(i % 3, i, created.get(), &outputs)));
      aborts.push_back(handles.back().get_abort_handle());
    }
    // One thread aborts every other task through abort handles, from the back; this thread
    // aborts the others through the join handles, from the front.
    std::thread aborter([&] {
      for (int i = tasks - 1; i >= 0; --i)
        if (i % 2 == 1)
          aborts[i].abort();
    });
    for (int i = 0; i < tasks; i += 2)
      handles[i].abort();
    aborter.join();
    aborts.clear();

    for (int i = 0; i < tasks; ++i) {
      auto out = join(rt, handles[i], join_wakers[i]);
      BOOST_TEST_REQUIRE(out.has_value());
      if (out->has_value()) {
        ++ok;
        BOOST_TEST(created[i].load() == 1); // it ran to the end: the abort lost the race
        BOOST_TEST(out->value().value == i);
      } else {
        BOOST_TEST_REQUIRE(out->error().is_cancelled());
        ++cancelled;
        BOOST_TEST(created[i].load() == 0); // cancelled tasks never produced an output
      }
      handles[i].reset();
    }
    // A worker may still be completing a task whose output was read: it wakes and then
    // drops the join waker. The wakers must outlive that.
    BOOST_TEST_REQUIRE(rt.run_until([&] { return rt.cells_live() == 0; }));
    for (int i = 0; i < tasks; ++i)
      BOOST_TEST(join_wakers[i].live_clones() == 0);
    BOOST_TEST(outputs.alive() == 0);
  }
  rt.shutdown();
  BOOST_TEST(rt.cells_live() == 0);
  BOOST_TEST(ok + cancelled == long{tasks} * r.done());
  BOOST_TEST_MESSAGE("abort race: " << r.done() << " rounds, " << ok << " completed, " << cancelled << " cancelled");
}

BOOST_AUTO_TEST_CASE(join_handle_polls_from_other_threads_race_completion) {
  futures_balanced balance;
  constexpr int tasks = 64;
  live_counter outputs;
  toy_runtime rt(2);
  rounds r(4, 200, std::chrono::milliseconds(400));
  std::atomic<long> resolved{0};
  std::atomic<int> wrong_result{0}, never_woken{0}, resolved_twice{0}, leaked_wakers{0}, woken_twice{0};
  while (r.next()) {
    auto events = array_of<event>(tasks);
    auto created = array_of<std::atomic<int>>(tasks);
    auto wa = std::make_unique<counting_waker[]>(tasks), wb = std::make_unique<counting_waker[]>(tasks);
    std::vector<sd::raw_join_handle<counted_output>> handles;
    for (int i = 0; i < tasks; ++i)
      handles.push_back(rt.spawn(event_then_outputs(&events[i], i, created.get(), &outputs)));

    std::thread setter([&] {
      for (int i = 0; i < tasks; ++i)
        (i % 2 ? events[i].set() : events[i].set_by_ref());
    });
    // Two joiners, each with half the handles. Each poll alternates between two wakers, so
    // registration, replacement and completion race. Boost.Test is not thread-safe: the
    // joiners count failures, checked below on this thread.
    auto joiner = [&](int parity) {
      for (int i = parity; i < tasks; i += 2) {
        const counting_waker& a = wa[i];
        const counting_waker& b = wb[i];
        int polls = 0;
        for (;;) {
          const counting_waker& w = (polls++ % 2) ? b : a;
          const int seen = w.total_wakes();
          auto out = handles[i].poll(w.get());
          if (out) {
            if (!out->has_value() || out->value().value != i)
              wrong_result.fetch_add(1);
            resolved.fetch_add(1);
            break;
          }
          if (polls % 2 == 0 && !w.wait_woken_after(seen)) {
            never_woken.fetch_add(1);
            return;
          }
        }
        try {
          (void)handles[i].poll(a.get());
          resolved_twice.fetch_add(1);
        } catch (const std::logic_error&) {
        }
        handles[i].reset();
      }
    };
    std::thread other(joiner, 1);
    joiner(0);
    other.join();
    setter.join();
    BOOST_TEST_REQUIRE(never_woken.load() == 0); // a lost wake-up
    // The completing worker may wake and drop the join waker after the reader took the
    // output and dropped the handle: wait for every cell to go before looking at them.
    BOOST_TEST_REQUIRE(rt.run_until([&] { return rt.cells_live() == 0; }));
    for (int i = 0; i < tasks; ++i) {
      BOOST_TEST(created[i].load() == 1);
      if (wa[i].live_clones() != 0 || wb[i].live_clones() != 0)
        leaked_wakers.fetch_add(1);
      if (wa[i].total_wakes() + wb[i].total_wakes() > 1)
        woken_twice.fetch_add(1);
    }
    BOOST_TEST(outputs.alive() == 0);
  }
  rt.shutdown();
  BOOST_TEST(rt.cells_live() == 0);
  BOOST_TEST(resolved.load() == long{tasks} * r.done());
  BOOST_TEST(wrong_result.load() == 0);
  BOOST_TEST(resolved_twice.load() == 0);
  BOOST_TEST(leaked_wakers.load() == 0);
  BOOST_TEST(woken_twice.load() == 0);
  BOOST_TEST_MESSAGE("join poll race: " << r.done() << " rounds");
}

BOOST_AUTO_TEST_CASE(join_handle_drops_race_completion_and_each_output_is_destroyed_once) {
  futures_balanced balance;
  constexpr int tasks = 64;
  rounds r(4, 200, std::chrono::milliseconds(400));
  long outputs_total = 0;
  while (r.next()) {
    live_counter outputs;
    auto events = array_of<event>(tasks);
    auto created = array_of<std::atomic<int>>(tasks);
    auto wakers = std::make_unique<counting_waker[]>(tasks);
    {
      toy_runtime rt(2);
      std::vector<sd::raw_join_handle<counted_output>> handles;
      for (int i = 0; i < tasks; ++i)
        handles.push_back(rt.spawn(event_then_outputs(&events[i], i, created.get(), &outputs)));
      std::thread setter([&] {
        for (int i = 0; i < tasks; ++i)
          events[i].set();
      });
      std::thread dropper([&] {
        for (int i = 0; i < tasks; ++i) {
          if (i % 3 != 0)
            (void)handles[i].poll(wakers[i].get()); // sometimes registers, sometimes reads
          handles[i].reset();
        }
      });
      setter.join();
      dropper.join();
      // Every task completes (its event was set); its output is destroyed by the runtime or
      // by the dropping handle, once.
      BOOST_TEST_REQUIRE(rt.run_until([&] { return outputs.destroyed.load() == tasks; }));
      rt.shutdown();
      BOOST_TEST(rt.cells_live() == 0);
    }
    for (int i = 0; i < tasks; ++i) {
      BOOST_TEST(created[i].load() == 1);
      BOOST_TEST(wakers[i].live_clones() == 0);
      BOOST_TEST(wakers[i].total_wakes() <= 1);
    }
    BOOST_TEST(outputs.created.load() == tasks);
    BOOST_TEST(outputs.alive() == 0);
    outputs_total += outputs.created.load();
  }
  BOOST_TEST(outputs_total == long{tasks} * r.done());
  BOOST_TEST_MESSAGE("join drop race: " << r.done() << " rounds");
}

BOOST_AUTO_TEST_CASE(abort_handle_clones_and_drops_from_several_threads_race_completion) {
  futures_balanced balance;
  constexpr int tasks = 64, holders = 3;
  live_counter outputs;
  toy_runtime rt(2);
  rounds r(4, 200, std::chrono::milliseconds(400));
  long ok = 0, cancelled = 0;
  while (r.next()) {
    auto events = array_of<event>(tasks);
    auto created = array_of<std::atomic<int>>(tasks);
    auto join_wakers = std::make_unique<counting_waker[]>(tasks);
    std::vector<sd::raw_join_handle<counted_output>> handles;
    std::vector<abort_handle> shared;
    for (int i = 0; i < tasks; ++i) {
      handles.push_back(rt.spawn(event_then_outputs(&events[i], i, created.get(), &outputs)));
      shared.push_back(handles.back().get_abort_handle());
    }
    std::thread setter([&] {
      for (int i = 0; i < tasks; ++i)
        events[i].set();
    });
    // Each holder copies every shared abort handle (concurrent reference increments), keeps
    // the copies a moment, aborts some tasks, and drops them all.
    std::vector<std::thread> threads;
    for (int t = 0; t < holders; ++t)
      threads.emplace_back([&, t] {
        std::vector<abort_handle> mine(shared.begin(), shared.end());
        for (int i = t; i < tasks; i += 7)
          mine[i].abort();
        for (int i = tasks - 1; i >= 0; --i)
          mine[i] = abort_handle();
      });
    for (auto& t : threads)
      t.join();
    setter.join();
    shared.clear();
    for (int i = 0; i < tasks; ++i) {
      auto out = join(rt, handles[i], join_wakers[i]);
      BOOST_TEST_REQUIRE(out.has_value());
      if (out->has_value()) {
        ++ok;
        BOOST_TEST(created[i].load() == 1);
      } else {
        ++cancelled;
        BOOST_TEST(out->error().is_cancelled());
        BOOST_TEST(created[i].load() == 0);
      }
      handles[i].reset();
    }
    for (int i = 0; i < tasks; ++i)
      events[i].clear_waker(); // a cancelled task's last waker
    BOOST_TEST_REQUIRE(rt.run_until([&] { return rt.cells_live() == 0; }));
    for (int i = 0; i < tasks; ++i)
      BOOST_TEST(join_wakers[i].live_clones() == 0);
    BOOST_TEST(outputs.alive() == 0);
  }
  rt.shutdown();
  BOOST_TEST(rt.cells_live() == 0);
  BOOST_TEST(ok + cancelled == long{tasks} * r.done());
  BOOST_TEST_MESSAGE("abort handle race: " << r.done() << " rounds, " << ok << " completed, " << cancelled
                                           << " cancelled");
}

BOOST_AUTO_TEST_CASE(owner_shutdown_races_wakes_and_binds) {
  futures_balanced balance;
  constexpr int capacity = 3000;
  rounds r(3, 30, std::chrono::milliseconds(600));
  long ok_total = 0, cancelled_total = 0;
  while (r.next()) {
    live_counter outputs;
    auto events = array_of<event>(capacity);
    auto created = array_of<std::atomic<int>>(capacity);
    auto probes = std::make_unique<drop_probe[]>(capacity);
    auto closed_before_bind = array_of<bool>(capacity);
    std::vector<sd::raw_join_handle<counted_output>> handles;
    handles.reserve(capacity);
    std::atomic<int> bound{0};
    std::atomic<bool> stop{false}, closing{false};
    const int close_at = 200 + 150 * (r.done() % 5);
    {
      toy_runtime rt(2);
      std::thread binder([&] {
        for (int i = 0; i < capacity && !stop.load(); ++i) {
          // Waits at close_at for the closer to start, then binds on while it closes.
          while (i == close_at && !closing.load())
            std::this_thread::yield();
          closed_before_bind[i] = rt.owned().is_closed();
          if (i % 2)
            handles.push_back(rt.spawn(make_probed(event_then_outputs(&events[i], i, created.get(), &outputs), &probes[i])));
          else
            handles.push_back(rt.spawn(make_probed(yields_then_outputs(i % 5, i, created.get(), &outputs), &probes[i])));
          bound.store(i + 1, std::memory_order_release);
        }
      });
      std::thread waker_thread([&] {
        int next = 0;
        while (!stop.load() || next < bound.load(std::memory_order_acquire)) {
          const int n = bound.load(std::memory_order_acquire);
          for (; next < n; ++next)
            events[next].set();
          std::this_thread::yield();
        }
      });
      // Close while binds and wakes go on; let them go on a little after.
      while (bound.load() < close_at)
        std::this_thread::yield();
      closing.store(true);
      rt.close_and_shutdown_all();
      const int at_close = bound.load();
      while (bound.load() < std::min(capacity, at_close + 200))
        std::this_thread::yield();
      stop.store(true);
      binder.join();
      waker_thread.join();
      rt.shutdown();

      long ok = 0, cancelled = 0;
      const int n = bound.load();
      BOOST_TEST_REQUIRE(handles.size() == static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) {
        // Every task has completed: shut down, cancelled at bind, or finished.
        auto out = handles[i].poll(noop_waker());
        BOOST_TEST_REQUIRE(out.has_value());
        if (out->has_value()) {
          ++ok;
          BOOST_TEST(!closed_before_bind[i]);
          BOOST_TEST(created[i].load() == 1);
          BOOST_TEST(out->value().value == i);
        } else {
          ++cancelled;
          BOOST_TEST(out->error().is_cancelled());
          BOOST_TEST(created[i].load() == 0);
        }
        BOOST_TEST(probes[i].drops.load() == 1);
        handles[i].reset();
      }
      for (int i = 0; i < n; ++i)
        events[i].clear_waker();
      BOOST_TEST(rt.is_empty());
      BOOST_TEST(rt.cells_live() == 0);
      BOOST_TEST(outputs.alive() == 0);
      BOOST_TEST(cancelled >= 200); // at least the binds after close
      ok_total += ok;
      cancelled_total += cancelled;
    }
  }
  BOOST_TEST_MESSAGE("shutdown race: " << r.done() << " rounds, " << ok_total << " completed, " << cancelled_total
                                       << " cancelled");
}

BOOST_AUTO_TEST_SUITE_END()
