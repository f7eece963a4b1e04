// Starting named OS threads with a chosen stack size (std::thread cannot set either).
#pragma once

#include <swarm/detail/config.hpp>

#include <cstddef>
#include <functional>
#include <string>

namespace swarm::detail {

class os_thread {
public:
  os_thread() noexcept = default;
  os_thread(os_thread&& o) noexcept : handle_(o.handle_), joinable_(o.joinable_) { o.joinable_ = false; }
  os_thread& operator=(os_thread&& o) noexcept;
  ~os_thread(); // detaches a thread that was neither joined nor detached

  // Throws std::system_error when the OS refuses a thread.
  SWARM_DECL static os_thread spawn(const std::string& name, std::size_t stack_size, std::function<void()> fn);

  bool joinable() const noexcept { return joinable_; }
  SWARM_DECL void join();
  SWARM_DECL void detach();

private:
  unsigned long handle_ = 0; // pthread_t
  bool joinable_ = false;
};

} // namespace swarm::detail
