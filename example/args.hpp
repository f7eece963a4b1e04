// The examples' command-line parsing: named options, each a flag or one whole number within a
// range. -h and --help print the usage and exit 0; anything else that does not fit (an
// unknown option, a missing value, a value that is not a number in range, a stray argument)
// prints what was wrong and the usage to stderr and exits 2.
#pragma once

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <system_error>

namespace swarm_example {

struct option {
  const char* name;       // "--port"
  bool* flag = nullptr;   // set to true when present, or
  long* number = nullptr; // set from the next argument, which must lie in [lo, hi]
  long lo = 0;
  long hi = 0;
};

inline option flag(const char* name, bool& out) { return {name, &out}; }
inline option number(const char* name, long& out, long lo, long hi) { return {name, nullptr, &out, lo, hi}; }

// Parses argv[1..argc) against `options`; the last of a repeated option wins. `program`
// prefixes the error messages; `usage` is printed as it is.
inline void parse_args(int argc, char** argv, const char* program, const char* usage,
                       std::initializer_list<option> options) {
  const auto fail = [&](const char* what, const char* arg, const char* detail = "") {
    std::fprintf(stderr, "%s: %s '%s'%s\n%s", program, what, arg, detail, usage);
    std::exit(2);
  };
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (!std::strcmp(arg, "-h") || !std::strcmp(arg, "--help")) {
      std::fputs(usage, stdout);
      std::exit(0);
    }
    const option* o = nullptr;
    for (const option& candidate : options)
      if (!std::strcmp(arg, candidate.name))
        o = &candidate;
    if (!o)
      fail(arg[0] == '-' ? "unknown option" : "unexpected argument", arg);
    if (o->flag) {
      *o->flag = true;
      continue;
    }
    if (i + 1 >= argc)
      fail("missing value after", arg);
    const char* value = argv[++i];
    const char* end = value + std::strlen(value);
    long v = 0;
    const auto [stop, ec] = std::from_chars(value, end, v);
    if (ec != std::errc() || stop != end || v < o->lo || v > o->hi) {
      char range[96];
      std::snprintf(range, sizeof range, " for %s: expected a whole number from %ld to %ld", arg, o->lo,
                    o->hi);
      fail("bad value", value, range);
    }
    *o->number = v;
  }
}

} // namespace swarm_example
