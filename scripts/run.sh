#!/usr/bin/env bash
# Installs what is missing, builds the release preset, and runs realtime-server (single pod, no Redis).
# Extra arguments go to the server, e.g. scripts/run.sh --listen 127.0.0.1:9000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CCACHE_DIR="$PWD/build/.ccache"
# Pods started at once in several terminals (README) build one after the other, not over each other.
mkdir -p build
{
  flock 9
  cmake --preset release -DREALTIME_BUILD_TESTS=OFF -DREALTIME_BUILD_BENCH=OFF -DREALTIME_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build --preset release --target realtime-server
} 9>build/.run.lock
exec build/release/server/realtime-server "$@"
