// Order statistics of a bench's samples. Shared by public_shapes.cpp and tracking_cost.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

// The q-quantile of `v` (q in [0, 1]; 0.5 the median), the nearest rank below: the element
// at q * (size - 1) once sorted. `v` must not be empty.
template <class T>
T quantile(std::vector<T> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}
