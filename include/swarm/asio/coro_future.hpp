// The future of a coroutine task (swarm::coro<T>): each poll resumes the frames directly
// and runs what is queued on the task's executor, with no co_spawn between the task and
// its coroutine.
//
// A poll: on the first, create the frame (from the callable, if the task was spawned
// with one) and start it; later, if a leaf await is pending, poll it and resume its frame
// when it is ready (or when the task was aborted, to throw there); then drain the task's
// queue, where Asio completions resume the frames they belong to. The task is done when
// the top frame reaches its final suspend point; the frame is destroyed there, inside the
// poll, so that its locals go on the task's thread.
//
// Dropped unfinished (aborted before start, or the runtime shut down), the future destroys
// the frame with everything queued on the task unrun. An Asio operation the frame still
// waits on keeps its handler, which never runs and never touches the frame.
#pragma once

#include <swarm/asio/completion_delivery.hpp>
#include <swarm/asio/coro_frame.hpp>
#include <swarm/asio/task.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace swarm::detail {

// Coro is swarm::coro<T>; Source is Coro itself or a callable returning one, kept alive
// until the task ends (as co_spawn keeps its function object), so lambda captures stay
// valid in the frame.
template <class Coro, class Source>
class coro_future {
  using handle_type = typename Coro::handle_type;
  using T = typename Coro::value_type;
  using V = stored_t<T>;

public:
  using output_type = task_output<V>;

  coro_future(context_core* core, Source src) : core_(core), src_(std::move(src)) { core_->work_started(); }
  // Moved only into the cell, before the task is published.
  coro_future(coro_future&& o) noexcept(std::is_nothrow_move_constructible_v<Source>)
      : core_(std::exchange(o.core_, nullptr)), src_(std::move(o.src_)) {}
  coro_future& operator=(coro_future&&) = delete;
  ~coro_future() {
    if (!core_)
      return;
    if (h_ && !done_)
      drop_unfinished(h_);
    if (frame_)
      frame_.destroy();
    core_->work_finished();
  }

  void attach(header* h) noexcept { h_ = h; }

  // Per poll; hot.
  std::optional<output_type> poll(poll_context& cx) {
    task_sched& s = task_sched::of(h_);
    std::coroutine_handle<> resume;
    if (!frame_) {
      if (!s.try_start())
        return std::nullopt; // aborted before it started: the harness cancels it
      frame_ = make_frame();
      root_.core = core_;
      root_.task = h_;
      frame_.promise().root = &root_;
      resume = frame_;
    }
    queue_drain d;
    {
      drain_scope scope(&s.queue(), this);
      root_.poll_waker = &cx.get_waker();
      if (!resume && root_.poll_leaf &&
          (root_.abort_requested() || root_.poll_leaf(root_.leaf, cx.get_waker()))) {
        root_.poll_leaf = nullptr;
        resume = std::exchange(root_.waiting, {});
      }
      if (resume)
        resume.resume();
      d = drain_in_poll(s, scope, cx, [this] { return frame_.done(); });
      root_.poll_waker = nullptr;
    }
    if (!frame_.done()) {
      d.settle(s.queue());
      return std::nullopt;
    }
    output_type out;
    out.error = std::move(frame_.promise().error);
    if (!out.error) {
      if constexpr (!std::is_void_v<T>)
        out.value = std::move(*frame_.promise().value);
    }
    done_ = true;
    std::exchange(frame_, {}).destroy();
    d.finish(h_);
    out.abort_requested = s.abort_requested().load(std::memory_order_acquire);
    return out;
  }

private:
  handle_type make_frame() {
    if constexpr (std::is_same_v<Source, Coro>)
      return std::move(src_).release();
    else
      return src_().release();
  }

  context_core* core_;
  Source src_;
  header* h_ = nullptr;
  handle_type frame_;
  coro_root root_;
  bool done_ = false;
};

} // namespace swarm::detail
