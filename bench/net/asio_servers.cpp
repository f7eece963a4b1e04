// bench/net's servers on Boost.Asio: a plaintext HTTP/1.1 keep-alive server and a TCP echo
// server, written once as ordinary Asio coroutines and templated on the execution context,
// so that swarm::runtime and boost::asio::io_context run the same program (see serve()).
//
//   net_server --runtime swarm|io_context --proto http|echo [--threads N] [--max-seconds S]
//
// Binds 127.0.0.1 on an ephemeral port, prints `port <P>` on stdout, and serves with N
// threads calling run() until SIGINT/SIGTERM or S seconds have passed (default 600).
//
// The protocols match bench/net/tokio/src/main.rs byte for byte:
// * http: request heads (up to "\r\n\r\n", no bodies) are answered in order, "Hello, World!"
//   with Server, Content-Type, Content-Length and Date headers for "GET / ...", an empty 404
//   otherwise; keep-alive until the client closes; a head over 8 KiB closes the connection.
// * echo: what arrives is written back, 4 KiB at a time.
#include "../../example/accept_backoff.hpp"

#include <swarm/runtime.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t head_capacity = 8192;
constexpr std::size_t echo_buffer = 4096;

enum class protocol { http, echo };

// RFC 9110 IMF-fixdate of the current second, cached per thread.
const std::string& http_date() {
  thread_local std::time_t cached_second = -1;
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

void append_response(std::string& out, std::string_view head) {
  if (head.starts_with("GET / ")) {
    out += "HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: ";
    out += http_date();
    out += "\r\n\r\nHello, World!";
  } else {
    out += "HTTP/1.1 404 Not Found\r\nServer: bench\r\nContent-Length: 0\r\nDate: ";
    out += http_date();
    out += "\r\n\r\n";
  }
}

// Reads request heads (no bodies) and answers each complete one, in order, with one write per
// read; keep-alive until the client closes.
asio::awaitable<void> http_session(tcp::socket socket) {
  std::array<char, head_capacity> buf;
  std::size_t used = 0;
  std::string out;
  out.reserve(1024);
  for (;;) {
    auto [ec, n] =
        co_await socket.async_read_some(asio::buffer(buf.data() + used, buf.size() - used), use_tuple);
    if (ec)
      co_return; // closed by the client, or failed
    used += n;
    const std::string_view view(buf.data(), used);
    std::size_t start = 0;
    for (std::size_t end; (end = view.find("\r\n\r\n", start)) != std::string_view::npos; start = end + 4)
      append_response(out, view.substr(start, end - start));
    std::memmove(buf.data(), buf.data() + start, used - start);
    used -= start;
    if (used == buf.size())
      co_return; // a head that does not fit
    if (!out.empty()) {
      auto [wec, written] = co_await asio::async_write(socket, asio::buffer(out), use_tuple);
      if (wec)
        co_return;
      out.clear();
    }
  }
}

asio::awaitable<void> echo_session(tcp::socket socket) {
  std::array<char, echo_buffer> buf;
  for (;;) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), use_tuple);
    if (ec)
      co_return;
    auto [wec, written] = co_await asio::async_write(socket, asio::buffer(buf.data(), n), use_tuple);
    if (wec)
      co_return;
  }
}

// Accepts until the acceptor is closed or the context stops; each session is spawned on the
// context's executor, so it runs on whichever thread the context picks.
template <class Executor>
asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, Executor ex, protocol proto) {
  swarm_example::accept_backoff errors("net_server");
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(ex, use_tuple);
    if (ec == asio::error::operation_aborted)
      co_return;
    if (ec) {
      if (auto wait = errors.on_error(ec); wait.count() != 0) {
        asio::steady_timer pause(ex, wait);
        co_await pause.async_wait(use_tuple);
      }
      continue;
    }
    socket.set_option(tcp::no_delay(true));
    if (proto == protocol::http)
      asio::co_spawn(ex, http_session(std::move(socket)), asio::detached);
    else
      asio::co_spawn(ex, echo_session(std::move(socket)), asio::detached);
  }
}

// The whole server; Context is swarm::runtime or boost::asio::io_context, nothing else differs.
template <class Context>
int serve(protocol proto, int threads, int max_seconds) {
  Context ctx{threads};
  tcp::acceptor acceptor(ctx.get_executor(), {asio::ip::address_v4::loopback(), 0});
  asio::signal_set signals(ctx.get_executor(), SIGINT, SIGTERM);
  signals.async_wait([&](error_code ec, int) {
    if (!ec)
      ctx.stop();
  });
  asio::steady_timer cap(ctx.get_executor(), std::chrono::seconds(max_seconds));
  cap.async_wait([&](error_code ec) {
    if (!ec)
      ctx.stop();
  });
  asio::co_spawn(ctx.get_executor(), accept_loop(acceptor, ctx.get_executor(), proto), asio::detached);
  std::printf("port %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);

  std::vector<std::thread> extra;
  for (int i = 1; i < threads; ++i)
    extra.emplace_back([&ctx] { ctx.run(); });
  ctx.run();
  for (auto& t : extra)
    t.join();
  return 0; // ~Context destroys the sessions still suspended
}

[[noreturn]] void usage() {
  std::fputs(
      "usage: net_server --runtime swarm|io_context --proto http|echo [--threads N] [--max-seconds S]\n",
      stderr);
  std::exit(2);
}

int number(const char* s, int lo, int hi) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (!s[0] || *end || v < lo || v > hi)
    usage();
  return static_cast<int>(v);
}

} // namespace

int main(int argc, char** argv) {
  std::string runtime, proto;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int max_seconds = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--runtime")
      runtime = argv[i + 1];
    else if (arg == "--proto")
      proto = argv[i + 1];
    else if (arg == "--threads")
      threads = number(argv[i + 1], 1, 1024);
    else if (arg == "--max-seconds")
      max_seconds = number(argv[i + 1], 1, 86400);
    else
      usage();
  }
  if (argc % 2 == 0 || (proto != "http" && proto != "echo"))
    usage();
  const protocol p = proto == "http" ? protocol::http : protocol::echo;
  try {
    if (runtime == "swarm")
      return serve<swarm::runtime>(p, threads, max_seconds);
    if (runtime == "io_context")
      return serve<asio::io_context>(p, threads, max_seconds);
    usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "net_server: %s\n", e.what());
    return 1;
  }
}
