// What a server's accept loop does with an error. Running out of descriptors, buffers or
// memory does not end by retrying at once: the loop would spin on a whole core and flood the
// log until clients leave. So it waits a little before accepting again, and logs at most one
// line a second, saying how many were left out. Other errors (a connection reset before it
// was accepted) are retried at once, with the same log limit.
#pragma once

#include <boost/system/error_code.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>

namespace swarm_example {

class accept_backoff {
public:
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds exhausted_wait{20};

  explicit accept_backoff(const char* who, std::FILE* log = stderr) : who_(who), log_(log) {}

  // Logs `ec` (rate-limited) and returns how long to wait before the next accept.
  std::chrono::milliseconds on_error(const boost::system::error_code& ec, clock::time_point now = clock::now()) {
    if (now - last_log_ >= std::chrono::seconds(1)) {
      if (suppressed_ != 0)
        std::fprintf(log_, "%s: accept: %s (%lu more since the last line)\n", who_, ec.message().c_str(), suppressed_);
      else
        std::fprintf(log_, "%s: accept: %s\n", who_, ec.message().c_str());
      last_log_ = now;
      suppressed_ = 0;
    } else {
      ++suppressed_;
    }
    return is_exhaustion(ec) ? exhausted_wait : std::chrono::milliseconds(0);
  }

  static bool is_exhaustion(const boost::system::error_code& ec) {
    if (ec.category() != boost::system::system_category() && ec.category() != boost::system::generic_category())
      return false;
    const int e = ec.value();
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
  }

private:
  const char* who_;
  std::FILE* log_;
  clock::time_point last_log_{};
  unsigned long suppressed_ = 0;
};

} // namespace swarm_example
