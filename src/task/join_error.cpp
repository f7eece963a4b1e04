#include <swarm/task/join_error.hpp>

#include <cstdio>
#include <stdexcept>

namespace swarm {
namespace {

// The payload's message when it has one: std::exception, std::string or a C string.
bool panic_message(const std::exception_ptr& e, std::string& out) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    out = x.what();
  } catch (const std::string& s) {
    out = s;
  } catch (const char* s) {
    out = s ? s : "";
  } catch (...) {
    // Not a type that carries a message: the caller reports none.
    return false;
  }
  return true;
}

} // namespace

join_error join_error::cancelled(task_id id) noexcept {
  join_error err;
  err.id_ = id;
  std::snprintf(err.cancelled_text_, sizeof err.cancelled_text_, "task %llu was cancelled",
                static_cast<unsigned long long>(id.value()));
  return err;
}

join_error join_error::panic(task_id id, std::exception_ptr e) {
  join_error err;
  err.id_ = id;
  err.payload_ = e ? std::move(e) : std::make_exception_ptr(std::runtime_error("unknown exception"));
  std::string text = "task " + std::to_string(id.value());
  std::string msg;
  if (panic_message(err.payload_, msg))
    text += " panicked with message \"" + msg + "\"";
  else
    text += " panicked";
  err.message_ = std::make_shared<const std::string>(std::move(text));
  return err;
}

std::exception_ptr join_error::panic() const {
  if (!payload_)
    throw std::logic_error("swarm::join_error::panic: the task was cancelled, it did not throw");
  return payload_;
}

const char* join_error::what() const noexcept { return message_ ? message_->c_str() : cancelled_text_; }

} // namespace swarm
