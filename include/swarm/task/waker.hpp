// A type-erased handle that makes a task runnable again: a data pointer and a vtable of
// clone / wake / wake_by_ref / drop, as Rust's Waker.
//
// An owned waker holds whatever its vtable counts (a task waker holds one task reference).
// Two wakers that share data pointer and vtable wake the same thing (will_wake).
#pragma once

#include <utility>

namespace swarm::detail {

struct waker_vtable {
  void* (*clone)(void* data);      // returns the data pointer of a new owned waker
  void (*wake)(void* data);        // wake and give up this waker's ownership
  void (*wake_by_ref)(void* data); // wake, keep ownership
  void (*drop)(void* data);        // give up ownership
};

class waker {
public:
  constexpr waker() noexcept = default;
  constexpr waker(void* data, const waker_vtable* vtable) noexcept : data_(data), vtable_(vtable) {}
  waker(waker&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), vtable_(std::exchange(other.vtable_, nullptr)) {}
  waker& operator=(waker&& other) noexcept {
    if (this != &other) {
      reset();
      data_ = std::exchange(other.data_, nullptr);
      vtable_ = std::exchange(other.vtable_, nullptr);
    }
    return *this;
  }
  waker(const waker&) = delete;
  waker& operator=(const waker&) = delete;
  ~waker() { reset(); }

  explicit operator bool() const noexcept { return vtable_ != nullptr; }

  waker clone() const { return vtable_ ? waker(vtable_->clone(data_), vtable_) : waker(); }

  // Consumes the waker.
  void wake() && {
    if (const waker_vtable* vt = std::exchange(vtable_, nullptr))
      vt->wake(std::exchange(data_, nullptr));
  }

  void wake_by_ref() const {
    if (vtable_)
      vtable_->wake_by_ref(data_);
  }

  bool will_wake(const waker& other) const noexcept { return data_ == other.data_ && vtable_ == other.vtable_; }

  void reset() noexcept {
    if (const waker_vtable* vt = std::exchange(vtable_, nullptr))
      vt->drop(std::exchange(data_, nullptr));
  }

  // Lets go of the waker without dropping it: for wakers that were never counted.
  void forget() noexcept {
    data_ = nullptr;
    vtable_ = nullptr;
  }

  void* data() const noexcept { return data_; }
  const waker_vtable* vtable() const noexcept { return vtable_; }

private:
  void* data_ = nullptr;
  const waker_vtable* vtable_ = nullptr;
};

// What a poll receives: a waker borrowed for the duration of the poll. Cloning it makes a
// real, counted waker; the borrowed one is never dropped.
class poll_context {
public:
  explicit poll_context(const waker& w) noexcept : waker_(w) {}
  const waker& get_waker() const noexcept { return waker_; }

private:
  const waker& waker_;
};

} // namespace swarm::detail
