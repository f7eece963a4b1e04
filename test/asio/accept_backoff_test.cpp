// The examples' accept-error policy: out of descriptors (or buffers, or memory), a server
// waits before accepting again and logs at most one line a second. The examples spun on
// EMFILE, writing about 500,000 lines a second, before they used it.
#include "../../example/accept_backoff.hpp"

#include <boost/asio/error.hpp>
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <string>

namespace {

int count_lines(std::FILE* f) {
  std::rewind(f);
  int lines = 0;
  for (int c; (c = std::fgetc(f)) != EOF;)
    lines += c == '\n';
  return lines;
}

} // namespace

BOOST_AUTO_TEST_SUITE(accept_backoff)

BOOST_AUTO_TEST_CASE(exhaustion_waits_and_the_log_is_limited_to_a_line_a_second) {
  std::FILE* log = std::tmpfile();
  BOOST_REQUIRE(log);
  swarm_example::accept_backoff policy("test", log);
  const boost::system::error_code emfile(EMFILE, boost::system::system_category());
  auto t = swarm_example::accept_backoff::clock::time_point{} + std::chrono::hours(1);
  // 10,000 failed accepts over two seconds, as a loop that did not wait would make.
  for (int i = 0; i < 10000; ++i, t += std::chrono::microseconds(200))
    BOOST_REQUIRE(policy.on_error(emfile, t) >= std::chrono::milliseconds(10));
  const int lines = count_lines(log);
  BOOST_TEST(lines >= 2);
  BOOST_TEST(lines <= 3);
  std::fclose(log);
}

BOOST_AUTO_TEST_CASE(a_connection_error_is_retried_at_once) {
  std::FILE* log = std::tmpfile();
  BOOST_REQUIRE(log);
  swarm_example::accept_backoff policy("test", log);
  BOOST_TEST(policy.on_error(boost::asio::error::connection_aborted).count() == 0);
  BOOST_TEST(swarm_example::accept_backoff::is_exhaustion(boost::asio::error::no_descriptors));
  BOOST_TEST(swarm_example::accept_backoff::is_exhaustion(boost::asio::error::no_buffer_space));
  std::fclose(log);
}

BOOST_AUTO_TEST_SUITE_END()
