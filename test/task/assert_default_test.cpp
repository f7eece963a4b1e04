// Left to itself, SWARM_ASSERTS follows NDEBUG (include/swarm/detail/assert.hpp). This file
// includes nothing else, so that its include of assert.hpp is the first in the translation
// unit; the build's own setting (the tests may be built with SWARM_ASSERTS=1) is taken away.
#undef SWARM_ASSERTS
#define NDEBUG 1
#include <swarm/detail/assert.hpp>

static_assert(SWARM_ASSERTS == 0, "SWARM_ASSERTS must follow NDEBUG when nobody sets it");

namespace {
// Compiled out: the expression is not evaluated (it would fail, and set `evaluated`), and
// names used only in it draw no warning.
constexpr int evaluations_when_off() {
  int evaluated = 0;
  const int only_in_the_assert = 1;
  SWARM_ASSERT((evaluated = only_in_the_assert) == 2);
  return evaluated;
}
static_assert(evaluations_when_off() == 0);
} // namespace
