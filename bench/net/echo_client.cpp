// bench/net's echo load generator: C connections to 127.0.0.1:P, spread over T threads (one
// epoll loop each), each connection doing up to R round trips of one M-byte message: send,
// read the whole echo back, check it, send the next. Stops when every connection is done or
// after S seconds, whichever is first.
//
//   echo_client --port P [--connections C] [--threads T] [--round-trips R] [--size M]
//               [--seconds S] [--warmup-ms W]
//
// Round trips completed in the first W ms count nowhere (connections and caches warming up).
// Prints one CSV line `round_trips,seconds,per_second,p50_us,p99_us,p999_us,errors`:
// throughput over the measured window (end of warm-up to the last completion or the cap) and
// latency percentiles (nearest rank) of each round trip, send to last byte back. A connection
// that fails or echoes wrong bytes is closed and counted in `errors`; the exit status is 1 when
// there are errors or no measured round trip.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct config {
  int port = 0;
  int connections = 64;
  int threads = 2;
  long round_trips = 100'000; // per connection
  int size = 64;
  double seconds = 5;
  int warmup_ms = 500;
};

struct connection {
  int fd = -1;
  long done = 0;        // completed round trips
  std::size_t sent = 0; // bytes of the current message written
  std::size_t received = 0;
  bool watching_out = false; // registered for EPOLLOUT too (a send that did not fit)
  clock_type::time_point sent_at;
};

struct thread_result {
  std::vector<std::uint32_t> latencies_ns; // measured round trips only
  long errors = 0;
  clock_type::time_point last_completion{};
};

// The message of round trip i: M bytes of one letter, the letter changing every round trip, so
// that a stale or misplaced echo shows.
char letter(long i) { return static_cast<char>('a' + i % 26); }

[[noreturn]] void usage() {
  std::fputs("usage: echo_client --port P [--connections C] [--threads T] [--round-trips R] [--size M]\n"
             "                   [--seconds S] [--warmup-ms W]\n",
             stderr);
  std::exit(2);
}

long number(const char* s, long lo, long hi) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (!s[0] || *end || v < lo || v > hi)
    usage();
  return v;
}

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

class worker {
public:
  worker(const config& cfg, int connections) : cfg_(cfg), conns_(static_cast<std::size_t>(connections)) {}
  worker(const worker&) = delete; // owns descriptors
  worker& operator=(const worker&) = delete;

  // Connects; false if any connection failed (the others are closed by the destructor).
  bool connect() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0)
      return false;
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      conns_[i].fd = connect_to(cfg_.port);
      if (conns_[i].fd < 0)
        return false;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = i;
      if (::epoll_ctl(ep_, EPOLL_CTL_ADD, conns_[i].fd, &ev) != 0)
        return false;
    }
    return true;
  }

  // The event loop: bounded by the round-trip count of every connection and by `deadline`.
  void run(clock_type::time_point measure_from, clock_type::time_point deadline) {
    const std::size_t m = static_cast<std::size_t>(cfg_.size);
    out_.assign(m, '\0');
    in_.assign(m, '\0');
    result_.latencies_ns.reserve(static_cast<std::size_t>(
        std::min<long>(static_cast<long>(conns_.size()) * cfg_.round_trips, 1L << 24)));
    long active = 0;
    for (auto& c : conns_)
      if (start_round_trip(c))
        ++active;
    std::vector<epoll_event> events(conns_.size());
    while (active > 0) {
      const auto now = clock_type::now();
      if (now >= deadline)
        break;
      const int timeout_ms = static_cast<int>(
          std::min<long>(100, std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count()));
      const int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0 && errno != EINTR) {
        std::perror("echo_client: epoll_wait");
        break;
      }
      for (int e = 0; e < n; ++e) {
        connection& c = conns_[events[e].data.u64];
        if (c.fd < 0)
          continue;
        const bool alive =
            (events[e].events & EPOLLOUT) && c.sent < m ? continue_send(c) : receive(c, measure_from);
        if (!alive) {
          close(c);
          --active;
        }
      }
    }
  }

  thread_result& result() { return result_; }

  ~worker() {
    for (auto& c : conns_)
      if (c.fd >= 0)
        ::close(c.fd);
    if (ep_ >= 0)
      ::close(ep_);
  }

private:
  // Sends round trip c.done's message; false when the connection failed.
  bool start_round_trip(connection& c) {
    c.sent = 0;
    c.received = 0;
    c.sent_at = clock_type::now();
    return continue_send(c);
  }

  // Writes what is left of the message (it is always `letter(c.done)` repeated); waits for
  // EPOLLOUT when the socket buffer is full.
  bool continue_send(connection& c) {
    const std::size_t m = static_cast<std::size_t>(cfg_.size);
    std::fill(out_.begin(), out_.end(), letter(c.done));
    while (c.sent < m) {
      const ssize_t w = ::send(c.fd, out_.data() + c.sent, m - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        c.sent += static_cast<std::size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return watch(c, EPOLLIN | EPOLLOUT);
      return fail(c, "send", errno);
    }
    return watch(c, EPOLLIN);
  }

  // Reads what has arrived of the echo, checking each chunk as it comes (in_ is shared by the
  // thread's connections, so no bytes are kept between calls).
  bool receive(connection& c, clock_type::time_point measure_from) {
    const std::size_t m = static_cast<std::size_t>(cfg_.size);
    // At most one message is outstanding, so no more than its missing bytes can arrive.
    while (c.received < m) {
      const ssize_t r = ::recv(c.fd, in_.data(), m - c.received, MSG_DONTWAIT);
      if (r > 0) {
        const char expected = letter(c.done);
        if (std::any_of(in_.data(), in_.data() + r, [&](char x) { return x != expected; }))
          return fail(c, "wrong echo");
        c.received += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return true;
      return r == 0 ? fail(c, "server closed the connection") : fail(c, "recv", errno);
    }
    const auto now = clock_type::now();
    if (c.sent < m)
      return fail(c, "echo ahead of the message"); // more bytes back than were sent
    if (now >= measure_from) {
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.sent_at).count();
      result_.latencies_ns.push_back(static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX)));
      result_.last_completion = now;
    }
    ++c.done;
    if (c.done >= cfg_.round_trips)
      return false; // all done: closed by the caller, not an error
    return start_round_trip(c);
  }

  // Switches the connection between EPOLLIN and EPOLLIN | EPOLLOUT when needed.
  bool watch(connection& c, std::uint32_t events) {
    if (c.watching_out == ((events & EPOLLOUT) != 0))
      return true;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<std::uint64_t>(&c - conns_.data());
    if (::epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev) != 0)
      return fail(c, "epoll_ctl", errno);
    c.watching_out = (events & EPOLLOUT) != 0;
    return true;
  }

  // Counts the failure (reporting the first one); false, so that the caller closes `c`.
  bool fail(connection& c, const char* what, int err = 0) {
    if (result_.errors++ == 0)
      std::fprintf(stderr, "echo_client: connection %zu after %ld round trips: %s%s%s\n",
                   static_cast<std::size_t>(&c - conns_.data()), c.done, what, err ? ": " : "",
                   err ? std::strerror(err) : "");
    return false;
  }

  void close(connection& c) {
    ::close(c.fd);
    c.fd = -1;
  }

  const config& cfg_;
  std::vector<connection> conns_;
  std::string out_, in_;
  int ep_ = -1;
  thread_result result_;
};

} // namespace

int main(int argc, char** argv) {
  config cfg;
  for (int i = 1; i < argc; i += 2) {
    const std::string arg = argv[i];
    if (i + 1 >= argc)
      usage();
    const char* v = argv[i + 1];
    if (arg == "--port")
      cfg.port = static_cast<int>(number(v, 1, 65535));
    else if (arg == "--connections")
      cfg.connections = static_cast<int>(number(v, 1, 10'000));
    else if (arg == "--threads")
      cfg.threads = static_cast<int>(number(v, 1, 256));
    else if (arg == "--round-trips")
      cfg.round_trips = number(v, 1, 1'000'000'000);
    else if (arg == "--size")
      cfg.size = static_cast<int>(number(v, 1, 1 << 20));
    else if (arg == "--seconds")
      cfg.seconds = static_cast<double>(number(v, 1, 3600));
    else if (arg == "--warmup-ms")
      cfg.warmup_ms = static_cast<int>(number(v, 0, 600'000));
    else
      usage();
  }
  if (cfg.port == 0)
    usage();
  cfg.threads = std::min(cfg.threads, cfg.connections);

  std::vector<std::unique_ptr<worker>> workers;
  for (int t = 0; t < cfg.threads; ++t)
    workers.push_back(std::make_unique<worker>(cfg, cfg.connections / cfg.threads +
                                                        (t < cfg.connections % cfg.threads ? 1 : 0)));
  for (auto& w : workers)
    if (!w->connect()) {
      std::fprintf(stderr, "echo_client: connecting to 127.0.0.1:%d: %s\n", cfg.port, std::strerror(errno));
      return 1;
    }

  const auto start = clock_type::now();
  const auto measure_from = start + std::chrono::milliseconds(cfg.warmup_ms);
  const auto deadline = start + std::chrono::duration_cast<clock_type::duration>(
                                    std::chrono::duration<double>(cfg.seconds + cfg.warmup_ms / 1000.0));
  std::vector<std::thread> threads;
  for (auto& w : workers)
    threads.emplace_back([w = w.get(), measure_from, deadline] { w->run(measure_from, deadline); });
  for (auto& t : threads)
    t.join();

  std::vector<std::uint32_t> all;
  long errors = 0;
  auto end = measure_from;
  for (auto& w : workers) {
    auto& r = w->result();
    all.insert(all.end(), r.latencies_ns.begin(), r.latencies_ns.end());
    errors += r.errors;
    end = std::max(end, r.last_completion);
  }
  const double seconds = std::chrono::duration<double>(end - measure_from).count();
  if (all.empty() || seconds <= 0) {
    std::fprintf(stderr, "echo_client: no round trip completed after the %d ms warm-up\n", cfg.warmup_ms);
    return 1;
  }
  std::sort(all.begin(), all.end());
  auto percentile_us = [&](double q) { // nearest rank
    const std::size_t rank = static_cast<std::size_t>(std::ceil(q / 100.0 * static_cast<double>(all.size())));
    return all[std::clamp<std::size_t>(rank, 1, all.size()) - 1] / 1000.0;
  };
  std::printf("%zu,%.3f,%.0f,%.1f,%.1f,%.1f,%ld\n", all.size(), seconds,
              static_cast<double>(all.size()) / seconds, percentile_us(50), percentile_us(99),
              percentile_us(99.9), errors);
  return errors == 0 ? 0 : 1;
}
