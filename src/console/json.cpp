#include <swarm/console/json.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>

namespace swarm::console {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

void append_u_escape(std::string& out, unsigned code) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4)
    out += hex_digits[(code >> shift) & 0xf];
}

constexpr std::string_view replacement = "\xEF\xBF\xBD"; // U+FFFD

// The length of the well-formed UTF-8 sequence at `s[i]` (2 to 4), or, when it is not one,
// minus the length of its maximal subpart: the lead byte and the continuation bytes that
// could still have begun a valid sequence (Unicode 15, table 3-7).
int utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  int length;
  unsigned char lo = 0x80, hi = 0xBF; // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0)
      lo = 0xA0; // no overlong forms
    else if (lead == 0xED)
      hi = 0x9F; // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0)
      lo = 0x90; // no overlong forms
    else if (lead == 0xF4)
      hi = 0x8F; // nothing above U+10FFFF
  } else {
    return -1; // a stray continuation byte, C0, C1 or F5 to FF
  }
  for (int k = 1; k < length; ++k) {
    if (i + k >= s.size())
      return -k;
    const unsigned char b = byte(i + k);
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
      return -k;
  }
  return length;
}

template <class Int>
void append_int(std::string& out, Int v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_ns(std::string& out, std::chrono::nanoseconds d) { append_int(out, d.count()); }

void append_double(std::string& out, double v) {
  if (!std::isfinite(v))
    v = 0; // JSON has no NaN or infinity
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_bool(std::string& out, bool v) { out += v ? "true" : "false"; }

// `"key":`, for keys that are plain ASCII literals.
void key(std::string& out, std::string_view k) {
  out += '"';
  out += k;
  out += "\":";
}

void append_task(std::string& out, const task_snapshot& t) {
  out += '{';
  key(out, "id");
  append_int(out, t.id.value());
  out += ',';
  key(out, "name");
  append_json_string(out, t.name);
  out += ',';
  key(out, "state");
  out += '"';
  out += to_string(t.state);
  out += "\",";
  key(out, "spawn");
  out += '{';
  key(out, "file");
  append_json_string(out, t.spawn_file);
  out += ',';
  key(out, "line");
  append_int(out, t.spawn_line);
  out += ',';
  key(out, "function");
  append_json_string(out, t.spawn_function);
  out += "},";
  key(out, "polls");
  append_int(out, t.poll_count);
  out += ',';
  key(out, "timed_polls");
  append_int(out, t.timed_poll_count);
  out += ',';
  key(out, "busy_ns");
  append_ns(out, t.busy);
  out += ',';
  key(out, "since_last_poll_ns");
  append_ns(out, t.since_last_poll);
  out += ',';
  key(out, "longest_poll_ns");
  append_ns(out, t.longest_poll);
  out += ',';
  key(out, "waiting_on");
  out += '"';
  out += to_string(t.waiting_on);
  out += "\",";
  key(out, "wait_target");
  if (t.wait_target)
    append_int(out, t.wait_target.value());
  else
    out += "null";
  out += ',';
  key(out, "warning_bits");
  append_int(out, t.warnings);
  out += ',';
  key(out, "warnings");
  out += '[';
  bool first = true;
  for (auto [bit, name] :
       {std::pair{warn_long_poll, "long_poll"}, std::pair{warn_lost_waker, "lost_waker"}}) {
    if (!(t.warnings & bit))
      continue;
    if (!first)
      out += ',';
    first = false;
    out += '"';
    out += name;
    out += '"';
  }
  out += "]}";
}

void append_worker(std::string& out, const worker_snapshot& w) {
  out += '{';
  key(out, "index");
  append_int(out, w.index);
  out += ',';
  key(out, "state");
  out += '"';
  out += to_string(w.state);
  out += "\",";
  key(out, "local_queue_depth");
  append_int(out, w.local_queue_depth);
  out += ',';
  key(out, "polls");
  append_int(out, w.poll_count);
  out += ',';
  key(out, "steals");
  append_int(out, w.steal_count);
  out += ',';
  key(out, "busy_ns");
  append_ns(out, w.busy);
  out += ',';
  key(out, "busy_ratio");
  append_double(out, w.busy_ratio);
  out += ',';
  key(out, "parked_with_work");
  append_bool(out, w.parked_with_work);
  out += '}';
}

void append_failure(std::string& out, const unobserved_failure& f) {
  out += '{';
  key(out, "id");
  append_int(out, f.id.value());
  out += ',';
  key(out, "name");
  append_json_string(out, f.name);
  out += ',';
  key(out, "spawn");
  out += '{';
  key(out, "file");
  append_json_string(out, f.spawn_file);
  out += ',';
  key(out, "line");
  append_int(out, f.spawn_line);
  out += "},";
  key(out, "what");
  append_json_string(out, f.what);
  out += '}';
}

template <class T, class F>
void append_array(std::string& out, const std::vector<T>& items, F append_item) {
  out += '[';
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i != 0)
      out += ',';
    append_item(out, items[i]);
  }
  out += ']';
}

// The members every document starts with, without braces.
void append_header(std::string& out, const runtime_dump& d) {
  key(out, "taken_at_ms");
  append_int(out,
             std::chrono::duration_cast<std::chrono::milliseconds>(d.taken_at.time_since_epoch()).count());
  out += ',';
  key(out, "uptime_ns");
  append_ns(out, d.uptime);
  out += ',';
  key(out, "tracking");
  append_bool(out, d.tracking);
}

void append_task_members(std::string& out, const runtime_dump& d) {
  key(out, "tasks");
  append_array(out, d.tasks, append_task);
  out += ',';
  key(out, "unobserved_failures");
  append_array(out, d.unobserved_failures, append_failure);
}

void append_worker_members(std::string& out, const runtime_dump& d) {
  key(out, "global_queue_depth");
  append_int(out, d.global_queue_depth);
  out += ',';
  key(out, "blocking");
  out += '{';
  key(out, "threads");
  append_int(out, d.num_blocking_threads);
  out += ',';
  key(out, "idle");
  append_int(out, d.num_idle_blocking_threads);
  out += ',';
  key(out, "queue_depth");
  append_int(out, d.blocking_queue_depth);
  out += "},";
  key(out, "workers");
  append_array(out, d.workers, append_worker);
}

} // namespace

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  std::size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '<':
      case '>':
      case '&':
      case 0x7f:
        append_u_escape(out, c);
        break;
      default:
        if (c < 0x20)
          append_u_escape(out, c);
        else
          out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    const int n = utf8_sequence(text, i);
    if (n < 0) {
      out += replacement;
      i += static_cast<std::size_t>(-n);
      continue;
    }
    // U+2028 and U+2029 (E2 80 A8, E2 80 A9) end a line in JavaScript source before ES2019.
    if (n == 3 && text[i] == '\xE2' && text[i + 1] == '\x80' &&
        (text[i + 2] == '\xA8' || text[i + 2] == '\xA9'))
      append_u_escape(out, text[i + 2] == '\xA8' ? 0x2028 : 0x2029);
    else
      out.append(text.substr(i, static_cast<std::size_t>(n)));
    i += static_cast<std::size_t>(n);
  }
  out += '"';
}

std::string tasks_json(const runtime_dump& d) {
  std::string out = "{";
  append_header(out, d);
  out += ',';
  append_task_members(out, d);
  out += '}';
  return out;
}

std::string workers_json(const runtime_dump& d) {
  std::string out = "{";
  append_header(out, d);
  out += ',';
  append_worker_members(out, d);
  out += '}';
  return out;
}

std::string dump_json(const runtime_dump& d, bool abort_allowed) {
  std::string out = "{";
  append_header(out, d);
  out += ',';
  key(out, "abort_allowed");
  append_bool(out, abort_allowed);
  out += ',';
  append_worker_members(out, d);
  out += ',';
  append_task_members(out, d);
  out += '}';
  return out;
}

} // namespace swarm::console
