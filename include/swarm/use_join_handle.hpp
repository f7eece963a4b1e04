// use_join_handle: the completion token that makes asio::co_spawn return a join_handle.
//
//   swarm::join_handle<int> h = asio::co_spawn(ex, compute(), swarm::use_join_handle);
//
// Bound to a cancellation slot (asio::bind_cancellation_slot(slot, swarm::use_join_handle)),
// the slot is connected to the task: terminal cancellation emitted there aborts it; partial
// and total cancellation are forwarded into the coroutine's cancellation state.
#pragma once

#include <swarm/spawn.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>

#include <exception>
#include <source_location>
#include <utility>

namespace swarm {

struct use_join_handle_t {
  constexpr use_join_handle_t() noexcept = default;
};

inline constexpr use_join_handle_t use_join_handle{};

namespace detail {

// co_spawn's initiation carries the spawn executor; its argument is the function that
// makes the awaitable.
template <class T, class Initiation, class Make>
join_handle<T> co_spawn_join_handle(Initiation& init, Make&& make) {
  auto ex = init.get_executor();
  return spawn_coroutine<T, decltype(ex)>(core_of_executor(ex), std::forward<Make>(make),
                                          std::source_location::current(), nullptr);
}

// Installed in a slot bound to use_join_handle: holds an abort handle to the task.
struct join_handle_slot_handler {
  abort_handle task;
  explicit join_handle_slot_handler(abort_handle a) noexcept : task(std::move(a)) {}
  void operator()(boost::asio::cancellation_type type) {
    if (!task)
      return;
    if ((type & boost::asio::cancellation_type::terminal) != boost::asio::cancellation_type::none)
      task.abort();
    else if (type != boost::asio::cancellation_type::none)
      forward_cancellation(task_header(), type);
  }
  header* task_header() const noexcept { return task.task_header(); }
};

} // namespace detail
} // namespace swarm

namespace boost::asio {

template <class T>
class async_result<swarm::use_join_handle_t, void(std::exception_ptr, T)> {
public:
  using return_type = swarm::join_handle<T>;

  // co_spawn passes one argument, the function making the awaitable.
  template <class Initiation, class... Make>
  static return_type initiate(Initiation&& init, swarm::use_join_handle_t, Make&&... make) {
    static_assert(sizeof...(Make) == 1, "swarm::use_join_handle is a completion token for asio::co_spawn");
    return swarm::detail::co_spawn_join_handle<T>(init, std::forward<Make>(make)...);
  }
};

template <>
class async_result<swarm::use_join_handle_t, void(std::exception_ptr)> {
public:
  using return_type = swarm::join_handle<void>;

  template <class Initiation, class... Make>
  static return_type initiate(Initiation&& init, swarm::use_join_handle_t, Make&&... make) {
    static_assert(sizeof...(Make) == 1, "swarm::use_join_handle is a completion token for asio::co_spawn");
    return swarm::detail::co_spawn_join_handle<void>(init, std::forward<Make>(make)...);
  }
};

// Asio's generic binder would hide the initiation's executor and make co_spawn install its
// own proxy in the user's slot, so an emission would cancel the coroutine without marking
// the task aborted (it would be reported as a panic). Connect the slot to the task instead.
template <class Slot, class Sig>
class async_result<cancellation_slot_binder<swarm::use_join_handle_t, Slot>, Sig> {
public:
  using inner = async_result<swarm::use_join_handle_t, Sig>;
  using return_type = typename inner::return_type;

  template <class Initiation, class... Make>
  static return_type initiate(Initiation&& init, cancellation_slot_binder<swarm::use_join_handle_t, Slot> token,
                              Make&&... make) {
    return_type h = inner::initiate(std::forward<Initiation>(init), swarm::use_join_handle, std::forward<Make>(make)...);
    Slot slot = token.get_cancellation_slot();
    if (slot.is_connected() && h)
      slot.template emplace<swarm::detail::join_handle_slot_handler>(h.get_abort_handle());
    return h;
  }
};

} // namespace boost::asio
