// SWARM_ASSERT: swarm's internal invariants and documented preconditions.
//
// SWARM_ASSERTS decides whether they are checked: 1 checks them (a failure prints the
// expression and its place, then aborts), 0 compiles them out. Undefined, it follows
// NDEBUG as assert() does: on in a Debug build, off in a Release build. Define it to 0 or 1
// to override that either way; the CMake option of the same name does so for the library
// and, through the swarm::swarm target, for its users (one setting per program).
#pragma once

#if !defined(SWARM_ASSERTS)
#if defined(NDEBUG)
#define SWARM_ASSERTS 0
#else
#define SWARM_ASSERTS 1
#endif
#endif

#if SWARM_ASSERTS
#include <cstdio>
#include <cstdlib>

namespace swarm::detail {
[[noreturn]] inline void assert_failed(const char* expr, const char* file, int line, const char* function) noexcept {
  std::fprintf(stderr, "%s:%d: %s: swarm assertion failed: %s\n", file, line, function, expr);
  std::fflush(stderr);
  std::abort();
}
} // namespace swarm::detail

#define SWARM_ASSERT(expr)                                                                                             \
  (__builtin_expect(static_cast<bool>(expr), 1) ? void(0)                                                              \
                                                : ::swarm::detail::assert_failed(#expr, __FILE__, __LINE__, __func__))
#else
// Unevaluated, so that variables used only by assertions do not draw warnings.
#define SWARM_ASSERT(expr) static_cast<void>(sizeof(!(expr)))
#endif
