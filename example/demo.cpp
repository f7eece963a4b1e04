// swarm demo: what the task layer does today.
//
// swarm's scheduler does not exist yet. What exists is the task layer: task cells, the state
// word, wakers, join and abort handles and the owned-task lists, i.e. everything a scheduler
// needs in order to run, wake, cancel and join tasks. To show it working, this file contains
// a DEMO HARNESS: a small executor with two worker threads pulling tasks from one
// mutex-protected FIFO. It is not swarm's scheduler (no work stealing, no LIFO slot, no
// parking protocol) and its numbers say nothing about the scheduler's.
//
// Part 1 spawns N tasks (default 100 000) onto the demo harness. Each task parks on its first
// poll by posting its waker to a mailbox; a separate thread wakes the parked tasks; on its
// second poll the task returns its index (one task in a thousand throws instead). The main
// thread aborts every tenth task right after spawning it, then joins all the tasks and
// counts how they ended.
//
// Part 2 measures, on one thread, a spawn + run + join of an empty task through the task
// layer (an owned_tasks list, bind, assert_owner, run, join-handle poll, drops), and beside it
// a floor: one malloc/free of the same cell size plus two uncontended atomic read-modify-
// writes, the least a heap-allocated, reference-counted task can cost. It also shows the
// cost of the allocation the cell really makes (over-aligned, to keep tasks on separate
// cache-line pairs), which with glibc is far above a plain malloc. Part 2 runs first, on a
// fresh heap, and is printed second.
//
// Usage: demo [number of tasks]
#include <swarm/task/join.hpp>
#include <swarm/task/owned_tasks.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sd = swarm::detail;
using clock_type = std::chrono::steady_clock;

namespace demo_harness {

class executor;

// The scheduler value stored in every task: which executor runs it.
struct scheduler {
  executor* ex;
  void schedule(sd::notified<scheduler> n);
  void yield_now(sd::notified<scheduler> n);
  sd::task<scheduler> release(sd::raw_task t);
  void unhandled_exception(std::exception_ptr) {} // reported through the join handle
};

// Two (or more) worker threads and one FIFO of notified tasks, linked through the task
// header's queue_next field. The owned_tasks list is what lets it cancel every task still
// alive when it shuts down.
class executor {
public:
  explicit executor(unsigned workers) : owned_(workers) {
    for (unsigned i = 0; i < workers; ++i)
      threads_.emplace_back([this] { work(); });
  }
  executor(const executor&) = delete;
  executor& operator=(const executor&) = delete;

  ~executor() {
    owned_.close_and_shutdown_all(); // cancels whatever is still alive
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_)
      t.join();
    sd::header* h;
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
      h = std::exchange(head_, nullptr);
      tail_ = nullptr;
    }
    while (h) { // dropping a queued notified only releases its reference
      sd::header* next = h->queue_next;
      sd::notified<scheduler>::from_raw(h).reset();
      h = next;
    }
  }

  template <sd::future F>
  sd::raw_join_handle<typename F::output_type> spawn(F f) {
    sd::bind_result<F, scheduler> r = owned_.bind(std::move(f), scheduler{this}, swarm::task_id::next());
    if (r.first)
      push(std::move(*r.first));
    return std::move(r.join);
  }

  void push(sd::notified<scheduler> n) {
    sd::header* h = std::move(n).into_raw();
    h->queue_next = nullptr;
    bool wake_one;
    {
      std::lock_guard lock(mutex_);
      if (closed_) {
        sd::notified<scheduler>::from_raw(h).reset();
        return;
      }
      (tail_ ? tail_->queue_next : head_) = h;
      tail_ = h;
      wake_one = idle_ > 0;
    }
    if (wake_one)
      cv_.notify_one();
  }

  sd::task<scheduler> remove(sd::raw_task t) { return owned_.remove(t); }
  std::uint64_t polls() const { return polls_.load(); }

private:
  void work() {
    std::uint64_t polls = 0;
    for (;;) {
      sd::header* h;
      {
        std::unique_lock lock(mutex_);
        ++idle_;
        cv_.wait(lock, [&] { return head_ || stopping_; });
        --idle_;
        if (!head_)
          break;
        h = head_;
        head_ = h->queue_next;
        if (!head_)
          tail_ = nullptr;
      }
      owned_.assert_owner(sd::notified<scheduler>::from_raw(h)).run();
      ++polls;
    }
    polls_.fetch_add(polls);
  }

  sd::owned_tasks<scheduler> owned_;
  std::mutex mutex_;
  std::condition_variable cv_;
  sd::header* head_ = nullptr; // under mutex_
  sd::header* tail_ = nullptr; // under mutex_
  unsigned idle_ = 0;          // under mutex_
  bool stopping_ = false;      // under mutex_
  bool closed_ = false;        // under mutex_
  std::atomic<std::uint64_t> polls_{0};
  std::vector<std::thread> threads_;
};

void scheduler::schedule(sd::notified<scheduler> n) { ex->push(std::move(n)); }
void scheduler::yield_now(sd::notified<scheduler> n) { ex->push(std::move(n)); }
sd::task<scheduler> scheduler::release(sd::raw_task t) { return ex->remove(t); }

} // namespace demo_harness

namespace {

// Where parked tasks post their wakers; a separate thread wakes them.
class mailbox {
public:
  void post(sd::waker w) {
    {
      std::lock_guard lock(mutex_);
      wakers_.push_back(std::move(w));
    }
    cv_.notify_one();
  }
  // The waking thread: wakes (by value) everything posted, until stop() and drained.
  void run_waker_thread(std::atomic<std::uint64_t>& wakes) {
    std::vector<sd::waker> batch;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !wakers_.empty() || stopped_; });
        if (wakers_.empty())
          return;
        batch.swap(wakers_);
      }
      for (sd::waker& w : batch)
        std::move(w).wake();
      wakes.fetch_add(batch.size());
      batch.clear();
    }
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    cv_.notify_all();
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<sd::waker> wakers_;
  bool stopped_ = false;
};

// Parks on its first poll (posting its waker), returns its index on the second; one task in
// a thousand throws instead.
struct demo_task {
  using output_type = std::uint32_t;
  std::uint32_t index;
  mailbox* box;
  bool parked = false;

  std::optional<std::uint32_t> poll(sd::poll_context& cx) {
    if (!parked) {
      parked = true;
      box->post(cx.get_waker().clone());
      return std::nullopt;
    }
    if (index % 1000 == 999)
      throw std::runtime_error("task " + std::to_string(index) + " failed on purpose");
    return index;
  }
};

// A waker that unparks the joining thread. It is not reference-counted: it lives until every
// task is gone.
class thread_parker {
public:
  const sd::waker& get() const { return waker_; }
  void park() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return notified_; });
    notified_ = false;
  }

private:
  void unpark() {
    {
      std::lock_guard lock(mutex_);
      notified_ = true;
    }
    cv_.notify_one();
  }
  static thread_parker* self(void* d) { return static_cast<thread_parker*>(d); }
  static constexpr sd::waker_vtable vtable{
      [](void* d) noexcept { return d; }, [](void* d) { self(d)->unpark(); }, [](void* d) { self(d)->unpark(); },
      [](void*) noexcept {}};

  std::mutex mutex_;
  std::condition_variable cv_;
  bool notified_ = false;
  sd::waker waker_{this, &vtable};
};

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// ---------------------------------------------------------------------------------------
// Part 2: one thread, no queue.

struct inline_scheduler {
  sd::owned_tasks<inline_scheduler>* owned;
  void schedule(sd::notified<inline_scheduler>) { std::abort(); } // an empty task is never woken
  void yield_now(sd::notified<inline_scheduler>) { std::abort(); }
  sd::task<inline_scheduler> release(sd::raw_task t) { return owned->remove(t); }
  void unhandled_exception(std::exception_ptr) {}
};

struct empty_task {
  using output_type = sd::unit;
  std::optional<sd::unit> poll(sd::poll_context&) { return sd::unit{}; }
};

const sd::waker& noop_waker() {
  static constexpr sd::waker_vtable vt{[](void* d) noexcept { return d; }, [](void*) {}, [](void*) {},
                                       [](void*) noexcept {}};
  static const sd::waker w(nullptr, &vt);
  return w;
}

template <class T>
inline void keep(T const& v) {
  asm volatile("" : : "r,m"(v) : "memory");
}

// ns per spawn + run + join of an empty task, best of `reps` runs of `n`.
double measure_spawn_run_join(int n, int reps) {
  double best = 1e300;
  sd::owned_tasks<inline_scheduler> owned(1);
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    for (int i = 0; i < n; ++i) {
      sd::bind_result<empty_task, inline_scheduler> b =
          owned.bind(empty_task{}, inline_scheduler{&owned}, swarm::task_id::next());
      owned.assert_owner(std::move(*b.first)).run();
      auto out = b.join.poll(noop_waker());
      if (!out || !out->has_value())
        std::abort();
    }
    best = std::min(best, std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / n);
  }
  owned.close_and_shutdown_all();
  return best;
}

// ns per allocation + free of `size` bytes, plus two uncontended atomic read-modify-writes on
// a word in it (as a reference count would), best of `reps` runs. align == 0: plain malloc;
// otherwise the over-aligned operator new that task cells use.
double measure_floor(std::size_t size, std::size_t align, int n, int reps) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = clock_type::now();
    for (int i = 0; i < n; ++i) {
      void* p = align ? ::operator new(size, std::align_val_t(align)) : std::malloc(size);
      keep(p);
      auto* word = ::new (p) std::atomic<std::uintptr_t>(204);
      word->fetch_add(64, std::memory_order_relaxed);
      word->fetch_sub(64, std::memory_order_acq_rel);
      keep(p);
      if (align)
        ::operator delete(p, std::align_val_t(align));
      else
        std::free(p);
    }
    best = std::min(best, std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / n);
  }
  return best;
}

} // namespace

int main(int argc, char** argv) {
  const long requested = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 100000;
  if (requested <= 0 || requested > 50'000'000) {
    std::fprintf(stderr, "usage: %s [number of tasks, 1..50000000]\n", argv[0]);
    return 2;
  }
  const auto n = static_cast<std::uint32_t>(requested);
  constexpr unsigned workers = 2;

  // ---- Part 2 first, on a fresh heap
  constexpr int iterations = 200000, reps = 7;
  using layout = sd::cell_layout<empty_task, inline_scheduler>;
  const double task_ns = measure_spawn_run_join(iterations, reps);
  const double floor_ns = measure_floor(layout::size, 0, iterations, reps);
  const double aligned_ns = measure_floor(layout::size, layout::alignment, iterations, reps);

  std::printf("swarm demo: the task layer, driven by a demo harness\n");
  std::printf("  (a 2-worker FIFO executor written for this demo; not swarm's scheduler, which is not built yet)\n\n");

  // ---- Part 1
  std::uint64_t completed = 0, cancelled = 0, panicked = 0, wrong = 0, aborts = 0, abort_lost = 0;
  std::uint64_t cancelled_unaborted = 0;
  std::atomic<std::uint64_t> wakes{0};
  double spawn_ms = 0, total_ms = 0;
  {
    thread_parker parker; // outlives the executor: tasks may hold its waker until they go
    mailbox box;
    std::thread waker_thread([&] { box.run_waker_thread(wakes); });
    {
      demo_harness::executor ex(workers);
      std::vector<sd::raw_join_handle<std::uint32_t>> handles;
      handles.reserve(n);
      const auto t0 = clock_type::now();
      for (std::uint32_t i = 0; i < n; ++i) {
        handles.push_back(ex.spawn(demo_task{i, &box}));
        if (i % 10 == 0) {
          handles.back().abort();
          ++aborts;
        }
      }
      spawn_ms = ms_since(t0);
      for (std::uint32_t i = 0; i < n; ++i) {
        for (;;) {
          auto out = handles[i].poll(parker.get());
          if (!out) {
            parker.park();
            continue;
          }
          if (out->has_value()) {
            ++completed;
            wrong += out->value() != i;
            abort_lost += i % 10 == 0;
          } else if (out->error().is_cancelled()) {
            ++cancelled;
            cancelled_unaborted += i % 10 != 0;
          } else {
            ++panicked;
          }
          break;
        }
        handles[i].reset();
      }
      total_ms = ms_since(t0);
      box.stop();
      waker_thread.join();
    } // the executor shuts down: every worker stops
  }

  // Indices 999, 1999, ... throw; none of them is aborted (they are not multiples of 10).
  const std::uint64_t expected_panics = n / 1000;
  std::printf("Part 1: %u tasks on %u worker threads, woken from a third thread\n", n, workers);
  std::printf("  each task parks on its first poll (posting its waker to a mailbox), is woken from\n");
  std::printf("  another thread, and returns its index on its second poll; 1 in 1000 throws instead.\n");
  std::printf("  every 10th task is aborted right after it is spawned (%llu aborts).\n\n",
              static_cast<unsigned long long>(aborts));
  std::printf("  completed   %8llu   (value checked: %llu wrong)\n", static_cast<unsigned long long>(completed),
              static_cast<unsigned long long>(wrong));
  std::printf("  cancelled   %8llu   (aborted before they could finish; %llu aborts lost the race to\n"
              "                          completion, which keeps the value)\n",
              static_cast<unsigned long long>(cancelled), static_cast<unsigned long long>(abort_lost));
  std::printf("  panicked    %8llu   (exception from the task, delivered through its join handle)\n",
              static_cast<unsigned long long>(panicked));
  std::printf("  joined      %8llu of %u\n", static_cast<unsigned long long>(completed + cancelled + panicked), n);
  std::printf("  wakes sent  %8llu   from the waking thread\n", static_cast<unsigned long long>(wakes.load()));
  std::printf("  spawn %.1f ms, spawn to last join %.1f ms (%.0f ns per task, wall clock, %u cores)\n\n", spawn_ms,
              total_ms, total_ms * 1e6 / n, std::thread::hardware_concurrency());

  // ---- Part 2
  std::printf("Part 2: one thread, best of %d runs of %d (measured before part 1)\n", reps, iterations);
  std::printf("  spawn + run + join of an empty task               %6.1f ns\n", task_ns);
  std::printf("    (owned_tasks bind, assert_owner, run, join-handle poll, drops: the whole task layer)\n");
  std::printf("  floor: malloc/free of %zu bytes (the cell size)\n", layout::size);
  std::printf("         + 2 uncontended atomic read-modify-writes     %6.1f ns   (task / floor: %.1fx)\n", floor_ns,
              task_ns / floor_ns);
  std::printf("  the cell's real allocation: new/delete of %zu bytes\n", layout::size);
  std::printf("         aligned to %zu, + the same 2 atomics           %6.1f ns\n", layout::alignment, aligned_ns);

  const bool ok = completed + cancelled + panicked == n && wrong == 0 && cancelled + abort_lost == aborts &&
                  cancelled_unaborted == 0 && panicked == expected_panics;
  if (!ok) {
    std::printf("\nFAILED: the counts do not add up\n");
    return 1;
  }
  return 0;
}
