#define BOOST_TEST_MODULE swarm_task
#include <boost/test/unit_test.hpp>
