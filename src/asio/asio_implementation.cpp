// Boost.Asio's own non-template code, when the build compiles it separately. With
// BOOST_ASIO_SEPARATE_COMPILATION (CMake's SWARM_ASIO_SEPARATE_COMPILATION, which makes it a
// usage requirement of swarm::swarm) Asio's headers only declare those functions and exactly
// one file of the program must define them: this one, so that a program linking libswarm needs
// none of its own. Without the macro Asio is header-only and this file is empty.

#if defined(BOOST_ASIO_SEPARATE_COMPILATION)
#include <boost/asio/impl/src.hpp>
#endif
