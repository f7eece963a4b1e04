// Runs a piece of a test in a forked child process under a watchdog, for the cases that must
// not take the whole suite down when they fail: a hang (the child is killed at the deadline
// and the test fails instead of waiting for ctest's timeout), a crash, or a documented abort
// whose message the test checks.
//
// The child runs `body` and exits with its return value (0 = success); an exception escaping
// `body` exits with 125. What the child writes to stderr is captured. Call it only while the
// test process runs no other threads of its own (fork copies the calling thread only).
#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace swarm_test {

struct child_result {
  bool timed_out = false; // killed at the deadline
  bool exited = false;    // returned or called exit()
  int exit_code = -1;     // when exited
  int signal = 0;         // the signal that ended it, when it did not exit
  std::string err;        // what it wrote to stderr

  bool succeeded() const { return exited && exit_code == 0; }
  bool aborted() const { return !exited && !timed_out && signal == SIGABRT; }
};

inline child_result run_in_child(std::chrono::milliseconds deadline, const std::function<int()>& body) {
  child_result r;
  int fds[2];
  if (::pipe(fds) != 0)
    throw std::runtime_error("run_in_child: pipe failed");
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0)
    throw std::runtime_error("run_in_child: fork failed");
  if (pid == 0) {
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[1]);
    // The test framework's handlers would turn a crash or an abort into an exit code.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL})
      std::signal(sig, SIG_DFL);
    int code = 125;
    try {
      code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "run_in_child: uncaught exception: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "run_in_child: uncaught exception\n");
    }
    std::fflush(nullptr);
    ::_exit(code); // no atexit handlers: the test framework belongs to the parent
  }
  ::close(fds[1]);
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  const auto end = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  bool reaped = false;
  auto read_some = [&] {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n <= 0)
        break;
      if (r.err.size() < (1u << 20))
        r.err.append(buf, static_cast<std::size_t>(n));
    }
  };
  while (!reaped) {
    pollfd p{fds[0], POLLIN, 0};
    ::poll(&p, 1, 10);
    read_some();
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      reaped = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= end) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.timed_out = true;
      reaped = true;
    }
  }
  read_some();
  ::close(fds[0]);
  if (r.timed_out)
    return r;
  if (WIFEXITED(status)) {
    r.exited = true;
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  return r;
}

} // namespace swarm_test
