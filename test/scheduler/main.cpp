#define BOOST_TEST_MODULE swarm_scheduler
#include <boost/test/unit_test.hpp>
