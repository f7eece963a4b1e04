// The frames of swarm::coro<T>, a coroutine that runs as a task without asio::co_spawn.
//
// A coroutine task is polled as any task: its future (coro_future.hpp) resumes the frames
// directly. Frames come from the per-thread cell cache, as task cells do. An await
// suspends the innermost frame and is completed in one of two ways:
//   - an Asio operation (the use_coro token): the completion handler's executor is the
//     task's (task_executor), so Asio queues the completion on the task and the task's
//     poll runs it; the handler stores the arguments and resumes the frame there. Handler
//     invocation and the frames are thus serialised, as in an Asio task, and the task's
//     abort slot serves as the handler's cancellation slot;
//   - a leaf the future polls (a join, a yield): registered in the coro_root, polled with
//     the task's waker on each poll of the task, as Tokio polls a leaf future, and its
//     frame resumed once it is ready.
// Once the task was aborted, every await throws system_error(operation_aborted) (Asio's
// throw_if_cancelled default), and a pending leaf is resumed to throw it.
#pragma once

#include <swarm/asio/task.hpp>
#include <swarm/asio/task_executor.hpp>
#include <swarm/task/cell_allocator.hpp>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace swarm::detail {

// What the frames of one coroutine task share. Lives in the task's future; frames point
// to it from their first resume.
struct coro_root {
  context_core* core = nullptr;
  header* task = nullptr;
  // The leaf the future completes: polled with the task's waker on each poll until it
  // returns true, then `waiting` resumes.
  bool (*poll_leaf)(void* leaf, const waker& w) = nullptr;
  void* leaf = nullptr;
  std::coroutine_handle<> waiting;
  // The waker of the poll that is running the frames (null between polls).
  const waker* poll_waker = nullptr;

  bool abort_requested() const noexcept {
    return task_sched::of(task).abort_requested().load(std::memory_order_acquire);
  }

  // Suspends `h` on a leaf; the future polls it from the next poll on.
  void wait_on_leaf(std::coroutine_handle<> h, void* l, bool (*poll)(void*, const waker&)) noexcept {
    waiting = h;
    leaf = l;
    poll_leaf = poll;
  }
};

[[noreturn]] inline void throw_aborted() {
  throw boost::system::system_error(boost::asio::error::operation_aborted);
}

struct coro_promise_base {
  coro_root* root = nullptr;
  std::coroutine_handle<> continuation; // the awaiting frame; null for the task's top frame
  std::exception_ptr error;

  // Frames are task-sized blocks: from the per-thread cell cache.
  static void* operator new(std::size_t n) { return allocate_cell(n, cell_block_alignment); }
  static void operator delete(void* p, std::size_t n) noexcept { deallocate_cell(p, n, cell_block_alignment); }

  std::suspend_always initial_suspend() const noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    // A nested frame hands control back to its awaiter; the top frame stops, and the
    // future sees it done.
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      if (std::coroutine_handle<> c = h.promise().continuation)
        return c;
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() const noexcept { return {}; }

  void unhandled_exception() noexcept { error = std::current_exception(); }
};

// The arguments of an Asio completion, kept in the awaiting frame until it resumes.
template <class... Args>
class op_result {
public:
  using values_type = std::tuple<std::decay_t<Args>...>;

  // Called by the handler inside the task's poll.
  template <class... A>
  void complete(A&&... a) {
    values_.emplace(std::forward<A>(a)...);
    if (!initiating_)
      waiting_.resume();
  }

  // Runs `initiate` for the frame `h`; true if the frame must stay suspended (the
  // completion comes later). An initiation may complete at once (inside the poll).
  template <class Initiate>
  bool start(std::coroutine_handle<> h, Initiate&& initiate) {
    waiting_ = h;
    initiating_ = true;
    struct reset {
      bool& flag;
      ~reset() { flag = false; }
    } guard{initiating_};
    std::forward<Initiate>(initiate)();
    return !values_.has_value();
  }

  // As use_awaitable maps a completion: a leading error_code or exception_ptr that is set
  // throws; what follows is returned (nothing, one value, or a tuple).
  auto take() {
    values_type& t = *values_;
    if constexpr (sizeof...(Args) == 0) {
      return;
    } else {
      using first = std::tuple_element_t<0, values_type>;
      if constexpr (std::is_same_v<first, boost::system::error_code>) {
        if (std::get<0>(t))
          throw boost::system::system_error(std::get<0>(t));
        return rest<1>(t);
      } else if constexpr (std::is_same_v<first, std::exception_ptr>) {
        if (std::get<0>(t))
          std::rethrow_exception(std::get<0>(t));
        return rest<1>(t);
      } else {
        return rest<0>(t);
      }
    }
  }

private:
  template <std::size_t From>
  static auto rest(values_type& t) {
    constexpr std::size_t n = std::tuple_size_v<values_type> - From;
    if constexpr (n == 0)
      return;
    else if constexpr (n == 1)
      return std::move(std::get<From>(t));
    else
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        return std::make_tuple(std::move(std::get<From + I>(t))...);
      }(std::make_index_sequence<n>{});
  }

  std::optional<values_type> values_;
  std::coroutine_handle<> waiting_;
  bool initiating_ = false;
};

// The completion handler a coroutine gives an Asio operation. Its executor is the task's,
// so it runs inside the task's poll; it holds a task reference, so the executor and slot
// it names stay valid however long the operation keeps it. Destroyed uninvoked (the
// operation was abandoned), it leaves the frame alone: the frame waits until the task is
// dropped.
template <class... Args>
class coro_handler {
public:
  using executor_type = task_executor;
  using cancellation_slot_type = boost::asio::cancellation_slot;

  coro_handler(op_result<Args...>* r, context_core* core, header* task) noexcept
      : result_(r), core_(core), task_(task) {
    task_->state.ref_inc();
  }
  coro_handler(coro_handler&& o) noexcept
      : result_(o.result_), core_(o.core_), task_(std::exchange(o.task_, nullptr)) {}
  coro_handler& operator=(coro_handler&&) = delete;
  ~coro_handler() {
    if (task_)
      raw_task(task_).drop_reference();
  }

  executor_type get_executor() const noexcept { return task_executor(core_, task_); }
  cancellation_slot_type get_cancellation_slot() const noexcept {
    return task_sched::of(task_).abort_signal().slot();
  }

  template <class... A>
  void operator()(A&&... a) {
    header* task = std::exchange(task_, nullptr);
    // The operation is over: its cancellation handler must not outlive it in the slot (an
    // abort would reach whatever reused its key).
    task_sched::of(task).abort_signal().slot().clear();
    raw_task(task).drop_reference(); // never the last: the poll running us holds one
    result_->complete(std::forward<A>(a)...);
  }

private:
  op_result<Args...>* result_;
  context_core* core_;
  header* task_;
};

// `co_await op(swarm::use_coro)`: what async_result<use_coro_t, void(Args...)> returns.
// Holds the initiation and its arguments until the frame suspends.
template <class Initiation, class InitArgs, class... Args>
class op_awaiter {
public:
  template <class I, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<I>, op_awaiter>)
  explicit op_awaiter(I&& init, A&&... args) : init_(std::forward<I>(init)), args_(std::forward<A>(args)...) {}

  bool await_ready() const noexcept { return false; }

  // What the operation would be started with (coro.hpp reads a join wait's handle).
  const Initiation& initiation() const noexcept { return init_; }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    static_assert(std::is_base_of_v<coro_promise_base, P>, "swarm::use_coro is awaited inside a swarm::coro");
    coro_root* root = h.promise().root;
    if (root->abort_requested()) {
      aborted_ = true;
      return false;
    }
    // For dump(), if tracked (a join awaited this way notes itself while it starts).
    note_current_wait(wait_kind::asio_operation);
    return result_.start(h, [&] {
      std::apply(
          [&](auto&... a) {
            std::move(init_)(coro_handler<Args...>(&result_, root->core, root->task), std::move(a)...);
          },
          args_);
    });
  }

  auto await_resume() {
    if (aborted_)
      throw_aborted();
    return result_.take();
  }

private:
  Initiation init_;
  InitArgs args_;
  op_result<Args...> result_;
  bool aborted_ = false;
};

} // namespace swarm::detail
