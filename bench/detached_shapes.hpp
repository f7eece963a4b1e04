// Shapes of detached tasks, written as a user writes them, for any Sys with
// `Sys::spawn_detached(ex, f)` and `Sys::co<T>` (the coroutine type). Shared by
// public_shapes.cpp and tracking_cost.cpp.
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <utility>

// The bench thread's wait for "done": a promise per iteration.
struct done_signal {
  std::promise<void> p;
  void set() { p.set_value(); }
};

// `n` spawns of callables from the calling thread; the last to run signals (Tokio's
// spawn_many_local). `rem` counts down; the caller waits on `done`.
template <class Sys, class Ex>
void spawn_detached_callables(const Ex& ex, int n, std::atomic<int>& rem,
                              const std::shared_ptr<done_signal>& done) {
  rem = n;
  for (int i = 0; i < n; ++i)
    Sys::spawn_detached(ex, [&rem, done] {
      if (rem.fetch_sub(1, std::memory_order_relaxed) == 1)
        done->set();
    });
}

// A chain of n + 1 tasks, each spawning the next; the last signals (Tokio's chained_spawn).
template <class Sys, class Ex>
void chain_link(const Ex& ex, int n, std::shared_ptr<done_signal> done) {
  Sys::spawn_detached(ex, [ex, n, done = std::move(done)]() mutable -> typename Sys::template co<void> {
    if (n == 0)
      done->set();
    else
      chain_link<Sys>(ex, n - 1, std::move(done));
    co_return;
  });
}
