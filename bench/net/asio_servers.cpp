// bench/net's servers on Boost.Asio: a plaintext HTTP/1.1 keep-alive server on Boost.Beast,
// the same protocol parsed by hand, and a TCP echo server, written once as ordinary Asio
// coroutines and templated on the execution context, so that swarm::runtime and
// boost::asio::io_context run the same program (see serve()).
//
//   net_server --runtime swarm|swarm-current-thread|io_context --proto http|http-raw|echo
//              [--threads N] [--per-thread] [--max-seconds S] [--metrics]
//
// Binds 127.0.0.1 on an ephemeral port, prints `port <P>` on stdout, and serves with N
// threads calling run() until SIGINT/SIGTERM or S seconds have passed (default 600). One
// context run by the N threads, or with --per-thread one context per thread (concurrency
// hint 1; swarm-current-thread: a current-thread runtime each), each accepting on its own
// socket bound to the same port with SO_REUSEPORT, the kernel spreading the connections: the
// common layout of Asio servers. --metrics: on exit, swarm's scheduler counters per worker on
// stderr (polls, steals, parks...): where the jobs ran, for finding where time goes.
//
// The protocols:
// * http: what an Asio user writes with Beast: http::async_read into a request_parser (8 KiB
//   head limit), a flat_buffer per connection, http::async_write of a response with a
//   string_body. "Hello, World!" with Server, Content-Type, Content-Length and Date headers
//   for "GET /", an empty 404 otherwise; keep-alive as the request says; a request Beast
//   refuses closes the connection. One read and one write per request.
// * http-raw: the same answers, parsed and formatted by hand, matching
//   bench/net/tokio/src/main.rs byte for byte: request heads (up to "\r\n\r\n", no bodies)
//   are answered in order, one write per read, keep-alive until the client closes, a head
//   over 8 KiB closes the connection. Kept because it measures what Beast's parser and
//   serializer hide: the runtime alone, like for like with the Tokio server.
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
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t head_capacity = 8192;
constexpr std::size_t echo_buffer = 4096;

enum class protocol { http, http_raw, echo };

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

// --- http: Beast ------------------------------------------------------------------------------

// Reads a request, answers it, and goes on while both sides keep the connection alive; bytes
// read past a request stay in `buffer` for the next one.
asio::awaitable<void> beast_session(tcp::socket socket) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser; // one message per parser
    parser.header_limit(head_capacity);
    auto [ec, n] = co_await http::async_read(socket, buffer, parser, use_tuple);
    if (ec)
      co_return; // closed by the client, refused by the parser, or failed
    const http::request<http::string_body>& req = parser.get();
    const bool found = req.method() == http::verb::get && req.target() == "/";
    http::response<http::string_body> res{found ? http::status::ok : http::status::not_found, req.version()};
    res.set(http::field::server, "bench");
    if (found) {
      res.set(http::field::content_type, "text/plain");
      res.body() = "Hello, World!";
    }
    res.set(http::field::date, http_date());
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    auto [wec, written] = co_await http::async_write(socket, res, use_tuple);
    if (wec || !res.keep_alive())
      co_return;
  }
}

// --- http-raw: parsed and formatted by hand ---------------------------------------------------

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
asio::awaitable<void> raw_http_session(tcp::socket socket) {
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

// --- echo -------------------------------------------------------------------------------------

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

// --- The server -------------------------------------------------------------------------------

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
    switch (proto) {
    case protocol::http:
      asio::co_spawn(ex, beast_session(std::move(socket)), asio::detached);
      break;
    case protocol::http_raw:
      asio::co_spawn(ex, raw_http_session(std::move(socket)), asio::detached);
      break;
    case protocol::echo:
      asio::co_spawn(ex, echo_session(std::move(socket)), asio::detached);
      break;
    }
  }
}

// SO_REUSEPORT: several listening sockets on one port, the kernel spreading connections
// between them. Asio names no such option; its boolean option template does the work.
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

struct settings {
  protocol proto = protocol::http;
  int threads = 1;
  bool per_thread = false;
  int max_seconds = 600;
  bool metrics = false;
};

// Each runtime's scheduler counters (swarm only; io_context has none).
template <class Context>
void print_metrics(const std::vector<std::unique_ptr<Context>>& contexts) {
  if constexpr (std::is_same_v<Context, swarm::runtime>) {
    for (std::size_t i = 0; i < contexts.size(); ++i) {
      const swarm::runtime_metrics m = contexts[i]->metrics();
      std::fprintf(stderr, "runtime %zu: remote_schedule_count %llu\n", i,
                   static_cast<unsigned long long>(m.remote_schedule_count));
      for (std::size_t w = 0; w < m.workers.size(); ++w) {
        const swarm::worker_metrics_snapshot& x = m.workers[w];
        std::fprintf(stderr,
                     "  worker %zu: polls %llu local_schedules %llu steals %llu (in %llu operations) "
                     "overflows %llu parks %llu noop_parks %llu\n",
                     w, static_cast<unsigned long long>(x.poll_count),
                     static_cast<unsigned long long>(x.local_schedule_count),
                     static_cast<unsigned long long>(x.steal_count),
                     static_cast<unsigned long long>(x.steal_operations),
                     static_cast<unsigned long long>(x.overflow_count),
                     static_cast<unsigned long long>(x.park_count),
                     static_cast<unsigned long long>(x.noop_count));
      }
    }
  }
}

// The whole server. Context is swarm::runtime or boost::asio::io_context and `make(hint)`
// builds one; nothing else differs.
template <class Context, class Make>
int serve(const settings& s, Make make) {
  std::vector<std::unique_ptr<Context>> contexts;
  for (int i = 0; i < (s.per_thread ? s.threads : 1); ++i)
    contexts.push_back(make(s.per_thread ? 1 : s.threads));
  // Declared after the contexts, so destroyed before them.
  std::vector<tcp::acceptor> acceptors;
  tcp::endpoint endpoint{asio::ip::address_v4::loopback(), 0};
  for (auto& ctx : contexts) {
    tcp::acceptor& a = acceptors.emplace_back(ctx->get_executor());
    a.open(endpoint.protocol());
    a.set_option(tcp::acceptor::reuse_address(true));
    if (s.per_thread)
      a.set_option(reuse_port(true));
    a.bind(endpoint);
    a.listen();
    endpoint = a.local_endpoint(); // the others bind the port the first one got
  }
  auto stop_all = [&] {
    for (auto& ctx : contexts)
      ctx->stop();
  };
  asio::signal_set signals(contexts[0]->get_executor(), SIGINT, SIGTERM);
  signals.async_wait([&](error_code ec, int) {
    if (!ec)
      stop_all();
  });
  asio::steady_timer cap(contexts[0]->get_executor(), std::chrono::seconds(s.max_seconds));
  cap.async_wait([&](error_code ec) {
    if (!ec)
      stop_all();
  });
  for (std::size_t i = 0; i < contexts.size(); ++i)
    asio::co_spawn(contexts[i]->get_executor(),
                   accept_loop(acceptors[i], contexts[i]->get_executor(), s.proto), asio::detached);
  std::printf("port %u\n", static_cast<unsigned>(endpoint.port()));
  std::fflush(stdout);

  // Thread i runs context i (per thread) or the one context.
  std::vector<std::thread> extra;
  for (int i = 1; i < s.threads; ++i)
    extra.emplace_back([&ctx = *contexts[s.per_thread ? i : 0]] { ctx.run(); });
  contexts[0]->run();
  for (auto& t : extra)
    t.join();
  if (s.metrics)
    print_metrics(contexts);
  return 0; // ~Context destroys the sessions still suspended
}

[[noreturn]] void usage() {
  std::fputs("usage: net_server --runtime swarm|swarm-current-thread|io_context --proto http|http-raw|echo\n"
             "                  [--threads N] [--per-thread] [--max-seconds S] [--metrics]\n",
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
  settings s;
  s.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--per-thread") {
      s.per_thread = true;
      continue;
    }
    if (arg == "--metrics") {
      s.metrics = true;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    if (arg == "--runtime")
      runtime = argv[++i];
    else if (arg == "--proto")
      proto = argv[++i];
    else if (arg == "--threads")
      s.threads = number(argv[++i], 1, 1024);
    else if (arg == "--max-seconds")
      s.max_seconds = number(argv[++i], 1, 86400);
    else
      usage();
  }
  if (proto == "http")
    s.proto = protocol::http;
  else if (proto == "http-raw")
    s.proto = protocol::http_raw;
  else if (proto == "echo")
    s.proto = protocol::echo;
  else
    usage();
  try {
    if (runtime == "swarm" || runtime == "swarm-current-thread") {
      const bool current_thread = runtime == "swarm-current-thread";
      return serve<swarm::runtime>(s, [current_thread](int threads) {
        swarm::runtime_options options;
        options.worker_threads = static_cast<std::size_t>(threads);
        if (current_thread)
          options.flavor = swarm::runtime_flavor::current_thread;
        return std::make_unique<swarm::runtime>(options);
      });
    }
    if (runtime == "io_context")
      return serve<asio::io_context>(s,
                                     [](int threads) { return std::make_unique<asio::io_context>(threads); });
    usage();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "net_server: %s\n", e.what());
    return 1;
  }
}
