// skynet on swarm as a user writes it: each node spawns its ten children, then awaits their
// join handles in order; a leaf returns its number. Co is the coroutine type (swarm::coro,
// asio::awaitable). Shared by public_shapes.cpp and tracking_cost.cpp.
#pragma once

#include <swarm/swarm.hpp>

#include <utility>
#include <vector>

template <template <class> class Co, class Ex>
Co<long> skynet_swarm(Ex ex, long num, long size) {
  if (size == 1)
    co_return num;
  std::vector<swarm::join_handle<long>> children;
  children.reserve(10);
  const long sub = size / 10;
  for (long i = 0; i < 10; ++i)
    children.push_back(swarm::spawn(ex, skynet_swarm<Co>(ex, num + i * sub, sub)));
  long sum = 0;
  for (auto& c : children)
    sum += co_await std::move(c);
  co_return sum;
}
