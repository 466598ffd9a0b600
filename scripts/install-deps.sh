#!/usr/bin/env bash
# Installs what realtime needs on Debian 12, skipping what is already there. Idempotent.
#   scripts/install-deps.sh          build and run dependencies
#   scripts/install-deps.sh --test   also what the test suites need (redis-server, chromium, npm packages)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build ccache pkg-config g++ clang libclang-rt-14-dev
          libboost1.81-dev libhiredis-dev libsimdjson-dev libjwt-dev libssl-dev libspdlog-dev
          libfmt-dev libcli11-dev)
if [[ "${1:-}" == "--test" ]]; then
  # (git: the format and tidy checks take the files it tracks.)
  packages+=(libgtest-dev libgmock-dev libbenchmark-dev redis-server chromium clang-format clang-tidy git)
  # Node.js 20 may come from outside Debian (with its own npm): install Debian's only when absent.
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "installing packages needs root: run this as root, or install sudo"; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" ]]; then
  # The suites are written for Node.js 20 (Debian 12's own is 18: it is used when nothing newer is
  # there, with npm's engine warning).
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  ((node_major >= 20)) || echo "note: Node.js $(node --version) found; the test suites are written for 20"
  for dir in tests/integration tests/cluster tests/conformance clients/js tests/browser; do
    [[ -f "$dir/package-lock.json" ]] || continue  # no lock file: no dependencies to install
    if [[ ! -d "$dir/node_modules" || "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
fi
