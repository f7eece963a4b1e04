// The cell allocator's per-thread cache: a freed cell is reused by the next allocation of
// its size class on the same thread, a cell freed on another thread goes to that thread's
// cache, each class holds at most its capacity, and a thread's cache is given back when the
// thread exits. Tasks created and destroyed through the task layer use it.
#include "support.hpp"

#include <swarm/task/cell_allocator.hpp>

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "../sanitizer.hpp"
#if defined(SWARM_TEST_ASAN)
#include <sanitizer/asan_interface.h>
#endif

using namespace swarm_test;

namespace {

using sd::allocate_cell;
using sd::cell_block_alignment;
using sd::cell_cache_stats;
using sd::deallocate_cell;
using limits = sd::cell_cache_limits;

constexpr std::size_t cell_size = 256;

// Blocks in this thread's cache, all classes.
std::size_t cached_blocks() {
  std::size_t n = 0;
  for (std::size_t size = limits::granule; size <= limits::max_size; size += limits::granule)
    n += cell_cache_stats::cached_on_this_thread(size);
  return n;
}

// Each test starts from an empty cache on the test thread.
struct empty_cache {
  empty_cache() { sd::trim_cell_cache(); }
  ~empty_cache() { sd::trim_cell_cache(); }
};

} // namespace

BOOST_AUTO_TEST_SUITE(cell_allocator_test)

BOOST_FIXTURE_TEST_CASE(a_freed_cell_is_reused_by_the_next_allocation_of_its_class, empty_cache) {
  if (!cell_cache_stats::enabled())
    return; // built with SWARM_CELL_CACHE=0: nothing to check
  void* a = allocate_cell(cell_size, cell_block_alignment);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(a) % cell_block_alignment == 0u);
  deallocate_cell(a, cell_size, cell_block_alignment);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == 1u);
  // Same class (rounded up to the granule), so the same block.
  void* b = allocate_cell(cell_size - 8, cell_block_alignment);
  BOOST_TEST(b == a);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == 0u);
  // Another class does not take it.
  deallocate_cell(b, cell_size - 8, cell_block_alignment);
  void* c = allocate_cell(cell_size + limits::granule, cell_block_alignment);
  BOOST_TEST(c != a);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == 1u);
  deallocate_cell(c, cell_size + limits::granule, cell_block_alignment);
}

BOOST_FIXTURE_TEST_CASE(cells_too_large_or_too_aligned_bypass_the_cache, empty_cache) {
  void* big = allocate_cell(limits::max_size + 1, cell_block_alignment);
  deallocate_cell(big, limits::max_size + 1, cell_block_alignment);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(limits::max_size + 1) == 0u);
  const std::size_t over = cell_block_alignment * 16;
  void* aligned = allocate_cell(over, over);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(aligned) % over == 0u);
  deallocate_cell(aligned, over, over);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(over) == 0u);
}

BOOST_FIXTURE_TEST_CASE(a_class_holds_at_most_its_capacity_and_the_rest_goes_back, empty_cache) {
  if (!cell_cache_stats::enabled())
    return;
  const std::size_t cap = limits::capacity(cell_size);
  const std::int64_t outstanding_before = cell_cache_stats::outstanding_blocks();
  std::vector<void*> cells;
  for (std::size_t i = 0; i < cap + 10; ++i)
    cells.push_back(allocate_cell(cell_size, cell_block_alignment));
  for (void* p : cells)
    deallocate_cell(p, cell_size, cell_block_alignment);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == cap);
  if (outstanding_before >= 0) // counted in builds with asserts only
    BOOST_TEST(cell_cache_stats::outstanding_blocks() == outstanding_before + static_cast<std::int64_t>(cap));
  sd::trim_cell_cache();
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == 0u);
  if (outstanding_before >= 0)
    BOOST_TEST(cell_cache_stats::outstanding_blocks() == outstanding_before);
}

namespace {

// Allocates `n` cells of cell_size and frees them, so that the cache holds up to n of them.
void fill(std::size_t n) {
  std::vector<void*> cells;
  for (std::size_t i = 0; i < n; ++i)
    cells.push_back(allocate_cell(cell_size, cell_block_alignment));
  for (void* p : cells)
    deallocate_cell(p, cell_size, cell_block_alignment);
}

// Holds bursts for the scope of a test, on the test thread.
struct holding_bursts : empty_cache {
  const bool was = sd::hold_cell_bursts(true);
  ~holding_bursts() { sd::hold_cell_bursts(was); }
};

using clock_type = std::chrono::steady_clock;

} // namespace

BOOST_FIXTURE_TEST_CASE(a_thread_holding_bursts_keeps_up_to_the_burst_capacity, holding_bursts) {
  if (!cell_cache_stats::enabled())
    return;
  const std::size_t burst = limits::burst_capacity(cell_size);
  BOOST_TEST(burst > limits::capacity(cell_size));
  const std::int64_t outstanding_before = cell_cache_stats::outstanding_blocks();
  fill(burst + 10);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == burst);
  if (outstanding_before >= 0)
    BOOST_TEST(cell_cache_stats::outstanding_blocks() ==
               outstanding_before + static_cast<std::int64_t>(burst));
  // Turned off: the cells stay, a free above the base bound goes back.
  BOOST_TEST(sd::hold_cell_bursts(false));
  void* p = allocate_cell(cell_size, cell_block_alignment);
  deallocate_cell(p, cell_size, cell_block_alignment);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == burst - 1);
  BOOST_TEST(!sd::hold_cell_bursts(true));
}

BOOST_FIXTURE_TEST_CASE(cells_a_period_left_unused_go_back_by_halves, holding_bursts) {
  if (!cell_cache_stats::enabled())
    return;
  const std::size_t base = limits::capacity(cell_size);
  const auto period = limits::release_period;
  const auto t0 = clock_type::now();
  fill(base + 1000);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == base + 1000);
  // The first pass only starts the period: nothing was watched yet.
  BOOST_TEST(sd::release_idle_cells(t0) == 0u);
  // Within the period: nothing, however idle.
  BOOST_TEST(sd::release_idle_cells(t0 + period / 2) == 0u);
  // 100 cells taken and given back during the period: 900 above the base stayed idle.
  fill(100);
  BOOST_TEST(sd::release_idle_cells(t0 + period) == 450u);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == base + 550);
  BOOST_TEST(sd::release_idle_cells(t0 + period + period / 2) == 0u);
  BOOST_TEST(sd::release_idle_cells(t0 + 2 * period) == 275u);
  // A period in which the whole cache was in use gives nothing back.
  fill(base + 550);
  BOOST_TEST(sd::release_idle_cells(t0 + 3 * period) == 0u);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == base + 550);
  // Idle from then on: it shrinks to the base bound and no further.
  std::size_t left = base + 550;
  for (int k = 4; k < 20; ++k) {
    left -= sd::release_idle_cells(t0 + k * period);
    BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == left);
  }
  BOOST_TEST(left == base);
}

BOOST_FIXTURE_TEST_CASE(a_pass_gives_back_at_most_max_release_cells_of_a_class, holding_bursts) {
  if (!cell_cache_stats::enabled())
    return;
  const std::size_t base = limits::capacity(cell_size);
  const std::size_t above = 3 * limits::max_release;
  BOOST_REQUIRE(base + above <= limits::burst_capacity(cell_size));
  const auto t0 = clock_type::now();
  fill(base + above);
  BOOST_TEST(sd::release_idle_cells(t0) == 0u);
  BOOST_TEST(sd::release_idle_cells(t0 + limits::release_period) == limits::max_release);
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == base + above - limits::max_release);
}

BOOST_FIXTURE_TEST_CASE(a_cell_freed_on_another_thread_goes_to_that_threads_cache, empty_cache) {
  if (!cell_cache_stats::enabled())
    return;
  constexpr int n = 8;
  std::vector<void*> cells;
  for (int i = 0; i < n; ++i)
    cells.push_back(allocate_cell(cell_size, cell_block_alignment));
  std::vector<void*> reused;
  std::size_t cached_there = 0;
  std::thread t([&] {
    for (void* p : cells)
      deallocate_cell(p, cell_size, cell_block_alignment);
    cached_there = cell_cache_stats::cached_on_this_thread(cell_size);
    for (int i = 0; i < n; ++i)
      reused.push_back(allocate_cell(cell_size, cell_block_alignment));
    for (void* p : reused)
      deallocate_cell(p, cell_size, cell_block_alignment);
  });
  t.join();
  BOOST_TEST(cached_there == static_cast<std::size_t>(n));
  BOOST_TEST(cell_cache_stats::cached_on_this_thread(cell_size) == 0u);
  std::sort(cells.begin(), cells.end());
  std::sort(reused.begin(), reused.end());
  BOOST_TEST(cells == reused, "the freeing thread reuses the cells another thread allocated");
}

BOOST_FIXTURE_TEST_CASE(a_threads_cache_is_given_back_when_the_thread_exits, empty_cache) {
  const std::int64_t before = cell_cache_stats::outstanding_blocks();
  std::size_t cached_at_exit = 0;
  std::thread t([&] {
    std::vector<void*> cells;
    for (int i = 0; i < 100; ++i)
      cells.push_back(allocate_cell(cell_size + (i % 3) * limits::granule, cell_block_alignment));
    for (int i = 0; i < 100; ++i)
      deallocate_cell(cells[i], cell_size + (i % 3) * limits::granule, cell_block_alignment);
    cached_at_exit = cell_cache_stats::cached_on_this_thread(cell_size);
  });
  t.join();
  if (cell_cache_stats::enabled())
    BOOST_TEST(cached_at_exit > 0u);
  // LeakSanitizer checks the rest in the address build.
  if (before >= 0)
    BOOST_TEST(cell_cache_stats::outstanding_blocks() == before);
}

BOOST_FIXTURE_TEST_CASE(tasks_reuse_the_cells_of_tasks_freed_on_the_same_thread, empty_cache) {
  if (!cell_cache_stats::enabled())
    return;
  const std::int64_t before = cell_cache_stats::outstanding_blocks();
  for (int i = 0; i < 50; ++i) {
    auto r = sd::new_unowned(ready_now<int>(i), noop_scheduler{}, swarm::task_id::next());
    std::move(r.task).run();
    auto o = r.join.poll(noop_waker());
    BOOST_TEST_REQUIRE(o.has_value());
    BOOST_TEST((*o).value() == i);
  }
  // One block serves all 50 tasks: each is freed before the next is created.
  if (before >= 0)
    BOOST_TEST(cell_cache_stats::outstanding_blocks() <= before + 1);
}

#if defined(SWARM_TEST_ASAN)
BOOST_FIXTURE_TEST_CASE(a_cached_cell_is_poisoned_until_it_is_handed_out_again, empty_cache) {
  void* a = allocate_cell(cell_size, cell_block_alignment);
  BOOST_TEST(!__asan_address_is_poisoned(a));
  deallocate_cell(a, cell_size, cell_block_alignment);
  // Poisoned whether it sits in the cache or went back to malloc.
  BOOST_TEST(__asan_address_is_poisoned(a));
  BOOST_TEST(__asan_address_is_poisoned(static_cast<char*>(a) + cell_size - 1));
  void* b = allocate_cell(cell_size, cell_block_alignment);
  BOOST_TEST(!__asan_address_is_poisoned(b));
  BOOST_TEST(!__asan_address_is_poisoned(static_cast<char*>(b) + cell_size - 1));
  deallocate_cell(b, cell_size, cell_block_alignment);
}
#endif

// A named task keeps its task_extra in its own cell: one block from the cache per spawn,
// not two, with the extra at extra_offset; and a spawn takes no clock stamp. A task with
// neither a name nor tracking has no extra.
BOOST_FIXTURE_TEST_CASE(a_named_task_is_one_block, empty_cache) {
  using layout = sd::cell<pending_forever, noop_scheduler>::layout;
  static_assert(layout::size_with_extra <= limits::max_size); // else the cache is not used
  // The extra starts where the trailer ends (not at the rounded `size`) and is 72 bytes.
  static_assert(layout::extra_offset == layout::trailer_offset + sizeof(sd::trailer));
  static_assert(sizeof(sd::task_extra) <= 72);
  {
    const sd::task_extra_request extra{"named", 1};
    BOOST_TEST(extra.wanted());
    auto t = sd::new_task(pending_forever{}, noop_scheduler{}, swarm::task_id::next(),
                          std::source_location::current(), nullptr, &extra);
    sd::header* h = t.owned.get();
    sd::task_extra* x = sd::identity_of(h).extra.in_cell();
    BOOST_REQUIRE(x);
    BOOST_TEST(reinterpret_cast<char*>(x) == reinterpret_cast<char*>(h) + layout::extra_offset);
    BOOST_TEST(x->name.view() == "named");
#if SWARM_TASK_TRACKING
    BOOST_TEST(x->stats.tracked());
    BOOST_TEST(x->stats.stamp.load() == 0u); // 0: never polled
#endif
  } // every reference dropped: the cell goes to this thread's cache
  if (cell_cache_stats::enabled()) {
    BOOST_TEST(cached_blocks() == 1u);
    BOOST_TEST(cell_cache_stats::cached_on_this_thread(layout::size_with_extra) == 1u);
  }
  sd::trim_cell_cache();
  {
    BOOST_TEST(!(sd::task_extra_request{"", 0}.wanted()));
    auto t = sd::new_task(pending_forever{}, noop_scheduler{}, swarm::task_id::next());
    BOOST_TEST(sd::identity_of(t.owned.get()).extra.load_relaxed() == 0u);
  }
  if (cell_cache_stats::enabled()) {
    BOOST_TEST(cached_blocks() == 1u);
    BOOST_TEST(cell_cache_stats::cached_on_this_thread(layout::size) == 1u);
  }
}

#if SWARM_TASK_TRACKING
namespace {

// Polled by hand: looks at its own task's extra slot during the poll, may note a wait, and
// is ready after `pending_polls` polls.
struct slot_watcher {
  using output_type = unit;
  sd::header** self;
  int pending_polls;
  std::uint64_t* word_in_poll;
  bool note_wait = false;
  std::optional<unit> poll(poll_context&) {
    *word_in_poll = sd::identity_of(*self).extra.load_relaxed();
    if (note_wait)
      sd::note_current_wait(sd::wait_kind::join, 42);
    if (pending_polls-- > 0)
      return std::nullopt;
    return unit{};
  }
};

constexpr std::uint32_t test_interval = 1000;

} // namespace

// A tracked task without a name gets no block at spawn: its slot holds the timing interval,
// then its first poll's start, then, if that poll completed it, the poll's end; a cell of
// the untracked size, and no stats block ever.
BOOST_FIXTURE_TEST_CASE(a_tracked_task_polled_once_has_no_stats_block, empty_cache) {
  using slot = sd::task_extra_slot;
  using layout = sd::cell<slot_watcher, noop_scheduler>::layout;
  sd::header* self = nullptr;
  std::uint64_t in_poll = 0;
  {
    const sd::task_extra_request extra{"", test_interval};
    auto t = sd::new_task(slot_watcher{&self, 0, &in_poll}, noop_scheduler{}, swarm::task_id::next(),
                          std::source_location::current(), nullptr, &extra);
    self = t.owned.get();
    const std::uint64_t spawned = sd::identity_of(self).extra.load_relaxed();
    BOOST_TEST(slot::is_lazy(spawned));
    BOOST_TEST(slot::lazy_interval(spawned) == test_interval);
    BOOST_TEST(slot::lazy_polls(spawned) == 0u);
    BOOST_TEST(slot::lazy_stamp(spawned) == 0u); // never polled
    BOOST_TEST(sd::identity_of(self).extra.in_cell() == nullptr);
    sd::local_notified<noop_scheduler>(std::move(t.first)).run();
    // During the poll: lazy, in poll since a stamp, no poll counted yet.
    BOOST_TEST(slot::is_lazy(in_poll));
    BOOST_TEST(slot::lazy_polls(in_poll) == 0u);
    BOOST_TEST((slot::lazy_stamp(in_poll) & sd::task_stats::in_poll_bit) != 0u);
    // After it: still lazy (it completed), one poll, ended no earlier than it started.
    const std::uint64_t after = sd::identity_of(self).extra.load_relaxed();
    BOOST_TEST(slot::is_lazy(after));
    BOOST_TEST(slot::lazy_polls(after) == 1u);
    const std::uint64_t end = slot::lazy_stamp(after);
    BOOST_TEST((end & sd::task_stats::in_poll_bit) == 0u);
    BOOST_TEST(end != 0u);
    BOOST_TEST(end >= (slot::lazy_stamp(in_poll) & ~sd::task_stats::in_poll_bit));
    t.owned = {};
  } // the join handle goes: the cell is freed
  if (cell_cache_stats::enabled()) {
    BOOST_TEST(cached_blocks() == 1u); // the cell only
    BOOST_TEST(cell_cache_stats::cached_on_this_thread(layout::size) == 1u);
  }
}

// A first poll that leaves a tracked task pending gives it a block of stats of its own,
// holding what that poll recorded (its count, its end, the wait it noted); later polls count
// there; the block goes back with the cell.
BOOST_FIXTURE_TEST_CASE(a_first_poll_that_leaves_the_task_pending_makes_its_stats_block, empty_cache) {
  using slot = sd::task_extra_slot;
  sd::header* self = nullptr;
  std::uint64_t in_poll = 0;
  {
    const sd::task_extra_request extra{"", test_interval};
    slot_watcher w{&self, 1, &in_poll, true};
    queue_scheduler sched;
    auto queued = sched.queue;
    auto t = sd::new_task(std::move(w), std::move(sched), swarm::task_id::next(),
                          std::source_location::current(), nullptr, &extra);
    self = t.owned.get();
    sd::local_notified<queue_scheduler>(std::move(t.first)).run();
    const std::uint64_t after = sd::identity_of(self).extra.load_acquire();
    BOOST_TEST(!slot::is_lazy(after));
    BOOST_TEST((after & slot::tag_mask) == slot::own_block_tag);
    BOOST_TEST(sd::identity_of(self).extra.in_cell() == nullptr);
    const sd::task_stats* s = slot::stats_of(after);
    BOOST_REQUIRE(s);
    // Alone in its 64-byte line.
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(s) % sd::task_extra_slot::stats_line == 0u);
    BOOST_TEST(s->timing_interval == test_interval);
    BOOST_TEST(s->polls.load() == 1u);
    BOOST_TEST(s->stamp.load() != 0u);
    BOOST_TEST((s->stamp.load() & sd::task_stats::in_poll_bit) == 0u);
    BOOST_TEST(s->timed_polls.load() <= 1u);
    BOOST_TEST((sd::task_stats::wait_kind_of(s->wait.load()) == sd::wait_kind::join));
    BOOST_TEST(sd::task_stats::wait_target_of(s->wait.load()) == 42u);
    BOOST_TEST(s->wait_poll.load() == 0u); // noted by the first poll (number 0)
    // The second poll counts in the block and completes the task; the word stays.
    sd::raw_task(self).wake_by_ref();
    BOOST_REQUIRE(queued->size() == 1u);
    sd::notified<queue_scheduler> again = std::move(queued->front());
    queued->pop_front();
    sd::local_notified<queue_scheduler>(std::move(again)).run();
    BOOST_TEST(sd::identity_of(self).extra.load_acquire() == after);
    BOOST_TEST(s->polls.load() == 2u);
    BOOST_TEST(t.join.raw().get()->state.load().is_complete());
    t.owned = {};
  } // the join handle goes: the cell and the stats block are freed
  if (cell_cache_stats::enabled()) {
    using layout = sd::cell<slot_watcher, queue_scheduler>::layout;
    constexpr std::size_t block = sd::task_extra_slot::own_block_bytes;
    const bool same_class = limits::class_size(layout::size) == limits::class_size(block);
    BOOST_TEST(cached_blocks() == 2u); // the cell and the stats block
    BOOST_TEST(cell_cache_stats::cached_on_this_thread(block) == (same_class ? 2u : 1u));
  }
}
#endif

// A name is kept byte for byte (embedded NULs, any length); an empty one reads back empty.
BOOST_AUTO_TEST_CASE(a_task_name_keeps_its_bytes) {
  BOOST_TEST(sd::task_name("").view().empty());
  const std::string with_nul("a\0b", 3);
  BOOST_TEST(sd::task_name(with_nul).view() == with_nul);
  const std::string longer(1000, 'x');
  BOOST_TEST(sd::task_name(longer).view() == longer);
}

BOOST_AUTO_TEST_SUITE_END()
