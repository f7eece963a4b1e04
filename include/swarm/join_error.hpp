// swarm::join_error.
#pragma once

#include <swarm/task/join_error.hpp>
