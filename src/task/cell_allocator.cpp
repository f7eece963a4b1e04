#include <swarm/task/cell_allocator.hpp>

#include <swarm/detail/assert.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <new>

#ifndef SWARM_CELL_CACHE
#define SWARM_CELL_CACHE 1
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SWARM_CELL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWARM_CELL_ASAN 1
#endif
#endif
#if defined(SWARM_CELL_ASAN)
#include <sanitizer/asan_interface.h>
#define SWARM_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define SWARM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define SWARM_POISON(p, n) ((void)(p), (void)(n))
#define SWARM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace swarm::detail {

namespace {

using limits = cell_cache_limits;

#if SWARM_ASSERTS
// Blocks from the global allocator not yet returned. With asserts on only: a shared counter
// on the (already slow) global path would still bounce between threads in release.
std::atomic<std::int64_t> outstanding{0};
void count_block(std::int64_t d) noexcept { outstanding.fetch_add(d, std::memory_order_relaxed); }
#else
void count_block(std::int64_t) noexcept {}
#endif

void* global_allocate(std::size_t size, std::size_t alignment) {
  void* p = alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__ ? ::operator new(size, std::align_val_t(alignment))
                                                         : ::operator new(size);
  count_block(1);
  return p;
}

void global_deallocate(void* p, std::size_t alignment) noexcept {
  count_block(-1);
  if (alignment > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
    ::operator delete(p, std::align_val_t(alignment));
  else
    ::operator delete(p);
}

// A cached cell's first bytes hold the link to the next one of its class.
struct free_cell {
  free_cell* next;
};

// A class's base bound, computed once (the hot path would otherwise divide).
constexpr auto base_capacity = [] {
  std::array<std::size_t, limits::classes> a{};
  for (std::size_t c = 0; c < limits::classes; ++c)
    a[c] = limits::capacity((c + 1) * limits::granule);
  return a;
}();

// One thread's cache: a LIFO list per size class (the most recently freed cell is the
// most likely to be in this core's cache). Touched only by its thread, so no atomics.
struct thread_cache {
  free_cell* head[limits::classes] = {};
  std::size_t count[limits::classes] = {};
  // The least `count` reached since the last release pass: that many cells stayed unused.
  std::size_t low[limits::classes] = {};
  unsigned bound_shift = 0; // limits::burst_shift while holding bursts
  std::chrono::steady_clock::time_point last_release{};

  ~thread_cache();
  // Gives the `n` most recently cached cells of class `c` back to the global allocator.
  void release(std::size_t c, std::size_t n) noexcept {
    const std::size_t size = (c + 1) * limits::granule;
    for (; n > 0; --n) {
      free_cell* f = head[c];
      SWARM_UNPOISON(f, size);
      head[c] = f->next;
      --count[c];
      global_deallocate(f, cell_block_alignment);
    }
  }
  void trim() noexcept {
    for (std::size_t c = 0; c < limits::classes; ++c) {
      release(c, count[c]);
      low[c] = 0;
    }
    last_release = {};
  }
};

// The lifetime of this thread's cache. `cache` below has a destructor, so touching it
// registers a thread-exit callback; after that callback ran (other thread_local
// destructors may still free cells) the thread uses the global allocator.
enum class cache_state : unsigned char { unused, live, destroyed };
constinit thread_local cache_state state = cache_state::unused;
thread_local thread_cache cache;

thread_cache::~thread_cache() {
  trim();
  state = cache_state::destroyed;
}

// The calling thread's cache, or null once it is gone.
thread_cache* this_thread_cache() noexcept {
  if (state == cache_state::live) [[likely]]
    return &cache;
  if (state == cache_state::destroyed)
    return nullptr;
  state = cache_state::live;
  return &cache;
}

// The class index of a cell the cache serves, or `classes` for one it does not.
std::size_t class_of(std::size_t size, std::size_t alignment) noexcept {
  if (!SWARM_CELL_CACHE || alignment != cell_block_alignment || size > limits::max_size || size == 0)
    return limits::classes;
  return (size - 1) / limits::granule;
}

} // namespace

// Hot: once per spawn.
void* allocate_cell(std::size_t size, std::size_t alignment) {
  const std::size_t c = class_of(size, alignment);
  if (c == limits::classes)
    return global_allocate(size, alignment);
  if (thread_cache* tc = this_thread_cache()) {
    if (free_cell* f = tc->head[c]) {
      SWARM_UNPOISON(f, (c + 1) * limits::granule);
      tc->head[c] = f->next;
      if (--tc->count[c] < tc->low[c])
        tc->low[c] = tc->count[c];
      return f;
    }
  }
  // Allocated at the class size, so that any cell of the class can reuse the block.
  return global_allocate((c + 1) * limits::granule, alignment);
}

// Hot: once per task, on whichever thread drops the last reference.
void deallocate_cell(void* p, std::size_t size, std::size_t alignment) noexcept {
  const std::size_t c = class_of(size, alignment);
  if (c == limits::classes)
    return global_deallocate(p, alignment);
  const std::size_t block = (c + 1) * limits::granule;
  thread_cache* tc = this_thread_cache();
  if (!tc || tc->count[c] >= base_capacity[c] << tc->bound_shift)
    return global_deallocate(p, alignment);
  free_cell* f = ::new (p) free_cell{tc->head[c]};
  tc->head[c] = f;
  ++tc->count[c];
  SWARM_POISON(p, block);
}

void trim_cell_cache() noexcept {
  if (thread_cache* tc = this_thread_cache())
    tc->trim();
}

bool hold_cell_bursts(bool on) noexcept {
  thread_cache* tc = this_thread_cache();
  if (!tc)
    return false;
  const bool was = tc->bound_shift != 0;
  tc->bound_shift = on ? limits::burst_shift : 0;
  return was;
}

namespace {

// Cold: when a worker is about to sleep. The low-water mark makes the pass give back only
// cells no allocation needed for a whole period (a steady load that reuses its burst keeps
// it), and halving spreads a large burst's return over several periods. The clock is read
// only when the cache holds more than its base bound.
template <class Clock>
std::size_t release_idle(Clock now_fn) noexcept {
  thread_cache* tc = this_thread_cache();
  if (!tc)
    return 0;
  bool above_base = false;
  for (std::size_t c = 0; c < limits::classes; ++c)
    above_base |= tc->count[c] > base_capacity[c];
  if (!above_base)
    return 0;
  const auto now = now_fn();
  if (now - tc->last_release < limits::release_period)
    return 0;
  tc->last_release = now;
  std::size_t released = 0;
  for (std::size_t c = 0; c < limits::classes; ++c) {
    const std::size_t idle = std::min(tc->low[c], tc->count[c]);
    if (idle > base_capacity[c]) {
      const std::size_t n = std::min((idle - base_capacity[c] + 1) / 2, limits::max_release);
      tc->release(c, n);
      released += n;
    }
    tc->low[c] = tc->count[c];
  }
  return released;
}

} // namespace

std::size_t release_idle_cells() noexcept {
  return release_idle([] { return std::chrono::steady_clock::now(); });
}

std::size_t release_idle_cells(std::chrono::steady_clock::time_point now) noexcept {
  return release_idle([now] { return now; });
}

bool cell_cache_stats::enabled() noexcept { return SWARM_CELL_CACHE != 0; }

std::size_t cell_cache_stats::cached_on_this_thread(std::size_t size) noexcept {
  const std::size_t c = class_of(size, cell_block_alignment);
  thread_cache* tc = this_thread_cache();
  return c == limits::classes || !tc ? 0 : tc->count[c];
}

std::int64_t cell_cache_stats::outstanding_blocks() noexcept {
#if SWARM_ASSERTS
  return outstanding.load(std::memory_order_relaxed);
#else
  return -1;
#endif
}

} // namespace swarm::detail
