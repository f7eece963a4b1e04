// Cooperative budgeting: a task may make at most `initial_budget` units of progress per
// poll before resources it touches report "not ready" and make it yield. This bounds how
// long one task can keep a worker from its other tasks and from the I/O driver.
//
// Units bound a poll's length only as well as units are short: 128 units of a microsecond
// each hold the worker for 150 µs, where io_context would have let outside work in between
// any two of them. So a budget may also carry a time limit: once 16 units are spent it
// reads the clock, then again every 16 units, and it is spent when the limit has passed
// since that first read. A poll that makes fewer than 16 units of progress reads none.
#pragma once

#include <swarm/detail/config.hpp>

#include <cstdint>
#include <optional>

namespace swarm::detail::coop {

inline constexpr std::uint8_t initial_budget = 128;
// Units between two reads of the clock by a budget with a time limit (a power of two).
inline constexpr std::uint8_t time_check_units = 16;

// The thread's budget: empty means unconstrained (outside a runtime, in blocking code).
class budget {
public:
  constexpr budget() noexcept = default;
  // A poll's budget; `time_limit_ns` 0: units only.
  static constexpr budget initial(std::uint32_t time_limit_ns = 0) noexcept {
    return budget(initial_budget, time_limit_ns);
  }
  static constexpr budget unconstrained() noexcept { return budget(); }

  constexpr bool is_unconstrained() const noexcept { return !value_; }
  constexpr bool has_remaining() const noexcept { return !value_ || *value_ > 0; }
  constexpr std::optional<std::uint8_t> value() const noexcept { return value_; }

  // Takes one unit. Returns false, taking nothing, when exhausted. A unit after which the
  // time limit has passed is taken and leaves the budget exhausted.
  bool decrement() noexcept {
    if (!value_)
      return true;
    if (*value_ == 0)
      return false;
    --*value_;
    if (time_limit_ns_ != 0 && (*value_ & (time_check_units - 1)) == 0 && *value_ != 0)
      check_time();
    return true;
  }

private:
  constexpr budget(std::uint8_t v, std::uint32_t time_limit_ns) noexcept
      : value_(v), time_limit_ns_(time_limit_ns) {}
  SWARM_DECL void check_time() noexcept;

  std::optional<std::uint8_t> value_;
  std::uint32_t time_limit_ns_ = 0;
  std::uint64_t first_check_ns_ = 0; // steady_now_ns() at the first check; 0: not read yet
};

SWARM_DECL budget& current() noexcept;

// Installs a budget for its scope (a task poll, or unconstrained code) and restores the
// previous one afterwards.
class budget_scope {
public:
  explicit budget_scope(budget b) noexcept : prev_(current()) { current() = b; }
  ~budget_scope() { current() = prev_; }
  budget_scope(const budget_scope&) = delete;
  budget_scope& operator=(const budget_scope&) = delete;

private:
  budget prev_;
};

// Called by every resource before it reports progress. Empty means the budget is spent:
// the caller must yield (arrange to be polled again) instead of making progress.
// A returned guard restores the unit unless made_progress() is called, so that only
// successful operations consume budget.
class restore_on_pending {
public:
  explicit restore_on_pending(budget prev) noexcept : prev_(prev) {}
  restore_on_pending(restore_on_pending&& o) noexcept : prev_(o.prev_), armed_(o.armed_) { o.armed_ = false; }
  restore_on_pending& operator=(restore_on_pending&&) = delete;
  ~restore_on_pending() {
    if (armed_ && !prev_.is_unconstrained())
      current() = prev_;
  }
  void made_progress() noexcept { armed_ = false; }

private:
  budget prev_;
  bool armed_ = true;
};

// Counts the times a task's budget reached zero (a metric).
SWARM_DECL void note_forced_yield() noexcept;

inline std::optional<restore_on_pending> poll_proceed() noexcept {
  budget& b = current();
  const budget prev = b;
  if (!b.decrement())
    return std::nullopt;
  if (!b.has_remaining())
    note_forced_yield();
  return restore_on_pending(prev);
}

inline bool has_budget_remaining() noexcept { return current().has_remaining(); }

} // namespace swarm::detail::coop
