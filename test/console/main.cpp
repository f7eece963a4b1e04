#define BOOST_TEST_MODULE swarm_console
#include <boost/test/unit_test.hpp>
