// The console's HTTP server: one thread, one io_context, Beast's parser and serializer. Each
// request that needs data takes a fresh runtime::dump() on the console's thread (the dump
// takes the task list's locks briefly and never waits for a task), then answers from that
// snapshot: no worker ever runs console code, and the console never waits for a worker.
#include <swarm/console.hpp>
#include <swarm/console/json.hpp>

#include "page.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <array>
#include <charconv>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace swarm::console {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// A request head beyond this gets 431, a body beyond this 413: the console's requests have
// short heads and no bodies.
constexpr std::size_t max_head_bytes = 8 * 1024;
constexpr std::size_t max_body_bytes = 1024;
// What a connection may hold unparsed (pipelined requests) beyond the request being read.
constexpr std::size_t max_buffer_bytes = 64 * 1024;
// A connection that ends after an error response reads and drops what its client still
// sends, this much for this long at most, so that closing does not reset the connection
// before the client has read the response.
constexpr std::size_t max_linger_bytes = 64 * 1024;
constexpr auto linger_time = std::chrono::seconds(1);
// After an accept error (out of descriptors, ...) the acceptor waits this long before trying
// again instead of spinning.
constexpr auto accept_retry = std::chrono::milliseconds(100);
// How often the console looks whether its runtime was shut down (see watch_shutdown).
constexpr auto shutdown_check = std::chrono::milliseconds(100);

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

std::string_view text(beast::string_view s) { return {s.data(), s.size()}; }

response make_response(http::status status, unsigned version, std::string_view content_type,
                       std::string body) {
  response res{status, version};
  res.set(http::field::server, "swarm-console");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response error_response(http::status status, unsigned version, std::string_view why) {
  std::string body(why);
  body += '\n';
  return make_response(status, version, "text/plain; charset=utf-8", std::move(body));
}

// The answer to a request Beast could not read, or none when nobody is left to answer: the
// client closed, the socket failed, or the connection timed out.
std::optional<http::status> status_for(const error_code& ec) {
  if (ec == http::error::header_limit)
    return http::status::request_header_fields_too_large;
  if (ec == http::error::body_limit)
    return http::status::payload_too_large;
  if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
      ec.category() != http::make_error_code(http::error::end_of_stream).category())
    return std::nullopt;
  return http::status::bad_request;
}

// The host part of a Host header: without its port, and without the brackets of an IPv6
// literal.
std::string_view host_name(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const std::size_t end = host.find(']');
    return end == std::string_view::npos ? std::string_view{} : host.substr(1, end - 1);
  }
  return host.substr(0, host.find(':'));
}

// "/tasks/<id>/abort" -> its id, 0 when <id> is not a whole number; none for other paths.
std::optional<std::uint64_t> abort_target(std::string_view path) {
  constexpr std::string_view prefix = "/tasks/", suffix = "/abort";
  if (path.size() <= prefix.size() + suffix.size() || !path.starts_with(prefix) || !path.ends_with(suffix))
    return std::nullopt;
  const std::string_view digits = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  std::uint64_t id = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc() || end != digits.data() + digits.size())
    return 0;
  return id;
}

class server {
public:
  server(runtime& rt, const options& opts) : rt_(rt), opts_(opts), acceptor_(ioc_) {
    acceptor_.open(opts.endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(opts.endpoint);
    acceptor_.listen();
    endpoint_ = acceptor_.local_endpoint();
    loopback_only_ = endpoint_.address().is_loopback();
    asio::co_spawn(ioc_, accept_loop(), asio::detached);
    asio::co_spawn(ioc_, watch_shutdown(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }

  // Stops the thread first; then the members go, the io_context last, destroying the
  // connections' suspended coroutines and their sockets without running them.
  ~server() {
    ioc_.stop();
    thread_.join();
  }

  server(const server&) = delete;
  server& operator=(const server&) = delete;

  tcp::endpoint endpoint() const { return endpoint_; }

private:
  // runtime::shutdown() leaves the services alone (only ~runtime shuts them down), so the
  // console looks for it: once the runtime is shut down, the acceptor and every connection
  // are closed, each coroutine ends, and the thread's run() returns for want of work; the
  // thread is joined when the runtime is destroyed or stop() is called.
  asio::awaitable<void> watch_shutdown() {
    asio::steady_timer timer(ioc_);
    while (!swarm::detail::core_of(rt_).scheduler().is_shutdown()) {
      timer.expires_after(shutdown_check);
      if (auto [ec] = co_await timer.async_wait(use_tuple); ec)
        co_return;
    }
    error_code ignored;
    acceptor_.close(ignored);
    for (beast::tcp_stream* stream : streams_)
      stream->socket().close(ignored);
  }

  asio::awaitable<void> accept_loop() {
    while (acceptor_.is_open()) {
      auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
      if (ec == asio::error::operation_aborted || !acceptor_.is_open())
        co_return;
      if (ec) {
        asio::steady_timer pause(ioc_, accept_retry);
        co_await pause.async_wait(use_tuple);
        continue;
      }
      if (connections_ >= opts_.max_connections) {
        error_code ignored;
        socket.close(ignored); // over the cap: closed at once, never queued
        continue;
      }
      ++connections_;
      asio::co_spawn(ioc_, session(std::move(socket)), [this](std::exception_ptr) { --connections_; });
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream stream(std::move(socket));
    // Listed while the coroutine lives, also when its frame is destroyed unrun.
    struct listed {
      std::set<beast::tcp_stream*>& streams;
      beast::tcp_stream* stream;
      ~listed() { streams.erase(stream); }
    } entry{streams_, &stream};
    streams_.insert(&stream);
    beast::flat_buffer buffer(max_buffer_bytes);
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(max_head_bytes);
      parser.body_limit(max_body_bytes);
      stream.expires_after(opts_.idle_timeout);
      auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
      if (ec) {
        if (const std::optional<http::status> status = status_for(ec)) {
          response res = error_response(*status, 11, "the request could not be read");
          res.keep_alive(false);
          if (auto [wec, written] = co_await http::async_write(stream, res, use_tuple); !wec)
            co_await linger(stream);
        }
        co_return;
      }
      const request& req = parser.get();
      response res = respond(req);
      res.keep_alive(req.keep_alive());
      stream.expires_after(opts_.idle_timeout);
      auto [wec, written] = co_await http::async_write(stream, res, use_tuple);
      if (wec)
        co_return;
      if (!res.keep_alive()) {
        co_await linger(stream);
        co_return;
      }
    }
  }

  static asio::awaitable<void> linger(beast::tcp_stream& stream) {
    error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream.expires_after(linger_time);
    std::array<char, 4096> sink;
    for (std::size_t drained = 0; drained < max_linger_bytes;) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), use_tuple);
      if (ec)
        co_return;
      drained += n;
    }
  }

  response respond(const request& req) {
    try {
      return route(req);
    } catch (const std::exception&) {
      return error_response(http::status::internal_server_error, req.version(), "internal error");
    }
  }

  response route(const request& req) {
    const unsigned version = req.version();
    const std::string_view target = text(req.target());
    if (target.empty() || target.front() != '/')
      return error_response(http::status::bad_request, version, "the request target must be a path");
    if (!host_allowed(req))
      return error_response(http::status::forbidden, version, "unexpected Host");
    const std::string_view path = target.substr(0, target.find('?'));
    const bool get = req.method() == http::verb::get, head = req.method() == http::verb::head;

    const auto read_only = [&](std::string_view content_type, auto body) {
      if (!get && !head) {
        response res = error_response(http::status::method_not_allowed, version, "GET or HEAD only");
        res.set(http::field::allow, "GET, HEAD");
        return res;
      }
      response res = make_response(http::status::ok, version, content_type, body());
      if (head)
        res.body().clear(); // Content-Length stays the GET's
      return res;
    };
    if (path == "/") {
      const std::string nonce = make_nonce();
      response res = read_only("text/html; charset=utf-8", [&] { return detail::render_page(nonce); });
      if (res.result() == http::status::ok) {
        res.set("Content-Security-Policy",
                "default-src 'none'; script-src 'nonce-" + nonce + "'; style-src 'nonce-" + nonce +
                    "'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        res.set("X-Frame-Options", "DENY");
      }
      return res;
    }
    constexpr std::string_view json = "application/json";
    if (path == "/tasks.json")
      return read_only(json, [&] { return tasks_json(rt_.dump()); });
    if (path == "/workers.json")
      return read_only(json, [&] { return workers_json(rt_.dump()); });
    if (path == "/dump.json")
      return read_only(json, [&] { return dump_json(rt_.dump(), opts_.allow_abort); });
    if (const std::optional<std::uint64_t> id = abort_target(path))
      return abort_task(req, *id);
    return error_response(http::status::not_found, version, "no such page");
  }

  response abort_task(const request& req, std::uint64_t id) {
    const unsigned version = req.version();
    if (!opts_.allow_abort)
      return error_response(http::status::forbidden, version, "aborting tasks is not enabled (allow_abort)");
    if (req.method() != http::verb::post) {
      response res = error_response(http::status::method_not_allowed, version, "POST only");
      res.set(http::field::allow, "POST");
      return res;
    }
    // A page of another origin can POST here without asking (a form, or a fetch without
    // custom headers). It cannot add a custom header without a CORS preflight, which this
    // server never grants, and a browser names its origin.
    if (req.find("X-Swarm-Console") == req.end())
      return error_response(http::status::forbidden, version, "missing X-Swarm-Console header");
    if (const auto origin = req.find(http::field::origin); origin != req.end()) {
      const auto host = req.find(http::field::host);
      if (host == req.end() || text(origin->value()) != "http://" + std::string(text(host->value())))
        return error_response(http::status::forbidden, version, "cross-origin request");
    }
    if (id == 0)
      return error_response(http::status::bad_request, version, "not a task id");
    if (!rt_.abort_task(task_id(id)))
      return error_response(http::status::not_found, version, "no live task has this id");
    return make_response(http::status::ok, version, "application/json", "{\"aborted\":true}");
  }

  // DNS rebinding: a page of another site whose name is made to resolve to 127.0.0.1 would
  // reach a loopback console as same-origin and could read it. Its requests carry that name
  // as their Host, so a loopback console accepts only `localhost` and address literals.
  bool host_allowed(const request& req) const {
    if (!loopback_only_)
      return true;
    const auto host = req.find(http::field::host);
    if (host == req.end())
      return true; // HTTP/1.0 clients; browsers always send one
    const std::string_view name = host_name(text(host->value()));
    if (name == "localhost")
      return true;
    error_code ec;
    asio::ip::make_address(name, ec);
    return !ec;
  }

  // 128 random bits in hex: the page's Content-Security-Policy nonce.
  std::string make_nonce() {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 4; ++i) {
      const std::uint32_t r = random_();
      for (int shift = 0; shift < 32; shift += 4)
        out += digits[(r >> shift) & 0xf];
    }
    return out;
  }

  runtime& rt_;
  const options opts_;
  // The open connections; declared before ioc_, whose destructor destroys the coroutines
  // that remove themselves from it.
  std::set<beast::tcp_stream*> streams_;
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  tcp::endpoint endpoint_;
  bool loopback_only_ = false;
  std::size_t connections_ = 0; // only the console thread touches it
  std::random_device random_;   // only the console thread touches it
  std::thread thread_;
};

// The runtime's consoles, as an Asio service of the runtime. execution_context::shutdown()
// shuts services down in the reverse order of their creation, and ~runtime runs it, with its
// scheduler already stopped, before any member of the runtime is destroyed; so every console
// thread is joined while rt.dump() is still valid, and none is started after.
class console_service : public asio::execution_context::service {
public:
  static inline asio::execution_context::id id;

  explicit console_service(asio::execution_context& ctx) : service(ctx) {}

  tcp::endpoint add(runtime& rt, const options& opts) {
    std::lock_guard lock(mutex_);
    if (shut_down_)
      throw std::logic_error("swarm::console::serve: the runtime is being destroyed");
    servers_.push_back(std::make_unique<server>(rt, opts));
    return servers_.back()->endpoint();
  }

  void stop_all() {
    std::vector<std::unique_ptr<server>> stopping;
    {
      std::lock_guard lock(mutex_);
      stopping.swap(servers_);
    }
    stopping.clear(); // joins each thread, outside the lock
  }

private:
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      shut_down_ = true;
    }
    stop_all();
  }

  std::mutex mutex_;
  bool shut_down_ = false;
  std::vector<std::unique_ptr<server>> servers_;
};

} // namespace

tcp::endpoint serve(runtime& rt, const options& opts) {
  if (opts.max_connections == 0)
    throw std::invalid_argument("swarm::console::serve: max_connections must be at least 1");
  if (swarm::detail::core_of(rt).scheduler().is_shutdown())
    throw std::logic_error("swarm::console::serve: the runtime is shut down");
  return asio::use_service<console_service>(rt).add(rt, opts);
}

void stop(runtime& rt) {
  if (asio::has_service<console_service>(rt))
    asio::use_service<console_service>(rt).stop_all();
}

} // namespace swarm::console
