// What both schedulers do around a task's life: the spawn path (bind to the owned-task list,
// run the spawn hook, schedule the first poll) and a poll wrapped in the poll hooks. Every
// hook receives the task's id and spawn location, read from the task's own cell.
#pragma once

#include <swarm/scheduler/options.hpp>
#include <swarm/task/core.hpp>
#include <swarm/task/hooks.hpp>
#include <swarm/task/owned_tasks.hpp>
#include <swarm/task/swallowed_exception.hpp>
#include <swarm/task/task.hpp>
#include <swarm/task/tracking.hpp>

#include <new>
#include <source_location>
#include <utility>

namespace swarm::detail {

// The id and spawn location of a task, from the task_identity every cell stores: it sits at
// vtable->id_offset, since cell_layout puts the id first in it (id_offset ==
// identity_offset). Not for jobs (job_owner_id): they have no identity.
inline task_meta task_meta_of(const header* h) noexcept {
  const auto* identity = std::launder(
      reinterpret_cast<const task_identity*>(reinterpret_cast<const char*>(h) + h->vtable->id_offset));
  return task_meta{identity->id, identity->location};
}

// Calls `hook` if set; what it throws is swallowed (hooks.hpp).
inline void call_task_hook(const task_hook& hook, const task_meta& meta) noexcept {
  if (hook) {
    try {
      hook(meta);
    } catch (...) {
      // A hook must not fail the task or the worker around it.
      count_swallowed_exception();
    }
  }
}

// Polls `t`, between the before- and after-poll hooks when either is set. Per poll; hot: without
// hooks it costs two tests of empty std::functions.
template <class S>
void run_with_poll_hooks(local_notified<S> t, const scheduler_options& o) {
  if ((o.on_before_task_poll || o.on_after_task_poll) && t.get()->owner_id != job_owner_id) {
    // Read before the poll: the cell may be gone after it.
    const task_meta meta = task_meta_of(t.get());
    call_task_hook(o.on_before_task_poll, meta);
    poll_sampler::restart(); // user code ran since the last poll (tracking.hpp)
    std::move(t).run();
    call_task_hook(o.on_after_task_poll, meta);
    poll_sampler::restart();
  } else {
    std::move(t).run();
  }
}

// The spawn path of a scheduler handle `h` (schedule_task(notified, is_yield), options()):
// binds `f` to `owned`, runs the spawn hook, then schedules the first poll. If `owned` is
// closed, the task was cancelled by bind and the handle resolves as cancelled.
template <class Handle, class Owned, class S, future F>
raw_join_handle<typename F::output_type> spawn_task(Handle& h, Owned& owned, S sched, F f, task_id id,
                                                    std::source_location location) {
  const scheduler_options& o = h.options();
  bind_result<F, S> b = owned.bind(std::move(f), std::move(sched), id, location,
                                   o.on_task_terminate ? &o.on_task_terminate : nullptr);
  call_task_hook(o.on_task_spawn, task_meta{id, location});
  if (b.first)
    h.schedule_task(std::move(*b.first), false);
  return std::move(b.join);
}

} // namespace swarm::detail
