// The inject queue (Tokio's runtime/scheduler/inject.rs, tests of runtime/tests/inject.rs):
// every case runs against the mutex-guarded inject_queue and against the boost::lockfree
// alternative, which must keep the same interface and the same closed / exact-length
// semantics.
#include "../../bench/lockfree_inject_queue.hpp" // the benchmark's candidate, not the library's
#include "queue_test_support.hpp"

#include <swarm/scheduler/inject_queue.hpp>

#include <boost/mpl/list.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <atomic>
#include <thread>
#include <vector>

namespace {

using swarm::detail::header;
using swarm_test::accounted_once;
using swarm_test::scaled;
using swarm_test::start_gate;

using queue_types = boost::mpl::list<swarm::detail::inject_queue, swarm::detail::lockfree_inject_queue>;

// Under ThreadSanitizer the multi-threaded cases skip the lock-free queue: Boost.Lockfree's
// free list reuses node memory with plain accesses that TSAN reports as races
// (boostorg/lockfree issue #78, open). They are not in swarm's code, and suppressing them
// would hide the whole library; the lock-free variant is only a benchmark candidate.
#if defined(SWARM_TEST_TSAN)
using concurrent_queue_types = boost::mpl::list<swarm::detail::inject_queue>;
#else
using concurrent_queue_types = queue_types;
#endif

// Links tasks[first .. first + n) through queue_next, as a caller of push_batch does.
void link(std::vector<header>& tasks, std::size_t first, std::size_t n) {
  for (std::size_t i = first; i + 1 < first + n; ++i) tasks[i].queue_next = &tasks[i + 1];
  tasks[first + n - 1].queue_next = nullptr;
}

template <class Queue>
std::vector<header*> drain_all(Queue& q) {
  std::vector<header*> out;
  q.drain([&](header* h) noexcept { out.push_back(h); });
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(inject_queue_test)

BOOST_AUTO_TEST_CASE_TEMPLATE(push_and_pop, Queue, queue_types) {
  std::vector<header> tasks(3);
  Queue q;
  BOOST_TEST(q.is_empty());
  BOOST_TEST(q.pop() == nullptr);
  for (std::size_t i = 0; i < 3; ++i) {
    BOOST_TEST(q.push(&tasks[i]));
    BOOST_TEST(q.len() == i + 1);
  }
  for (std::size_t i = 0; i < 3; ++i) {
    BOOST_TEST(q.pop() == &tasks[i]); // FIFO
    BOOST_TEST(q.len() == 2 - i);
  }
  BOOST_TEST(q.pop() == nullptr);
  BOOST_TEST(q.is_empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(push_batch_and_pop, Queue, queue_types) {
  std::vector<header> tasks(10);
  link(tasks, 0, 10);
  Queue q;
  BOOST_TEST(q.push_batch(&tasks[0], &tasks[9], 10));
  BOOST_TEST(q.len() == 10u);
  std::vector<header*> got;
  auto sink = [&](header* h) noexcept { got.push_back(h); };
  BOOST_TEST(q.pop_n(5, sink) == 5u);
  BOOST_TEST(q.len() == 5u);
  BOOST_TEST(q.pop_n(5, sink) == 5u);
  BOOST_TEST(q.len() == 0u);
  BOOST_TEST(q.pop_n(5, sink) == 0u);
  BOOST_TEST_REQUIRE(got.size() == 10u);
  for (std::size_t i = 0; i < 10; ++i) BOOST_TEST(got[i] == &tasks[i]);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_batch_goes_behind_earlier_pushes, Queue, queue_types) {
  std::vector<header> tasks(5);
  Queue q;
  BOOST_TEST(q.push(&tasks[0]));
  link(tasks, 1, 3);
  BOOST_TEST(q.push_batch(&tasks[1], &tasks[3], 3));
  BOOST_TEST(q.push(&tasks[4]));
  for (header& t : tasks) BOOST_TEST(q.pop() == &t);
  BOOST_TEST(q.pop() == nullptr);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(pop_n_takes_at_most_n_and_leaves_the_rest_in_order, Queue, queue_types) {
  std::vector<header> tasks(7);
  Queue q;
  for (header& t : tasks) BOOST_TEST(q.push(&t));
  std::vector<header*> got;
  BOOST_TEST(q.pop_n(3, [&](header* h) noexcept { got.push_back(h); }) == 3u);
  BOOST_TEST(q.len() == 4u);
  BOOST_TEST(q.pop() == &tasks[3]);
  // Asking for more than is queued takes what is there.
  BOOST_TEST(q.pop_n(100, [&](header* h) noexcept { got.push_back(h); }) == 3u);
  BOOST_TEST(q.len() == 0u);
  got.insert(got.begin() + 3, &tasks[3]);
  BOOST_TEST_REQUIRE(got.size() == 7u);
  for (std::size_t i = 0; i < 7; ++i) BOOST_TEST(got[i] == &tasks[i]);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(pop_n_of_zero_or_from_an_empty_queue_takes_nothing, Queue, queue_types) {
  std::vector<header> tasks(1);
  Queue q;
  std::size_t calls = 0;
  BOOST_TEST(q.pop_n(4, [&](header*) noexcept { ++calls; }) == 0u);
  BOOST_TEST(q.push(&tasks[0]));
  BOOST_TEST(q.pop_n(0, [&](header*) noexcept { ++calls; }) == 0u);
  BOOST_TEST(calls == 0u);
  BOOST_TEST(q.len() == 1u);
  BOOST_TEST(q.pop() == &tasks[0]);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(close_returns_true_only_the_first_time, Queue, queue_types) {
  Queue q;
  BOOST_TEST(!q.is_closed());
  BOOST_TEST(q.close());
  BOOST_TEST(q.is_closed());
  BOOST_TEST(!q.close());
  BOOST_TEST(q.is_closed());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(push_after_close_is_refused_and_the_task_stays_with_the_caller, Queue, queue_types) {
  std::vector<header> tasks(4);
  Queue q;
  BOOST_TEST(q.close());
  BOOST_TEST(!q.push(&tasks[0]));
  link(tasks, 1, 3);
  BOOST_TEST(!q.push_batch(&tasks[1], &tasks[3], 3));
  BOOST_TEST(q.len() == 0u);
  BOOST_TEST(q.pop() == nullptr);
  BOOST_TEST(drain_all(q).empty());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(tasks_queued_before_close_are_drained_in_order, Queue, queue_types) {
  std::vector<header> tasks(6);
  Queue q;
  for (std::size_t i = 0; i < 2; ++i) BOOST_TEST(q.push(&tasks[i]));
  link(tasks, 2, 4);
  BOOST_TEST(q.push_batch(&tasks[2], &tasks[5], 4));
  BOOST_TEST(q.close());
  BOOST_TEST(q.len() == 6u);
  BOOST_TEST(q.pop() == &tasks[0]); // popping still works once closed
  const std::vector<header*> rest = drain_all(q);
  BOOST_TEST(q.len() == 0u);
  BOOST_TEST(q.is_empty());
  BOOST_TEST_REQUIRE(rest.size() == 5u);
  for (std::size_t i = 0; i < 5; ++i) BOOST_TEST(rest[i] == &tasks[i + 1]);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(drain_of_an_empty_queue_takes_nothing, Queue, queue_types) {
  Queue q;
  BOOST_TEST(drain_all(q).empty());
  BOOST_TEST(q.close());
  BOOST_TEST(drain_all(q).empty());
}

// 4 producers (single pushes and batches of 3) against 2 consumers (pop and pop_n), then a
// final drain: every task comes out exactly once and len ends at 0.
BOOST_AUTO_TEST_CASE_TEMPLATE(concurrent_producers_and_consumers_deliver_every_task_once, Queue, concurrent_queue_types) {
  constexpr std::size_t producers = 4, consumers = 2;
  const std::size_t per_producer = scaled(60'000);
  std::vector<header> tasks(producers * per_producer);
  Queue q;
  std::array<std::vector<header*>, consumers> seen;
  std::atomic<std::size_t> producers_left{producers};
  start_gate gate(producers + consumers);
  std::vector<std::thread> threads;
  for (std::size_t p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      gate.arrive_and_wait();
      std::size_t i = p * per_producer;
      const std::size_t end = i + per_producer;
      while (i < end) {
        if (i % 4 == 0 && i + 3 <= end) {
          tasks[i].queue_next = &tasks[i + 1];
          tasks[i + 1].queue_next = &tasks[i + 2];
          tasks[i + 2].queue_next = nullptr;
          if (!q.push_batch(&tasks[i], &tasks[i + 2], 3)) std::abort();
          i += 3;
        } else {
          if (!q.push(&tasks[i])) std::abort();
          ++i;
        }
      }
      producers_left.fetch_sub(1, std::memory_order_acq_rel);
    });
  }
  for (std::size_t c = 0; c < consumers; ++c) {
    threads.emplace_back([&, c] {
      std::vector<header*>& mine = seen[c];
      gate.arrive_and_wait();
      for (;;) {
        const bool last_round = producers_left.load(std::memory_order_acquire) == 0;
        std::size_t got = 0;
        if (c == 0) {
          if (header* h = q.pop()) {
            mine.push_back(h);
            got = 1;
          }
        } else {
          got = q.pop_n(16, [&](header* h) noexcept { mine.push_back(h); });
        }
        if (last_round && got == 0) break;
        if (got == 0) std::this_thread::yield();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<header*> rest = drain_all(q);
  BOOST_TEST(q.len() == 0u);
  BOOST_TEST(accounted_once(tasks, {&seen[0], &seen[1], &rest}) == "");
}

// Pushes racing with close(): a push either lands in the queue (and the final drain finds
// it) or is refused (and the producer still has it); nothing is lost or duplicated.
BOOST_AUTO_TEST_CASE_TEMPLATE(pushes_racing_with_close_are_either_queued_or_refused, Queue, concurrent_queue_types) {
  const std::size_t repetitions = scaled(300), per_producer = 200;
  std::size_t split = 0; // repetitions where close() landed amid the pushes
  for (std::size_t rep = 0; rep < repetitions; ++rep) {
    std::vector<header> tasks(2 * per_producer);
    Queue q;
    std::array<std::vector<header*>, 2> refused;
    start_gate gate(3);
    auto producer = [&](std::size_t p) {
      gate.arrive_and_wait();
      for (std::size_t i = p * per_producer; i < (p + 1) * per_producer; ++i) {
        if (!q.push(&tasks[i])) refused[p].push_back(&tasks[i]);
      }
    };
    std::thread t0(producer, 0), t1(producer, 1);
    gate.arrive_and_wait();
    // Close once some pushes landed, while more are under way.
    while (q.len() < per_producer / 4) std::this_thread::yield();
    BOOST_TEST_REQUIRE(q.close());
    // Once closed and drained, the queue stays empty: later pushes are refused.
    std::vector<header*> queued = drain_all(q);
    t0.join();
    t1.join();
    const std::vector<header*> late = drain_all(q);
    BOOST_TEST_REQUIRE(late.empty(), "a push succeeded after close() and drain()");
    BOOST_TEST_REQUIRE(q.len() == 0u);
    const std::string problems = accounted_once(tasks, {&queued, &refused[0], &refused[1]});
    BOOST_TEST_REQUIRE(problems == "", "repetition " << rep);
    if (!queued.empty() && !(refused[0].empty() && refused[1].empty())) ++split;
  }
  BOOST_TEST_MESSAGE("close() landed amid the pushes in " << split << " of " << repetitions << " repetitions");
}

BOOST_AUTO_TEST_SUITE_END()
