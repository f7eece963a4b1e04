// The hot, type-independent head of every task cell, and the vtable through which
// non-generic code (queues, owned-task lists, handles) reaches the typed parts.
#pragma once

#include <swarm/task/hooks.hpp>
#include <swarm/task/id.hpp>
#include <swarm/task/state.hpp>
#include <swarm/task/waker.hpp>

#include <cstddef>
#include <cstdint>

namespace swarm::detail {

struct header;

struct vtable {
  void (*poll)(header*);                                       // consumes one reference
  void (*schedule)(header*);                                   // consumes the reference the caller minted
  void (*dealloc)(header*);                                    // last reference gone
  void (*try_read_output)(header*, void* dst, const waker& w); // join handle poll; dst: outcome slot
  void (*drop_join_handle_slow)(header*);
  void (*drop_abort_handle)(header*);
  void (*shutdown)(header*); // consumes one reference
  void (*abort)(header*);    // join/abort handle abort; the caller keeps its reference
  std::size_t trailer_offset;
  std::size_t scheduler_offset;
  std::size_t id_offset;
};

// At offset 0 of every cell, so a header* and a cell* are interchangeable.
struct header {
  class state state;
  // Intrusive link of the inject queue. Owned by whoever holds the task's `notified`:
  // only one queue can hold it at a time.
  header* queue_next = nullptr;
  const struct vtable* vtable = nullptr;
  // The owned-task list the task was bound to (0: none). Written once before the task is
  // published, then only read; never cleared.
  std::uint64_t owner_id = 0;
};

static_assert(sizeof(header) <= 8 * sizeof(void*));

// The owner id of work scheduled without a task state machine (a job: a plain callable
// posted to a runtime). No owned-task list ever has it: list ids count up from 1.
inline constexpr std::uint64_t job_owner_id = ~std::uint64_t{0};

// The cold tail of every cell.
struct trailer {
  // Links of the owned-task list; touched only under that list's shard lock.
  header* owned_prev = nullptr;
  header* owned_next = nullptr;
  // The join waker; access governed by the join_waker bit (see harness.hpp).
  waker join_waker;
  // Called when the task terminates; null for none. Owned by the runtime, which outlives
  // its tasks.
  const task_hook* on_terminate = nullptr;
};

inline trailer& get_trailer(header* h) noexcept {
  return *reinterpret_cast<trailer*>(reinterpret_cast<char*>(h) + h->vtable->trailer_offset);
}

inline task_id get_id(const header* h) noexcept {
  return *reinterpret_cast<const task_id*>(reinterpret_cast<const char*>(h) + h->vtable->id_offset);
}

// The scheduler value stored in the cell. The caller must know the scheduler type.
template <class S>
S& get_scheduler(header* h) noexcept {
  return *reinterpret_cast<S*>(reinterpret_cast<char*>(h) + h->vtable->scheduler_offset);
}

} // namespace swarm::detail
