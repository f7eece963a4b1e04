// Uses the installed swarm: a header and a compiled symbol of the library, and one of the
// console's (swarm::console).
#include <swarm/console/json.hpp>
#include <swarm/detail/assert.hpp>
#include <swarm/task/id.hpp>

#include <iostream>
#include <string>

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
  std::string json;
  swarm::console::append_json_string(json, "<a\n>");
  if (json != R"("\u003ca\n\u003e")") {
    std::cerr << "swarm::console::append_json_string gave " << json << '\n';
    return 1;
  }
  std::cout << "swarm package consumer: task ids " << a << " and " << b << ", console JSON " << json << '\n';
  return 0;
}
