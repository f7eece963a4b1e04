#define BOOST_TEST_MODULE swarm_asio
#include <boost/test/unit_test.hpp>
