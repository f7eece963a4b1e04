#define BOOST_TEST_MODULE swarm_alloc
#include <boost/test/unit_test.hpp>
