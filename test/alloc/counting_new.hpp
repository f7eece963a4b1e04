// Counts operator new calls on every thread while on (counting_new.cpp replaces the global
// operator new of this test executable).
#pragma once

#include <atomic>
#include <cstdint>

namespace swarm_test {

struct allocation_counter {
  static std::atomic<bool> on;
  static std::atomic<std::uint64_t> count;
};

} // namespace swarm_test
