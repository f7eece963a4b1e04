// swarm::coro<T>: a coroutine that runs as a swarm task without asio::co_spawn.
//
//   swarm::coro<int> child(int x) { co_return x * 2; }
//   swarm::coro<void> parent(tcp::socket s) {
//     auto h = swarm::spawn(ex, child(21));             // a task: join_handle<int>
//     int v = co_await h;                                // Tokio's JoinHandle await
//     co_await swarm::yield_now();
//     std::size_t n = co_await s.async_read_some(buf, swarm::use_coro);  // any Asio operation
//     int w = co_await child(1);                         // a nested coroutine, same task
//     co_await some_awaitable();                         // an asio::awaitable, as a child
//   }
//
// The same program written with asio::awaitable and use_awaitable works unchanged on
// swarm; coro is the faster path: its frames are the task's (no co_spawn entry, no
// awaitable_thread, no type-erased handler per await), a join is awaited through the
// task's waker, and a yield is one deferral of the task.
//
// Inside a coro, awaitable things are: swarm::coro<U> (a nested frame, run in place),
// join_handle<U> (the child's value; its failure as join_error; see the handle's thread
// rules), yield_now(), any Asio operation given swarm::use_coro (its completion mapped as
// use_awaitable maps it: a set error_code or exception_ptr throws), asio::awaitable<U>
// (co_spawned onto the task's executor and awaited as an operation), and
// asio::this_coro::executor (the task's executor). After the task was aborted every await
// throws system_error(operation_aborted), as Asio's coroutines do after cancellation.
#pragma once

#include <swarm/asio/coro_frame.hpp>
#include <swarm/asio/task_executor.hpp>
#include <swarm/join_handle.hpp>
#include <swarm/yield_now.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include <coroutine>
#include <optional>
#include <type_traits>
#include <utility>

namespace swarm {

// The completion token of an Asio operation awaited inside a swarm::coro.
struct use_coro_t {
  constexpr use_coro_t() noexcept = default;
};
inline constexpr use_coro_t use_coro;

template <class T = void>
class coro;

namespace detail {

template <class T>
struct is_coro : std::false_type {};
template <class T>
struct is_coro<coro<T>> : std::true_type {};

template <class T>
struct coro_value_storage {
  std::optional<T> value;
  template <class U = T>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
};
template <>
struct coro_value_storage<void> {
  void return_void() noexcept {}
};

// co_await of a nested coro: the child runs in this task, then resumes its awaiter.
template <class T>
class nested_coro_awaiter {
public:
  using handle_type = typename coro<T>::handle_type;
  explicit nested_coro_awaiter(handle_type h) noexcept : child_(h) {}
  nested_coro_awaiter(nested_coro_awaiter&& o) noexcept : child_(std::exchange(o.child_, {})) {}
  ~nested_coro_awaiter() {
    if (child_)
      child_.destroy();
  }

  bool await_ready() const noexcept { return false; }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    child_.promise().root = h.promise().root;
    child_.promise().continuation = h;
    return child_;
  }
  T await_resume() {
    auto& p = child_.promise();
    if (p.error)
      std::rethrow_exception(p.error);
    if constexpr (!std::is_void_v<T>)
      return std::move(*p.value);
  }

private:
  handle_type child_;
};

// co_await of a join handle (or of its async_wait(use_coro)): Tokio's JoinHandle poll with
// the task's waker. A handle that was waited on with a handler before (async_wait with
// another token) goes through async_wait(use_coro) instead, started directly.
template <class T>
class join_awaiter {
  using V = stored_t<T>;
  using fallback_type = decltype(std::declval<join_handle<T>&>().async_wait(use_coro));

public:
  explicit join_awaiter(join_handle<T>& h) noexcept : h_(h) {}

  bool await_ready() const noexcept { return false; }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> frame) {
    coro_root* root = frame.promise().root;
    if (root->abort_requested()) {
      aborted_ = true;
      return false;
    }
    if (!join_handle_access::pollable(h_)) {
      fallback_.emplace(h_.async_wait(use_coro));
      return fallback_->await_suspend(frame);
    }
    if (poll(*root->poll_waker))
      return false;
    root->wait_on_leaf(frame, this, &poll_leaf);
    return true;
  }

  T await_resume() {
    if (fallback_)
      return fallback_->await_resume();
    if (!result_) // resumed by an abort
      throw_aborted();
    if (result_->first)
      std::rethrow_exception(result_->first);
    if constexpr (!std::is_void_v<T>)
      return std::move(result_->second);
  }

private:
  bool poll(const waker& w) {
    if (aborted_)
      return true;
    result_ = join_handle_access::poll(h_, w);
    return result_.has_value();
  }
  static bool poll_leaf(void* self, const waker& w) { return static_cast<join_awaiter*>(self)->poll(w); }

  join_handle<T>& h_;
  std::optional<std::pair<std::exception_ptr, V>> result_;
  std::optional<fallback_type> fallback_;
  bool aborted_ = false;
};

// co_await yield_now() inside a coro: the task is deferred until its worker has polled the
// driver, as Tokio's yield_now.
struct yield_awaiter {
  bool aborted = false;

  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> frame) noexcept {
    coro_root* root = frame.promise().root;
    if (root->abort_requested()) {
      aborted = true;
      return false;
    }
    if (drain_scope* d = drain_scope::current())
      d->yield_requested = true; // the poll defers the task instead of draining
    root->wait_on_leaf(frame, this, [](void*, const waker&) { return true; });
    return true;
  }
  void await_resume() const {
    if (aborted)
      throw_aborted();
  }
};

// asio::this_coro::executor: the task's executor.
struct executor_awaiter {
  boost::asio::any_io_executor ex;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  boost::asio::any_io_executor await_resume() { return std::move(ex); }
};

template <class T>
struct coro_promise : coro_promise_base, coro_value_storage<T> {
  coro<T> get_return_object() noexcept;

  template <class U>
  nested_coro_awaiter<U> await_transform(coro<U>&& c) noexcept {
    return nested_coro_awaiter<U>(std::move(c).release());
  }
  template <class U>
  join_awaiter<U> await_transform(join_handle<U>& h) noexcept {
    return join_awaiter<U>(h);
  }
  template <class U>
  join_awaiter<U> await_transform(join_handle<U>&& h) noexcept {
    return join_awaiter<U>(h);
  }
  // h.async_wait(use_coro) is awaited as `co_await h`: a poll of the handle with the task's
  // waker, not a handler hopping back. The same cancellation (the task's abort) and the
  // same value; a handle already waited on with a handler still takes that path.
  template <class U, class... S>
  join_awaiter<U> await_transform(op_awaiter<join_wait_initiation<U>, std::tuple<>, S...>&& a) noexcept {
    return join_awaiter<U>(a.initiation().handle());
  }
  yield_awaiter await_transform(yield_now_op) const noexcept { return {}; }
  executor_awaiter await_transform(boost::asio::this_coro::executor_t) const {
    return {boost::asio::any_io_executor(task_executor(root->core, root->task))};
  }
  // An Asio coroutine runs as a child on the task's executor, serialised with this frame.
  template <class U, class E>
  auto await_transform(boost::asio::awaitable<U, E> a) const {
    return boost::asio::co_spawn(E(task_executor(root->core, root->task)), std::move(a), use_coro);
  }
  // An Asio operation's awaiter (from use_coro), passed through.
  template <class I, class A, class... S>
  op_awaiter<I, A, S...>&& await_transform(op_awaiter<I, A, S...>&& a) const noexcept {
    return std::move(a);
  }
};

} // namespace detail

// A lazily started coroutine. Move-only; destroying one that never ran destroys its frame.
// Run it by spawning it (swarm::spawn) or by co_await from another coro.
template <class T>
class [[nodiscard]] coro {
public:
  using value_type = T;
  using promise_type = detail::coro_promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;

  coro() noexcept = default;
  explicit coro(handle_type h) noexcept : h_(h) {}
  coro(coro&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  coro& operator=(coro&& o) noexcept {
    if (this != &o) {
      if (h_)
        h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~coro() {
    if (h_)
      h_.destroy();
  }

  explicit operator bool() const noexcept { return static_cast<bool>(h_); }

  // Gives up the frame.
  handle_type release() && noexcept { return std::exchange(h_, {}); }

private:
  handle_type h_;
};

template <class T>
coro<T> detail::coro_promise<T>::get_return_object() noexcept {
  return coro<T>(coro<T>::handle_type::from_promise(*this));
}

} // namespace swarm

template <class... Args>
struct boost::asio::async_result<swarm::use_coro_t, void(Args...)> {
  template <class Initiation, class... InitArgs>
  static auto initiate(Initiation&& init, swarm::use_coro_t, InitArgs&&... args) {
    return swarm::detail::op_awaiter<std::decay_t<Initiation>, std::tuple<std::decay_t<InitArgs>...>, Args...>(
        std::forward<Initiation>(init), std::forward<InitArgs>(args)...);
  }
};
