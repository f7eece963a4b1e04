// Whether this test binary runs under a sanitizer, for the suites that scale their loads and
// time bounds down there (ThreadSanitizer and AddressSanitizer run code 5-15x slower).
#pragma once

#if defined(__SANITIZE_THREAD__)
#define SWARM_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SWARM_TEST_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SWARM_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWARM_TEST_ASAN 1
#endif
#endif

namespace swarm_test {

#if defined(SWARM_TEST_TSAN) || defined(SWARM_TEST_ASAN)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

} // namespace swarm_test
