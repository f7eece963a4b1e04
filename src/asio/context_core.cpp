#include <swarm/asio/context_core.hpp>

namespace swarm::detail {

void context_core::work_finished() noexcept {
  const std::size_t slot = work_slot();
  work_.finished(slot);
  // Off the workers nobody else will notice that the last unit of work is gone: check
  // here (workers check when they run out of tasks).
  if (slot == work_.external() && work_.outstanding() == 0)
    out_of_work_(*owner_);
}

} // namespace swarm::detail
