// What a spawn may say about its task beyond the task itself:
//   swarm::spawn(ex, f, swarm::spawn_options{.name = "accept loop"})
#pragma once

#include <string>

namespace swarm {

struct spawn_options {
  // Shown by runtime::dump() (and the console), kept verbatim. A task spawned without one
  // stores nothing for it.
  std::string name;
};

} // namespace swarm
