// swarm::console: the JSON encoding, and the HTTP server against a real loopback client (raw
// POSIX sockets with deadlines: every read is bounded, so nothing here can hang the suite).
#include <swarm/console.hpp>
#include <swarm/console/json.hpp>
#include <swarm/spawn.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

// --- A JSON validator (RFC 8259), independent of the encoder under test ---------------------

class json_checker {
public:
  explicit json_checker(std::string_view s) : s_(s) {}
  bool valid() {
    ws();
    if (!value())
      return false;
    ws();
    return i_ == s_.size();
  }

private:
  bool value() {
    if (i_ >= s_.size() || ++depth_ > 64)
      return false;
    bool ok;
    switch (s_[i_]) {
    case '{':
      ok = object();
      break;
    case '[':
      ok = array();
      break;
    case '"':
      ok = string();
      break;
    case 't':
      ok = literal("true");
      break;
    case 'f':
      ok = literal("false");
      break;
    case 'n':
      ok = literal("null");
      break;
    default:
      ok = number();
    }
    --depth_;
    return ok;
  }
  bool object() {
    ++i_;
    ws();
    if (peek('}'))
      return ++i_, true;
    for (;;) {
      ws();
      if (!peek('"') || !string())
        return false;
      ws();
      if (!peek(':'))
        return false;
      ++i_;
      ws();
      if (!value())
        return false;
      ws();
      if (peek('}'))
        return ++i_, true;
      if (!peek(','))
        return false;
      ++i_;
    }
  }
  bool array() {
    ++i_;
    ws();
    if (peek(']'))
      return ++i_, true;
    for (;;) {
      ws();
      if (!value())
        return false;
      ws();
      if (peek(']'))
        return ++i_, true;
      if (!peek(','))
        return false;
      ++i_;
    }
  }
  bool string() {
    ++i_;
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"')
        return true;
      if (c < 0x20)
        return false;
      if (c != '\\')
        continue;
      if (i_ >= s_.size())
        return false;
      const char e = s_[i_++];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k, ++i_)
          if (i_ >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_])))
            return false;
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }
  bool number() {
    const std::size_t start = i_;
    if (peek('-'))
      ++i_;
    if (peek('0'))
      ++i_;
    else if (!digits())
      return false;
    if (peek('.')) {
      ++i_;
      if (!digits())
        return false;
    }
    if (peek('e') || peek('E')) {
      ++i_;
      if (peek('+') || peek('-'))
        ++i_;
      if (!digits())
        return false;
    }
    return i_ > start;
  }
  bool digits() {
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9')
      ++i_;
    return i_ > start;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word)
      return false;
    i_ += word.size();
    return true;
  }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }

  std::string_view s_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

bool valid_json(std::string_view s) { return json_checker(s).valid(); }

// Well-formed UTF-8, checked by decoding.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size())
      return false;
    std::uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (int k = 1; k < n; ++k) {
      const unsigned char b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    const std::uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += static_cast<std::size_t>(n);
  }
  return true;
}

std::string json_string(std::string_view s) {
  std::string out;
  swarm::console::append_json_string(out, s);
  return out;
}

// --- A loopback HTTP client with deadlines ------------------------------------------------

class client {
public:
  explicit client(unsigned short port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    BOOST_REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~client() { ::close(fd_); }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  bool connected() const { return connected_; }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0)
        return; // the server closed early (it refused the request): the test reads its answer
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // Reads until the server closes the connection or `bound` passes; `closed` says which.
  std::string read_all(std::chrono::milliseconds bound = 5s) {
    std::string out;
    const auto end = std::chrono::steady_clock::now() + bound;
    closed_ = false;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return out;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
        return out;
      char buf[8192];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        return out;
      }
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  // Reads until `out` holds `count` complete responses with a Content-Length.
  bool closed() const { return closed_; }

private:
  int fd_;
  bool connected_ = false;
  bool closed_ = false;
};

struct reply {
  int status = 0;
  std::string head;
  std::string body;
  bool closed = false;

  bool has_header(std::string_view line) const {
    return head.find("\r\n"s + std::string(line) + "\r\n") != std::string::npos;
  }
};

reply parse(const std::string& raw, bool closed) {
  reply r;
  r.closed = closed;
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12)
    return r;
  r.status = std::atoi(raw.c_str() + 9);
  const std::size_t end = raw.find("\r\n\r\n");
  r.head = raw.substr(0, end == std::string::npos ? raw.size() : end + 2);
  if (end != std::string::npos)
    r.body = raw.substr(end + 4);
  return r;
}

// One request on a new connection; the server closes after it (Connection: close, or an
// error), so the whole answer is what arrives before the end of the stream.
reply round_trip(unsigned short port, std::string_view bytes) {
  client c(port);
  BOOST_REQUIRE(c.connected());
  c.send(bytes);
  const std::string raw = c.read_all();
  return parse(raw, c.closed());
}

reply request(unsigned short port, std::string_view method, std::string_view target,
              std::string_view extra_headers = "") {
  std::string bytes = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  bytes += extra_headers;
  bytes += "Connection: close\r\n\r\n";
  return round_trip(port, bytes);
}

reply get(unsigned short port, std::string_view target) { return request(port, "GET", target); }

// Destroys `rt` on another thread; if that takes longer than `bound`, the process aborts
// (a hang would otherwise stop the whole suite until ctest's timeout).
void destroy_bounded(std::unique_ptr<swarm::runtime> rt, std::chrono::seconds bound = 10s) {
  std::promise<void> done;
  std::future<void> f = done.get_future();
  std::thread t([&] {
    rt.reset();
    done.set_value();
  });
  if (f.wait_for(bound) != std::future_status::ready) {
    std::fprintf(stderr, "console_test: destroying the runtime took longer than %lld s\n",
                 static_cast<long long>(bound.count()));
    std::abort();
  }
  t.join();
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds bound = 5s) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= end)
      return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

swarm::runtime_options tracked(std::size_t workers) {
  swarm::runtime_options o;
  o.worker_threads = workers;
  o.track_tasks = true;
  return o;
}

} // namespace

// --- JSON -----------------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(json)

BOOST_AUTO_TEST_CASE(hostile_name_is_inert) {
  BOOST_TEST(json_string("<script>alert(1)</script>") ==
             R"("\u003cscript\u003ealert(1)\u003c/script\u003e")");
  BOOST_TEST(json_string(R"(a "quoted" \ back\slash)") == R"("a \"quoted\" \\ back\\slash")");
  BOOST_TEST(json_string("&amp;") == R"("\u0026amp;")");
  BOOST_TEST(json_string("") == R"("")");
}

BOOST_AUTO_TEST_CASE(control_characters_are_escaped) {
  BOOST_TEST(json_string("a\nb\rc\td") == R"("a\nb\rc\td")");
  BOOST_TEST(json_string("\x01\x1f\x7f"s) == R"("\u0001\u001f\u007f")");
  BOOST_TEST(json_string("nul\0byte"s) == R"("nul\u0000byte")");
  BOOST_TEST(json_string("\b\f") == R"("\u0008\u000c")");
  // U+2028 and U+2029 end a line in older JavaScript.
  BOOST_TEST(json_string("a\u2028b\u2029c") == R"("a\u2028b\u2029c")");
}

BOOST_AUTO_TEST_CASE(valid_utf8_is_kept) {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x90\x9D \xEF\xBF\xBF \xF4\x8F\xBF\xBF";
  BOOST_TEST(json_string(text) == "\"" + text + "\"");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_replaced_by_maximal_subparts) {
  const std::string fffd = "\xEF\xBF\xBD";
  const auto quoted = [](std::string s) { return "\"" + s + "\""; };
  BOOST_TEST(json_string("a\xFF"
                         "b") == quoted("a" + fffd + "b"));              // never a UTF-8 byte
  BOOST_TEST(json_string("\x80") == quoted(fffd));                       // stray continuation
  BOOST_TEST(json_string("\xC0\xAF") == quoted(fffd + fffd));            // overlong '/': C0 is never valid
  BOOST_TEST(json_string("\xE0\x80\xAF") == quoted(fffd + fffd + fffd)); // overlong: E0 needs A0..BF
  BOOST_TEST(json_string("\xED\xA0\x80") == quoted(fffd + fffd + fffd)); // a surrogate
  BOOST_TEST(json_string("\xF4\x90\x80\x80") == quoted(fffd + fffd + fffd + fffd)); // above U+10FFFF
  BOOST_TEST(json_string("\xE2\x82") == quoted(fffd));        // truncated at the end: one subpart
  BOOST_TEST(json_string("\xE2\x82x") == quoted(fffd + "x")); // truncated before ASCII
  BOOST_TEST(json_string("\xF0\x9F\x90") == quoted(fffd));
  BOOST_TEST(json_string("\xC3\xC3\xA9") == quoted(fffd + "\xC3\xA9")); // a lead byte, then a whole é
}

BOOST_AUTO_TEST_CASE(every_byte_gives_valid_json_and_utf8) {
  std::string all;
  for (int b = 0; b < 256; ++b)
    all += static_cast<char>(b);
  const std::string s = json_string(all);
  BOOST_TEST(valid_json(s));
  BOOST_TEST(valid_utf8(s));
  // Random byte strings, as task names could be.
  std::uint32_t x = 12345;
  for (int round = 0; round < 2000; ++round) {
    std::string bytes;
    for (int k = 0; k < round % 13; ++k) {
      x = x * 1664525 + 1013904223;
      bytes += static_cast<char>(x >> 24);
    }
    const std::string out = json_string(bytes);
    BOOST_TEST_REQUIRE(valid_json(out));
    BOOST_TEST_REQUIRE(valid_utf8(out));
  }
}

BOOST_AUTO_TEST_CASE(documents_are_valid_json) {
  swarm::runtime_dump d;
  d.uptime = 1500ms;
  d.tracking = true;
  swarm::task_snapshot t;
  t.id = swarm::task_id(7);
  t.name = "<script>alert(1)</script>\x01\xFF";
  t.spawn_file = "dir\\file\".cpp";
  t.spawn_line = 42;
  t.spawn_function = "void f()";
  t.poll_count = 3;
  t.busy = 2ms;
  t.waiting_on = swarm::task_wait_kind::join;
  t.wait_target = swarm::task_id(9);
  t.warnings = swarm::warn_long_poll | swarm::warn_lost_waker;
  d.tasks.push_back(t);
  d.tasks.push_back(swarm::task_snapshot{});
  swarm::worker_snapshot w;
  w.index = 1;
  w.state = swarm::worker_run_state::driving_io;
  w.busy_ratio = 0.25;
  w.parked_with_work = true;
  d.workers.push_back(w);
  d.workers.push_back(swarm::worker_snapshot{});
  d.workers.back().busy_ratio = std::numeric_limits<double>::quiet_NaN(); // not JSON: written as 0
  d.unobserved_failures.push_back({swarm::task_id(5), "n\"", "f", 1, "boom\n"});

  for (const std::string& doc :
       {swarm::console::tasks_json(d), swarm::console::workers_json(d), swarm::console::dump_json(d, true)}) {
    BOOST_TEST(valid_json(doc), doc);
    BOOST_TEST(valid_utf8(doc));
    BOOST_TEST(doc.find('<') == std::string::npos);
  }
  const std::string tasks = swarm::console::tasks_json(d);
  BOOST_TEST(tasks.find(R"("name":"\u003cscript\u003ealert(1)\u003c/script\u003e\u0001)"
                        "\xEF\xBF\xBD\"") != std::string::npos);
  BOOST_TEST(tasks.find(R"("warnings":["long_poll","lost_waker"])") != std::string::npos);
  BOOST_TEST(tasks.find(R"("wait_target":9)") != std::string::npos);
  BOOST_TEST(tasks.find(R"("wait_target":null)") != std::string::npos);
  BOOST_TEST(tasks.find(R"("file":"dir\\file\".cpp","line":42)") != std::string::npos);
  const std::string workers = swarm::console::workers_json(d);
  BOOST_TEST(workers.find(R"("state":"driving_io")") != std::string::npos);
  BOOST_TEST(workers.find(R"("busy_ratio":0.25,"parked_with_work":true)") != std::string::npos);
  BOOST_TEST(workers.find(R"("busy_ratio":0,)") != std::string::npos);
  BOOST_TEST(swarm::console::dump_json(d, true).find(R"("abort_allowed":true)") != std::string::npos);
  BOOST_TEST(swarm::console::dump_json(d, false).find(R"("abort_allowed":false)") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

// --- The server -----------------------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(server)

BOOST_AUTO_TEST_CASE(serves_the_page_and_the_json) {
  swarm::runtime rt(tracked(2));
  const auto ep = swarm::console::serve(rt);
  BOOST_TEST(ep.address().is_loopback());
  BOOST_TEST_REQUIRE(ep.port() != 0);

  const reply page = get(ep.port(), "/");
  BOOST_TEST(page.status == 200);
  BOOST_TEST(page.has_header("Content-Type: text/html; charset=utf-8"));
  BOOST_TEST(page.head.find("Content-Security-Policy: default-src 'none'; script-src 'nonce-") !=
             std::string::npos);
  BOOST_TEST(page.body.find("<canvas id=\"plot\"") != std::string::npos);
  BOOST_TEST(page.body.find("innerHTML") == std::string::npos);
  // Self-contained: nothing loaded from elsewhere.
  BOOST_TEST(page.body.find("src=") == std::string::npos);
  BOOST_TEST(page.body.find("http://") == std::string::npos);
  BOOST_TEST(page.body.find("https://") == std::string::npos);
  BOOST_TEST(page.body.find("{{nonce}}") == std::string::npos);

  for (const char* path : {"/tasks.json", "/workers.json", "/dump.json", "/dump.json?t=1"}) {
    const reply r = get(ep.port(), path);
    BOOST_TEST(r.status == 200, path);
    BOOST_TEST(r.has_header("Content-Type: application/json"), path);
    BOOST_TEST(valid_json(r.body), path << ": " << r.body);
  }
  BOOST_TEST(get(ep.port(), "/tasks.json").body.find("\"tasks\":[") != std::string::npos);
  const reply workers = get(ep.port(), "/workers.json");
  BOOST_TEST(workers.body.find("\"workers\":[{\"index\":0,") != std::string::npos);
  BOOST_TEST(workers.body.find("{\"index\":1,") != std::string::npos);

  const reply head = request(ep.port(), "HEAD", "/dump.json");
  BOOST_TEST(head.status == 200);
  BOOST_TEST(head.body.empty());
}

BOOST_AUTO_TEST_CASE(a_hostile_task_name_is_escaped_in_the_json) {
  // A real task whose name is markup, invalid UTF-8 and control characters, read back from
  // the server as the page reads it.
  swarm::runtime rt(tracked(1));
  rt.start();
  const auto port = swarm::console::serve(rt).port();
  auto h = swarm::spawn(
      rt.get_executor(),
      []() -> boost::asio::awaitable<void> {
        boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::hours(1));
        co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      },
      swarm::spawn_options{.name = "<script>alert(1)</script>\"\n\xFF"});
  const std::string escaped = R"("name":"\u003cscript\u003ealert(1)\u003c/script\u003e\"\n)"
                              "\xEF\xBF\xBD\"";
  std::string body;
  BOOST_TEST(eventually([&] {
               body = get(port, "/tasks.json").body;
               return body.find(escaped) != std::string::npos;
             }),
             body);
  BOOST_TEST(valid_json(body));
  BOOST_TEST(valid_utf8(body));
  BOOST_TEST(body.find("<script>") == std::string::npos);
  BOOST_TEST(body.find("console_test.cpp") != std::string::npos); // the spawn location
  h.abort();
}

BOOST_AUTO_TEST_CASE(keep_alive_and_pipelining) {
  swarm::runtime rt(1);
  const auto port = swarm::console::serve(rt).port();
  client c(port);
  BOOST_REQUIRE(c.connected());
  c.send("GET /workers.json HTTP/1.1\r\nHost: localhost\r\n\r\n"
         "GET /tasks.json HTTP/1.1\r\nHost: localhost\r\n\r\n"
         "GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  const std::string raw = c.read_all();
  BOOST_TEST(c.closed());
  std::size_t oks = 0, at = 0;
  while ((at = raw.find("HTTP/1.1 200 OK\r\n", at)) != std::string::npos)
    ++oks, ++at;
  BOOST_TEST(oks == 2u);
  BOOST_TEST(raw.find("HTTP/1.1 404 Not Found\r\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_requests_are_refused_and_the_server_keeps_running) {
  swarm::runtime rt(1);
  const auto port = swarm::console::serve(rt).port();
  struct refused {
    const char* what;
    std::string bytes;
    int status;
  };
  const refused cases[] = {
      {"garbage", "\x01\x02 nonsense\r\n\r\n", 400},
      {"a field without a colon", "GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n", 400},
      {"no version", "GET /\r\n\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 400},
      {"a bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n", 400},
      {"an absolute-form target", "GET http://127.0.0.1/ HTTP/1.1\r\nConnection: close\r\n\r\n", 400},
      {"an unknown path", "GET /etc/passwd HTTP/1.1\r\nConnection: close\r\n\r\n", 404},
      {"a path below a page", "GET /tasks.json/x HTTP/1.1\r\nConnection: close\r\n\r\n", 404},
      {"POST to a page", "POST /tasks.json HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405},
      {"DELETE /", "DELETE / HTTP/1.1\r\nConnection: close\r\n\r\n", 405},
      {"a rebound host name",
       "GET /dump.json HTTP/1.1\r\nHost: attacker.example:8080\r\nConnection: close\r\n\r\n", 403},
      {"a head over 8 KiB", "GET / HTTP/1.1\r\nX-Padding: " + std::string(9000, 'a') + "\r\n\r\n", 431},
      {"a body over 1 KiB", "POST /tasks/1/abort HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", 413},
  };
  for (int round = 0; round < 2; ++round) {
    for (const refused& rc : cases) {
      const reply r = round_trip(port, rc.bytes);
      BOOST_TEST(r.status == rc.status, rc.what << ": got " << r.status);
      BOOST_TEST(r.closed, rc.what << ": connection left open");
    }
    BOOST_TEST(get(port, "/").status == 200);
  }
  const reply not_allowed = request(port, "PUT", "/workers.json", "Content-Length: 0\r\n");
  BOOST_TEST(not_allowed.has_header("Allow: GET, HEAD"));
  // A client that connects and leaves at once, or sends half a request and leaves.
  { client c(port); }
  {
    client c(port);
    c.send("GET /dump.js");
  }
  BOOST_TEST(get(port, "/dump.json").status == 200);
  BOOST_TEST(request(port, "GET", "/", "Host: localhost:1\r\n").status == 200);
  BOOST_TEST(request(port, "GET", "/", "Host: [::1]:1\r\n").status == 200);
}

BOOST_AUTO_TEST_CASE(abort_is_refused_without_allow_abort) {
  swarm::runtime rt(1);
  const auto port = swarm::console::serve(rt).port();
  for (const char* target : {"/tasks/1/abort", "/tasks/x/abort"}) {
    const reply r = request(port, "POST", target, "X-Swarm-Console: abort\r\nContent-Length: 0\r\n");
    BOOST_TEST(r.status == 403, target);
    BOOST_TEST(r.body.find("allow_abort") != std::string::npos);
  }
  BOOST_TEST(request(port, "GET", "/tasks/1/abort").status == 403);
  BOOST_TEST(get(port, "/dump.json").body.find("\"abort_allowed\":false") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(abort_with_allow_abort) {
  swarm::runtime rt(tracked(1));
  rt.start();
  swarm::console::options opts;
  opts.allow_abort = true;
  const auto port = swarm::console::serve(rt, opts).port();
  BOOST_TEST(get(port, "/dump.json").body.find("\"abort_allowed\":true") != std::string::npos);

  const auto abort = [&](std::string_view target, std::string_view headers) {
    return request(port, "POST", target, std::string(headers) + "Content-Length: 0\r\n").status;
  };
  const std::string header = "X-Swarm-Console: abort\r\n";
  BOOST_TEST(abort("/tasks/123456789/abort", header) == 404); // no such task
  BOOST_TEST(abort("/tasks/x1/abort", header) == 400);
  BOOST_TEST(abort("/tasks/0/abort", header) == 400);
  BOOST_TEST(abort("/tasks/99999999999999999999999/abort", header) == 400);
  BOOST_TEST(request(port, "GET", "/tasks/1/abort").status == 405);

  // A task that waits until it is aborted.
  auto h = swarm::spawn(rt.get_executor(), []() -> boost::asio::awaitable<void> {
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor, std::chrono::hours(1));
    co_await t.async_wait(boost::asio::use_awaitable);
  });
  const std::string target = "/tasks/" + std::to_string(h.id().value()) + "/abort";
  // Forged from another page: no custom header (a form, a simple fetch), or another origin.
  BOOST_TEST(abort(target, "") == 403);
  BOOST_TEST(abort(target, header + "Origin: http://attacker.example\r\n") == 403);
  BOOST_TEST(abort(target, header + "Origin: http://127.0.0.1\r\n") == 200); // same origin as Host

  std::promise<bool> cancelled;
  auto f = cancelled.get_future();
  h.async_wait([&](std::exception_ptr e) {
    bool c = false;
    try {
      if (e)
        std::rethrow_exception(e);
    } catch (const swarm::join_error& je) {
      c = je.is_cancelled();
    } catch (...) {
    }
    cancelled.set_value(c);
  });
  BOOST_TEST_REQUIRE((f.wait_for(5s) == std::future_status::ready));
  BOOST_TEST(f.get());
}

BOOST_AUTO_TEST_CASE(serves_while_every_worker_is_blocked) {
  // The only worker runs a task that does not yield until the test says so: the console
  // answers from its own thread all the same.
  swarm::runtime rt(tracked(1));
  rt.start();
  const auto port = swarm::console::serve(rt).port();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> blocking{false};
  auto h = swarm::spawn(rt.get_executor(), [&blocking, released] {
    blocking = true;
    released.wait();
  });
  BOOST_TEST_REQUIRE(eventually([&] { return blocking.load(); }));
  for (int i = 0; i < 3; ++i) {
    const reply r = get(port, "/dump.json");
    BOOST_TEST(r.status == 200);
    BOOST_TEST(valid_json(r.body));
  }
  release.set_value();
  std::promise<void> joined;
  auto f = joined.get_future();
  h.async_wait([&](std::exception_ptr) { joined.set_value(); });
  BOOST_TEST((f.wait_for(5s) == std::future_status::ready));
}

BOOST_AUTO_TEST_CASE(connection_cap_and_idle_timeout) {
  swarm::runtime rt(1);
  swarm::console::options opts;
  opts.max_connections = 2;
  opts.idle_timeout = 4s;
  const auto port = swarm::console::serve(rt, opts).port();
  {
    client a(port), b(port), c(port);
    BOOST_REQUIRE(a.connected() && b.connected() && c.connected());
    // The third is over the cap: closed at once, long before the idle timeout.
    const auto start = std::chrono::steady_clock::now();
    c.read_all(3s);
    BOOST_TEST(c.closed());
    BOOST_TEST((std::chrono::steady_clock::now() - start < 3s));
  }
  // a and b are gone: their slots come back once the server sees them close.
  BOOST_TEST(eventually([&] { return get(port, "/workers.json").status == 200; }));

  swarm::runtime rt2(1);
  opts.idle_timeout = 200ms;
  const auto port2 = swarm::console::serve(rt2, opts).port();
  client idle(port2);
  BOOST_REQUIRE(idle.connected());
  const auto start = std::chrono::steady_clock::now();
  idle.read_all(5s);
  BOOST_TEST(idle.closed());
  BOOST_TEST((std::chrono::steady_clock::now() - start < 4s));
  // A client that sends its head a byte at a time is closed at the same deadline.
  client slow(port2);
  slow.send("GET / HTTP/1.1\r\n");
  std::this_thread::sleep_for(100ms);
  slow.send("Host: x\r\n");
  slow.read_all(5s);
  BOOST_TEST(slow.closed());
  BOOST_TEST(get(port2, "/").status == 200);
}

BOOST_AUTO_TEST_CASE(destroying_the_runtime_stops_the_console) {
  auto rt = std::make_unique<swarm::runtime>(tracked(2));
  rt->start();
  const auto port = swarm::console::serve(*rt).port();
  swarm::console::options second;
  second.allow_abort = true;
  const auto port2 = swarm::console::serve(*rt, second).port();
  BOOST_TEST(port != port2);
  BOOST_TEST(get(port, "/").status == 200);
  BOOST_TEST(get(port2, "/").status == 200);
  client idle(port), busy(port2);
  BOOST_REQUIRE(idle.connected() && busy.connected());
  busy.send("GET /dump.json HTTP/1.1\r\nHost: x\r\n\r\n"); // kept alive after its answer
  // A request in flight while the runtime goes away.
  std::atomic<bool> stop_hammer{false};
  std::thread hammer([&] {
    while (!stop_hammer) {
      client c(port2);
      c.send("GET /dump.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      c.read_all(2s);
    }
  });
  std::this_thread::sleep_for(50ms);
  destroy_bounded(std::move(rt));
  stop_hammer = true;
  hammer.join();
  idle.read_all(2s);
  BOOST_TEST(idle.closed());
  busy.read_all(2s);
  BOOST_TEST(busy.closed());
  client late(port);
  BOOST_TEST(!late.connected());
}

BOOST_AUTO_TEST_CASE(stop_and_serve_again) {
  swarm::runtime rt(1);
  const auto port = swarm::console::serve(rt).port();
  BOOST_TEST(get(port, "/").status == 200);
  swarm::console::stop(rt);
  {
    client c(port);
    BOOST_TEST(!c.connected());
  }
  swarm::console::stop(rt); // nothing left to stop
  const auto again = swarm::console::serve(rt).port();
  BOOST_TEST(get(again, "/tasks.json").status == 200);
  swarm::runtime other(1);
  swarm::console::stop(other); // a runtime that never had a console
  // A port already taken: serve throws, and the runtime is fine.
  swarm::console::options taken;
  taken.endpoint.port(again);
  BOOST_CHECK_THROW(swarm::console::serve(rt, taken), boost::system::system_error);
  BOOST_TEST(get(again, "/tasks.json").status == 200);
}

BOOST_AUTO_TEST_CASE(shutting_down_the_runtime_stops_the_console) {
  auto rt = std::make_unique<swarm::runtime>(tracked(2));
  rt->start();
  const auto port = swarm::console::serve(*rt).port();
  BOOST_TEST(get(port, "/dump.json").status == 200);
  client idle(port);
  BOOST_REQUIRE(idle.connected());
  rt->shutdown();
  idle.read_all(5s);
  BOOST_TEST(idle.closed());
  BOOST_TEST(eventually([&] { return !client(port).connected(); }));
  BOOST_CHECK_THROW(swarm::console::serve(*rt), std::logic_error); // nothing to serve
  destroy_bounded(std::move(rt));
}

BOOST_AUTO_TEST_SUITE_END()
