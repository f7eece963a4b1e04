// Exceptions swarm catches and drops because nothing can take them: thrown by a task hook or
// a thread hook, by the destructor of a task's future or output when nobody will read it, or
// by a wake during completion. Tokio ignores a panic while dropping a task's output the same
// way. Each one is counted, process-wide, so that none goes unseen: the runtime reports the
// count as runtime_metrics::swallowed_exception_count.
#pragma once

#include <swarm/detail/config.hpp>

#include <cstdint>

namespace swarm::detail {

// Called from the catch block that drops the exception. Relaxed: a statistic.
SWARM_DECL void count_swallowed_exception() noexcept;
// The number counted so far in this process, by every runtime.
SWARM_DECL std::uint64_t swallowed_exception_count() noexcept;

} // namespace swarm::detail
