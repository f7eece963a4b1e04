#include <swarm/scheduler/job.hpp>

namespace swarm::detail {

std::exception_ptr*& job_exception_sink() noexcept {
  thread_local std::exception_ptr* sink = nullptr;
  return sink;
}

} // namespace swarm::detail
