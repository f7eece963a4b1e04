// Task lifecycle hooks and the metadata they receive.
#pragma once

#include <swarm/task/id.hpp>

#include <functional>
#include <source_location>

namespace swarm {

// What a hook learns about a task: its id and where it was spawned.
struct task_meta {
  task_id id;
  std::source_location location;
};

// A task lifecycle callback (on spawn, on terminate, before and after each poll). Hooks
// run on runtime threads; an exception thrown by one is swallowed.
using task_hook = std::function<void(const task_meta&)>;

} // namespace swarm
