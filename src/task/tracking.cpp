#include <swarm/task/tracking.hpp>

#include <atomic>
#include <mutex>

namespace swarm::detail {

namespace {

struct stamp_epoch {
  std::uint64_t stamp = 0;
  std::uint64_t ns = 0;
  double first_ratio = 1.0; // from the first window
};

std::once_flag epoch_once;
stamp_epoch epoch; // written once under epoch_once, read after it

void take_epoch() noexcept {
  epoch.stamp = stamp_now();
  epoch.ns = steady_now_ns();
#if defined(__x86_64__)
  // A first window of about a millisecond, for the dumps taken before a longer one exists.
  std::uint64_t ns = epoch.ns;
  while (ns - epoch.ns < 1'000'000)
    ns = steady_now_ns();
  const std::uint64_t st = stamp_now();
  epoch.first_ratio =
      st > epoch.stamp ? static_cast<double>(ns - epoch.ns) / static_cast<double>(st - epoch.stamp) : 1.0;
#endif
}

} // namespace

void stamp_clock::calibrate() noexcept { std::call_once(epoch_once, take_epoch); }

double stamp_clock::ns_per_stamp() noexcept {
  calibrate();
#if defined(__x86_64__)
  const std::uint64_t st = stamp_now();
  const std::uint64_t ns = steady_now_ns();
  // Past 100 ms the whole span since the epoch is the better measure.
  if (ns - epoch.ns > 100'000'000 && st > epoch.stamp)
    return static_cast<double>(ns - epoch.ns) / static_cast<double>(st - epoch.stamp);
  return epoch.first_ratio;
#else
  return 1.0;
#endif
}

} // namespace swarm::detail
