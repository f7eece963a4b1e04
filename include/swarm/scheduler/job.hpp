// A job: a plain callable scheduled through the same queues as tasks, without the task
// state machine (no join handle, no abort, no owner list). It is what an Asio handler
// posted to the runtime becomes. Its header holds one reference and the notified bit, so a
// queue that drops it at shutdown destroys the callable unrun through the usual
// drop_reference -> dealloc path; polling runs it once and frees it.
#pragma once

#include <swarm/detail/assert.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/task/cell_allocator.hpp>
#include <swarm/task/header.hpp>
#include <swarm/task/raw_task.hpp>
#include <swarm/task/tracking.hpp>

#include <cstdlib>
#include <exception>
#include <new>
#include <utility>

namespace swarm::detail {

// Where a job's exception goes: set by every thread that drives a worker; the drive
// leaves and rethrows it (io_context's run(); owned workers apply the runtime's
// unhandled-exception policy instead). Only a job polled with no sink, which no driving
// thread does, hands its exception to std::terminate.
SWARM_DECL std::exception_ptr*& job_exception_sink() noexcept;

template <class Fn>
struct job {
  header hdr;
  Fn fn;

  static const struct vtable vtable;

  // Jobs come from the task cells' per-thread cache (one per posted handler; hot).
  static constexpr std::size_t alignment = alignof(Fn) > cell_block_alignment ? alignof(Fn)
                                                                              : cell_block_alignment;
  static void* operator new(std::size_t n) { return allocate_cell(n, alignment); }
  static void operator delete(void* p, std::size_t n) noexcept { deallocate_cell(p, n, alignment); }

  // Allocates a job; the header* carries its only reference.
  template <class F>
  static header* create(F&& f) {
    job* j = new job{header(), Fn(std::forward<F>(f))};
    j->hdr.vtable = &vtable;
    j->hdr.owner_id = job_owner_id;
    // One reference, notified: the queue that holds the header owns it.
    j->hdr.state.~state();
    ::new (&j->hdr.state) state(ref_one | notified_bit);
    return &j->hdr;
  }

  static job* from(header* h) noexcept { return reinterpret_cast<job*>(h); }

  // Runs the callable and frees the job. Per handler; hot.
  static void poll(header* h) {
    poll_sampler::restart(); // a handler's time is no task's (tracking.hpp)
    job* j = from(h);
    Fn fn(std::move(j->fn));
    delete j;
    try {
      std::move(fn)();
    } catch (...) {
      // The handler's own exception wins over one an inline dispatch inside it captured
      // earlier, as in io_context (whose pending exception is dropped when the handler
      // throws past it).
      if (std::exception_ptr* sink = job_exception_sink())
        *sink = std::current_exception();
      else
        std::terminate();
    }
  }

  static void dealloc(header* h) noexcept { delete from(h); }

  static void unreachable(header*) noexcept {
    SWARM_ASSERT(false && "a job has no state machine");
    std::abort();
  }
  static void unreachable_read(header*, void*, const waker&) noexcept { unreachable(nullptr); }
};

static_assert(offsetof(job<void (*)()>, hdr) == 0);

template <class Fn>
const struct vtable job<Fn>::vtable = {
  &job::poll, &job::unreachable, &job::dealloc, &job::unreachable_read, &job::unreachable, &job::unreachable,
      // Shutdown of a job that was never run: destroy it.
      &job::dealloc, &job::unreachable, 0, 0, 0,
};

} // namespace swarm::detail
