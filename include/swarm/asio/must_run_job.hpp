// A runtime job that runs whether it is run or dropped: a runtime that shuts down destroys
// its queued jobs unrun, and some jobs carry a promise that must be kept (a join wait must
// complete, a use_future waiter must never see a broken promise, a reference must be given
// back). Dropped, it runs its callable in the destructor, swallowing what that throws.
#pragma once

#include <swarm/task/swallowed_exception.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace swarm::detail {

template <class Fn>
class must_run_job {
public:
  explicit must_run_job(Fn fn) : fn_(std::move(fn)) {}
  must_run_job(must_run_job&& o) noexcept(std::is_nothrow_move_constructible_v<Fn>) : fn_(std::move(o.fn_)) {
    o.fn_.reset(); // the moved-from job must not run
  }
  must_run_job& operator=(must_run_job&&) = delete;
  ~must_run_job() {
    if (fn_) {
      try {
        run();
      } catch (...) {
        // Dropped unrun (a runtime shutting down): a destructor has no caller to tell.
        count_swallowed_exception();
      }
    }
  }

  void operator()() { run(); }

private:
  void run() {
    Fn fn = std::move(*fn_);
    fn_.reset();
    std::move(fn)();
  }

  std::optional<Fn> fn_;
};

} // namespace swarm::detail
