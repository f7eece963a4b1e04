// swarm::console: a live view of a runtime in the browser. serve() starts a small HTTP server
// on its own thread that answers each request from a fresh runtime::dump():
//   GET /             one self-contained page (inline CSS and JS, nothing fetched from
//                     elsewhere): worker gauges, a polls-per-second plot, the task table
//   GET /tasks.json   the live tasks and the unobserved failures
//   GET /workers.json the workers, the global queue and the blocking pool
//   GET /dump.json    all of it, as the page reads it
//   POST /tasks/<id>/abort   runtime::abort_task, only with options::allow_abort
//
// A separate library (CMake swarm::console, b2 /swarm/build//swarm_console) built with
// Boost.Beast; the core library never depends on it.
#pragma once

#include <swarm/runtime.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>

namespace swarm::console {

struct options {
  // Loopback by default: the page shows task names and source locations, and anyone who
  // reaches it can read them. Port 0 picks an ephemeral port (serve() returns it).
  boost::asio::ip::tcp::endpoint endpoint{boost::asio::ip::address_v4::loopback(), 0};
  // Lets the page abort tasks (POST /tasks/<id>/abort). Off: that path answers 403.
  bool allow_abort = false;
  // Connections accepted beyond this many are closed at once.
  std::size_t max_connections = 32;
  // A connection that takes longer than this to send a request, or to take a response, is
  // closed: an idle keep-alive connection holds a slot for at most this long.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(15);
};

// Starts a console for `rt` and returns the endpoint it listens on (with the actual port).
// Throws boost::system::system_error when the endpoint cannot be bound, std::logic_error
// once `rt` is shut down or being destroyed. Several consoles may serve one runtime. Each
// stops with the runtime: within 100 ms of runtime::shutdown() it closes its port and its
// connections, and the runtime's destructor stops and joins every console thread before it
// tears anything down, so no request is served from a runtime that is going away.
boost::asio::ip::tcp::endpoint serve(runtime& rt, const options& opts = {});

// Stops every console of `rt` now and waits for their threads. Nothing happens when there
// is none. Not from inside a console request (there is no such callback).
void stop(runtime& rt);

} // namespace swarm::console
