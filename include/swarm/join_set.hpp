// join_set<T>: a set of tasks whose results are taken in the order the tasks finish, as
// Tokio's JoinSet.
//
//   swarm::join_set<int> set;
//   for (int i = 0; i < n; ++i)
//     set.spawn(ex, work(i));
//   while (!set.empty())
//     int v = co_await set.async_join_next(asio::use_awaitable); // next to finish
//
// Contract:
//   - spawn(ex, aw) / spawn(ex, c) / spawn(ex, f) / spawn_blocking(ex, f) spawn as swarm::spawn and
//     swarm::spawn_blocking do and return the task's abort_handle.
//   - async_join_next(token): signature void(std::exception_ptr, T) (void(std::exception_ptr)
//     for T = void). Completes with the next task to finish: its value, or a join_error
//     when it was aborted or threw. On an empty set it completes with std::logic_error
//     ("swarm::join_set: join_set is empty") as the exception.
//   - One wait at a time: a new async_join_next completes the pending one with
//     system_error(operation_aborted).
//   - Cancel-safe: a wait cancelled through its token's cancellation slot (any cancellation
//     type) completes with operation_aborted, and no result is lost: a result is only
//     consumed by the handler that actually receives it. A cancellation that arrives after
//     a result was picked for the wait, but before its handler ran, still wins: the result
//     goes back to the front of the set.
//   - size() counts the tasks not yet joined (Tokio's len); abort_all() aborts them all
//     (they are still joined, as cancelled or with their value if they finished first);
//     detach_all() lets them run on, outside the set; destruction aborts them.
//   - One owner at a time, as Tokio's (&mut self): the set's own members must not be called
//     concurrently. Tasks finish, and waits are cancelled, on any thread.
//   - Every task of a set belongs to one runtime. It must outlive every spawn and wait on
//     the set; the set itself may be destroyed after the runtime (its tasks all ended then).
//   - Completions are never run inside the initiating call: they go through the runtime
//     (a job) and then to the handler's associated executor. With asio::use_awaitable and
//     T not void, co_await the token's result (`co_await set.async_join_next(use_awaitable)`);
//     Boost 1.81 cannot co_await the bare operation (chriskohlhoff/asio#1172; boost_shim.hpp).
//
// How it works: each task's raw join handle moves into an entry of the set, and a join
// waker pointing at the entry is registered in the task. When the task completes, the
// waker moves the entry from the idle list to the ready list and, if a wait is pending,
// picks the first ready entry for it. Entries and the shared state are reference counted:
// a waker clone in a task holds its entry, an entry holds the state, so a completion that
// races the set's destruction touches only memory it keeps alive.
#pragma once

#include <swarm/abort_handle.hpp>
#include <swarm/asio/completion_delivery.hpp>
#include <swarm/asio/task.hpp>
#include <swarm/join_handle.hpp>
#include <swarm/runtime.hpp>
#include <swarm/spawn.hpp>
#include <swarm/task/join.hpp>
#include <swarm/task/waker.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/system_error.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace swarm {
namespace detail {

inline std::exception_ptr join_set_empty_error() {
  return std::make_exception_ptr(std::logic_error("swarm::join_set: join_set is empty"));
}

inline std::exception_ptr join_set_aborted_error() {
  return std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted));
}

// The state shared by a join_set, its entries, their wakers, queued deliveries and the
// cancellation handlers installed in waits' slots. Every member marked "under mutex_" is
// only touched with mutex_ held; mutex_ is a leaf lock: nothing that can call back into the
// set (task aborts, wakers, runtime posts, handlers, destructors of user types) runs under
// it.
template <class T>
class join_set_state : public shared_completion_state<join_set_state<T>> {
public:
  using V = stored_t<T>;
  using output = task_output<V>;
  using raw_handle = raw_join_handle<output>;
  using handler_type = join_handler<T>;

  // One task of the set. References (completion_delivery.hpp): one for whoever holds the
  // entry (a list of the set, or the delivery it was picked for), one per join waker clone
  // registered in the task. The last one deletes the entry (raw is empty by then, or its
  // task never had our waker), then gives back the entry's reference to the set.
  struct entry : shared_completion_state<entry> {
    counted_ref<join_set_state> set; // declared first: released after raw
    raw_handle raw;                  // owned by the entry's holder; emptied before the last release
    entry* prev = nullptr;
    entry* next = nullptr;
    enum class where : unsigned char { none, idle, ready } list = where::none; // under set->mutex_

    entry(join_set_state* s, raw_handle r) noexcept
        : set(counted_ref<join_set_state>::share(s)), raw(std::move(r)) {}
    // The join waker fired.
    void on_wake() { wake_entry(this); }
    // Lets the task go (it keeps running unless aborted) and gives up the holder's reference.
    void detach() noexcept {
      raw.reset();
      this->unref();
    }
  };

  explicit join_set_state(detail::context_core* core) noexcept : core_(core) {}
  join_set_state(const join_set_state&) = delete;
  join_set_state& operator=(const join_set_state&) = delete;

  detail::context_core* core() const noexcept { return core_; }

  // ---- The owner's operations ----

  abort_handle add(raw_handle raw) {
    abort_handle ah = raw.get_abort_handle();
    entry* e = new entry(this, std::move(raw));
    e->ref(); // ours, for the registration below (a delivery may take the entry meanwhile)
    {
      std::lock_guard lock(mutex_);
      idle_.push_back(e, entry::where::idle);
      ++count_;
    }
    // Outside the lock: if the task already completed, set_join_waker wakes inline. Once
    // registered, the waker may fire on any thread; the entry is in the idle list by then.
    // The abort handle keeps the task cell alive across the call.
    waker w = e->borrowed_waker();
    e->raw.set_join_waker(w);
    w.forget(); // borrowed: the task took a clone
    e->unref();
    return ah;
  }

  void start_join(handler_type h) {
    const std::uint64_t gen = ++owner_gen_;
    // Installed before the wait becomes visible to completers, as Asio's own operations do;
    // a cancellation for a wait that is no longer current is ignored.
    boost::asio::cancellation_slot slot = boost::asio::get_associated_cancellation_slot(h);
    if (slot.is_connected())
      slot.template emplace<cancel_join>(counted_ref<join_set_state>::share(this), gen);
    std::optional<handler_type> superseded;
    std::optional<delivery> picked;
    bool empty = false;
    {
      std::lock_guard lock(mutex_);
      active_gen_ = gen;
      active_cancelled_ = false;
      superseded = take_pending();
      if (count_ == 0) {
        empty = true;
      } else {
        pending_.emplace(std::move(h));
        pick_for_pending(picked);
      }
    }
    if (superseded)
      post_completion(std::move(*superseded), join_set_aborted_error());
    if (empty)
      post_completion(std::move(h), join_set_empty_error());
    if (picked)
      post_delivery(std::move(*picked));
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return count_;
  }

  void abort_all() {
    std::vector<abort_handle> handles;
    {
      std::lock_guard lock(mutex_);
      handles.reserve(idle_.size);
      for (entry* e = idle_.head; e; e = e->next)
        if (!e->raw.is_finished())
          handles.push_back(e->raw.get_abort_handle());
    }
    // Outside the lock: an abort may schedule the task, which may complete on another
    // thread and wake us.
    for (abort_handle& a : handles)
      a.abort();
  }

  // Removes every task from the set: aborted (destruction) or left running (detach_all).
  // A pending wait completes with operation_aborted (destruction) or "empty" (detach_all).
  void remove_all(bool abort, bool closing) {
    std::vector<entry*> running; // not finished when we looked
    std::vector<entry*> finished;
    std::optional<handler_type> pending;
    {
      std::lock_guard lock(mutex_);
      if (closing)
        closed_ = true;
      pending = take_pending();
      running.reserve(idle_.size);
      finished.reserve(ready_.size);
      while (entry* e = idle_.pop_front())
        running.push_back(e);
      while (entry* e = ready_.pop_front())
        finished.push_back(e);
      count_ -= running.size() + finished.size(); // what is left is a delivery in flight
    }
    for (entry* e : running) {
      // A finished task needs no abort. (After the runtime was destroyed every task is
      // finished: the set may then still be destroyed, without touching the runtime.)
      if (abort && !e->raw.is_finished())
        e->raw.abort();
      e->detach();
    }
    for (entry* e : finished)
      e->detach();
    if (pending)
      post_completion(std::move(*pending), closing ? join_set_aborted_error() : join_set_empty_error());
  }

private:
  // An intrusive FIFO list of entries.
  struct entry_list {
    entry* head = nullptr;
    entry* tail = nullptr;
    std::size_t size = 0;

    void push_back(entry* e, typename entry::where w) noexcept {
      e->prev = tail;
      e->next = nullptr;
      (tail ? tail->next : head) = e;
      tail = e;
      e->list = w;
      ++size;
    }
    void push_front(entry* e, typename entry::where w) noexcept {
      e->prev = nullptr;
      e->next = head;
      (head ? head->prev : tail) = e;
      head = e;
      e->list = w;
      ++size;
    }
    void unlink(entry* e) noexcept {
      (e->prev ? e->prev->next : head) = e->next;
      (e->next ? e->next->prev : tail) = e->prev;
      e->prev = e->next = nullptr;
      e->list = entry::where::none;
      --size;
    }
    entry* pop_front() noexcept {
      entry* e = head;
      if (e)
        unlink(e);
      return e;
    }
  };

  // A ready entry picked for a wait. Runs on the handler's executor, where it decides: if
  // the wait is still current and was not cancelled meanwhile, the handler receives the
  // entry's result; otherwise the entry goes back to the front of the ready list and the
  // handler receives operation_aborted. Destroyed without running (its executor dropped
  // it), it puts the entry back.
  struct delivery {
    counted_ref<join_set_state> s;
    entry* e; // the list's reference, moved here
    handler_type h;
    std::uint64_t gen;

    delivery(join_set_state* st, entry* en, handler_type hh, std::uint64_t g) noexcept
        : s(counted_ref<join_set_state>::share(st)), e(en), h(std::move(hh)), gen(g) {}
    delivery(delivery&& o) noexcept
        : s(std::move(o.s)), e(std::exchange(o.e, nullptr)), h(std::move(o.h)), gen(o.gen) {}
    delivery& operator=(delivery&&) = delete;
    ~delivery() {
      if (e)
        s->give_back(std::exchange(e, nullptr));
    }

    auto executor() const { return handler_executor(h, s->core()); }

    void operator()() {
      handler_type hh = std::move(h);
      entry* en = std::exchange(e, nullptr);
      bool revoked = false;
      bool closed = false;
      std::optional<delivery> next;
      {
        std::lock_guard lock(s->mutex_);
        closed = s->closed_;
        revoked = closed || gen != s->active_gen_ || s->active_cancelled_;
        if (!revoked)
          --s->count_;
        else if (!closed)
          s->put_back(en, next);
      }
      if (!revoked) {
        // complete is set (the waker only moves finished tasks to the ready list): the
        // poll returns the outcome and registers nothing.
        waker w = en->borrowed_waker();
        std::optional<outcome<output>> out = en->raw.poll(w);
        w.forget();
        task_id id = en->raw.id();
        en->detach();
        std::pair<std::exception_ptr, V> r =
            out ? join_result<V>(id, std::move(*out))
                : std::pair<std::exception_ptr, V>(std::make_exception_ptr(std::logic_error(
                                                       "swarm::join_set: a ready task had no output")),
                                                   V{});
        invoke_join_handler<T>(std::move(hh), std::move(r.first), std::move(r.second));
        return;
      }
      if (closed)
        en->detach();
      if (next)
        s->post_delivery(std::move(*next));
      invoke_join_handler<T>(std::move(hh), join_set_aborted_error(), V{});
    }
  };

  // Installed in a pending wait's cancellation slot. Holds a reference to the state.
  struct cancel_join {
    counted_ref<join_set_state> s;
    std::uint64_t gen;
    cancel_join(counted_ref<join_set_state> st, std::uint64_t g) noexcept : s(std::move(st)), gen(g) {}
    void operator()(boost::asio::cancellation_type type) {
      if (type == boost::asio::cancellation_type::none)
        return;
      // Cancelling a wait has no side effect on the set: honour every type.
      std::optional<handler_type> h;
      {
        std::lock_guard lock(s->mutex_);
        if (gen != s->active_gen_)
          return; // a later wait replaced this one
        h = s->take_pending();
        // If a result was already picked for this wait, its delivery sees this and gives
        // the result back.
        s->active_cancelled_ = true;
      }
      // Completed by posting, never inline in the emitter (|| emits while its group is
      // completing).
      if (h)
        s->post_completion(std::move(*h), join_set_aborted_error());
    }
  };

  // Under mutex_.
  std::optional<handler_type> take_pending() {
    std::optional<handler_type> h = std::move(pending_);
    pending_.reset();
    return h;
  }

  // Under mutex_: if a wait is pending and a result is ready, picks the first for it.
  void pick_for_pending(std::optional<delivery>& out) {
    if (!pending_ || !ready_.head)
      return;
    entry* e = ready_.pop_front();
    std::optional<handler_type> h = take_pending();
    out.emplace(this, e, std::move(*h), active_gen_);
  }

  // Under mutex_: an entry picked for a wait that did not take it returns to the front.
  void put_back(entry* e, std::optional<delivery>& out) {
    ready_.push_front(e, entry::where::ready);
    pick_for_pending(out);
  }

  // A delivery destroyed unrun: its entry returns to the set (or goes, if the set did).
  void give_back(entry* e) noexcept {
    std::optional<delivery> next;
    bool closed;
    {
      std::lock_guard lock(mutex_);
      closed = closed_;
      if (!closed)
        put_back(e, next);
    }
    if (closed)
      e->detach();
    if (next) {
      try {
        post_delivery(std::move(*next));
      } catch (...) {
        // give_back is noexcept (it runs from destructors): no caller to tell.
        detail::count_swallowed_exception();
      }
    }
  }

  void post_completion(handler_type h, std::exception_ptr e) {
    post_error_completion<T>(core_, std::move(h), std::move(e));
  }
  void post_delivery(delivery d) { core_->post_job(delivery_job(std::move(d)), false); }

  // The join waker of an entry. Runs on the thread that completes the task (any worker, a
  // blocking thread, shutdown), or inline in add() if the task was already complete.
  static void wake_entry(entry* e) {
    join_set_state* s = e->set.get();
    std::optional<delivery> picked;
    {
      std::lock_guard lock(s->mutex_);
      if (s->closed_ || e->list != entry::where::idle)
        return; // the set went, or the entry is no longer waiting
      // The entry is in the idle list, so its raw handle is still there and ours to read.
      if (!e->raw.is_finished())
        return; // spurious
      s->idle_.unlink(e);
      s->ready_.push_back(e, entry::where::ready);
      s->pick_for_pending(picked);
    }
    if (picked)
      s->post_delivery(std::move(*picked));
  }

  detail::context_core* const core_;
  mutable std::mutex mutex_;
  entry_list idle_;                     // under mutex_: tasks not finished yet
  entry_list ready_;                    // under mutex_: finished, in completion order
  std::size_t count_ = 0;               // under mutex_: idle + ready + a delivery in flight
  std::optional<handler_type> pending_; // under mutex_
  std::uint64_t active_gen_ = 0;        // under mutex_: the latest wait
  bool active_cancelled_ = false;       // under mutex_: the latest wait was cancelled
  bool closed_ = false;                 // under mutex_: the set was destroyed
  std::uint64_t owner_gen_ = 0;         // the owner's only
};

} // namespace detail

// Thread safety, as Asio's I/O objects: distinct sets are safe; one set is not: spawn,
// waits, abort_all, moves and destruction from one thread at a time.
template <class T>
class join_set {
  static_assert(
      std::is_void_v<T> || (std::is_default_constructible_v<T> && std::is_move_constructible_v<T>),
      "swarm::join_set<T> needs T default-constructible and movable (as co_spawn's void(exception_ptr, T))");
  using state_type = detail::join_set_state<T>;

public:
  using value_type = T;
  using signature = detail::join_signature<T>;

  join_set() noexcept = default;
  join_set(join_set&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  join_set& operator=(join_set&& o) noexcept {
    if (this != &o) {
      close();
      state_ = std::exchange(o.state_, nullptr);
    }
    return *this;
  }
  join_set(const join_set&) = delete;
  join_set& operator=(const join_set&) = delete;

  // Aborts every task not joined yet; a pending wait completes with operation_aborted.
  ~join_set() { close(); }

  // Spawns `aw` as swarm::spawn does; the task joins the set. Each spawn also takes
  // spawn_options (a name for dump()) before the location.
  template <class Executor, class AwEx>
  abort_handle spawn(const Executor& ex, boost::asio::awaitable<T, AwEx> aw, const spawn_options& opts,
                     std::source_location loc = std::source_location::current()) {
    state_type& s = state_for(ex);
    return s.add(swarm::spawn(ex, std::move(aw), opts, loc).release_raw());
  }
  template <class Executor, class AwEx>
  abort_handle spawn(const Executor& ex, boost::asio::awaitable<T, AwEx> aw,
                     std::source_location loc = std::source_location::current()) {
    state_type& s = state_for(ex);
    return s.add(swarm::spawn(ex, std::move(aw), loc).release_raw());
  }

  // Spawns the coroutine `c` as swarm::spawn does; the task joins the set.
  template <class Executor>
  abort_handle spawn(const Executor& ex, coro<T> c, const spawn_options& opts,
                     std::source_location loc = std::source_location::current()) {
    state_type& s = state_for(ex);
    return s.add(swarm::spawn(ex, std::move(c), opts, loc).release_raw());
  }
  template <class Executor>
  abort_handle spawn(const Executor& ex, coro<T> c,
                     std::source_location loc = std::source_location::current()) {
    state_type& s = state_for(ex);
    return s.add(swarm::spawn(ex, std::move(c), loc).release_raw());
  }

  // Spawns `f` as swarm::spawn does (f() returning awaitable<T> or coro<T>, or a callable
  // returning T).
  template <class Executor, detail::spawnable_invocable F>
  abort_handle spawn(const Executor& ex, F&& f, const spawn_options& opts,
                     std::source_location loc = std::source_location::current()) {
    return add_invocable(ex, std::forward<F>(f), loc, &opts);
  }
  template <class Executor, detail::spawnable_invocable F>
  abort_handle spawn(const Executor& ex, F&& f, std::source_location loc = std::source_location::current()) {
    return add_invocable(ex, std::forward<F>(f), loc, nullptr);
  }

  // Runs `f` on the blocking pool, as swarm::spawn_blocking does; the task joins the set.
  template <class Executor, class F>
  abort_handle spawn_blocking(const Executor& ex, F&& f,
                              std::source_location loc = std::source_location::current()) {
    static_assert(std::is_same_v<std::invoke_result_t<std::decay_t<F>&>, T>,
                  "swarm::join_set<T>::spawn_blocking: the function must return a T");
    state_type& s = state_for(ex);
    return s.add(swarm::spawn_blocking(ex, std::forward<F>(f), loc).release_raw());
  }

  // Waits for the next task to finish. See the contract at the top of this file.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(signature) CompletionToken>
  auto async_join_next(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, signature>(
        [this](auto handler) {
          detail::note_current_wait(detail::wait_kind::join_set); // for dump(), if tracked
          start_join(std::move(handler));
        },
        token);
  }

  // Aborts every task not joined yet. They stay in the set: join them to see each end.
  void abort_all() {
    if (state_)
      state_->abort_all();
  }

  // Removes every task from the set without aborting it. A pending wait completes with the
  // "empty" error.
  void detach_all() {
    if (state_)
      state_->remove_all(false, false);
  }

  // Tasks spawned and not joined yet.
  std::size_t size() const { return state_ ? state_->size() : 0; }
  bool empty() const { return size() == 0; }

private:
  template <class Executor, class F>
  abort_handle add_invocable(const Executor& ex, F&& f, std::source_location loc, const spawn_options* opts) {
    using handle_type = decltype(detail::spawn_invocable(ex, std::forward<F>(f), loc, opts));
    static_assert(std::is_same_v<typename handle_type::value_type, T>,
                  "swarm::join_set<T>::spawn: the task must produce a T");
    state_type& s = state_for(ex);
    return s.add(detail::spawn_invocable(ex, std::forward<F>(f), loc, opts).release_raw());
  }

  template <class Executor>
  state_type& state_for(const Executor& ex) {
    detail::context_core& core = detail::core_of_executor(ex);
    if (!state_)
      state_ = new state_type(&core);
    else if (state_->core() != &core)
      throw std::invalid_argument("swarm::join_set: every task of a set must belong to the same runtime");
    return *state_;
  }

  template <class Handler>
  void start_join(Handler&& handler) {
    if (!state_) {
      // Never used: no runtime to go through; the handler's own executor queues it.
      std::exception_ptr e = detail::join_set_empty_error();
      if constexpr (std::is_void_v<T>)
        boost::asio::post(boost::asio::append(std::forward<Handler>(handler), std::move(e)));
      else
        boost::asio::post(boost::asio::append(std::forward<Handler>(handler), std::move(e), T{}));
      return;
    }
    state_->start_join(typename state_type::handler_type(std::forward<Handler>(handler)));
  }

  void close() noexcept {
    if (state_type* s = std::exchange(state_, nullptr)) {
      try {
        s->remove_all(true, true);
      } catch (...) {
        // close() is noexcept (the destructor calls it): no caller to tell.
        detail::count_swallowed_exception();
      }
      s->unref();
    }
  }

  state_type* state_ = nullptr;
};

} // namespace swarm
