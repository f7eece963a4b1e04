// A plaintext HTTP/1.1 server on swarm::runtime: "Hello, World!" for every GET (and its
// headers for HEAD), keep-alive and pipelining, Connection handling for HTTP/1.1 and 1.0.
// Written as for boost::asio::io_context: coroutines, one runtime, N threads in run().
//
//   http_server [--port P] [--threads N]
//       serves on 127.0.0.1:P (default 8080) until SIGINT or SIGTERM
//   http_server --self-test R [--threads N]
//       serves on 127.0.0.1 with an ephemeral port, makes R keep-alive requests against it
//       over a few connections plus the Connection / HEAD / 405 / pipelining cases, checks
//       every response and exits 0 on success (for CI)
#include "accept_backoff.hpp"

#include <swarm/runtime.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
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
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t max_head_bytes = 8 * 1024;
constexpr std::size_t max_body_bytes = 1024 * 1024;
constexpr std::string_view hello = "Hello, World!";

// --- Parsing --------------------------------------------------------------------------------

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// Whether the comma-separated header value holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token))
      return true;
    if (comma == std::string_view::npos)
      break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

struct request {
  std::string method;
  int minor_version = 1; // HTTP/1.x
  bool keep_alive = true;
  std::size_t content_length = 0;
  bool chunked = false;
};

// Parses a request head: the request line and the header lines, CRLF-separated, without
// the empty line that ends it. Null if it is not HTTP/1.x.
std::optional<request> parse_head(std::string_view head) {
  request r;
  std::size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1 || sp1 == 0)
    return std::nullopt;
  r.method = std::string(line.substr(0, sp1));
  const std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1")
    r.minor_version = 1;
  else if (version == "HTTP/1.0")
    r.minor_version = 0;
  else
    return std::nullopt;
  std::optional<bool> connection_close, connection_keep_alive;
  while (eol != std::string_view::npos) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    const std::string_view field = head.substr(0, eol);
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return std::nullopt;
    const std::string_view name = field.substr(0, colon), value = trim(field.substr(colon + 1));
    if (iequals(name, "Connection")) {
      connection_close = has_token(value, "close");
      connection_keep_alive = has_token(value, "keep-alive");
    } else if (iequals(name, "Content-Length")) {
      std::size_t n = 0;
      if (value.empty() || value.size() > 18)
        return std::nullopt;
      for (char c : value) {
        if (c < '0' || c > '9')
          return std::nullopt;
        n = n * 10 + static_cast<std::size_t>(c - '0');
      }
      r.content_length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      r.chunked = true; // not supported: answered with 501
    }
  }
  // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told not to.
  r.keep_alive = r.minor_version == 1 ? !connection_close.value_or(false) : connection_keep_alive.value_or(false);
  return r;
}

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

// Appends a complete response to `out`.
void respond(std::string& out, int status, std::string_view reason, const request* r, bool keep_alive,
             std::string_view body, bool head_only = false, std::string_view extra = {}) {
  out += r && r->minor_version == 0 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason;
  out += "\r\nServer: swarm\r\nDate: ";
  out += http_date();
  out += "\r\nContent-Type: text/plain\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  if (!keep_alive)
    out += "Connection: close\r\n";
  else if (r && r->minor_version == 0)
    out += "Connection: keep-alive\r\n";
  out += extra;
  out += "\r\n";
  if (!head_only)
    out += body;
}

// --- The server -----------------------------------------------------------------------------

// One connection: read a head, answer, repeat while the connection is kept alive. Requests
// pipelined behind the head stay in `in` for the next round.
asio::awaitable<void> http_session(tcp::socket socket) {
  std::string in, out;
  for (;;) {
    auto [ec, head_size] =
        co_await asio::async_read_until(socket, asio::dynamic_buffer(in, max_head_bytes), "\r\n\r\n", use_tuple);
    if (ec == asio::error::not_found) {
      respond(out, 431, "Request Header Fields Too Large", nullptr, false, "");
      co_await asio::async_write(socket, asio::buffer(out), use_tuple);
      co_return;
    }
    if (ec)
      co_return; // closed by the client, or failed
    const std::optional<request> r = parse_head(std::string_view(in).substr(0, head_size - 4));
    in.erase(0, head_size);
    out.clear();
    if (!r) {
      respond(out, 400, "Bad Request", nullptr, false, "");
      co_await asio::async_write(socket, asio::buffer(out), use_tuple);
      co_return;
    }
    if (r->chunked || r->content_length > max_body_bytes) {
      if (r->chunked)
        respond(out, 501, "Not Implemented", &*r, false, "");
      else
        respond(out, 413, "Content Too Large", &*r, false, "");
      co_await asio::async_write(socket, asio::buffer(out), use_tuple);
      co_return;
    }
    // Skip a request body: this server has no use for one.
    if (in.size() < r->content_length) {
      const std::size_t missing = r->content_length - in.size();
      auto [bec, n] = co_await asio::async_read(socket, asio::dynamic_buffer(in), asio::transfer_exactly(missing),
                                                use_tuple);
      if (bec)
        co_return;
    }
    in.erase(0, r->content_length);

    if (r->method == "GET" || r->method == "HEAD")
      respond(out, 200, "OK", &*r, r->keep_alive, hello, r->method == "HEAD");
    else
      respond(out, 405, "Method Not Allowed", &*r, r->keep_alive, "", false, "Allow: GET, HEAD\r\n");
    auto [wec, written] = co_await asio::async_write(socket, asio::buffer(out), use_tuple);
    if (wec)
      co_return;
    if (!r->keep_alive) {
      error_code ignored;
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
  }
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
    asio::co_spawn(rt.get_executor(), http_session(std::move(socket)), asio::detached);
  }
}

void run_on_threads(swarm::runtime& rt, unsigned threads) {
  std::vector<std::thread> extra;
  for (unsigned i = 1; i < threads; ++i)
    extra.emplace_back([&rt] { rt.run(); });
  rt.run();
  for (auto& t : extra)
    t.join();
}

// --- Self-test client -------------------------------------------------------------------------

struct response {
  int status = 0;
  std::string version;
  std::optional<std::size_t> content_length;
  bool connection_close = false;
  std::string body;
};

void expect(bool ok, const std::string& what) {
  if (!ok)
    throw std::runtime_error(what);
}

// Reads one response from `socket` (bytes already received are in `in`).
asio::awaitable<response> read_response(tcp::socket& socket, std::string& in, bool head_request) {
  const std::size_t head_size =
      co_await asio::async_read_until(socket, asio::dynamic_buffer(in), "\r\n\r\n", asio::use_awaitable);
  std::string_view head = std::string_view(in).substr(0, head_size - 2);
  response r;
  std::size_t eol = head.find("\r\n");
  const std::string_view status_line = head.substr(0, eol);
  expect(status_line.size() > 12 && status_line.substr(0, 7) == "HTTP/1." && status_line[8] == ' ',
         "bad status line: " + std::string(status_line));
  r.version = std::string(status_line.substr(0, 8));
  r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  while (eol + 2 < head.size()) {
    head.remove_prefix(eol + 2);
    eol = head.find("\r\n");
    const std::string_view field = head.substr(0, eol);
    const std::size_t colon = field.find(':');
    expect(colon != std::string_view::npos, "bad header line");
    const std::string_view name = field.substr(0, colon), value = trim(field.substr(colon + 1));
    if (iequals(name, "Content-Length"))
      r.content_length = static_cast<std::size_t>(std::stoul(std::string(value)));
    else if (iequals(name, "Connection"))
      r.connection_close = has_token(value, "close");
  }
  in.erase(0, head_size);
  expect(r.content_length.has_value(), "no Content-Length");
  if (!head_request) {
    if (in.size() < *r.content_length)
      co_await asio::async_read(socket, asio::dynamic_buffer(in), asio::transfer_exactly(*r.content_length - in.size()),
                                asio::use_awaitable);
    r.body = in.substr(0, *r.content_length);
    in.erase(0, *r.content_length);
  }
  co_return r;
}

void expect_hello(const response& r, const char* version = "HTTP/1.1") {
  expect(r.status == 200, "expected 200, got " + std::to_string(r.status));
  expect(r.version == version, "expected " + std::string(version) + ", got " + r.version);
  expect(r.content_length == hello.size(), "wrong Content-Length");
  expect(r.body == hello, "wrong body: " + r.body);
}

// After the server said "Connection: close", it must close: the next read ends the stream.
asio::awaitable<void> expect_closed(tcp::socket& socket) {
  char c;
  auto [ec, n] = co_await socket.async_read_some(asio::buffer(&c, 1), use_tuple);
  expect(ec == asio::error::eof, "expected the server to close the connection");
}

asio::awaitable<tcp::socket> connect(tcp::endpoint server) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, asio::use_awaitable);
  socket.set_option(tcp::no_delay(true));
  co_return socket;
}

// `requests` keep-alive GETs on one connection, then a "Connection: close" one.
asio::awaitable<void> keep_alive_client(tcp::endpoint server, long requests) {
  tcp::socket socket = co_await connect(server);
  std::string in;
  for (long i = 0; i < requests; ++i) {
    const std::string req = "GET /plaintext/" + std::to_string(i) + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(req), asio::use_awaitable);
    const response r = co_await read_response(socket, in, false);
    expect_hello(r);
    expect(!r.connection_close, "keep-alive connection closed by the server");
  }
  const std::string last = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  co_await asio::async_write(socket, asio::buffer(last), asio::use_awaitable);
  const response r = co_await read_response(socket, in, false);
  expect_hello(r);
  expect(r.connection_close, "no Connection: close in the answer to Connection: close");
  co_await expect_closed(socket);
}

// Pipelining, HEAD, a POST with a body (405), then HTTP/1.0 on a second connection.
asio::awaitable<void> edge_case_client(tcp::endpoint server) {
  {
    tcp::socket socket = co_await connect(server);
    std::string in;
    const std::string pipelined = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                                  "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                                  "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                                  "GET /d HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(pipelined), asio::use_awaitable);
    expect_hello(co_await read_response(socket, in, false));
    const response head = co_await read_response(socket, in, true);
    expect(head.status == 200 && head.content_length == hello.size(), "bad HEAD response");
    const response post = co_await read_response(socket, in, false);
    expect(post.status == 405, "expected 405 for POST, got " + std::to_string(post.status));
    const response last = co_await read_response(socket, in, false);
    expect_hello(last);
    expect(last.connection_close, "Connection: close ignored");
    expect(in.empty(), "bytes after the last response");
    co_await expect_closed(socket);
  }
  {
    // HTTP/1.0: closed after the response unless asked to keep it.
    tcp::socket socket = co_await connect(server);
    std::string in;
    const std::string reqs = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n";
    co_await asio::async_write(socket, asio::buffer(reqs), asio::use_awaitable);
    const response kept = co_await read_response(socket, in, false);
    expect_hello(kept, "HTTP/1.0");
    expect(!kept.connection_close, "HTTP/1.0 keep-alive not honoured");
    const response closed = co_await read_response(socket, in, false);
    expect_hello(closed, "HTTP/1.0");
    expect(closed.connection_close, "HTTP/1.0 without keep-alive not closed");
    co_await expect_closed(socket);
  }
}

int self_test(long requests, unsigned threads) {
  const int keep_alive_connections = static_cast<int>(std::clamp<long>(requests / 100, 1, 8));
  const long connections = keep_alive_connections + 2; // + the edge-case client's two
  swarm::runtime rt{static_cast<int>(threads)};
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
  run_on_threads(rt, threads);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  done.set_value();
  watchdog.join();

  if (failure.empty() && answered != requests)
    failure = "only " + std::to_string(answered.load()) + " requests answered";
  if (!failure.empty()) {
    std::fprintf(stderr, "http_server self-test FAILED: %s\n", failure.c_str());
    return 1;
  }
  std::printf("http_server self-test: %ld keep-alive requests over %d connections (+ edge cases) on %u threads "
              "in %.1f ms: OK\n",
              requests, keep_alive_connections, threads, std::chrono::duration<double, std::milli>(elapsed).count());
  return 0;
}

int serve(unsigned short port, unsigned threads) {
  swarm::runtime rt{static_cast<int>(threads)};
  tcp::acceptor acceptor(rt.get_executor(), {asio::ip::address_v4::loopback(), port});
  asio::signal_set signals(rt, SIGINT, SIGTERM);
  signals.async_wait([&](error_code ec, int) {
    if (!ec)
      rt.stop();
  });
  asio::co_spawn(rt, listen(acceptor, rt, std::numeric_limits<long>::max()), asio::detached);
  std::printf("http_server: listening on http://%s:%u/ with %u threads\n",
              acceptor.local_endpoint().address().to_string().c_str(), acceptor.local_endpoint().port(), threads);
  run_on_threads(rt, threads);
  return 0;
}

[[noreturn]] void usage(int status) {
  std::fputs("usage: http_server [--port P] [--threads N]\n"
             "       http_server --self-test REQUESTS [--threads N]\n",
             status == 0 ? stdout : stderr);
  std::exit(status);
}

long number(const char* s, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (!s[0] || *end || v < lo || v > hi)
    usage(2);
  return v;
}

} // namespace

int main(int argc, char** argv) {
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  long port = 8080, self_test_requests = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help")
      usage(0);
    if (i + 1 >= argc)
      usage(2);
    if (arg == "--port")
      port = number(argv[++i], 0, 65535);
    else if (arg == "--threads")
      threads = static_cast<unsigned>(number(argv[++i], 1, 1024));
    else if (arg == "--self-test")
      self_test_requests = number(argv[++i], 1, 100'000'000);
    else
      usage(2);
  }
  try {
    if (self_test_requests > 0)
      return self_test(self_test_requests, threads);
    return serve(static_cast<unsigned short>(port), threads);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
}
