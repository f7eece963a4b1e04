// Conformance, part two: Asio's I/O objects on runtime::executor_type and on any_io_executor
// holding it: TCP (acceptor, connect, echo), UDP, steady and system timers, signal_set,
// resolver and experimental channels. Loopback only, every loop bounded in count, every run
// bounded in time.
#include "support.hpp"

#include <swarm/asio/boost_shim.hpp>
#include <swarm/scheduler/multi_thread.hpp>
#include <swarm/spawn.hpp>

#include <boost/asio/basic_datagram_socket.hpp>
#include <boost/asio/basic_signal_set.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>
#include <vector>
#include <string>

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;
using swarm::runtime;
using namespace swarm_test;

namespace {

template <class Ex>
constexpr asio::use_awaitable_t<Ex> use_aw{};

template <class Clock, class Ex>
using timer_on = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, Ex>;

const tcp::endpoint loopback_tcp{asio::ip::address_v4::loopback(), 0};
const udp::endpoint loopback_udp{asio::ip::address_v4::loopback(), 0};

// Records the first exception of any coroutine, for the test thread to rethrow.
struct failures {
  std::mutex m;
  std::exception_ptr first;
  std::atomic<int> count{0};
  auto handler() {
    return [this](std::exception_ptr e) {
      if (!e)
        return;
      ++count;
      std::lock_guard l(m);
      if (!first)
        first = e;
    };
  }
  void check() {
    if (first)
      std::rethrow_exception(first);
  }
};

// Echoes whatever arrives until the peer shuts down its sending side.
template <class Ex>
asio::awaitable<void, Ex> echo_session(asio::basic_stream_socket<tcp, Ex> s) {
  char buf[512];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(use_aw<Ex>));
    if (ec == asio::error::eof)
      co_return;
    if (ec)
      throw boost::system::system_error(ec);
    co_await asio::async_write(s, asio::buffer(buf, n), use_aw<Ex>);
  }
}

// Accepts `sessions` connections, each echoed by its own coroutine.
template <class Ex>
asio::awaitable<void, Ex> echo_server(asio::basic_socket_acceptor<tcp, Ex> acceptor, int sessions, failures& f) {
  for (int i = 0; i < sessions; ++i) {
    asio::basic_stream_socket<tcp, Ex> s = co_await acceptor.async_accept(use_aw<Ex>);
    asio::co_spawn(acceptor.get_executor(), echo_session<Ex>(std::move(s)), f.handler());
  }
}

// `round_trips` messages of different sizes, each echoed back and compared.
template <class Ex>
asio::awaitable<void, Ex> echo_client(unsigned short port, int round_trips, std::atomic<int>& done) {
  asio::basic_stream_socket<tcp, Ex> s(co_await asio::this_coro::executor);
  co_await s.async_connect({asio::ip::address_v4::loopback(), port}, use_aw<Ex>);
  s.set_option(tcp::no_delay(true));
  std::string reply;
  for (int i = 0; i < round_trips; ++i) {
    const std::string msg(1 + (i * 37) % 300, static_cast<char>('a' + i % 26));
    co_await asio::async_write(s, asio::buffer(msg), use_aw<Ex>);
    reply.assign(msg.size(), '\0');
    co_await asio::async_read(s, asio::buffer(reply), use_aw<Ex>);
    if (reply != msg)
      throw std::runtime_error("echo mismatch");
    ++done;
  }
  s.shutdown(tcp::socket::shutdown_send);
  char c;
  auto [ec, n] = co_await s.async_read_some(asio::buffer(&c, 1), asio::as_tuple(use_aw<Ex>));
  if (ec != asio::error::eof || n != 0)
    throw std::runtime_error("expected end of stream");
}

} // namespace

BOOST_AUTO_TEST_SUITE(io)

// --- TCP ------------------------------------------------------------------------------------

// Four clients, 200 round trips each, against a coroutine echo server; run() returns by
// itself once every socket is done.
BOOST_AUTO_TEST_CASE_TEMPLATE(tcp_echo_round_trips_over_loopback, Ex, executor_types) {
  constexpr int clients = 4, round_trips = 200;
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  asio::basic_socket_acceptor<tcp, Ex> acceptor(ex, loopback_tcp);
  const unsigned short port = acceptor.local_endpoint().port();
  failures f;
  std::atomic<int> done{0};
  asio::co_spawn(ex, echo_server<Ex>(std::move(acceptor), clients, f), f.handler());
  for (int i = 0; i < clients; ++i)
    asio::co_spawn(ex, echo_client<Ex>(port, round_trips, done), f.handler());
  runners run(rt, 2);
  BOOST_TEST(run.join());
  f.check();
  BOOST_TEST(done == clients * round_trips);
}

// The same with completion handlers instead of coroutines, and the synchronous calls
// that must work on the runtime's sockets too.
BOOST_AUTO_TEST_CASE_TEMPLATE(tcp_with_completion_handlers_and_synchronous_calls, Ex, executor_types) {
  runtime rt{1};
  const Ex ex = executor_of<Ex>(rt);
  asio::basic_socket_acceptor<tcp, Ex> acceptor(ex, loopback_tcp);
  asio::basic_stream_socket<tcp, Ex> server(ex), client(ex);
  std::string got(5, '\0');
  error_code accept_ec = asio::error::would_block, connect_ec = asio::error::would_block;
  std::size_t echoed = 0;
  acceptor.async_accept(server, [&](error_code ec) {
    accept_ec = ec;
    asio::async_read(server, asio::buffer(got), [&](error_code ec2, std::size_t) {
      if (!ec2)
        asio::async_write(server, asio::buffer(got), [&](error_code, std::size_t n) { echoed = n; });
    });
  });
  client.async_connect(acceptor.local_endpoint(), [&](error_code ec) {
    connect_ec = ec;
    asio::async_write(client, asio::buffer("hello", 5), [](error_code, std::size_t) {});
  });
  BOOST_TEST(run_bounded(rt));
  BOOST_TEST(!accept_ec);
  BOOST_TEST(!connect_ec);
  BOOST_TEST(got == "hello");
  BOOST_TEST(echoed == 5u);
  // Synchronous read of what the server echoed.
  char back[5];
  BOOST_TEST(asio::read(client, asio::buffer(back)) == 5u);
  BOOST_TEST(std::string(back, 5) == "hello");
}

// --- UDP ------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(udp_round_trips_over_loopback, Ex, executor_types) {
  constexpr int round_trips = 200;
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  asio::basic_datagram_socket<udp, Ex> a(ex, loopback_udp), b(ex, loopback_udp);
  const udp::endpoint b_ep = b.local_endpoint();
  failures f;
  std::atomic<int> done{0};
  // b echoes `round_trips` datagrams to whoever sent them.
  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<void, Ex> {
        char buf[256];
        for (int i = 0; i < round_trips; ++i) {
          udp::endpoint from;
          const std::size_t n = co_await b.async_receive_from(asio::buffer(buf), from, use_aw<Ex>);
          co_await b.async_send_to(asio::buffer(buf, n), from, use_aw<Ex>);
        }
      },
      f.handler());
  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<void, Ex> {
        char buf[256];
        for (int i = 0; i < round_trips; ++i) {
          const std::string msg = "datagram " + std::to_string(i);
          co_await a.async_send_to(asio::buffer(msg), b_ep, use_aw<Ex>);
          const std::size_t n = co_await a.async_receive(asio::buffer(buf), use_aw<Ex>);
          if (std::string(buf, n) != msg)
            throw std::runtime_error("datagram mismatch");
          ++done;
        }
      },
      f.handler());
  runners run(rt, 2);
  BOOST_TEST(run.join());
  f.check();
  BOOST_TEST(done == round_trips);
}

// --- Timers ---------------------------------------------------------------------------------

template <class Clock, class Ex>
void check_timer_expiry_and_cancel() {
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  const auto start = std::chrono::steady_clock::now(); // before the expiry is computed
  timer_on<Clock, Ex> expiring(ex, std::chrono::milliseconds(20)), cancelled(ex, std::chrono::seconds(60)),
      reset(ex, std::chrono::seconds(60));
  std::atomic<std::int64_t> expired_after_us{-1};
  error_code expired_ec = asio::error::would_block, cancelled_ec, reset_ec;
  std::atomic<bool> on_runtime{false};
  expiring.async_wait([&](error_code ec) {
    expired_ec = ec;
    expired_after_us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
    on_runtime = rt.running_in_this_thread();
  });
  cancelled.async_wait([&](error_code ec) { cancelled_ec = ec; });
  reset.async_wait([&](error_code ec) { reset_ec = ec; });
  // Cancel from a handler (I/O objects are not thread-safe: use them where they live).
  std::atomic<std::size_t> n_cancelled{0}, n_reset{0};
  asio::post(ex, [&] {
    n_cancelled = cancelled.cancel();
    n_reset = reset.expires_after(std::chrono::milliseconds(1)); // cancels the pending wait
  });
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST((std::chrono::steady_clock::now() - start < 1s)); // nobody waited 60 s
  BOOST_TEST(!expired_ec);
  // A system_timer's expiry is a system_clock time: allow for the two clocks' drift.
  BOOST_TEST(expired_after_us >= (std::is_same_v<Clock, std::chrono::steady_clock> ? 20000 : 19000));
  BOOST_TEST(on_runtime);
  BOOST_TEST(n_cancelled == 1u);
  BOOST_TEST(cancelled_ec == asio::error::operation_aborted);
  BOOST_TEST(n_reset == 1u);
  BOOST_TEST(reset_ec == asio::error::operation_aborted);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(steady_timer_expires_and_cancels, Ex, executor_types) {
  check_timer_expiry_and_cancel<std::chrono::steady_clock, Ex>();
}

BOOST_AUTO_TEST_CASE_TEMPLATE(system_timer_expires_and_cancels, Ex, executor_types) {
  check_timer_expiry_and_cancel<std::chrono::system_clock, Ex>();
}

// Many short timers from a coroutine per worker slot: the driver is handed between the
// run() threads without losing an expiry.
BOOST_AUTO_TEST_CASE_TEMPLATE(many_short_timers_on_two_run_threads, Ex, executor_types) {
  runtime rt{2};
  std::atomic<int> waits{0};
  for (int c = 0; c < 8; ++c) {
    asio::co_spawn(
        executor_of<Ex>(rt),
        [&]() -> asio::awaitable<void, Ex> {
          timer_on<std::chrono::steady_clock, Ex> t(co_await asio::this_coro::executor);
          for (int i = 0; i < 25; ++i) {
            t.expires_after(std::chrono::microseconds(100 * (i % 5)));
            co_await t.async_wait(use_aw<Ex>);
            ++waits;
          }
        },
        asio::detached);
  }
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(waits == 8 * 25);
}

// --- signal_set -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(signal_set_delivers_a_raised_signal_and_cancels, Ex, executor_types) {
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  asio::basic_signal_set<Ex> signals(ex, SIGUSR1);
  std::atomic<int> number{0};
  error_code ec = asio::error::would_block;
  std::atomic<bool> on_runtime{false};
  signals.async_wait([&](error_code e, int n) {
    ec = e;
    number = n;
    on_runtime = rt.running_in_this_thread();
  });
  {
    runners run(rt, 2);
    std::this_thread::sleep_for(10ms); // let a run() thread settle in the driver
    std::raise(SIGUSR1);
    BOOST_TEST(run.join());
  }
  BOOST_TEST(!ec);
  BOOST_TEST(number == SIGUSR1);
  BOOST_TEST(on_runtime);

  // A pending wait is cancelled by cancel().
  rt.restart();
  error_code cancel_ec;
  signals.async_wait([&](error_code e, int) { cancel_ec = e; });
  asio::post(ex, [&] { signals.cancel(); });
  runners again(rt, 1);
  BOOST_TEST(again.join());
  BOOST_TEST(cancel_ec == asio::error::operation_aborted);
}

// --- Resolver ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(resolver_resolves_a_numeric_address, Ex, executor_types) {
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  asio::ip::basic_resolver<tcp, Ex> resolver(ex);
  error_code ec = asio::error::would_block;
  std::vector<tcp::endpoint> found;
  std::atomic<bool> on_runtime{false};
  resolver.async_resolve("127.0.0.1", "8080", tcp::resolver::numeric_host | tcp::resolver::numeric_service,
                         [&](error_code e, tcp::resolver::results_type r) {
                           ec = e;
                           for (const auto& entry : r)
                             found.push_back(entry.endpoint());
                           on_runtime = rt.running_in_this_thread();
                         });
  std::atomic<bool> awaited{false};
  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<void, Ex> {
        asio::ip::basic_resolver<tcp, Ex> r(co_await asio::this_coro::executor);
        const auto results = co_await r.async_resolve("127.0.0.1", "80", use_aw<Ex>);
        awaited = !results.empty() && results.begin()->endpoint().address().is_loopback();
      },
      asio::detached);
  runners run(rt, 2);
  BOOST_TEST(run.join());
  BOOST_TEST(!ec);
  BOOST_REQUIRE(found.size() == 1u);
  BOOST_TEST(found[0].address().to_string() == "127.0.0.1");
  BOOST_TEST(found[0].port() == 8080);
  BOOST_TEST(on_runtime);
  BOOST_TEST(awaited);
}

// --- Experimental channels --------------------------------------------------------------------

// A producer and a consumer coroutine over a buffered and an unbuffered concurrent
// channel, on two run() threads; the consumer replies with the sum on a second channel.
BOOST_AUTO_TEST_CASE_TEMPLATE(concurrent_channel_between_coroutines, Ex, executor_types) {
  using channel = asio::experimental::concurrent_channel<Ex, void(error_code, int)>;
  constexpr int values = 1000;
  runtime rt{2};
  const Ex ex = executor_of<Ex>(rt);
  failures f;
  std::atomic<int> sums_ok{0};
  std::atomic<bool> closed_seen{false};
  for (const std::size_t capacity : {std::size_t{0}, std::size_t{16}}) {
    auto data = std::make_shared<channel>(ex, capacity);
    auto reply = std::make_shared<channel>(ex, 0);
    asio::co_spawn(
        ex,
        [&, data, reply]() -> asio::awaitable<void, Ex> {
          for (int i = 1; i <= values; ++i)
            co_await data->async_send(error_code{}, i, use_aw<Ex>);
          co_await data->async_send(error_code{}, -1, use_aw<Ex>); // end of data
          const int sum = co_await reply->async_receive(use_aw<Ex>);
          if (sum == values * (values + 1) / 2)
            ++sums_ok;
          data->close();
        },
        f.handler());
    asio::co_spawn(
        ex,
        [&, data, reply]() -> asio::awaitable<void, Ex> {
          int sum = 0, expected = 1;
          for (;;) {
            const int v = co_await data->async_receive(use_aw<Ex>);
            if (v == -1)
              break;
            if (v != expected++)
              throw std::runtime_error("channel reordered values");
            sum += v;
          }
          co_await reply->async_send(error_code{}, sum, use_aw<Ex>);
          // After the producer closes the channel a receive fails.
          auto [ec, v] = co_await data->async_receive(asio::as_tuple(use_aw<Ex>));
          if (ec)
            closed_seen = true;
        },
        f.handler());
  }
  runners run(rt, 2);
  BOOST_TEST(run.join());
  f.check();
  BOOST_TEST(sums_ok == 2);
  BOOST_TEST(closed_seen);
}

// Handler-memory recycling (doc/design.md): a thread has Asio's per-thread handler-memory
// cache installed while it drives a worker (in handlers, coroutines and completions, on
// run() threads and owned workers alike), and only then.
BOOST_AUTO_TEST_CASE(threads_driving_workers_have_asio_handler_memory) {
  using swarm::detail::asio_shim::handler_memory;
  BOOST_TEST(!handler_memory::thread_has_one());
  std::atomic<int> seen{0}, with{0};
  auto probe = [&] {
    ++seen;
    if (handler_memory::thread_has_one())
      ++with;
  };
  {
    swarm::runtime rt(1);
    asio::post(rt.get_executor(), probe);
    asio::co_spawn(
        rt.get_executor(),
        [&]() -> asio::awaitable<void> {
          probe();
          co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
          probe();
        },
        asio::detached);
    timer_on<std::chrono::steady_clock, runtime::executor_type> t(rt.get_executor(), 1ms);
    t.async_wait([&](error_code) { probe(); });
    BOOST_TEST(run_bounded(rt));
    BOOST_TEST(!handler_memory::thread_has_one()); // gone with the drive
  }
  BOOST_TEST(seen == 4);
  BOOST_TEST(with == 4);

  swarm::runtime_options o;
  o.worker_threads = 2;
  swarm::runtime rt(o);
  rt.start();
  for (int i = 0; i < 10; ++i)
    asio::post(rt.get_executor(), probe);
  BOOST_TEST(eventually([&] { return seen == 14; }));
  BOOST_TEST(with == 14);
}

// --- I/O completions and the workers ---------------------------------------------------------

// Completions collected by the worker holding the I/O driver are queued, not run inline
// there (doc/design.md, "Asio binding"), so other workers take their share: with eight
// connections whose handlers each burn CPU, two handlers run at the same time. When they
// ran inline in the driver, every I/O handler ran on the driver's thread, one at a time.
BOOST_AUTO_TEST_CASE(io_completions_spread_over_the_workers) {
  constexpr int clients = 8, round_trips = 40;
  runtime rt{2};
  tcp::acceptor acceptor(rt.get_executor(), loopback_tcp);
  const unsigned short port = acceptor.local_endpoint().port();
  std::atomic<int> running{0}, most{0};
  failures f;
  auto session = [&](tcp::socket s) -> asio::awaitable<void> {
    char buf[64];
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
      if (ec)
        co_return;
      const int now = ++running;
      for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
      }
      busy_for(std::chrono::microseconds(300));
      --running;
      co_await asio::async_write(s, asio::buffer(buf, n), asio::use_awaitable);
    }
  };
  asio::co_spawn(
      rt,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < clients; ++i)
          asio::co_spawn(rt, session(co_await acceptor.async_accept(asio::use_awaitable)), f.handler());
      },
      f.handler());
  runners run(rt, 2);
  // Blocking clients on threads of their own, outside the runtime.
  std::atomic<int> echoed{0};
  std::vector<std::thread> client_threads;
  for (int c = 0; c < clients; ++c) {
    client_threads.emplace_back([&] {
      asio::io_context io;
      tcp::socket s(io);
      s.connect({asio::ip::address_v4::loopback(), port});
      char out[16] = "ping", in[16];
      for (int i = 0; i < round_trips; ++i) {
        asio::write(s, asio::buffer(out));
        asio::read(s, asio::buffer(in));
        echoed += std::memcmp(in, out, sizeof out) == 0;
      }
      s.shutdown(tcp::socket::shutdown_both);
    });
  }
  for (auto& t : client_threads)
    t.join();
  BOOST_TEST(run.join());
  f.check();
  BOOST_TEST(echoed == clients * round_trips);
  BOOST_TEST(most.load() >= 2);
}

// Where the driver runs the handlers of the completions it finds depends on the other
// workers (multi_thread::handle::idle_worker_would_take_io): with the other worker parked
// they are queued as jobs for it to take, each counted as a poll; with the other worker
// busy in a task they run in the driver poll, as on io_context, and no poll is counted.
BOOST_AUTO_TEST_CASE(completion_handlers_run_in_the_driver_while_the_other_worker_is_busy) {
  swarm::runtime_options o;
  o.worker_threads = 2;
  swarm::runtime rt(o);
  rt.start();
  using steady_timer = timer_on<std::chrono::steady_clock, runtime::executor_type>;
  const auto polls = [&] {
    std::uint64_t n = 0;
    for (const auto& w : rt.dump().workers)
      n += w.poll_count;
    return n;
  };
  const auto parked = [&] {
    int n = 0;
    for (const auto& w : rt.dump().workers)
      n += w.state == swarm::worker_run_state::parked;
    return n;
  };
  // Timers expiring together: the driver finds their completions in one poll or a few.
  const auto fire_timers = [&] {
    constexpr int count = 8;
    std::atomic<int> ran{0};
    std::vector<std::unique_ptr<steady_timer>> timers;
    const auto at = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    for (int i = 0; i < count; ++i) {
      timers.push_back(std::make_unique<steady_timer>(rt.get_executor(), at));
      timers.back()->async_wait([&](error_code ec) { ran += !ec; });
    }
    BOOST_TEST(eventually([&] { return ran == count; }));
    return count;
  };

  // Both workers idle: the handlers are queued, each a job, each a poll.
  BOOST_TEST(eventually([&] { return parked() == 2; }));
  std::uint64_t before = polls();
  const int count = fire_timers();
  BOOST_TEST(polls() - before >= std::uint64_t(count));

  // One worker busy in a task: the other runs the handlers in its driver poll.
  std::atomic<bool> spinning{false}, release{false};
  struct release_on_exit {
    std::atomic<bool>& r;
    ~release_on_exit() { r = true; } // a failed check must not leave the runtime blocked
  } guard{release};
  swarm::join_handle<void> spinner = swarm::spawn(rt.get_executor(), [&] {
    spinning = true;
    while (!release)
      std::this_thread::yield();
  });
  BOOST_TEST(eventually([&] { return spinning.load() && parked() == 1; }));
  before = polls();
  fire_timers();
  BOOST_TEST(polls() - before == 0u);
  release = true;
  BOOST_TEST(eventually([&] { return spinner.is_finished(); }));
}

// A driver poll that queues completions for idle workers hands out a few at a time
// (multi_thread::handle::max_completions_queued_per_poll), then the polling worker runs
// them. Driven by this thread alone through poll() (the other worker slot is idle, so the
// completions are queued, and nobody steals): each handler sees the rest of its batch in
// the queue, never more.
BOOST_AUTO_TEST_CASE(a_driver_poll_that_queues_hands_out_a_few_completions_at_a_time) {
  constexpr std::size_t cap = swarm::detail::multi_thread::handle::max_completions_queued_per_poll;
  constexpr std::size_t count = 3 * cap;
  runtime rt{2};
  using steady_timer = timer_on<std::chrono::steady_clock, runtime::executor_type>;
  std::vector<std::unique_ptr<steady_timer>> timers;
  std::vector<std::size_t> queued_behind; // per handler, the jobs queued after it
  const auto expired = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    timers.push_back(std::make_unique<steady_timer>(rt.get_executor(), expired));
    timers.back()->async_wait([&](error_code) {
      std::size_t depth = 0;
      for (const auto& w : rt.metrics().workers)
        depth += w.local_queue_depth;
      queued_behind.push_back(depth);
    });
  }
  // A reactor pass finds every timer expired (or, if the timer's event is late, two passes
  // find them: one of them then still has more than the cap).
  for (int i = 0; i < 1000 && queued_behind.size() < count; ++i) {
    rt.poll();
    if (queued_behind.size() < count)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  BOOST_TEST_REQUIRE(queued_behind.size() == count);
  // Queued, in batches of the cap: the first of a batch sees the other cap - 1.
  BOOST_TEST(*std::max_element(queued_behind.begin(), queued_behind.end()) == cap - 1);
}

BOOST_AUTO_TEST_SUITE_END()
