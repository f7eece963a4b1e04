#include <swarm/scheduler/thread.hpp>

#include <pthread.h>

#include <cerrno>
#include <memory>
#include <system_error>

namespace swarm::detail {
namespace {

struct start {
  std::string name;
  std::function<void()> fn;
};

void* thread_main(void* arg) {
  std::unique_ptr<start> s(static_cast<start*>(arg));
  if (!s->name.empty()) {
    // Linux keeps 15 characters plus the terminator.
    std::string n = s->name.substr(0, 15);
    pthread_setname_np(pthread_self(), n.c_str());
  }
  s->fn();
  return nullptr;
}

} // namespace

os_thread& os_thread::operator=(os_thread&& o) noexcept {
  if (this != &o) {
    if (joinable_)
      detach();
    handle_ = o.handle_;
    joinable_ = o.joinable_;
    o.joinable_ = false;
  }
  return *this;
}

os_thread::~os_thread() {
  if (joinable_)
    detach();
}

os_thread os_thread::spawn(const std::string& name, std::size_t stack_size, std::function<void()> fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (stack_size != 0) {
    if (int err = pthread_attr_setstacksize(&attr, stack_size)) {
      pthread_attr_destroy(&attr);
      throw std::system_error(err, std::generic_category(), "swarm: invalid thread stack size");
    }
  }
  auto s = std::make_unique<start>(start{name, std::move(fn)});
  pthread_t t;
  const int err = pthread_create(&t, &attr, &thread_main, s.get());
  pthread_attr_destroy(&attr);
  if (err)
    throw std::system_error(err, std::generic_category(), "swarm: the OS refused to start a thread");
  s.release(); // owned by the thread now
  os_thread th;
  th.handle_ = t;
  th.joinable_ = true;
  return th;
}

void os_thread::join() {
  if (joinable_) {
    pthread_join(static_cast<pthread_t>(handle_), nullptr);
    joinable_ = false;
  }
}

void os_thread::detach() {
  if (joinable_) {
    pthread_detach(static_cast<pthread_t>(handle_));
    joinable_ = false;
  }
}

} // namespace swarm::detail
