// A TCP echo server on swarm::runtime, written exactly as for boost::asio::io_context:
// coroutines, one runtime, N threads calling run().
//
//   echo_server [--port P] [--threads N] [--console C]
//       serves on 127.0.0.1:P (default 5555) until SIGINT or SIGTERM; with --console, also
//       swarm's console (swarm/console.hpp) on 127.0.0.1:C (0: an ephemeral port), whose URL
//       it prints. The tasks are named: "accept loop", and "conn 127.0.0.1:40112" for each
//       connection.
//   echo_server --self-test R [--threads N]
//       serves on 127.0.0.1 with an ephemeral port, runs R client round trips against
//       it over a few connections, checks every echo and exits 0 on success (for CI)
#include "accept_backoff.hpp"
#include "args.hpp"

#include <swarm/console.hpp>
#include <swarm/runtime.hpp>
#include <swarm/spawn.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// One connection: echo what arrives until the peer closes or the connection fails.
asio::awaitable<void> echo_session(tcp::socket socket) {
  std::array<char, 4096> buf;
  for (;;) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), use_tuple);
    if (ec)
      co_return; // end of stream, reset, or the runtime going away
    auto [wec, written] = co_await asio::async_write(socket, asio::buffer(buf.data(), n), use_tuple);
    if (wec)
      co_return;
  }
}

// Accepts connections (at most `max_connections`), one coroutine each. The sessions get
// the runtime's executor, not the acceptor's: each runs wherever a worker is free.
asio::awaitable<void> listen(tcp::acceptor& acceptor, swarm::runtime& rt, long max_connections) {
  swarm_example::accept_backoff errors("echo_server");
  for (long accepted = 0; accepted < max_connections;) {
    auto [ec, socket] = co_await acceptor.async_accept(rt.get_executor(), use_tuple);
    if (ec == asio::error::operation_aborted)
      co_return;
    if (ec) {
      if (auto wait = errors.on_error(ec); wait.count() != 0) {
        asio::steady_timer pause(rt.get_executor(), wait);
        co_await pause.async_wait(use_tuple);
      }
      continue;
    }
    ++accepted;
    socket.set_option(tcp::no_delay(true));
    error_code ec_peer;
    const tcp::endpoint peer = socket.remote_endpoint(ec_peer);
    std::string name = "conn ?";
    if (!ec_peer)
      name = "conn " + peer.address().to_string() + ":" + std::to_string(peer.port());
    swarm::spawn(rt.get_executor(), echo_session(std::move(socket)),
                 swarm::spawn_options{.name = std::move(name)});
  }
}

// Runs rt.run() on `threads` threads (this one included) until it returns everywhere.
void run_on_threads(swarm::runtime& rt, unsigned threads) {
  std::vector<std::thread> extra;
  for (unsigned i = 1; i < threads; ++i)
    extra.emplace_back([&rt] { rt.run(); });
  rt.run();
  for (auto& t : extra)
    t.join();
}

// --- Self-test -------------------------------------------------------------------------------

// `round_trips` messages of varying sizes, each read back and compared; then a clean close.
asio::awaitable<void> client(tcp::endpoint server, int id, long round_trips) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, asio::use_awaitable);
  socket.set_option(tcp::no_delay(true));
  std::string message, reply;
  for (long i = 0; i < round_trips; ++i) {
    message = "client " + std::to_string(id) + " message " + std::to_string(i) + " ";
    message.append(static_cast<std::size_t>((i * 131) % 2000), static_cast<char>('a' + i % 26));
    message += '\n';
    co_await asio::async_write(socket, asio::buffer(message), asio::use_awaitable);
    reply.assign(message.size(), '\0');
    co_await asio::async_read(socket, asio::buffer(reply), asio::use_awaitable);
    if (reply != message)
      throw std::runtime_error("client " + std::to_string(id) + ": echo mismatch at message " + std::to_string(i));
  }
  socket.shutdown(tcp::socket::shutdown_send);
  char c;
  auto [ec, n] = co_await socket.async_read_some(asio::buffer(&c, 1), use_tuple);
  if (ec != asio::error::eof)
    throw std::runtime_error("client " + std::to_string(id) + ": expected the server to close");
}

int self_test(long round_trips, unsigned threads) {
  const int connections = static_cast<int>(std::clamp<long>(round_trips / 100, 1, 8));
  swarm::runtime rt{static_cast<int>(threads)};
  tcp::acceptor acceptor(rt.get_executor(), {asio::ip::address_v4::loopback(), 0});
  const tcp::endpoint server = acceptor.local_endpoint();

  std::mutex m;
  std::string failure;
  auto fail = [&](const std::string& why) {
    std::lock_guard l(m);
    if (failure.empty())
      failure = why;
  };

  // The server takes exactly the test's connections, so that once every client is done
  // nothing is left to do and run() returns by itself, as io_context's would.
  asio::co_spawn(rt, listen(acceptor, rt, connections), [&](std::exception_ptr e) {
    if (e)
      fail("server failed");
  });
  std::atomic<long> completed{0};
  for (int c = 0; c < connections; ++c) {
    const long share = round_trips / connections + (c < round_trips % connections ? 1 : 0);
    asio::co_spawn(rt, client(server, c, share), [&, share](std::exception_ptr e) {
      if (!e) {
        completed += share;
        return;
      }
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        fail(ex.what());
      }
    });
  }

  // A watchdog: a self-test must end, whatever happens.
  std::promise<void> done;
  std::thread watchdog([&, f = done.get_future()] {
    if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      fail("timed out after 60 s");
      rt.stop();
    }
  });
  const auto start = std::chrono::steady_clock::now();
  run_on_threads(rt, threads);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  done.set_value();
  watchdog.join();

  if (failure.empty() && completed != round_trips)
    failure = "only " + std::to_string(completed.load()) + " round trips completed";
  const double ms = std::chrono::duration<double, std::milli>(elapsed).count();
  if (!failure.empty()) {
    std::fprintf(stderr, "echo_server self-test FAILED: %s\n", failure.c_str());
    return 1;
  }
  std::printf("echo_server self-test: %ld round trips over %d connections on %u threads in %.1f ms: OK\n",
              round_trips, connections, threads, ms);
  return 0;
}

int serve(unsigned short port, unsigned threads, long console_port) {
  swarm::runtime_options options;
  options.worker_threads = threads;
  options.track_tasks = console_port >= 0; // the console's per-task counts and times
  swarm::runtime rt{options};
  tcp::acceptor acceptor(rt.get_executor(), {asio::ip::address_v4::loopback(), port});
  asio::signal_set signals(rt, SIGINT, SIGTERM);
  signals.async_wait([&](error_code ec, int) {
    if (!ec)
      rt.stop(); // every run() returns; destroying the runtime ends the sessions
  });
  swarm::spawn(rt.get_executor(), listen(acceptor, rt, std::numeric_limits<long>::max()),
               swarm::spawn_options{.name = "accept loop"});
  std::printf("echo_server: listening on %s:%u with %u threads\n", acceptor.local_endpoint().address().to_string().c_str(),
              acceptor.local_endpoint().port(), threads);
  if (console_port >= 0) {
    // The console runs on its own thread and stops when `rt` is destroyed.
    swarm::console::options console;
    console.endpoint.port(static_cast<unsigned short>(console_port));
    const tcp::endpoint at = swarm::console::serve(rt, console);
    std::printf("echo_server: console on http://%s:%u/\n", at.address().to_string().c_str(), at.port());
  }
  std::fflush(stdout); // whoever reads the URLs may be a pipe
  run_on_threads(rt, threads);
  return 0;
}

constexpr const char* usage = "usage: echo_server [--port P] [--threads N] [--console C]\n"
                              "       echo_server --self-test ROUND_TRIPS [--threads N]\n";

} // namespace

int main(int argc, char** argv) {
  long threads = std::max(1u, std::thread::hardware_concurrency());
  long port = 5555, self_test_round_trips = -1, console_port = -1;
  swarm_example::parse_args(argc, argv, "echo_server", usage,
                            {swarm_example::number("--port", port, 0, 65535),
                             swarm_example::number("--threads", threads, 1, 1024),
                             swarm_example::number("--self-test", self_test_round_trips, 1, 100'000'000),
                             swarm_example::number("--console", console_port, 0, 65535)});
  try {
    if (self_test_round_trips > 0)
      return self_test(self_test_round_trips, static_cast<unsigned>(threads));
    return serve(static_cast<unsigned short>(port), static_cast<unsigned>(threads), console_port);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
