// The idle set's searching/parked protocol (include/swarm/scheduler/idle.hpp), one thread
// playing every worker so that each interleaving is chosen, not raced for.
#include <swarm/scheduler/idle.hpp>

#include <boost/test/unit_test.hpp>

#include <optional>

BOOST_AUTO_TEST_SUITE(idle_set)

using swarm::detail::idle;

// A worker that parks while another searches need not look at the queues: the searcher
// notifies when it finds work, and by then the parked worker is a sleeper it can wake.
BOOST_AUTO_TEST_CASE(parking_beside_a_searcher_leaves_the_look_to_it) {
  idle s(2);
  BOOST_TEST(s.transition_worker_to_searching()); // worker 0
  BOOST_TEST(!s.transition_worker_to_parked(1, false));
  BOOST_TEST(s.transition_worker_from_searching()); // worker 0 found work: the last searcher
  const std::optional<std::size_t> woken = s.worker_to_notify();
  BOOST_TEST(woken.has_value());
  BOOST_TEST(*woken == 1u);
}

// A worker that parks when nobody searches any more must look at the queues itself: the
// last searcher may have found work (a batch moved into its local queue) and notified
// before this worker was a sleeper, when there was nobody to wake. Seen as a handler left
// in a busy worker's queue while the other worker slept (io_context_guarantees_test,
// stop_then_start_at_once_brings_back_every_worker, 3-7 % of runs at -O0 before).
BOOST_AUTO_TEST_CASE(parking_when_nobody_searches_must_look_at_the_queues) {
  idle s(2);
  BOOST_TEST(s.transition_worker_to_searching()); // worker 0
  BOOST_TEST(s.transition_worker_from_searching());
  BOOST_TEST(!s.worker_to_notify().has_value()); // worker 1 is not a sleeper yet
  BOOST_TEST(s.transition_worker_to_parked(1, false));
  // Its look finds the work and notifies: worker 1 itself is the sleeper woken.
  const std::optional<std::size_t> woken = s.worker_to_notify();
  BOOST_TEST(woken.has_value());
  BOOST_TEST(*woken == 1u);
}

// The last searcher to park looks too; one that leaves another searcher does not.
BOOST_AUTO_TEST_CASE(the_last_searcher_to_park_looks) {
  idle s(4);
  BOOST_TEST(s.transition_worker_to_searching());
  BOOST_TEST(s.transition_worker_to_searching());
  BOOST_TEST(!s.transition_worker_to_searching()); // half the workers search already
  BOOST_TEST(!s.transition_worker_to_parked(0, true));
  BOOST_TEST(s.transition_worker_to_parked(1, true));
  BOOST_TEST(s.num_searching() == 0u);
  BOOST_TEST(s.num_unparked() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
