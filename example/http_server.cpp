// A plaintext HTTP/1.1 server on swarm::runtime with Boost.Beast: "Hello, World!" for every
// GET (and its headers for HEAD), keep-alive and pipelining, chunked request bodies, Connection
// handling for HTTP/1.1 and 1.0, 400 / 413 / 431 for requests Beast refuses. Written as
// for boost::asio::io_context: coroutines, one runtime, N threads in run(), Beast's parser and
// serializer (http::async_read into a request_parser, http::async_write), a flat_buffer per
// connection.
//
//   http_server [--port P] [--threads N] [--current-thread] [--console C]
//       serves on 127.0.0.1:P (default 8080) until SIGINT or SIGTERM, and the console on
//       127.0.0.1:C with --console
//   http_server --self-test R [--threads N] [--current-thread]
//       serves on 127.0.0.1 with an ephemeral port, makes R keep-alive requests against it
//       over a few connections plus the Connection / HEAD / 405 / pipelining / chunked cases
//       and the malformed and oversized requests, checks every response and exits 0 on
//       success (for CI)
//
// --current-thread runs the same program on the current-thread flavour (Tokio's
// new_current_thread: one worker, driven by the threads in run(), as io_context(1) is); it is
// one line in runtime_options_for() below. N defaults to the hardware concurrency, or 1 with
// --current-thread.
//
// --console C also serves swarm's console (swarm/console.hpp) on 127.0.0.1:C (0: an ephemeral
// port) and prints its URL: open it to watch the workers and tasks. The tasks are named: the
// accept loop, and each connection after its peer ("conn 127.0.0.1:40112"), then, from its
// first request on, after that request too ("conn 127.0.0.1:40112 GET /index.html"). A task
// name is set when it is spawned, so a connection reads its first request in one task and
// hands itself over to a second one named after it.
#include "accept_backoff.hpp"
#include "args.hpp"

#include <swarm/console.hpp>
#include <swarm/runtime.hpp>
#include <swarm/spawn.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t max_head_bytes = 8 * 1024;    // beyond: 431
constexpr std::size_t max_body_bytes = 1024 * 1024; // beyond: 413
// What a closing connection still reads from its client before it gives up (see linger()).
constexpr std::size_t max_linger_bytes = 64 * 1024;
constexpr std::string_view hello = "Hello, World!";

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

// --- Responses ------------------------------------------------------------------------------

// RFC 9110 IMF-fixdate, cached per second and per thread.
const std::string& http_date() {
  thread_local std::time_t cached_second = 0;
  thread_local std::string cached;
  const std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached = buf;
    cached_second = now;
  }
  return cached;
}

// A response of HTTP/1.`version / 10`, with `body`'s Content-Length and, unless `head_only`,
// `body` itself. keep_alive() writes the Connection header each version needs.
response make_response(http::status status, unsigned version, bool keep_alive, std::string_view body,
                       bool head_only = false) {
  response res{status, version};
  res.set(http::field::server, "swarm");
  res.set(http::field::date, http_date());
  res.set(http::field::content_type, "text/plain");
  res.content_length(body.size());
  if (!head_only)
    res.body() = body;
  res.keep_alive(keep_alive);
  return res;
}

// The answer to a request that Beast could not read, or none when there is nobody to answer:
// the client closed (between requests or within one) or the socket failed.
std::optional<http::status> status_for(const error_code& ec) {
  if (ec == http::error::header_limit)
    return http::status::request_header_fields_too_large;
  if (ec == http::error::body_limit)
    return http::status::payload_too_large;
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec.category() != http::make_error_code(http::error::end_of_stream).category())
    return std::nullopt;
  return http::status::bad_request; // any other parse error: request line, version, field, length, chunk
}

// --- The server -----------------------------------------------------------------------------

// Ends a connection after its last response. Closing a socket that still holds unread request
// bytes makes the kernel send RST, which can discard the response before the client reads it;
// so the sending side is shut down (the client sees the end of the stream) and what the
// client still sends is read and dropped until it closes, up to max_linger_bytes.
asio::awaitable<void> linger(tcp::socket& socket) {
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  std::array<char, 4096> sink;
  for (std::size_t drained = 0; drained < max_linger_bytes;) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(sink), use_tuple);
    if (ec)
      co_return;
    drained += n;
  }
}

// The next request of a connection, or none when the connection is over: the client left,
// or its request was refused (answered here). Bytes read past the request (pipelined
// requests) stay in `buffer` for the next one.
asio::awaitable<std::optional<request>> read_request(tcp::socket& socket, beast::flat_buffer& buffer) {
  // A parser reads one message: a fresh one for every request.
  http::request_parser<http::string_body> parser;
  parser.header_limit(max_head_bytes);
  parser.body_limit(max_body_bytes);
  auto [ec, n] = co_await http::async_read(socket, buffer, parser, use_tuple);
  if (ec) {
    if (const std::optional<http::status> status = status_for(ec)) {
      const response res = make_response(*status, 11, false, "");
      if (auto [wec, written] = co_await http::async_write(socket, res, use_tuple); !wec)
        co_await linger(socket);
    }
    co_return std::nullopt;
  }
  co_return parser.release(); // HTTP/1.0 or 1.1: Beast refuses other versions
}

// Answers `req`; false when the connection is over.
asio::awaitable<bool> answer(tcp::socket& socket, const request& req) {
  response res;
  if (req.method() == http::verb::get || req.method() == http::verb::head)
    res = make_response(http::status::ok, req.version(), req.keep_alive(), hello,
                        req.method() == http::verb::head);
  else {
    res = make_response(http::status::method_not_allowed, req.version(), req.keep_alive(), "");
    res.set(http::field::allow, "GET, HEAD");
  }
  auto [wec, written] = co_await http::async_write(socket, res, use_tuple);
  if (wec)
    co_return false;
  if (!res.keep_alive()) {
    co_await linger(socket);
    co_return false;
  }
  co_return true;
}

// A connection from its first request on: answer, read the next request, repeat while the
// connection is kept alive.
asio::awaitable<void> http_session(tcp::socket socket, beast::flat_buffer buffer, request first) {
  if (!co_await answer(socket, first))
    co_return;
  for (;;) {
    std::optional<request> req = co_await read_request(socket, buffer);
    if (!req || !co_await answer(socket, *req))
      co_return;
  }
}

// A task name shows at most this much of a request target.
constexpr std::size_t max_name_target = 100;

// A new connection: reads its first request, then hands the connection to a task named
// after it (the name of a task is given when it is spawned). The target is the client's, as
// it sent it: whoever shows the name (the console) escapes it.
asio::awaitable<void> accept_session(tcp::socket socket, std::string peer) {
  beast::flat_buffer buffer;
  std::optional<request> first = co_await read_request(socket, buffer);
  if (!first)
    co_return;
  std::string name = std::move(peer);
  name += ' ';
  name += std::string_view(first->method_string().data(), first->method_string().size());
  name += ' ';
  const std::string_view target(first->target().data(), first->target().size());
  name += target.substr(0, max_name_target);
  if (target.size() > max_name_target)
    name += "...";
  const auto ex = socket.get_executor();
  swarm::spawn(ex, http_session(std::move(socket), std::move(buffer), std::move(*first)),
               swarm::spawn_options{.name = std::move(name)});
}

// "conn 127.0.0.1:40112": what the console calls a connection's task.
template <class Socket>
std::string connection_name(const Socket& socket) {
  error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec)
    return "conn ?";
  return "conn " + peer.address().to_string() + ":" + std::to_string(peer.port());
}

asio::awaitable<void> listen(tcp::acceptor& acceptor, swarm::runtime& rt, long max_connections) {
  swarm_example::accept_backoff errors("http_server");
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
    std::string name = connection_name(socket);
    swarm::spawn(rt.get_executor(), accept_session(std::move(socket), name),
                 swarm::spawn_options{.name = name});
  }
}

struct config {
  unsigned threads = 0; // 0: the default of the flavour
  bool current_thread = false;
  long console_port = -1; // -1: no console
};

// The runtime the server runs on: all that differs between the two flavours.
swarm::runtime_options runtime_options_for(const config& c) {
  swarm::runtime_options options;
  options.worker_threads = c.threads;
  if (c.current_thread)
    options.flavor = swarm::runtime_flavor::current_thread; // Tokio's new_current_thread
  // The console's per-task counts and times (a few clock reads per poll).
  options.track_tasks = c.console_port >= 0;
  return options;
}

// N threads in run(); on the current-thread flavour they take turns driving its one worker.
void run_on_threads(swarm::runtime& rt, unsigned threads) {
  std::vector<std::thread> extra;
  for (unsigned i = 1; i < threads; ++i)
    extra.emplace_back([&rt] { rt.run(); });
  rt.run();
  for (auto& t : extra)
    t.join();
}

const char* flavor_name(const config& c) { return c.current_thread ? "current-thread" : "multi-thread"; }

// --- Self-test client -------------------------------------------------------------------------
// The client writes raw bytes, so that it can send what Beast's serializer never would, and
// reads the answers with Beast's response parser.

void expect(bool ok, const std::string& what) {
  if (!ok)
    throw std::runtime_error(what);
}

struct connection {
  tcp::socket socket;
  beast::flat_buffer buffer; // bytes read past the last response
};

asio::awaitable<connection> connect(tcp::endpoint server) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, asio::use_awaitable);
  socket.set_option(tcp::no_delay(true));
  co_return connection{std::move(socket), {}};
}

asio::awaitable<void> send(connection& c, std::string_view bytes) {
  co_await asio::async_write(c.socket, asio::buffer(bytes), asio::use_awaitable);
}

asio::awaitable<response> read_response(connection& c, bool head_request = false) {
  http::response_parser<http::string_body> parser;
  parser.skip(head_request); // the answer to HEAD has a Content-Length but no body
  co_await http::async_read(c.socket, c.buffer, parser, asio::use_awaitable);
  co_return parser.release();
}

void expect_status(const response& r, http::status status) {
  expect(r.result() == status, "expected " + std::to_string(static_cast<unsigned>(status)) + ", got " +
                                   std::to_string(r.result_int()));
}

void expect_hello(const response& r, unsigned version = 11) {
  expect_status(r, http::status::ok);
  expect(r.version() == version,
         "expected HTTP version " + std::to_string(version) + ", got " + std::to_string(r.version()));
  expect(r[http::field::content_length] == std::to_string(hello.size()), "wrong Content-Length");
  expect(r.body() == hello, "wrong body: " + r.body());
}

// After the server said it closes, it must: nothing follows the last response but the end of
// the stream.
asio::awaitable<void> expect_closed(connection& c) {
  expect(c.buffer.size() == 0, "bytes after the last response");
  char byte;
  auto [ec, n] = co_await c.socket.async_read_some(asio::buffer(&byte, 1), use_tuple);
  expect(ec == asio::error::eof, "expected the server to close the connection");
}

// `requests` keep-alive GETs on one connection, then a "Connection: close" one.
asio::awaitable<void> keep_alive_client(tcp::endpoint server, long requests) {
  connection c = co_await connect(server);
  for (long i = 0; i < requests; ++i) {
    co_await send(c, "GET /plaintext/" + std::to_string(i) + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    const response r = co_await read_response(c);
    expect_hello(r);
    expect(r.keep_alive(), "keep-alive connection closed by the server");
  }
  co_await send(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  const response r = co_await read_response(c);
  expect_hello(r);
  expect(!r.keep_alive(), "no Connection: close in the answer to Connection: close");
  co_await expect_closed(c);
}

// Pipelining, HEAD, POSTs with a body and a chunked one (405), then HTTP/1.0 on a second
// connection.
asio::awaitable<void> edge_case_client(tcp::endpoint server) {
  {
    connection c = co_await connect(server);
    co_await send(c,
                  "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                  "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                  "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                  "POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                  "GET /e HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n");
    expect_hello(co_await read_response(c));
    const response head = co_await read_response(c, true);
    expect_status(head, http::status::ok);
    expect(head[http::field::content_length] == std::to_string(hello.size()) && head.body().empty(),
           "bad HEAD response");
    for (int i = 0; i < 2; ++i) {
      const response post = co_await read_response(c);
      expect_status(post, http::status::method_not_allowed);
      expect(post[http::field::allow] == "GET, HEAD", "no Allow header in the 405");
      expect(post.keep_alive(), "405 closed the connection");
    }
    const response last = co_await read_response(c);
    expect_hello(last);
    expect(!last.keep_alive(), "Connection: close ignored");
    co_await expect_closed(c);
  }
  {
    // HTTP/1.0: closed after the response unless asked to keep it.
    connection c = co_await connect(server);
    co_await send(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n");
    const response kept = co_await read_response(c);
    expect_hello(kept, 10);
    expect(kept.keep_alive(), "HTTP/1.0 keep-alive not honoured");
    const response closed = co_await read_response(c);
    expect_hello(closed, 10);
    expect(!closed.keep_alive(), "HTTP/1.0 without keep-alive kept");
    co_await expect_closed(c);
  }
}

// Requests the server refuses, one connection each: the answer, then the end of the stream.
struct refused_case {
  const char* what;
  std::string bytes;
  http::status status;
};

std::vector<refused_case> refused_cases() {
  return {
      {"a field without a colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n", http::status::bad_request},
      {"a request line without a version", "GET /\r\nHost: x\r\n\r\n", http::status::bad_request},
      {"a bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n", http::status::bad_request},
      {"a bad chunk", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
       http::status::bad_request},
      {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", http::status::bad_request}, // Beast reads 1.0 and 1.1 only
      {"a head over the limit",
       "GET / HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(max_head_bytes, 'a') + "\r\n\r\n",
       http::status::request_header_fields_too_large},
      {"a body over the limit",
       "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(max_body_bytes + 1) + "\r\n\r\n",
       http::status::payload_too_large},
  };
}

asio::awaitable<void> refused_client(tcp::endpoint server) {
  for (const refused_case& rc : refused_cases()) {
    connection c = co_await connect(server);
    co_await send(c, rc.bytes);
    const response r = co_await read_response(c);
    expect(r.result() == rc.status, std::string(rc.what) + ": expected " +
                                        std::to_string(static_cast<unsigned>(rc.status)) + ", got " +
                                        std::to_string(r.result_int()));
    expect(!r.keep_alive(), std::string(rc.what) + ": the answer does not say Connection: close");
    co_await expect_closed(c);
  }
}

int self_test(long requests, const config& cfg) {
  const int keep_alive_connections = static_cast<int>(std::clamp<long>(requests / 100, 1, 8));
  // + the edge-case client's two and one per refused request
  const long connections = keep_alive_connections + 2 + static_cast<long>(refused_cases().size());
  swarm::runtime rt{runtime_options_for(cfg)};
  tcp::acceptor acceptor(rt.get_executor(), {asio::ip::address_v4::loopback(), 0});
  const tcp::endpoint server = acceptor.local_endpoint();

  std::mutex m;
  std::string failure;
  auto on_done = [&](std::exception_ptr e) {
    if (!e)
      return;
    std::lock_guard l(m);
    if (!failure.empty())
      return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      failure = ex.what();
    }
  };
  // Exactly the test's connections: afterwards nothing is left and run() returns.
  asio::co_spawn(rt, listen(acceptor, rt, connections), on_done);
  std::atomic<long> answered{0};
  for (int c = 0; c < keep_alive_connections; ++c) {
    const long share = requests / keep_alive_connections + (c < requests % keep_alive_connections ? 1 : 0);
    asio::co_spawn(rt, keep_alive_client(server, share), [&, share](std::exception_ptr e) {
      if (!e)
        answered += share;
      on_done(e);
    });
  }
  asio::co_spawn(rt, edge_case_client(server), on_done);
  asio::co_spawn(rt, refused_client(server), on_done);

  std::promise<void> done;
  std::thread watchdog([&, f = done.get_future()] {
    if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      {
        std::lock_guard l(m);
        if (failure.empty())
          failure = "timed out after 60 s";
      }
      rt.stop();
    }
  });
  const auto start = std::chrono::steady_clock::now();
  run_on_threads(rt, cfg.threads);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  done.set_value();
  watchdog.join();

  if (failure.empty() && answered != requests)
    failure = "only " + std::to_string(answered.load()) + " requests answered";
  if (!failure.empty()) {
    std::fprintf(stderr, "http_server self-test FAILED: %s\n", failure.c_str());
    return 1;
  }
  std::printf("http_server self-test: %ld keep-alive requests over %d connections (+ edge cases, %zu refused "
              "requests) on %u threads, %s runtime, in %.1f ms: OK\n",
              requests, keep_alive_connections, refused_cases().size(), cfg.threads, flavor_name(cfg),
              std::chrono::duration<double, std::milli>(elapsed).count());
  return 0;
}

int serve(unsigned short port, const config& cfg) {
  swarm::runtime rt{runtime_options_for(cfg)};
  tcp::acceptor acceptor(rt.get_executor(), {asio::ip::address_v4::loopback(), port});
  asio::signal_set signals(rt, SIGINT, SIGTERM);
  signals.async_wait([&](error_code ec, int) {
    if (!ec)
      rt.stop();
  });
  swarm::spawn(rt.get_executor(), listen(acceptor, rt, std::numeric_limits<long>::max()),
               swarm::spawn_options{.name = "accept loop"});
  std::printf("http_server: listening on http://%s:%u/ with %u threads, %s runtime\n",
              acceptor.local_endpoint().address().to_string().c_str(), acceptor.local_endpoint().port(),
              cfg.threads, flavor_name(cfg));
  if (cfg.console_port >= 0) {
    // The console runs on its own thread and stops when `rt` is destroyed.
    swarm::console::options console;
    console.endpoint.port(static_cast<unsigned short>(cfg.console_port));
    const tcp::endpoint at = swarm::console::serve(rt, console);
    std::printf("http_server: console on http://%s:%u/\n", at.address().to_string().c_str(), at.port());
  }
  std::fflush(stdout); // whoever reads the URLs may be a pipe
  run_on_threads(rt, cfg.threads);
  return 0;
}

constexpr const char* usage = "usage: http_server [--port P] [--threads N] [--current-thread] [--console C]\n"
                              "       http_server --self-test REQUESTS [--threads N] [--current-thread]\n";

} // namespace

int main(int argc, char** argv) {
  config cfg;
  long port = 8080, threads = 0, self_test_requests = -1;
  swarm_example::parse_args(argc, argv, "http_server", usage,
                            {swarm_example::number("--port", port, 0, 65535),
                             swarm_example::number("--threads", threads, 1, 1024),
                             swarm_example::number("--self-test", self_test_requests, 1, 100'000'000),
                             swarm_example::flag("--current-thread", cfg.current_thread),
                             swarm_example::number("--console", cfg.console_port, 0, 65535)});
  cfg.threads = static_cast<unsigned>(threads); // 0 unless given: the flavour's default, below
  if (cfg.threads == 0)
    cfg.threads = cfg.current_thread ? 1 : std::max(1u, std::thread::hardware_concurrency());
  try {
    if (self_test_requests > 0)
      return self_test(self_test_requests, cfg);
    return serve(static_cast<unsigned short>(port), cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
}
