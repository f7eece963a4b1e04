// swarm::abort_handle.
#pragma once

#include <swarm/task/abort.hpp>
