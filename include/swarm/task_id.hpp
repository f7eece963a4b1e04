// swarm::task_id, current_task_id() and try_current_task_id().
#pragma once

#include <swarm/task/id.hpp>
