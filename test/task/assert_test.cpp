// SWARM_ASSERT with asserts on (include/swarm/detail/assert.hpp); assert_default_test.cpp
// checks the switch's default.
#include "child_process.hpp"

#include <swarm/detail/assert.hpp>

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(assert_switch)

#if SWARM_ASSERTS
BOOST_AUTO_TEST_CASE(a_failed_assert_aborts_naming_the_expression_and_place) {
  const auto r = swarm_test::run_in_child(20s, [] {
    const int two = 2;
    SWARM_ASSERT(two == 3);
    return 0;
  });
  BOOST_TEST(r.aborted());
  BOOST_TEST(r.err.find("swarm assertion failed: two == 3") != std::string::npos, r.err);
  BOOST_TEST(r.err.find("assert_test.cpp") != std::string::npos, r.err);
}
#endif

BOOST_AUTO_TEST_CASE(a_passing_assert_evaluates_its_expression_once) {
  int n = 0;
  SWARM_ASSERT(++n == 1);
  BOOST_TEST(n == (SWARM_ASSERTS ? 1 : 0));
}

BOOST_AUTO_TEST_SUITE_END()
