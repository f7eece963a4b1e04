// Creating tasks: a cell with three references, split into the handles that own them.
#pragma once

#include <swarm/task/harness.hpp>
#include <swarm/task/join.hpp>
#include <swarm/task/task.hpp>

#include <source_location>

namespace swarm::detail {

template <class F, class S>
struct new_task_result {
  task<S> owned;                                          // for the owned-task list
  notified<S> first;                                      // for the first poll
  raw_join_handle<typename F::output_type> join;
};

// The three initial references: the list's, the first notified's and the join handle's.
// `extra`, if given, names or tracks the task (tracking.hpp, task_extra_slot).
template <future F, task_scheduler S>
new_task_result<F, S>
new_task(F f, S s, task_id id, std::source_location location = std::source_location::current(),
         const task_hook* on_terminate = nullptr, const task_extra_request* extra = nullptr) {
  header* h = cell<F, S>::create(std::move(f), std::move(s), id, location, &harness<F, S>::vtable,
                                 on_terminate, extra);
  return {task<S>(h), notified<S>(h), raw_join_handle<typename F::output_type>(h)};
}

template <class F, class S>
struct new_unowned_result {
  unowned_task<S> task;
  raw_join_handle<typename F::output_type> join;
};

// A task that lives in no owner list (blocking pool): the list's and the notified's
// references merge into the unowned_task.
template <future F, task_scheduler S>
new_unowned_result<F, S> new_unowned(F f, S s, task_id id,
                                     std::source_location location = std::source_location::current(),
                                     const task_hook* on_terminate = nullptr) {
  header* h =
      cell<F, S>::create(std::move(f), std::move(s), id, location, &harness<F, S>::vtable, on_terminate);
  return {unowned_task<S>(h), raw_join_handle<typename F::output_type>(h)};
}

} // namespace swarm::detail
