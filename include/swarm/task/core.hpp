// The typed parts of a task cell: the output type, the stage (future / output / consumed),
// and the cell layout with the offsets the vtable publishes.
//
// A cell is one allocation from the cell allocator (cell_allocator.hpp): header | scheduler | identity |
// stage | trailer [| task_extra], each at an offset computed here, so that non-generic code holding a
// header* reaches the rest through the vtable and generic code through compile-time constants. The
// task_extra (tracking.hpp) is there only for a named task, which then has a larger block.
#pragma once

#include <swarm/detail/assert.hpp>
#include <swarm/detail/config.hpp>
#include <swarm/task/cell_allocator.hpp>
#include <swarm/task/header.hpp>
#include <swarm/task/join_error.hpp>
#include <swarm/task/swallowed_exception.hpp>
#include <swarm/task/tracking.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <new>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace swarm::detail {

// The output type of a task that returns nothing.
struct unit {
  friend constexpr bool operator==(unit, unit) noexcept { return true; }
};

// What the task layer calls a future: something polled with a borrowed waker until it
// returns a value. A pending poll must have arranged for the waker to be woken.
template <class F>
concept future = requires(F& f, poll_context& cx) {
  typename F::output_type;
  { f.poll(cx) } -> std::same_as<std::optional<typename F::output_type>>;
};

// A future that needs its own task (its scheduler value, its queue) declares
// attach(header*). The cell calls it once, right after constructing the future and before
// the task is handed to anyone: a task is complete before another thread can see it.
template <class F>
concept attaching_future = requires(F& f, header* h) {
  f.attach(h);
};

// A task's result: its value, or the join_error that replaced it. Destroying it may throw
// when T's destructor may (tasks report that as a panic where Tokio does).
template <class T>
class outcome {
public:
  outcome(T value) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(true) {
    ::new (static_cast<void*>(&value_)) T(std::move(value));
  }
  outcome(join_error error) noexcept : ok_(false) {
    ::new (static_cast<void*>(&error_)) join_error(std::move(error));
  }
  outcome(outcome&& other) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(other.ok_) {
    if (ok_)
      ::new (static_cast<void*>(&value_)) T(std::move(other.value_));
    else
      ::new (static_cast<void*>(&error_)) join_error(std::move(other.error_));
  }
  outcome& operator=(outcome&&) = delete;
  ~outcome() noexcept(std::is_nothrow_destructible_v<T>) {
    if (ok_)
      value_.~T();
    else
      error_.~join_error();
  }

  bool has_value() const noexcept { return ok_; }
  T& value() & noexcept { return SWARM_ASSERT(ok_), value_; }
  T&& value() && noexcept { return SWARM_ASSERT(ok_), std::move(value_); }
  const T& value() const& noexcept { return SWARM_ASSERT(ok_), value_; }
  join_error& error() noexcept { return SWARM_ASSERT(!ok_), error_; }
  const join_error& error() const noexcept { return SWARM_ASSERT(!ok_), error_; }

private:
  union {
    T value_;
    join_error error_;
  };
  bool ok_;
};

// An optional value whose destruction may throw when T's may: std::optional's reset and
// destructor are noexcept and would turn a throwing output destructor into std::terminate.
// Converts to std::optional<T> for callers that prefer it.
template <class T>
class maybe {
public:
  maybe() noexcept : empty_() {}
  maybe(maybe&& o) noexcept(std::is_nothrow_move_constructible_v<T>) : empty_() {
    if (o.engaged_)
      emplace(std::move(*o));
  }
  maybe& operator=(maybe&&) = delete;
  ~maybe() noexcept(std::is_nothrow_destructible_v<T>) { reset(); }

  template <class... Args>
  T& emplace(Args&&... args) {
    reset();
    ::new (static_cast<void*>(&value_)) T(std::forward<Args>(args)...);
    engaged_ = true;
    return value_;
  }
  // Empty afterwards even when T's destructor throws; the exception propagates.
  void reset() noexcept(std::is_nothrow_destructible_v<T>) {
    if (engaged_) {
      engaged_ = false;
      value_.~T();
    }
  }

  bool has_value() const noexcept { return engaged_; }
  explicit operator bool() const noexcept { return engaged_; }
  T& operator*() & noexcept { return SWARM_ASSERT(engaged_), value_; }
  T&& operator*() && noexcept { return SWARM_ASSERT(engaged_), std::move(value_); }
  T* operator->() noexcept { return SWARM_ASSERT(engaged_), &value_; }

  operator std::optional<T>() && {
    std::optional<T> o;
    if (engaged_)
      o.emplace(std::move(value_));
    return o;
  }

private:
  union {
    char empty_;
    T value_;
  };
  bool engaged_ = false;
};

// The stage of a task, guarded by the `running` bit until `complete`, then owned by the
// join handle: the future while it runs, then its outcome, then nothing.
template <class F>
class stage {
public:
  using output_type = typename F::output_type;
  enum class tag : unsigned char { running, finished, consumed };

  explicit stage(F&& f) noexcept(std::is_nothrow_move_constructible_v<F>) : tag_(tag::running) {
    ::new (static_cast<void*>(&future_)) F(std::move(f));
  }
  stage(const stage&) = delete;
  stage& operator=(const stage&) = delete;
  // The cell destroys the stage explicitly with drop(); nothing may be left by then.
  ~stage() { SWARM_ASSERT(tag_ == tag::consumed); }

  tag current() const noexcept { return tag_; }

  F& future() noexcept { return SWARM_ASSERT(tag_ == tag::running), future_; }

  // Destroys the future or the output, whichever is present. The stage is consumed even
  // when the destructor throws; the exception propagates.
  void drop() noexcept(std::is_nothrow_destructible_v<F>&& std::is_nothrow_destructible_v<output_type>) {
    const tag t = std::exchange(tag_, tag::consumed);
    if (t == tag::running)
      future_.~F();
    else if (t == tag::finished)
      output_.~outcome<output_type>();
  }

  // Precondition: consumed.
  void store(outcome<output_type>&& o) noexcept(std::is_nothrow_move_constructible_v<output_type>) {
    SWARM_ASSERT(tag_ == tag::consumed);
    ::new (static_cast<void*>(&output_)) outcome<output_type>(std::move(o));
    tag_ = tag::finished;
  }

  // The outcome, if finished and not yet taken; null otherwise.
  const outcome<output_type>* finished_output() const noexcept {
    return tag_ == tag::finished ? &output_ : nullptr;
  }

  // Moves the outcome out. Taking it twice is a misuse reported with an exception.
  outcome<output_type> take() {
    if (tag_ != tag::finished)
      throw std::logic_error("swarm: a task's output was read twice, or read before the task completed");
    outcome<output_type> o(std::move(output_));
    drop(); // the moved-from outcome
    return o;
  }

private:
  union {
    F future_;
    outcome<output_type> output_;
  };
  tag tag_;
};

// Who the task is: immutable once the task is published, but for `extra`, which says where
// the task's name and stats are (task_extra_slot, tracking.hpp). When it names a task_extra
// in the task's own cell (a named task), that is at cell_layout::extra_offset and the cell
// was allocated with size_with_extra.
struct task_identity {
  task_id id;
  std::source_location location;
  task_extra_slot extra;
};

// The identity of any task from its header (cell_layout puts the id first in it, so it sits
// at vtable->id_offset). Not for jobs (job_owner_id): they have none.
inline task_identity& identity_of(header* h) noexcept {
  return *std::launder(reinterpret_cast<task_identity*>(reinterpret_cast<char*>(h) + h->vtable->id_offset));
}

constexpr std::size_t round_up(std::size_t n, std::size_t align) noexcept {
  return (n + align - 1) / align * align;
}

// Offsets of the parts of a cell<F, S>.
template <class F, class S>
struct cell_layout {
  static constexpr std::size_t scheduler_offset = round_up(sizeof(header), alignof(S));
  static constexpr std::size_t identity_offset =
      round_up(scheduler_offset + sizeof(S), alignof(task_identity));
  static constexpr std::size_t id_offset = identity_offset; // task_identity starts with the id
  static constexpr std::size_t stage_offset =
      round_up(identity_offset + sizeof(task_identity), alignof(stage<F>));
  static constexpr std::size_t trailer_offset = round_up(stage_offset + sizeof(stage<F>), alignof(trailer));
  // The allocator's block alignment unless a part needs more. Not the cache-line pair: the
  // header's atomics share a line with the cold tail of a neighbour at worst, which costs
  // less than glibc's memalign per task (doc/design.md "Performance work").
  static constexpr std::size_t alignment = std::max({cell_block_alignment, alignof(S), alignof(stage<F>)});
  static constexpr std::size_t size = round_up(trailer_offset + sizeof(trailer), alignment);
  // A named task's task_extra follows the trailer in the same block: a spawn draws one
  // block from the cache, not two, and the stats sit next to the cell's tail. It
  // starts where the trailer ends, not at `size`, so that it may use the untracked cell's
  // rounding (a cell of swarm::coro: 248 + 72 bytes, 320 in all, one size class up).
  static constexpr std::size_t extra_offset = round_up(trailer_offset + sizeof(trailer), alignof(task_extra));
  static constexpr std::size_t size_with_extra = round_up(extra_offset + sizeof(task_extra), alignment);
  static_assert(offsetof(task_identity, id) == 0);
};

// Typed access to a cell from its header. Valid only for headers of cell<F, S>.
template <class F, class S>
struct cell {
  using layout = cell_layout<F, S>;
  using output_type = typename F::output_type;

  static char* base(header* h) noexcept { return reinterpret_cast<char*>(h); }
  static S& scheduler(header* h) noexcept {
    return *std::launder(reinterpret_cast<S*>(base(h) + layout::scheduler_offset));
  }
  static task_identity& identity(header* h) noexcept {
    return *std::launder(reinterpret_cast<task_identity*>(base(h) + layout::identity_offset));
  }
  static task_id id(header* h) noexcept { return identity(h).id; }
  static stage<F>& stage_of(header* h) noexcept {
    return *std::launder(reinterpret_cast<stage<F>*>(base(h) + layout::stage_offset));
  }
  static trailer& trailer_of(header* h) noexcept {
    return *std::launder(reinterpret_cast<trailer*>(base(h) + layout::trailer_offset));
  }

  // Allocates and constructs a cell holding `f`, with the initial state word. `extra`, if
  // given, sets the identity's `extra`: a task_extra in the cell for a named task, the lazy
  // form for a tracked one without a name.
  static header* create(F&& f, S&& s, task_id id, std::source_location location, const struct vtable* vt,
                        const task_hook* on_terminate, const task_extra_request* extra = nullptr) {
    std::uint64_t extra_word = 0; // the identity's `extra`
    const bool in_cell = extra && extra->in_cell();
    const std::size_t bytes = in_cell ? layout::size_with_extra : layout::size;
    void* mem = allocate_cell(bytes, layout::alignment);
    char* p = static_cast<char*>(mem);
    header* h = ::new (p) header();
    h->vtable = vt;
    try {
      if (in_cell)
        extra_word = task_extra_slot::in_cell_word(::new (p + layout::extra_offset)
                                                       task_extra(extra->name, extra->timing_interval));
#if SWARM_TASK_TRACKING
      else if (extra && extra->timing_interval != 0)
        extra_word = task_extra_slot::lazy_word(extra->timing_interval);
#endif
      try {
        ::new (p + layout::scheduler_offset) S(std::move(s));
        try {
          ::new (p + layout::stage_offset) stage<F>(std::move(f));
        } catch (...) {
          // Undo what was built, then the caller sees the exception (nothing spawned).
          scheduler(h).~S();
          throw;
        }
      } catch (...) {
        task_extra_slot::destroy(extra_word);
        throw;
      }
    } catch (...) {
      // As above: free the cell, the caller sees the exception.
      h->~header();
      deallocate_cell(mem, bytes, layout::alignment);
      throw;
    }
    ::new (p + layout::identity_offset) task_identity{id, location, task_extra_slot(extra_word)};
    trailer* t = ::new (p + layout::trailer_offset) trailer();
    t->on_terminate = on_terminate;
    if constexpr (attaching_future<F>)
      stage_of(h).future().attach(h);
    return h;
  }

  // Destroys whatever the cell still holds and frees it. An exception from a destructor
  // here has nowhere to go (the last reference may drop on any thread) and is swallowed.
  static void destroy(header* h) noexcept {
    {
      current_task_id_guard guard(id(h));
      try {
        stage_of(h).drop();
      } catch (...) {
        count_swallowed_exception();
      }
      stage_of(h).~stage<F>();
      trailer_of(h).~trailer();
    }
    const std::uint64_t extra = identity(h).extra.load_relaxed();
    const std::size_t bytes = task_extra_slot::in_cell_of(extra) ? layout::size_with_extra : layout::size;
    task_extra_slot::destroy(extra);
    identity(h).~task_identity();
    scheduler(h).~S();
    h->~header();
    deallocate_cell(static_cast<void*>(h), bytes, layout::alignment);
  }
};

} // namespace swarm::detail
