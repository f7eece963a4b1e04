// Build configuration shared by every swarm header.
#pragma once

#include <cstddef>

#if defined(SWARM_DYN_LINK)
#if defined(SWARM_SOURCE)
#define SWARM_DECL __attribute__((visibility("default")))
#else
#define SWARM_DECL
#endif
#else
#define SWARM_DECL
#endif

// The cache-line pair size that hot atomics and task cells are aligned to. x86_64,
// aarch64 and powerpc64 prefetch or hold 128-byte pairs; 64 elsewhere.
#if defined(__x86_64__) || defined(__aarch64__) || defined(__powerpc64__)
#define SWARM_CACHE_LINE 128
#else
#define SWARM_CACHE_LINE 64
#endif

namespace swarm::detail {
inline constexpr std::size_t cache_line = SWARM_CACHE_LINE;
} // namespace swarm::detail
