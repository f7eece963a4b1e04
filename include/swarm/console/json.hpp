// The console's JSON encoding of a runtime_dump, as /tasks.json, /workers.json and
// /dump.json serve it. Every string goes through append_json_string.
#pragma once

#include <swarm/scheduler/dump.hpp>

#include <string>
#include <string_view>

namespace swarm::console {

// Appends `text` as a JSON string literal, quotes included. Escapes `"`, `\` and every
// control character (U+0000 to U+001F, and U+007F); also `<`, `>`, `&`, U+2028 and U+2029,
// so that the literal stays inert inside HTML and in JavaScript source. Valid UTF-8 is kept
// as it is; each maximal invalid subsequence becomes one U+FFFD (Unicode's "substitution of
// maximal subparts"), so the output is always valid UTF-8 and valid JSON.
void append_json_string(std::string& out, std::string_view text);

// {"taken_at_ms", "uptime_ns", "tracking", "tasks": [...], "unobserved_failures": [...]}
std::string tasks_json(const runtime_dump& d);
// {"taken_at_ms", "uptime_ns", "global_queue_depth", "blocking": {...}, "workers": [...]}
std::string workers_json(const runtime_dump& d);
// Both, plus "abort_allowed" (whether the page may offer to abort tasks).
std::string dump_json(const runtime_dump& d, bool abort_allowed);

} // namespace swarm::console
