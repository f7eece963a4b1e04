// A runtime job that runs whether it is run or dropped: a runtime that shuts down destroys
// its queued jobs unrun, and some jobs carry a promise that must be kept (a join wait must
// complete, a use_future waiter must never see a broken promise, a reference must be given
// back). Dropped, it runs its callable in the destructor, swallowing what that throws.
#pragma once

#include <swarm/task/swallowed_exception.hpp>

#include <type_traits>
#include <utility>

namespace swarm::detail {

template <class Fn>
class must_run_job {
public:
  explicit must_run_job(Fn fn) : fn_(std::move(fn)) {}
  must_run_job(must_run_job&& o) noexcept(std::is_nothrow_move_constructible_v<Fn>)
      : fn_(std::move(o.fn_)), armed_(std::exchange(o.armed_, false)) {} // the moved-from job must not run
  must_run_job& operator=(must_run_job&&) = delete;
  ~must_run_job() {
    if (armed_) {
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
    armed_ = false;
    Fn fn = std::move(fn_);
    std::move(fn)();
  }

  Fn fn_; // moved from once run: Fn's moved-from state must be safe to destroy
  bool armed_ = true;
};

} // namespace swarm::detail
