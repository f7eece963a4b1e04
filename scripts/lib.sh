# Shared by scripts/test and scripts/demo (sourced, not run).

# The repository root, whatever the caller's working directory.
SWARM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# What a fresh Debian 12 machine needs to build and test swarm. `make` drives CMake's
# default generator; cmake only recommends it, so it is listed explicitly.
SWARM_PACKAGES=(g++ make cmake libboost1.81-dev libboost-test1.81-dev libboost1.81-tools-dev)

JOBS="$(nproc 2>/dev/null || echo 2)"

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs whichever of SWARM_PACKAGES and the packages named as arguments is missing:
# apt-get update first, then install, as root or through sudo. Does nothing when everything
# is there.
ensure_packages() {
  local wanted=("${SWARM_PACKAGES[@]}" "$@")
  if ! command -v dpkg-query >/dev/null 2>&1; then
    # Not a Debian system: check the tools and hope the rest is there.
    for tool in g++ cmake b2; do
      command -v "$tool" >/dev/null 2>&1 || die "$tool not found, and this is not a Debian system: install ${SWARM_PACKAGES[*]} by hand"
    done
    return 0
  fi
  local missing=() pkg
  for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0

  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing packages (${missing[*]}), not root and no sudo"
    sudo=(sudo)
  fi
  log "installing missing packages: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Configures (if needed) and builds a CMake tree: cmake_build DIR [cmake -D options...]
cmake_build() {
  local dir="$1"
  shift
  cmake -S "$SWARM_ROOT" -B "$dir" "$@" && cmake --build "$dir" --parallel "$JOBS"
}
