// local_queue: Tokio's queue unit tests (tokio/src/runtime/tests/queue.rs) and its loom cases
// (loom_queue.rs beside it, capacity 4) rewritten as real-thread stress tests repeated many
// times. Every test checks that each task is accounted for exactly once across the owner, the
// thieves and the overflow target.
#include "queue_test_support.hpp"

#include <swarm/scheduler/inject_queue.hpp>
#include <swarm/scheduler/local_queue.hpp>

#include <boost/test/unit_test.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

using swarm::detail::header;
using swarm::detail::local_queue;
using swarm::detail::push_outcome;
using swarm::detail::steal_result;
using swarm_test::accounted_once;
using swarm_test::drain_local;
using swarm_test::recording_overflow;
using swarm_test::scaled;
using swarm_test::start_gate;

std::vector<header*> addresses(std::vector<header>& tasks, std::size_t first, std::size_t count) {
  std::vector<header*> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(&tasks[first + i]);
  return out;
}

// The scheduler's adaptor shape: the inject queue refuses tasks once closed, and then the
// adaptor owns them (here: records them as dropped).
struct inject_overflow {
  swarm::detail::inject_queue& inject;
  std::vector<header*> dropped;
  void push_batch(header* first, header* last, std::size_t n) {
    if (inject.push_batch(first, last, n)) return;
    for (header* h = first; h != nullptr; h = h->queue_next) dropped.push_back(h);
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(local_queue_test)

BOOST_AUTO_TEST_CASE(default_capacity_mask_fits_in_a_byte) {
  BOOST_TEST(local_queue<>::capacity == 256u);
  BOOST_TEST(local_queue<>::mask <= 0xffu);
  BOOST_TEST(local_queue<4>::half == 2u);
}

BOOST_AUTO_TEST_CASE(new_queue_is_empty_and_pop_returns_nothing) {
  local_queue<> q;
  BOOST_TEST(q.len() == 0u);
  BOOST_TEST(!q.has_tasks());
  BOOST_TEST(q.remaining_slots() == 256u);
  BOOST_TEST(q.remote_is_empty());
  BOOST_TEST(q.pop() == nullptr);
}

BOOST_AUTO_TEST_CASE(fits_256_one_at_a_time) {
  std::vector<header> tasks(256);
  local_queue<> q;
  recording_overflow overflow;
  for (header& t : tasks) {
    BOOST_TEST((q.push_back_or_overflow(&t, overflow) == push_outcome::pushed));
  }
  BOOST_TEST(overflow.size() == 0u);
  BOOST_TEST(q.len() == 256u);
  BOOST_TEST(q.remaining_slots() == 0u);
  BOOST_TEST(q.remote_len() == 256u);
  for (header& t : tasks) BOOST_TEST(q.pop() == &t); // FIFO
  BOOST_TEST(q.pop() == nullptr);
}

BOOST_AUTO_TEST_CASE(fits_256_all_at_once) {
  std::vector<header> tasks(256);
  local_queue<> q;
  q.push_back(addresses(tasks, 0, 256));
  BOOST_TEST(q.len() == 256u);
  BOOST_TEST(q.remaining_slots() == 0u);
  for (header& t : tasks) BOOST_TEST(q.pop() == &t);
  BOOST_TEST(q.pop() == nullptr);
}

BOOST_AUTO_TEST_CASE(fits_256_all_in_chunks) {
  std::vector<header> tasks(256);
  local_queue<> q;
  std::size_t next = 0;
  for (std::size_t chunk : {10, 100, 46, 100}) {
    q.push_back(addresses(tasks, next, chunk));
    next += chunk;
    BOOST_TEST(q.len() == next);
    BOOST_TEST(q.remaining_slots() == 256 - next);
  }
  for (header& t : tasks) BOOST_TEST(q.pop() == &t);
  BOOST_TEST(q.pop() == nullptr);
}

BOOST_AUTO_TEST_CASE(overflow_moves_the_oldest_half_and_the_new_task_as_one_batch) {
  std::vector<header> tasks(257);
  local_queue<> q;
  recording_overflow overflow;
  std::size_t overflows = 0;
  for (header& t : tasks) {
    if (q.push_back_or_overflow(&t, overflow) == push_outcome::overflowed_half) ++overflows;
  }
  BOOST_TEST(overflows == 1u);
  BOOST_TEST(overflow.batches() == 1u);
  BOOST_TEST(overflow.last_batch_size() == 129u);
  BOOST_TEST(overflow.contract_violations() == 0u);
  BOOST_TEST(q.len() == 128u);
  // The overflow target got tasks 0..127 then 256; the ring kept 128..255.
  for (std::size_t i = 0; i < 128; ++i) BOOST_TEST(overflow.pop() == &tasks[i]);
  BOOST_TEST(overflow.pop() == &tasks[256]);
  for (std::size_t i = 128; i < 256; ++i) BOOST_TEST(q.pop() == &tasks[i]);
  BOOST_TEST(q.pop() == nullptr);
}

BOOST_AUTO_TEST_CASE(overflow_into_the_inject_queue_keeps_every_task) {
  std::vector<header> tasks(257);
  swarm::detail::inject_queue inject;
  inject_overflow overflow{inject, {}};
  local_queue<> q;
  for (header& t : tasks) (void)q.push_back_or_overflow(&t, overflow);
  BOOST_TEST(inject.len() == 129u);
  std::vector<header*> seen;
  drain_local(q, seen);
  inject.drain([&](header* h) noexcept { seen.push_back(h); });
  BOOST_TEST(accounted_once(tasks, {&seen}) == "");
}

BOOST_AUTO_TEST_CASE(overflow_after_close_hands_the_tasks_back_to_the_adaptor) {
  std::vector<header> tasks(5);
  swarm::detail::inject_queue inject;
  BOOST_TEST(inject.close());
  inject_overflow overflow{inject, {}};
  local_queue<4> q;
  for (header& t : tasks) (void)q.push_back_or_overflow(&t, overflow);
  BOOST_TEST(inject.len() == 0u);
  BOOST_TEST(overflow.dropped.size() == 3u);
  std::vector<header*> seen = overflow.dropped;
  drain_local(q, seen);
  BOOST_TEST(accounted_once(tasks, {&seen}) == "");
}

BOOST_AUTO_TEST_CASE(capacity_4_overflows_on_the_fifth_push) {
  std::vector<header> tasks(5);
  local_queue<4> q;
  recording_overflow overflow;
  for (std::size_t i = 0; i < 4; ++i) {
    BOOST_TEST((q.push_back_or_overflow(&tasks[i], overflow) == push_outcome::pushed));
  }
  BOOST_TEST((q.push_back_or_overflow(&tasks[4], overflow) == push_outcome::overflowed_half));
  BOOST_TEST(overflow.last_batch_size() == 3u);
  BOOST_TEST(overflow.contract_violations() == 0u);
  BOOST_TEST(overflow.pop() == &tasks[0]);
  BOOST_TEST(overflow.pop() == &tasks[1]);
  BOOST_TEST(overflow.pop() == &tasks[4]);
  BOOST_TEST(q.pop() == &tasks[2]);
  BOOST_TEST(q.pop() == &tasks[3]);
  BOOST_TEST(q.pop() == nullptr);
}

BOOST_AUTO_TEST_CASE(steal_batch) {
  std::vector<header> tasks(4);
  local_queue<> victim, thief;
  recording_overflow overflow;
  for (header& t : tasks) (void)victim.push_back_or_overflow(&t, overflow);
  const steal_result r = victim.steal_into(thief);
  BOOST_TEST(r.moved == 2u);
  BOOST_TEST(r.task == &tasks[1]); // the last stolen is returned to run now
  BOOST_TEST(thief.len() == 1u);
  BOOST_TEST(thief.pop() == &tasks[0]);
  BOOST_TEST(victim.len() == 2u);
  BOOST_TEST(victim.pop() == &tasks[2]);
  BOOST_TEST(victim.pop() == &tasks[3]);
  BOOST_TEST(victim.pop() == nullptr);
}

BOOST_AUTO_TEST_CASE(steal_takes_the_rounded_up_half) {
  std::vector<header> tasks(7);
  local_queue<> victim, thief;
  victim.push_back(addresses(tasks, 0, 7));
  const steal_result r = victim.steal_into(thief);
  BOOST_TEST(r.moved == 4u);
  BOOST_TEST(r.task == &tasks[3]);
  BOOST_TEST(thief.len() == 3u);
  BOOST_TEST(victim.len() == 3u);
  std::vector<header*> seen{r.task};
  drain_local(thief, seen);
  drain_local(victim, seen);
  BOOST_TEST(accounted_once(tasks, {&seen}) == "");
}

BOOST_AUTO_TEST_CASE(steal_of_a_single_task_returns_it_and_publishes_nothing) {
  std::vector<header> tasks(1);
  local_queue<> victim, thief;
  victim.push_back(addresses(tasks, 0, 1));
  const steal_result r = victim.steal_into(thief);
  BOOST_TEST(r.moved == 1u);
  BOOST_TEST(r.task == &tasks[0]);
  BOOST_TEST(thief.len() == 0u);
  BOOST_TEST(victim.len() == 0u);
}

BOOST_AUTO_TEST_CASE(steal_from_an_empty_queue_takes_nothing) {
  local_queue<> victim, thief;
  const steal_result r = victim.steal_into(thief);
  BOOST_TEST(r.task == nullptr);
  BOOST_TEST(r.moved == 0u);
}

BOOST_AUTO_TEST_CASE(steal_refuses_when_the_thief_queue_is_more_than_half_full) {
  std::vector<header> tasks(129 + 2);
  local_queue<> victim, thief;
  thief.push_back(addresses(tasks, 0, 129));
  victim.push_back(addresses(tasks, 129, 2));
  BOOST_TEST(victim.steal_into(thief).moved == 0u);
  BOOST_TEST(victim.len() == 2u);
  // Exactly half full is still allowed.
  BOOST_TEST(thief.pop() == &tasks[0]);
  const steal_result r = victim.steal_into(thief);
  BOOST_TEST(r.moved == 1u);
  std::vector<header*> seen{&tasks[0], r.task};
  drain_local(thief, seen);
  drain_local(victim, seen);
  BOOST_TEST(accounted_once(tasks, {&seen}) == "");
}

BOOST_AUTO_TEST_CASE(indices_wrap_around_2_pow_32) {
  // Start 3 below the wrap so pushes, pops, steals and an overflow all cross it.
  std::vector<header> tasks(40);
  local_queue<4> q(0xffff'fffdu), thief(0xffff'fffeu);
  recording_overflow overflow;
  std::vector<header*> seen;
  std::size_t next = 0;
  for (int round = 0; round < 8; ++round) {
    for (int i = 0; i < 5 && next < tasks.size(); ++i) (void)q.push_back_or_overflow(&tasks[next++], overflow);
    if (header* h = q.pop()) seen.push_back(h);
    const steal_result r = q.steal_into(thief);
    if (r.task) seen.push_back(r.task);
    drain_local(thief, seen);
  }
  drain_local(q, seen);
  overflow.drain_into(seen);
  BOOST_TEST(next == tasks.size());
  BOOST_TEST(overflow.contract_violations() == 0u);
  BOOST_TEST(accounted_once(tasks, {&seen}) == "");
}

// Owner pushes 500 and pops up to 250, 1000 times, overflowing into the target, while a
// thief steals 1000 times; repeated 5 times.
BOOST_AUTO_TEST_CASE(stress1) {
  const std::size_t iterations = 5, rounds = scaled(1000), pushes = 500, pops = 250, steals = scaled(1000);
  for (std::size_t iteration = 0; iteration < iterations; ++iteration) {
    std::vector<header> tasks(rounds * pushes);
    local_queue<> q;
    recording_overflow overflow;
    std::vector<header*> owner_seen, thief_seen;
    start_gate gate(2);
    std::thread thief([&] {
      local_queue<> mine;
      gate.arrive_and_wait();
      for (std::size_t i = 0; i < steals; ++i) {
        const steal_result r = q.steal_into(mine);
        if (r.task) thief_seen.push_back(r.task);
        drain_local(mine, thief_seen);
        std::this_thread::yield();
      }
    });
    gate.arrive_and_wait();
    std::size_t next = 0;
    for (std::size_t round = 0; round < rounds; ++round) {
      for (std::size_t i = 0; i < pushes; ++i) (void)q.push_back_or_overflow(&tasks[next++], overflow);
      for (std::size_t i = 0; i < pops; ++i) {
        header* h = q.pop();
        if (!h) break;
        owner_seen.push_back(h);
      }
    }
    thief.join();
    drain_local(q, owner_seen);
    overflow.drain_into(owner_seen);
    BOOST_TEST(overflow.contract_violations() == 0u);
    BOOST_TEST(accounted_once(tasks, {&owner_seen, &thief_seen}) == "", "iteration " << iteration);
  }
}

// One million pushes, a pop every 128 and the overflow drained after each push, while a
// thief steals every 10 µs.
BOOST_AUTO_TEST_CASE(stress2) {
  const std::size_t count = scaled(1'000'000);
  std::vector<header> tasks(count);
  local_queue<> q;
  recording_overflow overflow;
  std::vector<header*> owner_seen, thief_seen;
  std::atomic<bool> done{false};
  std::size_t steals_that_moved = 0;
  std::thread thief([&] {
    local_queue<> mine;
    while (!done.load(std::memory_order_acquire)) {
      const steal_result r = q.steal_into(mine);
      if (r.task) {
        thief_seen.push_back(r.task);
        ++steals_that_moved;
      }
      drain_local(mine, thief_seen);
      std::this_thread::sleep_for(std::chrono::microseconds(10));
    }
  });
  for (std::size_t i = 0; i < count; ++i) {
    (void)q.push_back_or_overflow(&tasks[i], overflow);
    if (i % 128 == 0) {
      if (header* h = q.pop()) owner_seen.push_back(h);
    }
    while (header* h = overflow.pop()) owner_seen.push_back(h);
  }
  done.store(true, std::memory_order_release);
  thief.join();
  drain_local(q, owner_seen);
  overflow.drain_into(owner_seen);
  BOOST_TEST(overflow.contract_violations() == 0u);
  BOOST_TEST(accounted_once(tasks, {&owner_seen, &thief_seen}) == "");
  BOOST_TEST_MESSAGE("stress2: " << steals_that_moved << " successful steals, " << thief_seen.size()
                                 << " tasks taken by the thief");
}

// ---- loom_queue.rs cases, capacity 4, as repeated real-thread races ----

constexpr std::size_t loom_repetitions = scaled(20'000);

// Owner: twice { push 2, pop, push 1, drain }; a thief steals 3 times. 6 tasks.
BOOST_AUTO_TEST_CASE(loom_basic) {
  for (std::size_t rep = 0; rep < loom_repetitions; ++rep) {
    std::vector<header> tasks(6);
    local_queue<4> q;
    recording_overflow overflow;
    std::vector<header*> owner_seen, thief_seen;
    start_gate gate(2);
    std::thread thief([&] {
      local_queue<4> mine;
      gate.arrive_and_wait();
      for (int i = 0; i < 3; ++i) {
        const steal_result r = q.steal_into(mine);
        if (r.task) thief_seen.push_back(r.task);
        drain_local(mine, thief_seen);
      }
    });
    gate.arrive_and_wait();
    std::size_t next = 0;
    for (int round = 0; round < 2; ++round) {
      for (int i = 0; i < 2; ++i) (void)q.push_back_or_overflow(&tasks[next++], overflow);
      if (header* h = q.pop()) owner_seen.push_back(h);
      (void)q.push_back_or_overflow(&tasks[next++], overflow);
      drain_local(q, owner_seen);
    }
    thief.join();
    drain_local(q, owner_seen);
    overflow.drain_into(owner_seen);
    const std::string problems = accounted_once(tasks, {&owner_seen, &thief_seen});
    BOOST_TEST_REQUIRE(problems == "", "repetition " << rep);
  }
}

// Owner: push, pop, then 6 pushes (overflowing capacity 4) racing one steal. 7 tasks.
BOOST_AUTO_TEST_CASE(loom_steal_overflow) {
  for (std::size_t rep = 0; rep < loom_repetitions; ++rep) {
    std::vector<header> tasks(7);
    local_queue<4> q;
    recording_overflow overflow;
    std::vector<header*> owner_seen, thief_seen;
    start_gate gate(2);
    std::thread thief([&] {
      local_queue<4> mine;
      gate.arrive_and_wait();
      const steal_result r = q.steal_into(mine);
      if (r.task) thief_seen.push_back(r.task);
      drain_local(mine, thief_seen);
    });
    gate.arrive_and_wait();
    (void)q.push_back_or_overflow(&tasks[0], overflow);
    if (header* h = q.pop()) owner_seen.push_back(h);
    for (std::size_t i = 1; i < 7; ++i) (void)q.push_back_or_overflow(&tasks[i], overflow);
    thief.join();
    drain_local(q, owner_seen);
    overflow.drain_into(owner_seen);
    BOOST_TEST_REQUIRE(overflow.contract_violations() == 0u);
    const std::string problems = accounted_once(tasks, {&owner_seen, &thief_seen});
    BOOST_TEST_REQUIRE(problems == "", "repetition " << rep);
  }
}

// 5 tasks (one overflow at capacity 4); two thieves steal once each while the owner pops.
BOOST_AUTO_TEST_CASE(loom_multi_stealer) {
  for (std::size_t rep = 0; rep < loom_repetitions; ++rep) {
    std::vector<header> tasks(5);
    local_queue<4> q;
    recording_overflow overflow;
    for (header& t : tasks) (void)q.push_back_or_overflow(&t, overflow);
    std::vector<header*> owner_seen;
    std::array<std::vector<header*>, 2> thief_seen;
    start_gate gate(3);
    auto steal_once = [&](std::vector<header*>& seen) {
      local_queue<4> mine;
      gate.arrive_and_wait();
      const steal_result r = q.steal_into(mine);
      if (r.task) seen.push_back(r.task);
      drain_local(mine, seen);
    };
    std::thread t1(steal_once, std::ref(thief_seen[0]));
    std::thread t2(steal_once, std::ref(thief_seen[1]));
    gate.arrive_and_wait();
    drain_local(q, owner_seen);
    t1.join();
    t2.join();
    drain_local(q, owner_seen);
    overflow.drain_into(owner_seen);
    const std::string problems = accounted_once(tasks, {&owner_seen, &thief_seen[0], &thief_seen[1]});
    BOOST_TEST_REQUIRE(problems == "", "repetition " << rep);
  }
}

// A thief steals from queue 1 while the owner of queue 1 drains it and steals from queue 2
// into it: queue 1 is at once a victim and a steal destination.
BOOST_AUTO_TEST_CASE(loom_chained_steal) {
  for (std::size_t rep = 0; rep < loom_repetitions; ++rep) {
    std::vector<header> tasks(8);
    local_queue<4> q1, q2;
    recording_overflow overflow;
    for (std::size_t i = 0; i < 4; ++i) (void)q1.push_back_or_overflow(&tasks[i], overflow);
    for (std::size_t i = 4; i < 8; ++i) (void)q2.push_back_or_overflow(&tasks[i], overflow);
    std::vector<header*> owner_seen, thief_seen;
    start_gate gate(2);
    std::thread thief([&] {
      local_queue<4> mine;
      gate.arrive_and_wait();
      const steal_result r = q1.steal_into(mine);
      if (r.task) thief_seen.push_back(r.task);
      drain_local(mine, thief_seen);
    });
    gate.arrive_and_wait();
    if (header* h = q1.pop()) owner_seen.push_back(h);
    const steal_result r = q2.steal_into(q1);
    if (r.task) owner_seen.push_back(r.task);
    drain_local(q1, owner_seen);
    thief.join();
    drain_local(q1, owner_seen);
    drain_local(q2, owner_seen);
    BOOST_TEST_REQUIRE(overflow.size() == 0u);
    const std::string problems = accounted_once(tasks, {&owner_seen, &thief_seen});
    BOOST_TEST_REQUIRE(problems == "", "repetition " << rep);
  }
}

// Capacity 4, longer runs: an owner pushing (with overflow), batch-pushing and popping
// against two thieves that also steal from each other's queues.
BOOST_AUTO_TEST_CASE(capacity_4_owner_and_two_thieves_conserve_every_task) {
  const std::size_t count = scaled(200'000);
  std::vector<header> tasks(count);
  local_queue<4> q;
  recording_overflow overflow;
  std::vector<header*> owner_seen;
  std::array<std::vector<header*>, 2> thief_seen;
  std::array<local_queue<4>, 2> thief_queues;
  std::atomic<bool> done{false};
  start_gate gate(3);
  auto thief = [&](int me) {
    local_queue<4>& mine = thief_queues[me];
    local_queue<4>& other = thief_queues[1 - me];
    std::vector<header*>& seen = thief_seen[me];
    gate.arrive_and_wait();
    for (;;) {
      const bool finished = done.load(std::memory_order_acquire);
      steal_result r = q.steal_into(mine);
      if (!r.task) r = other.steal_into(mine);
      if (r.task) seen.push_back(r.task);
      // Keep one task queued now and then so the other thief has something to steal.
      if (mine.len() > 1 || finished) {
        if (header* h = mine.pop()) seen.push_back(h);
      }
      if (finished && r.task == nullptr && !mine.has_tasks()) break;
    }
  };
  std::thread t1(thief, 0), t2(thief, 1);
  gate.arrive_and_wait();
  std::size_t next = 0;
  while (next < count) {
    const std::size_t step = next % 7;
    if (step == 3 && next + 2 <= count && q.remaining_slots() >= 2) {
      q.push_back(std::array<header*, 2>{&tasks[next], &tasks[next + 1]});
      next += 2;
    } else {
      (void)q.push_back_or_overflow(&tasks[next++], overflow);
    }
    if (step % 2 == 0) {
      if (header* h = q.pop()) owner_seen.push_back(h);
    }
  }
  done.store(true, std::memory_order_release);
  t1.join();
  t2.join();
  drain_local(q, owner_seen);
  drain_local(thief_queues[0], owner_seen);
  drain_local(thief_queues[1], owner_seen);
  overflow.drain_into(owner_seen);
  BOOST_TEST(overflow.contract_violations() == 0u);
  BOOST_TEST(accounted_once(tasks, {&owner_seen, &thief_seen[0], &thief_seen[1]}) == "");
  BOOST_TEST_MESSAGE("capacity 4, two thieves: thieves took " << thief_seen[0].size() << " and "
                                                             << thief_seen[1].size() << " of " << count);
}

BOOST_AUTO_TEST_SUITE_END()
