#!/usr/bin/env bash
# The console in a real browser, end to end: starts the HTTP example with --console 0, opens a
# kept-alive connection whose first request target is `/<script>alert(1)</script>` (the
# example names that connection's task after it), renders the console page in headless
# Chromium and checks the DOM it ends with: the example's tasks and workers are listed, the
# hostile name is in a table cell as text (&lt;script&gt;), and no script element was injected.
#
#   browser_test.sh PATH/TO/http_server
#
# Exits 77 (skipped) when no Chromium is installed, unless SWARM_REQUIRE_BROWSER=1. Bounded
# to 30 s by a watchdog; every process it starts is killed on exit.
set -uo pipefail

server_bin="${1:?usage: browser_test.sh PATH/TO/http_server}"
budget=30

fail() {
  printf 'browser_test: FAILED: %s\n' "$*" >&2
  exit 1
}

browser=""
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null 2>&1; then
    browser=$(command -v "$candidate")
    break
  fi
done
if [[ -z $browser ]]; then
  [[ ${SWARM_REQUIRE_BROWSER:-0} == 1 ]] && fail "no chromium found (SWARM_REQUIRE_BROWSER=1)"
  echo "browser_test: no chromium found; skipped"
  exit 77
fi

work=$(mktemp -d)
server_pid=""
watchdog_pid=""
cleanup() {
  exec 3>&- 4>&- 2>/dev/null
  if [[ -n $server_pid ]]; then
    kill -TERM -- "-$server_pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  [[ -n $watchdog_pid ]] && kill "$watchdog_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'fail "interrupted (watchdog: over $budget s)"' TERM INT

# The watchdog: past the budget the test is interrupted, and the EXIT trap cleans up. Killed
# at exit, it takes its sleep with it (and holds no output open: ctest waits for that).
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$budget" &
  sleeper=$!
  wait "$sleeper" && kill -TERM $$
) >/dev/null 2>&1 &
watchdog_pid=$!

# Its own process group (setsid execs it: same pid), so that cleanup reaches anything it starts.
setsid "$server_bin" --port 0 --threads 2 --console 0 >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q 'console on' "$work/server.out" && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
app_port=$(sed -n 's|^http_server: listening on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$work/server.out")
console_url=$(sed -n 's|^http_server: console on \(http://127\.0\.0\.1:[0-9]*/\)$|\1|p' "$work/server.out")
[[ -n $app_port && -n $console_url ]] || fail "no URLs printed; the server said: $(cat "$work/server.out")"
echo "browser_test: server on port $app_port, console at $console_url"

# Two kept-alive connections: one with the hostile target, one with an ordinary one. Once the
# answer is read, the task named after the request exists (it wrote the answer).
request_on() { # FD TARGET
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&"$1"
  local status
  IFS= read -r -t 5 status <&"$1" || fail "no answer to GET $2"
  [[ $status == "HTTP/1.1 200 OK"* ]] || fail "GET $2: $status"
}
exec 3<>"/dev/tcp/127.0.0.1/$app_port" || fail "cannot connect to the example"
request_on 3 '/<script>alert(1)</script>'
exec 4<>"/dev/tcp/127.0.0.1/$app_port" || fail "cannot connect to the example"
request_on 4 '/index.html'

# Virtual time: the page's timers run 4 s ahead (its refreshes every second), without waiting.
timeout 25 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
  --no-default-browser-check --user-data-dir="$work/profile" --virtual-time-budget=4000 \
  --dump-dom "$console_url" >"$work/dom.html" 2>"$work/browser.err"
rc=$?
[[ $rc -eq 0 && -s $work/dom.html ]] || fail "chromium exited with $rc: $(tail -5 "$work/browser.err")"
dom="$work/dom.html"

expect() { # DESCRIPTION GREP-ARGS...
  local what="$1"
  shift
  grep -q "$@" "$dom" || {
    echo "--- rendered DOM ---" >&2
    cat "$dom" >&2
    fail "$what"
  }
}
expect "the page never rendered a dump" -E '<body data-updates="[1-9][0-9]*"'
expect "no 'accept loop' task in the table" -F '<td class="name">accept loop</td>'
expect "no task for the ordinary connection" -E '<td class="name">conn 127\.0\.0\.1:[0-9]+ GET /index\.html</td>'
expect "the hostile task name is not shown as text in a cell" \
  -E '<td class="name">conn 127\.0\.0\.1:[0-9]+ GET /&lt;script&gt;alert\(1\)&lt;/script&gt;</td>'
expect "spawn locations are not listed" -E '<td class="where"[^>]*>[^<]*http_server\.cpp:[0-9]+</td>'
expect "worker 0 is not shown" -E '<div class="worker[^"]*" data-worker="0"><div class="title">worker 0</div>'
expect "worker 1 is not shown" -E '<div class="worker[^"]*" data-worker="1"><div class="title">worker 1</div>'
scripts=$(grep -o '<script' "$dom" | wc -l)
[[ $scripts -eq 1 ]] || fail "$scripts script elements in the DOM (the page has one)"
if grep -qF '<script>alert(1)' "$dom"; then
  fail "the hostile name was inserted as markup"
fi
echo "browser_test: OK (tasks, workers and an escaped hostile name in the rendered page)"
