// The task state word: six flag bits and a reference count in one atomic machine word.
//
// Every transition is a single read-modify-write on the word, so all transitions on one
// task are totally ordered. The bit layout, the initial value, the memory orderings and the
// transitions are those of tokio/src/runtime/task/state.rs in Tokio 1.48, the version swarm
// ports. The benchmarks compare against Tokio 1.24.2 (bench/tokio/Cargo.toml, Debian's
// package), whose state.rs has the same bits, initial value and orderings but not the two
// join-handle transitions 1.48 added, transition_to_join_handle_dropped and
// unset_waker_after_complete. Each function documents its precondition, effect and result
// kind. Nothing here allocates, locks or throws; a broken precondition is a bug in the
// harness and is asserted.
#pragma once

#include <swarm/detail/assert.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>

namespace swarm::detail {

// Someone holds the "lock" on the task's stage: it is being polled or cancelled. Only the
// thread that set it may touch the stage.
inline constexpr std::uintptr_t running = 0b0000'0001;
// The future finished, its output (or error) is stored and the future destroyed. Once this
// bit is set it is never unset. Never set together with `running`.
inline constexpr std::uintptr_t complete = 0b0000'0010;
// `running` and `complete` both clear means the task is idle.
inline constexpr std::uintptr_t lifecycle_mask = running | complete;
// A `notified` reference exists: the task is, or is about to be, in a run queue. While
// running it means "poll again". At most one `notified` exists per task.
inline constexpr std::uintptr_t notified_bit = 0b0000'0100;
// A join handle still exists.
inline constexpr std::uintptr_t join_interest = 0b0000'1000;
// Access control for the join-waker slot in the trailer (handshake in harness.hpp).
inline constexpr std::uintptr_t join_waker = 0b0001'0000;
// The task must be cancelled as soon as possible. May hold any value once `complete`.
inline constexpr std::uintptr_t cancelled = 0b0010'0000;
inline constexpr std::uintptr_t state_mask =
    lifecycle_mask | notified_bit | join_interest | join_waker | cancelled;
inline constexpr std::uintptr_t ref_count_mask = ~state_mask;
inline constexpr unsigned ref_count_shift = 6; // number of zero bits in ref_count_mask
inline constexpr std::uintptr_t ref_one = std::uintptr_t{1} << ref_count_shift;

// A new task holds three references: the one owned by the owned-task list, the
// `notified` handed to the scheduler for the first poll, and the join handle. It starts
// notified (that `notified` exists) and join-interested (that handle exists).
inline constexpr std::uintptr_t initial_state = ref_one * 3 | join_interest | notified_bit;
static_assert(initial_state == 204);

static_assert((ref_count_mask >> ref_count_shift) << ref_count_shift == ref_count_mask);

// A plain copy of the word, with named accessors and local edits used inside CAS loops.
class snapshot {
public:
  constexpr snapshot() noexcept = default;
  constexpr explicit snapshot(std::uintptr_t bits) noexcept : bits_(bits) {}

  constexpr std::uintptr_t bits() const noexcept { return bits_; }

  constexpr bool is_idle() const noexcept { return (bits_ & lifecycle_mask) == 0; }
  constexpr bool is_notified() const noexcept { return bits_ & notified_bit; }
  constexpr bool is_running() const noexcept { return bits_ & running; }
  constexpr bool is_complete() const noexcept { return bits_ & complete; }
  constexpr bool is_cancelled() const noexcept { return bits_ & cancelled; }
  constexpr bool is_join_interested() const noexcept { return bits_ & join_interest; }
  constexpr bool is_join_waker_set() const noexcept { return bits_ & join_waker; }
  constexpr std::uintptr_t ref_count() const noexcept { return (bits_ & ref_count_mask) >> ref_count_shift; }

  constexpr void set_running() noexcept { bits_ |= running; }
  constexpr void unset_running() noexcept { bits_ &= ~running; }
  constexpr void set_notified() noexcept { bits_ |= notified_bit; }
  constexpr void unset_notified() noexcept { bits_ &= ~notified_bit; }
  constexpr void set_cancelled() noexcept { bits_ |= cancelled; }
  constexpr void unset_join_interested() noexcept { bits_ &= ~join_interest; }
  constexpr void set_join_waker() noexcept { bits_ |= join_waker; }
  constexpr void unset_join_waker() noexcept { bits_ &= ~join_waker; }

  constexpr void ref_inc() noexcept {
    SWARM_ASSERT(bits_ <= static_cast<std::uintptr_t>(std::numeric_limits<std::intptr_t>::max()));
    bits_ += ref_one;
  }
  constexpr void ref_dec() noexcept {
    SWARM_ASSERT(ref_count() > 0);
    bits_ -= ref_one;
  }

  friend constexpr bool operator==(snapshot, snapshot) noexcept = default;

private:
  std::uintptr_t bits_ = 0;
};

enum class [[nodiscard]] to_running{
    success,   // the caller holds `running` and must poll
    cancelled, // the caller holds `running` and must cancel the task
    failed,    // already running or complete; the `notified`'s reference was dropped
    dealloc,   // as failed, and that was the last reference: the caller must deallocate
};

enum class [[nodiscard]] to_idle{
    ok,          // idle again; the poll's reference was consumed
    ok_notified, // idle and notified: a reference was added for the new `notified`
    ok_dealloc,  // idle, and the poll's reference was the last: deallocate
    cancelled,   // not idle: cancelled while running; the caller still holds `running`
};

enum class [[nodiscard]] to_notified_by_val{
    do_nothing, // the caller's reference was consumed
    submit,     // a `notified` was created; the caller must schedule it, then drop its own ref
    dealloc,    // the caller's reference was the last: deallocate
};

enum class [[nodiscard]] to_notified_by_ref{
    do_nothing,
    submit, // a `notified` (and its reference) was created; the caller must schedule it
};

struct [[nodiscard]] join_handle_dropped {
  bool drop_waker;  // the handle has exclusive access to the join-waker slot and must clear it
  bool drop_output; // the task is complete and the handle must destroy the output
};

// Ok(new snapshot) or Err(the snapshot that made the update impossible).
struct update_result {
  bool ok;
  snapshot value;
};

class state {
public:
  state() noexcept : word_(initial_state) {}
  explicit state(std::uintptr_t bits) noexcept : word_(bits) {} // for tests and the checker
  state(const state&) = delete;
  state& operator=(const state&) = delete;

  // Acquire: pairs with the release half of every transition below.
  snapshot load() const noexcept { return snapshot(word_.load(std::memory_order_acquire)); }

  // Precondition: notified, and the caller owns the `notified`'s reference.
  to_running transition_to_running() noexcept {
    using r = to_running;
    r action{};
    update([&](snapshot s) -> std::optional<snapshot> {
      SWARM_ASSERT(s.is_notified());
      if (!s.is_idle()) {
        // Someone else runs it, or it is done: give up the `notified`'s reference.
        s.ref_dec();
        action = s.ref_count() == 0 ? r::dealloc : r::failed;
        return s;
      }
      s.set_running();
      s.unset_notified(); // so that a wake during the poll is detectable
      action = s.is_cancelled() ? r::cancelled : r::success;
      return s;
    });
    return action;
  }

  // Precondition: running, held by the caller. On `ok_notified` the caller holds two
  // references: the poll's and the one minted for the new `notified`.
  to_idle transition_to_idle() noexcept {
    using r = to_idle;
    r action{};
    update([&](snapshot s) -> std::optional<snapshot> {
      SWARM_ASSERT(s.is_running());
      if (s.is_cancelled()) {
        action = r::cancelled; // keep `running`: the caller cancels the task now
        return std::nullopt;
      }
      s.unset_running();
      if (!s.is_notified()) {
        s.ref_dec(); // the poll consumed the `notified`'s reference
        action = s.ref_count() == 0 ? r::ok_dealloc : r::ok;
      } else {
        s.ref_inc(); // for the new `notified`; the caller keeps its own
        action = r::ok_notified;
      }
      return s;
    });
    return action;
  }

  // Precondition: running held by the caller, not complete. Releases `running` and sets
  // `complete` in one xor; the caller reads join_interest and join_waker from the result.
  snapshot transition_to_complete() noexcept {
    const std::uintptr_t delta = running | complete;
    const snapshot prev(word_.fetch_xor(delta, std::memory_order_acq_rel));
    SWARM_ASSERT(prev.is_running());
    SWARM_ASSERT(!prev.is_complete());
    return snapshot(prev.bits() ^ delta);
  }

  // Drops `count` references after completion. Returns true if they were the last ones:
  // the caller must deallocate.
  bool transition_to_terminal(std::uintptr_t count) noexcept {
    const snapshot prev(word_.fetch_sub(count * ref_one, std::memory_order_acq_rel));
    SWARM_ASSERT(prev.ref_count() >= count);
    return prev.ref_count() == count;
  }

  // Wake by value: the caller gives up the reference it owns (a consumed waker).
  to_notified_by_val transition_to_notified_by_val() noexcept {
    using r = to_notified_by_val;
    r action{};
    update([&](snapshot s) -> std::optional<snapshot> {
      if (s.is_running()) {
        // The poller re-schedules after its poll; it holds a reference, so ours is not
        // the last one.
        s.set_notified();
        s.ref_dec();
        SWARM_ASSERT(s.ref_count() > 0);
        action = r::do_nothing;
      } else if (s.is_complete() || s.is_notified()) {
        s.ref_dec();
        action = s.ref_count() == 0 ? r::dealloc : r::do_nothing;
      } else {
        // Idle and not notified: mint a reference for the new `notified`; the caller
        // keeps its own until schedule() returned.
        s.set_notified();
        s.ref_inc();
        action = r::submit;
      }
      return s;
    });
    return action;
  }

  // Wake by reference: the caller keeps its reference.
  to_notified_by_ref transition_to_notified_by_ref() noexcept {
    using r = to_notified_by_ref;
    r action = r::do_nothing;
    update([&](snapshot s) -> std::optional<snapshot> {
      if (s.is_complete()) {
        action = r::do_nothing;
        return std::nullopt;
      }
      if (s.is_notified()) {
        // Write the same value anyway: the release half of the CAS makes every wake happen
        // before the poll it asks for (pairs with the acquire in transition_to_running).
        action = r::do_nothing;
        return s;
      }
      if (s.is_running()) {
        s.set_notified();
        action = r::do_nothing;
        return s;
      }
      s.set_notified();
      s.ref_inc();
      action = r::submit;
      return s;
    });
    return action;
  }

  // Abort. The caller keeps its reference. Returns true only when a new `notified` was
  // created, which the caller must schedule.
  [[nodiscard]] bool transition_to_notified_and_cancel() noexcept {
    bool submit = false;
    update([&](snapshot s) -> std::optional<snapshot> {
      submit = false;
      if (s.is_cancelled() || s.is_complete())
        return std::nullopt;
      if (s.is_running()) {
        // The poller cancels when its poll ends; notified spares a later wake its CAS.
        s.set_notified();
        s.set_cancelled();
        return s;
      }
      s.set_cancelled();
      if (!s.is_notified()) {
        s.set_notified();
        s.ref_inc();
        submit = true;
      }
      return s;
    });
    return submit;
  }

  // Owner shutdown. Sets `cancelled`, and `running` when idle. Returns true if the task
  // was idle: the caller now holds `running` and must cancel and complete it.
  [[nodiscard]] bool transition_to_shutdown() noexcept {
    bool prev_idle = false;
    update([&](snapshot s) -> std::optional<snapshot> {
      prev_idle = s.is_idle();
      if (prev_idle)
        s.set_running();
      s.set_cancelled();
      return s;
    });
    return prev_idle;
  }

  // Fast path of dropping a join handle: succeeds only if nothing happened to the task
  // since it was created (exactly the initial word).
  [[nodiscard]] bool drop_join_handle_fast() noexcept {
    std::uintptr_t expected = initial_state;
    // Release on success: publishes nothing to others but orders the handle's prior reads
    // of the cell before the reference is given up. Relaxed on failure: no write happened.
    return word_.compare_exchange_weak(expected, (initial_state - ref_one) & ~join_interest,
                                       std::memory_order_release, std::memory_order_relaxed);
  }

  // Precondition: join_interest set.
  join_handle_dropped transition_to_join_handle_dropped() noexcept {
    join_handle_dropped t{};
    update([&](snapshot s) -> std::optional<snapshot> {
      SWARM_ASSERT(s.is_join_interested());
      snapshot next = s;
      next.unset_join_interested();
      if (!s.is_complete()) {
        // The handle regains exclusive access to the waker slot.
        next.unset_join_waker();
      }
      t.drop_output = s.is_complete();
      t.drop_waker = !next.is_join_waker_set();
      return next;
    });
    return t;
  }

  // Precondition: join_interest set, join_waker clear. Fails, writing nothing, when the
  // task completed.
  [[nodiscard]] update_result set_join_waker() noexcept {
    return update([](snapshot s) -> std::optional<snapshot> {
      SWARM_ASSERT(s.is_join_interested());
      SWARM_ASSERT(!s.is_join_waker_set());
      if (s.is_complete())
        return std::nullopt;
      s.set_join_waker();
      return s;
    });
  }

  // Precondition: join_interest set; join_waker set unless complete. Fails, writing
  // nothing, when the task completed.
  [[nodiscard]] update_result unset_waker() noexcept {
    return update([](snapshot s) -> std::optional<snapshot> {
      SWARM_ASSERT(s.is_join_interested());
      if (s.is_complete())
        return std::nullopt;
      SWARM_ASSERT(s.is_join_waker_set());
      s.unset_join_waker();
      return s;
    });
  }

  // Runtime side, after it used the join waker at completion: hands the slot back.
  snapshot unset_waker_after_complete() noexcept {
    const snapshot prev(word_.fetch_and(~join_waker, std::memory_order_acq_rel));
    SWARM_ASSERT(prev.is_complete());
    SWARM_ASSERT(prev.is_join_waker_set());
    return snapshot(prev.bits() & ~join_waker);
  }

  // Relaxed: a new reference is only ever made from an existing one, which keeps the task
  // alive; nothing is published. An overflow would be a use-after-free later: abort.
  void ref_inc() noexcept {
    const std::uintptr_t prev = word_.fetch_add(ref_one, std::memory_order_relaxed);
    if (prev > static_cast<std::uintptr_t>(std::numeric_limits<std::intptr_t>::max()))
      std::abort();
  }

  // Returns true if it was the last reference: the caller must deallocate.
  [[nodiscard]] bool ref_dec() noexcept {
    const snapshot prev(word_.fetch_sub(ref_one, std::memory_order_acq_rel));
    SWARM_ASSERT(prev.ref_count() >= 1);
    return prev.ref_count() == 1;
  }

  // Returns true if those were the last two references.
  [[nodiscard]] bool ref_dec_twice() noexcept {
    const snapshot prev(word_.fetch_sub(2 * ref_one, std::memory_order_acq_rel));
    SWARM_ASSERT(prev.ref_count() >= 2);
    return prev.ref_count() == 2;
  }

private:
  // CAS loop: f maps the current snapshot to the next one, or nullopt to give up without
  // writing. Success acq_rel, failure acquire (the retry reads the fresh value).
  template <class F>
  update_result update(F&& f) noexcept {
    std::uintptr_t cur = word_.load(std::memory_order_acquire);
    for (;;) {
      std::optional<snapshot> next = f(snapshot(cur));
      if (!next)
        return {false, snapshot(cur)};
      if (word_.compare_exchange_weak(cur, next->bits(), std::memory_order_acq_rel,
                                      std::memory_order_acquire))
        return {true, *next};
    }
  }

  std::atomic<std::uintptr_t> word_;
};

} // namespace swarm::detail
