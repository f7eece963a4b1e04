// This executable's global operator new and delete: malloc and free, counting the calls of
// operator new while allocation_counter is on. Its own executable, so that the other suites
// keep the sanitizers' own operator new (and their new/delete mismatch checks).
#include "counting_new.hpp"

#include <cstddef>
#include <cstdlib>
#include <new>

namespace swarm_test {

std::atomic<bool> allocation_counter::on{false};
std::atomic<std::uint64_t> allocation_counter::count{0};

namespace {
void* allocate(std::size_t n, std::size_t align) noexcept {
  // Relaxed: the counter is switched on and off by the thread that reads the count, with the
  // runtime's own synchronisation (a join) between the counted work and the read.
  if (allocation_counter::on.load(std::memory_order_relaxed))
    allocation_counter::count.fetch_add(1, std::memory_order_relaxed);
  if (n == 0)
    n = 1;
  if (align <= alignof(std::max_align_t))
    return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
} // namespace

} // namespace swarm_test

void* operator new(std::size_t n) {
  if (void* p = swarm_test::allocate(n, 0))
    return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = swarm_test::allocate(n, 0))
    return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = swarm_test::allocate(n, static_cast<std::size_t>(a)))
    return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = swarm_test::allocate(n, static_cast<std::size_t>(a)))
    return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return swarm_test::allocate(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return swarm_test::allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return swarm_test::allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return swarm_test::allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
