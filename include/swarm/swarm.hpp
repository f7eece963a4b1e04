// Everything swarm offers.
#pragma once

#include <swarm/abort_handle.hpp>
#include <swarm/coro.hpp>
#include <swarm/join_error.hpp>
#include <swarm/join_handle.hpp>
#include <swarm/join_set.hpp>
#include <swarm/runtime.hpp>
#include <swarm/spawn.hpp>
#include <swarm/task_id.hpp>
#include <swarm/use_join_handle.hpp>
#include <swarm/yield_now.hpp>
