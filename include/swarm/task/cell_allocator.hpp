// Where task cells come from: a per-thread cache of freed cells by size class in front of
// the global operator new/delete.
//
// A cell freed on a thread goes to that thread's cache (whichever thread allocated it),
// up to a bound per size class; beyond the bound, and for cells too large or too aligned
// for a class, the global allocator serves. A spawn on a worker then reuses the cell of
// a task that worker finished, with no call into malloc. The cache of a thread is returned
// to the global allocator when the thread exits.
//
// While a thread drives a scheduler (hold_cell_bursts), its bound is 64 times larger
// (`burst_shift`), so that the cells of a burst of tasks (spawn 10 000, join them all)
// wait for the next burst instead of going back to malloc, which would give the memory
// back to the kernel when the burst ends (glibc trims its heap's top) and fault it in
// again page by page at the next one. What such a thread holds beyond the base bound goes
// back gradually: at each release_idle_cells (the worker calls it before it sleeps), at
// most once a `release_period`, half of the cells that stayed unused for the whole period.
//
// Under AddressSanitizer a cached cell is poisoned until it is handed out again, so a use
// after free still reports. Building the library with SWARM_CELL_CACHE=0 turns the cache
// off (every cell from the global allocator).
#pragma once

#include <swarm/detail/config.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace swarm::detail {

// Blocks of the global allocator that back cells are aligned to this, and so is every
// cell (cell_layout::alignment is at least this). Not the cache-line pair: over-aligned
// blocks (`operator new(align_val_t)`) cost glibc a memalign per cell; see doc/design.md
// "Performance work" for the measurement. SWARM_CELL_ALIGNMENT overrides it (a power of
// two, the same in every translation unit).
#ifndef SWARM_CELL_ALIGNMENT
#define SWARM_CELL_ALIGNMENT 16
#endif
inline constexpr std::size_t cell_block_alignment = SWARM_CELL_ALIGNMENT;

struct cell_cache_limits {
  // Size classes are multiples of `granule` up to `max_size`; larger cells bypass the cache.
  static constexpr std::size_t granule = 64;
  static constexpr std::size_t max_size = 1024;
  static constexpr std::size_t classes = max_size / granule;
  // Cells kept per class and thread: about `bytes_per_class` worth, at least `min_count`.
  static constexpr std::size_t bytes_per_class = 64 * 1024;
  static constexpr std::size_t min_count = 16;

  static constexpr std::size_t class_size(std::size_t size) noexcept {
    return (size + granule - 1) / granule * granule;
  }
  static constexpr std::size_t capacity(std::size_t size) noexcept {
    const std::size_t n = bytes_per_class / class_size(size);
    return n < min_count ? min_count : n;
  }
  // The bound while the thread holds bursts, as a shift of capacity(): 64 times (4 MB a class).
  static constexpr unsigned burst_shift = 6;
  static constexpr std::size_t burst_capacity(std::size_t size) noexcept {
    return capacity(size) << burst_shift;
  }
  // Idle cells are given back at most once per period, and at most this many per class each
  // time (a bound on the work done before a worker sleeps).
  static constexpr std::chrono::milliseconds release_period{1000};
  static constexpr std::size_t max_release = 2048;
};

// A block of at least `size` bytes aligned to `alignment`. Throws std::bad_alloc.
SWARM_DECL void* allocate_cell(std::size_t size, std::size_t alignment);
// Frees a block from allocate_cell with the same size and alignment, on any thread.
SWARM_DECL void deallocate_cell(void* p, std::size_t size, std::size_t alignment) noexcept;

// Introspection for tests and diagnostics.
struct cell_cache_stats {
  // Whether the library was built with the cache (SWARM_CELL_CACHE).
  static SWARM_DECL bool enabled() noexcept;
  // Cells of `size`'s class held by the calling thread's cache.
  static SWARM_DECL std::size_t cached_on_this_thread(std::size_t size) noexcept;
  // Blocks taken from the global allocator for cells and not yet given back, all threads.
  static SWARM_DECL std::int64_t outstanding_blocks() noexcept;
};

// Gives every cell cached by the calling thread back to the global allocator.
SWARM_DECL void trim_cell_cache() noexcept;

// Sets whether the calling thread's cache holds bursts (the larger bound); returns the
// previous setting, for a scope to restore. Cells already cached stay when it is turned off.
SWARM_DECL bool hold_cell_bursts(bool on) noexcept;

// Gives back to the global allocator, per class, half of the cells above the base bound that
// no allocation took since the last release (at most `max_release`), if `release_period` has
// passed since then; otherwise does nothing. Returns the number of cells given back. The
// first form reads the steady clock, only when the cache holds more than its base bound.
SWARM_DECL std::size_t release_idle_cells() noexcept;
SWARM_DECL std::size_t release_idle_cells(std::chrono::steady_clock::time_point now) noexcept;

} // namespace swarm::detail
