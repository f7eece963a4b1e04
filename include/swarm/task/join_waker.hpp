// The join-waker handshake between a join handle and its task. Type-independent: it touches
// only the state word and the waker slot in the trailer.
//
// Rules for the slot, enforced by the join_waker bit:
//   1. join_waker clear: the join handle may read and write the slot.
//   2. join_waker set: the join handle may only read it.
//   3. join_waker and complete set: the runtime may read it (to wake it).
//   4. To install a waker the handle clears join_waker if set (taking exclusive access),
//      writes the slot, then sets join_waker. To drop, it only does the first two.
//   5. The handle flips join_waker only while complete is clear; the runtime only after it
//      set complete, and it clears join_waker after waking to hand the slot back.
//   6. join_interest clear and complete set: the runtime has exclusive access.
#pragma once

#include <swarm/task/header.hpp>

#include <swarm/detail/assert.hpp>

namespace swarm::detail {

// Precondition: join_interest set, join_waker clear (the handle has exclusive access).
inline update_result set_join_waker(header* h, trailer& tr, waker w) {
  tr.join_waker = std::move(w);
  update_result r = h->state.set_join_waker();
  if (!r.ok)
    tr.join_waker.reset(); // completed first: join_waker stays clear, the slot is still ours
  return r;
}

// Returns true when the output can be read; otherwise `w` is registered and will be woken
// at completion.
inline bool can_read_output(header* h, trailer& tr, const waker& w) {
  const snapshot s = h->state.load();
  if (s.is_complete())
    return true;
  update_result r;
  if (s.is_join_waker_set()) {
    if (tr.join_waker.will_wake(w))
      return false; // the same waiter is already registered
    // Take exclusive access back; fails only if the task completed meanwhile.
    r = h->state.unset_waker();
    if (r.ok)
      r = set_join_waker(h, tr, w.clone());
  } else {
    r = set_join_waker(h, tr, w.clone());
  }
  if (r.ok)
    return false;
  SWARM_ASSERT(r.value.is_complete()); // lost the race with completion
  return true;
}

} // namespace swarm::detail
