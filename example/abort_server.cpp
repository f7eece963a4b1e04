// A TCP echo server whose connections are swarm tasks that can be aborted: each idle
// connection is aborted after a timeout, and shutdown aborts the server task, which aborts
// the remaining connections and joins them before it returns its statistics.
//
//   abort_server [--port P] [--threads N] [--idle-ms T]
//       serves on 127.0.0.1:P (default 5556), aborting connections idle for T ms (default
//       10000), until SIGINT or SIGTERM; then shuts down cleanly and prints what happened
//   abort_server --self-test [--threads N]
//       serves on 127.0.0.1 with an ephemeral port and a short idle timeout; one client
//       closes by itself, one stays idle and must be aborted by the timeout, one keeps
//       talking and must be aborted only by the shutdown; exits 0 if all that happened
//
// The shape, in Tokio terms: the server is one task (asio::co_spawn with
// swarm::use_join_handle) holding a join_set of connection tasks. Inside it, an accept loop
// and a reaper run side by side (`&&`), serialised on the server task, so they share the
// set and the table of connections without a lock. The reaper's join is raced against a
// timer (`||`): join_set waits are cancel-safe, so a lost race loses no result.
#include "args.hpp"

#include <swarm/swarm.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using asio::ip::tcp;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> sleep_for(steady::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

// When a connection last received something; written by its task, read by the reaper.
struct activity {
  std::atomic<steady::rep> last{steady::now().time_since_epoch().count()};
  void touch() { last.store(steady::now().time_since_epoch().count(), std::memory_order_relaxed); }
  steady::duration idle_for() const {
    return steady::now() - steady::time_point(steady::duration(last.load(std::memory_order_relaxed)));
  }
};

// One connection: echo until the peer closes. Returns its own task id, so that the server
// knows which connection a join result belongs to (a join_error carries the id as well).
asio::awaitable<swarm::task_id> session(tcp::socket socket, std::shared_ptr<activity> act) {
  const swarm::task_id id = swarm::current_task_id();
  std::array<char, 4096> buf;
  for (;;) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), use_tuple);
    if (ec == asio::error::eof)
      co_return id; // closed by the peer
    if (ec)
      throw boost::system::system_error(ec); // aborted (operation_aborted), or a failure
    act->touch();
    co_await asio::async_write(socket, asio::buffer(buf.data(), n), asio::use_awaitable);
  }
}

struct server_stats {
  long accepted = 0;
  long closed_by_peer = 0;
  long aborted_idle = 0;
  long aborted_at_shutdown = 0;
  long failed = 0;
};

struct connection {
  swarm::abort_handle task;
  std::shared_ptr<activity> act;
  bool idle_aborted = false;
};

// What the server task owns. Only the server task touches it (its children run serialised
// on it), so no lock is needed.
struct server_state {
  swarm::join_set<swarm::task_id> sessions;
  std::map<swarm::task_id, connection> live;
  server_stats stats;

  // A connection task ended: account for it and forget it.
  void ended(std::exception_ptr e, swarm::task_id id) {
    if (!e) {
      ++stats.closed_by_peer;
    } else {
      try {
        std::rethrow_exception(e);
      } catch (const swarm::join_error& je) {
        id = je.id();
        if (!je.is_cancelled())
          ++stats.failed;
        else if (auto it = live.find(id); it != live.end() && it->second.idle_aborted)
          ++stats.aborted_idle;
        else
          ++stats.aborted_at_shutdown;
      } catch (...) {
        ++stats.failed;
      }
    }
    live.erase(id);
  }
};

// A join wait cancelled through its slot completes with operation_aborted.
bool is_cancelled_wait(const std::exception_ptr& e) {
  if (!e)
    return false;
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& se) {
    return se.code() == asio::error::operation_aborted;
  } catch (...) {
  }
  return false;
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, server_state& s) {
  auto ex = co_await asio::this_coro::executor;
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    ++s.stats.accepted;
    auto act = std::make_shared<activity>();
    swarm::abort_handle task = s.sessions.spawn(ex, session(std::move(socket), act));
    const swarm::task_id id = task.id();
    s.live.emplace(id, connection{std::move(task), std::move(act)});
  }
}

// Joins connection tasks as they end and aborts the idle ones, every `idle / 4`.
asio::awaitable<void> reap_and_join(server_state& s, milliseconds idle) {
  const auto tick = idle / 4;
  for (;;) {
    if (s.sessions.empty()) {
      co_await sleep_for(tick);
    } else {
      // as_tuple: a join that ends in error must still count as "first to complete", or
      // `||` would wait for the timer and drop it.
      auto r = co_await (s.sessions.async_join_next(use_tuple) || sleep_for(tick));
      if (r.index() == 0) {
        auto [e, id] = std::get<0>(r);
        if (is_cancelled_wait(e))
          continue; // the server itself is being aborted: the join was cancelled, no result lost
        s.ended(e, id);
      }
    }
    for (auto& [id, c] : s.live) {
      if (!c.idle_aborted && c.act->idle_for() > idle) {
        c.idle_aborted = true;
        c.task.abort(); // its read ends with operation_aborted; the join says cancelled
      }
    }
  }
}

// The server task. Runs until aborted; then aborts every connection left, joins them all
// and returns what happened.
asio::awaitable<server_stats> serve_until_aborted(tcp::acceptor& acceptor, milliseconds idle) {
  server_state s;
  std::exception_ptr stopped;
  try {
    co_await (accept_loop(acceptor, s) && reap_and_join(s, idle));
  } catch (...) {
    stopped = std::current_exception(); // both sides cancelled: asio::multiple_exceptions
  }
  // Was it the abort? Then the task's cancellation state says so.
  asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
  if (cs.cancelled() == asio::cancellation_type::none)
    std::rethrow_exception(stopped ? stopped : std::make_exception_ptr(std::logic_error("the server stopped by itself")));
  // The abort was delivered; a fresh cancellation state lets us await again to clean up.
  co_await asio::this_coro::reset_cancellation_state();
  s.sessions.abort_all();
  while (!s.sessions.empty()) {
    auto [e, id] = co_await s.sessions.async_join_next(use_tuple);
    s.ended(e, id);
  }
  co_return s.stats;
}

void print_stats(const server_stats& st) {
  std::printf("abort_server: %ld accepted, %ld closed by the peer, %ld aborted when idle, %ld aborted at shutdown, "
              "%ld failed\n",
              st.accepted, st.closed_by_peer, st.aborted_idle, st.aborted_at_shutdown, st.failed);
}

// --- Self-test -------------------------------------------------------------------------------

// Talks once, then closes; expects the server to close too.
asio::awaitable<bool> polite_client(tcp::endpoint server) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, asio::use_awaitable);
  const std::string msg = "hello\n";
  co_await asio::async_write(socket, asio::buffer(msg), asio::use_awaitable);
  std::string reply(msg.size(), '\0');
  co_await asio::async_read(socket, asio::buffer(reply), asio::use_awaitable);
  socket.shutdown(tcp::socket::shutdown_send);
  char c;
  auto [ec, n] = co_await socket.async_read_some(asio::buffer(&c, 1), use_tuple);
  co_return reply == msg && ec == asio::error::eof;
}

// Talks once, then stays silent; the server must close the connection after the idle
// timeout. Returns how long that took, or -1 ms if it did not happen within `bound`.
asio::awaitable<milliseconds> idle_client(tcp::endpoint server, steady::duration bound) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, asio::use_awaitable);
  co_await asio::async_write(socket, asio::buffer("x", 1), asio::use_awaitable);
  char c;
  co_await asio::async_read(socket, asio::buffer(&c, 1), asio::use_awaitable);
  const auto start = steady::now();
  auto r = co_await (socket.async_read_some(asio::buffer(&c, 1), use_tuple) || sleep_for(bound));
  if (r.index() != 0 || !std::get<0>(std::get<0>(r)))
    co_return milliseconds(-1); // the server did not close it (or sent data)
  co_return std::chrono::duration_cast<milliseconds>(steady::now() - start);
}

// Keeps talking every `period` until the server closes the connection. Returns whether
// that happened only after `shutdown_requested` was set, and every echo was right.
asio::awaitable<bool> busy_client(tcp::endpoint server, steady::duration period, const std::atomic<bool>& shutdown_requested,
                                  steady::duration bound) {
  tcp::socket socket(co_await asio::this_coro::executor);
  co_await socket.async_connect(server, asio::use_awaitable);
  const auto deadline = steady::now() + bound;
  for (long i = 0; steady::now() < deadline; ++i) {
    const std::string msg = "ping " + std::to_string(i) + "\n";
    auto [wec, w] = co_await asio::async_write(socket, asio::buffer(msg), use_tuple);
    std::string reply(msg.size(), '\0');
    auto [rec, r] = wec ? std::tuple<boost::system::error_code, std::size_t>(wec, 0)
                        : co_await asio::async_read(socket, asio::buffer(reply), use_tuple);
    if (rec)
      co_return shutdown_requested.load(); // closed by the server: only at shutdown
    if (reply != msg)
      co_return false;
    co_await sleep_for(period);
  }
  co_return false;
}

int self_test(int threads) {
  const milliseconds idle(300);
  const steady::duration bound = std::chrono::seconds(10);
  swarm::runtime rt(threads);
  rt.start();
  tcp::acceptor acceptor(rt.get_executor(), {asio::ip::address_v4::loopback(), 0});
  const tcp::endpoint endpoint = acceptor.local_endpoint();
  std::string failure;
  auto check = [&](bool ok, const char* what) {
    if (!ok && failure.empty())
      failure = what;
    return ok;
  };

  swarm::join_handle<server_stats> server =
      asio::co_spawn(rt.get_executor(), serve_until_aborted(acceptor, idle), swarm::use_join_handle);
  std::atomic<bool> shutdown_requested{false};
  // The clients are tasks too. (A join handle must outlive its wait: destroying it
  // detaches the task and ends the wait with operation_aborted.)
  auto polite_task = swarm::spawn(rt.get_executor(), polite_client(endpoint));
  auto idle_task = swarm::spawn(rt.get_executor(), idle_client(endpoint, bound));
  auto busy_task = swarm::spawn(rt.get_executor(), busy_client(endpoint, idle / 6, shutdown_requested, bound));
  auto polite = polite_task.async_wait(asio::use_future);
  auto idler = idle_task.async_wait(asio::use_future);
  auto busy = busy_task.async_wait(asio::use_future);

  if (check(polite.wait_for(bound) == std::future_status::ready, "the polite client did not finish"))
    check(polite.get(), "the polite client saw a wrong echo or no close");
  if (check(idler.wait_for(bound) == std::future_status::ready, "the idle client did not finish")) {
    const milliseconds took = idler.get();
    check(took.count() >= 0, "the idle connection was not closed by the server");
    check(took >= idle / 2, "the idle connection was closed too early");
    std::printf("abort_server self-test: idle connection aborted after %lld ms (timeout %lld ms)\n",
                static_cast<long long>(took.count()), static_cast<long long>(idle.count()));
  }
  check(busy.wait_for(std::chrono::seconds(0)) != std::future_status::ready, "the busy connection ended before shutdown");

  // Clean shutdown: abort the server task; it aborts and joins the connections left.
  shutdown_requested = true;
  server.abort();
  auto stats_f = server.async_wait(asio::use_future);
  if (check(stats_f.wait_for(bound) == std::future_status::ready, "the server did not shut down")) {
    try {
      const server_stats st = stats_f.get();
      print_stats(st);
      check(st.accepted == 3, "expected 3 connections");
      check(st.closed_by_peer == 1, "expected 1 connection closed by its peer");
      check(st.aborted_idle == 1, "expected 1 connection aborted when idle");
      check(st.aborted_at_shutdown == 1, "expected 1 connection aborted at shutdown");
      check(st.failed == 0, "a connection failed");
    } catch (const std::exception& e) {
      check(false, "the server task failed");
      std::fprintf(stderr, "abort_server: %s\n", e.what());
    }
  }
  if (check(busy.wait_for(bound) == std::future_status::ready, "the busy client did not finish"))
    check(busy.get(), "the busy client was closed before shutdown, or saw a wrong echo");

  if (!failure.empty()) {
    std::fprintf(stderr, "abort_server self-test FAILED: %s\n", failure.c_str());
    return 1;
  }
  std::puts("abort_server self-test: OK");
  return 0;
}

int serve(unsigned short port, int threads, milliseconds idle) {
  swarm::runtime rt(threads);
  rt.start();
  tcp::acceptor acceptor(rt.get_executor(), {asio::ip::address_v4::loopback(), port});
  swarm::join_handle<server_stats> server =
      asio::co_spawn(rt.get_executor(), serve_until_aborted(acceptor, idle), swarm::use_join_handle);
  asio::signal_set signals(rt, SIGINT, SIGTERM);
  signals.async_wait([abort = server.get_abort_handle()](boost::system::error_code ec, int) {
    if (!ec)
      abort.abort();
  });
  std::printf("abort_server: listening on %s:%u, %d threads, idle timeout %lld ms\n",
              acceptor.local_endpoint().address().to_string().c_str(), acceptor.local_endpoint().port(), threads,
              static_cast<long long>(idle.count()));
  print_stats(server.async_wait(asio::use_future).get());
  signals.cancel();
  return 0;
}

constexpr const char* usage = "usage: abort_server [--port P] [--threads N] [--idle-ms T]\n"
                              "       abort_server --self-test [--threads N]\n";

} // namespace

int main(int argc, char** argv) {
  bool self = false;
  long port = 5556, threads = 2, idle_ms = 10000;
  swarm_example::parse_args(argc, argv, "abort_server", usage,
                            {swarm_example::flag("--self-test", self),
                             swarm_example::number("--port", port, 0, 65535),
                             swarm_example::number("--threads", threads, 1, 256),
                             swarm_example::number("--idle-ms", idle_ms, 10, 3600 * 1000)});
  try {
    if (self)
      return self_test(static_cast<int>(threads));
    return serve(static_cast<unsigned short>(port), static_cast<int>(threads), milliseconds(idle_ms));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "abort_server: %s\n", e.what());
    return 1;
  }
}
