// The lists of tasks a scheduler owns: every spawned task is bound to one until it
// completes, so that shutdown can find and cancel the tasks still alive.
//
// owned_tasks is shared by all workers and sharded by task id; local_owned_tasks serves a
// single thread and takes no locks.
#pragma once

#include <swarm/detail/assert.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/task/new_task.hpp>
#include <swarm/task/spin_lock.hpp>

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

namespace swarm::detail {

// A process-wide, non-zero id for each list, stored in the header of each task bound to it.
SWARM_DECL std::uint64_t next_owner_id() noexcept;

// An intrusive doubly-linked list through the trailer's owned links. Not synchronised.
class owned_list {
public:
  bool empty() const noexcept { return head_ == nullptr; }

  void push_front(header* h) noexcept {
    trailer& t = get_trailer(h);
    t.owned_prev = nullptr;
    t.owned_next = head_;
    if (head_)
      get_trailer(head_).owned_prev = h;
    else
      tail_ = h;
    head_ = h;
  }

  header* pop_back() noexcept {
    header* h = tail_;
    if (h)
      unlink(h);
    return h;
  }

  // Precondition: h is in this list.
  void unlink(header* h) noexcept {
    trailer& t = get_trailer(h);
    if (t.owned_prev)
      get_trailer(t.owned_prev).owned_next = t.owned_next;
    else
      head_ = t.owned_next;
    if (t.owned_next)
      get_trailer(t.owned_next).owned_prev = t.owned_prev;
    else
      tail_ = t.owned_prev;
    t.owned_prev = t.owned_next = nullptr;
  }

  // Calls fn(header*) for each linked task, newest first. fn must not change the list.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (header* h = head_; h; h = get_trailer(h).owned_next)
      fn(h);
  }

  // Whether h is linked into this list. A task is linked iff it has a neighbour or is the
  // head (links are cleared on unlink).
  bool contains(header* h) noexcept {
    const trailer& t = get_trailer(h);
    return t.owned_prev || t.owned_next || head_ == h;
  }

private:
  header* head_ = nullptr;
  header* tail_ = nullptr;
};

// The default of bind's before_publish: nothing to finish.
struct no_before_publish {
  void operator()(header*) const noexcept {}
};

template <class F, class S>
struct bind_result {
  raw_join_handle<typename F::output_type> join;
  // Empty when the list was closed: the task was cancelled on the spot and the handle
  // resolves as cancelled.
  std::optional<notified<S>> first;
};

// Shared by the workers of one runtime. Binding and removing lock one shard, chosen by the
// low bits of the task id, so that both find the same shard.
template <class S>
class owned_tasks {
public:
  // Tokio's shard count: four per worker, rounded up to a power of two, at most 65536.
  static std::size_t shard_count_for(std::size_t workers) noexcept {
    const std::size_t n = std::bit_ceil(workers == 0      ? std::size_t{1}
                                        : workers > 16384 ? std::size_t{16384}
                                                          : workers) *
                          4;
    return n > 65536 ? 65536 : n;
  }

  explicit owned_tasks(std::size_t workers)
      : shard_mask_(shard_count_for(workers) - 1), shards_(new shard[shard_mask_ + 1]), id_(next_owner_id()) {
  }

  owned_tasks(const owned_tasks&) = delete;
  owned_tasks& operator=(const owned_tasks&) = delete;
  ~owned_tasks() { SWARM_ASSERT(is_empty()); }

  std::uint64_t id() const noexcept { return id_; }
  std::size_t shard_count() const noexcept { return shard_mask_ + 1; }

  // Creates a task and binds it to this list. If the list is closed, the task is cancelled
  // before it ever runs and only the join handle is returned.
  // The task's own scheduler type S2 may differ from S (a runtime layer may store more per
  // task); the list only holds headers. `before_publish(header*)` finishes the task while
  // this thread alone can reach it: once linked, a shutdown on another thread may cancel it.
  // `extra`, if given, puts a task_extra in the task's cell (tracking.hpp).
  template <future F, task_scheduler S2 = S, class Init = no_before_publish>
  bind_result<F, S2> bind(F f, S2 s, task_id id,
                          std::source_location location = std::source_location::current(),
                          const task_hook* on_terminate = nullptr, Init&& before_publish = {},
                          const task_extra_request* extra = nullptr) {
    new_task_result<F, S2> t = new_task(std::move(f), std::move(s), id, location, on_terminate, extra);
    // Exclusive: the task is not yet published.
    t.owned.get()->owner_id = id_;
    before_publish(t.owned.get());
    shard& sh = shard_for(id);
    {
      std::unique_lock lock(sh.mutex);
      // Checked under the shard lock: the closer sets `closed_` before it drains each
      // shard, so either we see it here, or it will find the task when it drains.
      // Acquire pairs with the release in close_and_shutdown_all.
      if (closed_.load(std::memory_order_acquire)) {
        lock.unlock();
        std::move(t.owned).shutdown(); // cancels the never-run future right here
        return {std::move(t.join), std::nullopt};
      }
      sh.list.push_front(t.owned.release()); // the list keeps the task's reference
      sh.added.bump(1);
      sh.count.bump(1);
    }
    return {std::move(t.join), std::move(t.first)};
  }

  // Unlinks the task and hands back the list's reference; empty if the task is in no list
  // or was already popped by shutdown.
  task<S> remove(raw_task t) noexcept {
    header* h = t.get();
    if (h->owner_id == 0)
      return {};
    SWARM_ASSERT(h->owner_id == id_);
    shard& sh = shard_for(t.id());
    std::lock_guard lock(sh.mutex);
    if (!sh.list.contains(h))
      return {};
    sh.list.unlink(h);
    sh.count.bump(-1);
    return task<S>(h);
  }

  // Checks that a notified task belongs to this list before it is polled here. Jobs
  // (job_owner_id) belong to no list and pass.
  local_notified<S> assert_owner(notified<S> n) {
    if (n.get()->owner_id != id_ && n.get()->owner_id != job_owner_id)
      throw std::logic_error("swarm: a task was scheduled on a runtime that does not own it");
    return local_notified<S>(std::move(n));
  }

  // Closes the list, then cancels every task in it, shard by shard from `start`. Several
  // workers may call this at once; each pops disjoint tasks.
  void close_and_shutdown_all(std::size_t start = 0) {
    // Release: pairs with the acquire in bind.
    closed_.store(true, std::memory_order_release);
    for (std::size_t i = start; i < start + shard_count(); ++i) {
      shard& sh = shards_[i & shard_mask_];
      for (;;) {
        header* h;
        {
          std::lock_guard lock(sh.mutex);
          h = sh.list.pop_back();
          if (h)
            sh.count.bump(-1);
        }
        if (!h)
          break;
        // Outside the lock: the task's destructors may spawn or complete other tasks.
        task<S>(h).shutdown();
      }
    }
  }

  // Calls fn(header*) for every linked task, one shard at a time with that shard's lock
  // held: the list's reference keeps each cell alive for the call, so fn may read its
  // header, identity and state word, but must be short (binds and removes on the shard
  // wait), must not block, and must not reach the list.
  template <class Fn>
  void for_each_linked(Fn&& fn) {
    for (std::size_t i = 0; i < shard_count(); ++i) {
      std::lock_guard lock(shards_[i].mutex);
      shards_[i].list.for_each(fn);
    }
  }

  // Calls fn(header*) for the linked task with this id, under its shard's lock, as
  // for_each_linked does. Returns whether there was one. Walks one shard.
  template <class Fn>
  bool with_linked(task_id id, Fn&& fn) {
    shard& sh = shard_for(id);
    std::lock_guard lock(sh.mutex);
    bool found = false;
    sh.list.for_each([&](header* h) {
      if (!found && get_id(h) == id) {
        found = true;
        fn(h);
      }
    });
    return found;
  }

  bool is_closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  // Sums over the shards, without locking: a snapshot that may be off by the binds and
  // removes in flight.
  std::size_t num_alive_tasks() const noexcept {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < shard_count(); ++i)
      n += shards_[i].count.get();
    return static_cast<std::size_t>(n);
  }
  std::uint64_t spawned_tasks_count() const noexcept {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < shard_count(); ++i)
      n += shards_[i].added.get();
    return n;
  }

  bool is_empty() noexcept {
    for (std::size_t i = 0; i < shard_count(); ++i) {
      std::lock_guard lock(shards_[i].mutex);
      if (!shards_[i].list.empty())
        return false;
    }
    return true;
  }

private:
  // A counter written only under its shard's lock and read without it: a relaxed load
  // and store instead of a read-modify-write, and no line shared between shards (a
  // runtime-wide atomic counter here cost two contended RMWs per task; doc/design.md
  // "Performance work").
  class shard_counter {
  public:
    void bump(std::int64_t d) noexcept {
      v_.store(v_.load(std::memory_order_relaxed) + static_cast<std::uint64_t>(d), std::memory_order_relaxed);
    }
    std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

  private:
    std::atomic<std::uint64_t> v_{0};
  };

  // The lock guards a few pointer stores (link, unlink, pop): a spin lock, as the critical
  // sections are shorter than a futex call (doc/design.md "Performance work").
  struct alignas(cache_line) shard {
    spin_lock mutex;
    owned_list list;
    shard_counter count; // tasks linked here
    shard_counter added; // tasks ever linked here
  };

  shard& shard_for(task_id id) noexcept { return shards_[id.value() & shard_mask_]; }

  const std::size_t shard_mask_;
  std::unique_ptr<shard[]> shards_;
  const std::uint64_t id_;
  std::atomic<bool> closed_{false};
};

// The single-threaded variant: one list, no locks. Every task must be polled and destroyed
// on the thread that owns the list; assert_owner enforces the owner id.
template <class S>
class local_owned_tasks {
public:
  local_owned_tasks() : id_(next_owner_id()), thread_(std::this_thread::get_id()) {}
  local_owned_tasks(const local_owned_tasks&) = delete;
  local_owned_tasks& operator=(const local_owned_tasks&) = delete;
  ~local_owned_tasks() { SWARM_ASSERT(list_.empty()); }

  std::uint64_t id() const noexcept { return id_; }

  template <future F>
  bind_result<F, S> bind(F f, S s, task_id id,
                         std::source_location location = std::source_location::current(),
                         const task_hook* on_terminate = nullptr) {
    assert_thread();
    new_task_result<F, S> t = new_task(std::move(f), std::move(s), id, location, on_terminate);
    t.owned.get()->owner_id = id_;
    if (closed_) {
      std::move(t.owned).shutdown();
      return {std::move(t.join), std::nullopt};
    }
    list_.push_front(t.owned.release());
    ++count_;
    ++added_;
    return {std::move(t.join), std::move(t.first)};
  }

  task<S> remove(raw_task t) noexcept {
    header* h = t.get();
    if (h->owner_id == 0)
      return {};
    SWARM_ASSERT(h->owner_id == id_);
    if (!list_.contains(h))
      return {};
    list_.unlink(h);
    --count_;
    return task<S>(h);
  }

  // A hard check: it is what guarantees that thread-bound futures are polled here.
  local_notified<S> assert_owner(notified<S> n) {
    if (n.get()->owner_id != id_ && n.get()->owner_id != job_owner_id)
      throw std::logic_error("swarm: a task was scheduled on a runtime that does not own it");
    return local_notified<S>(std::move(n));
  }

  void close_and_shutdown_all() {
    assert_thread();
    closed_ = true;
    while (header* h = list_.pop_back()) {
      --count_;
      task<S>(h).shutdown();
    }
  }

  bool is_closed() const noexcept { return closed_; }
  bool is_empty() const noexcept { return list_.empty(); }
  std::size_t num_alive_tasks() const noexcept { return count_; }
  std::uint64_t spawned_tasks_count() const noexcept { return added_; }

private:
  void assert_thread() const {
    if (std::this_thread::get_id() != thread_)
      throw std::logic_error("swarm: a thread-local task list was used from another thread");
  }

  owned_list list_;
  const std::uint64_t id_;
  const std::thread::id thread_;
  bool closed_ = false;
  std::size_t count_ = 0;
  std::uint64_t added_ = 0;
};

} // namespace swarm::detail
