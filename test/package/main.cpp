// Uses the installed swarm: a header and a compiled symbol of the library.
#include <swarm/detail/assert.hpp>
#include <swarm/task/id.hpp>

#include <iostream>

#if defined(SWARM_EXPECTED_ASSERTS) && SWARM_ASSERTS != SWARM_EXPECTED_ASSERTS
#error "the installed package did not give its SWARM_ASSERTS setting to this consumer"
#endif

int main() {
  const swarm::task_id a = swarm::task_id::next();
  const swarm::task_id b = swarm::task_id::next();
  if (!a || !b || a == b) {
    std::cerr << "swarm::task_id::next() gave " << a << " and " << b << '\n';
    return 1;
  }
  std::cout << "swarm package consumer: task ids " << a << " and " << b << '\n';
  return 0;
}
