#!/usr/bin/env bash
# Installs the Debian packages fleetwatch builds and tests with, only those that are missing.
# Called by `make`; safe to run again. Needs root (or sudo) when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  clang-format         # `make test` checks that the sources are formatted (.clang-format)
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev  # HTTP (Beast/Asio), JSON, URLs
  libsqlite3-dev       # the default store
  libpq-dev            # the PostgreSQL store (several server replicas on one database)
  postgresql           # tests start a private PostgreSQL cluster (initdb + postgres on loopback)
  libyaml-cpp-dev      # run and fleet configurations
  libcli11-dev         # command line
  libspdlog-dev        # logging
  libssl-dev           # SHA-256 for stored token hashes
  libgtest-dev libgmock-dev
  libjemalloc-dev      # the executables' allocator: less CPU per tick than glibc's malloc
  libdeflate-dev       # gzip of /metrics bodies: faster and smaller than zlib at level 1
  zlib1g-dev           # expose tests inflate gzip bodies with an independent implementation
  prometheus           # promtool checks /metrics output in tests (and Prometheus for integration)
  tmux                 # terminal tests of the CLI
  python3              # test jobs that hold memory while they are measured
  python3-prometheus-client  # an independent parser of /metrics (text 0.0.4 and OpenMetrics)
  chromium             # headless browser tests of the web UI
  # clang: the ThreadSanitizer build (which also checks the lock annotations) and fuzz/'s
  # libFuzzer targets, run briefly by `make test` and at length by `make fuzz`; the sanitizer and
  # fuzzer runtimes are in libclang-rt
  clang-14 libclang-rt-14-dev libfuzzer-14-dev
)
# `make bench` only: the peers the benchmarks measure against.
if [ "${1:-}" = "--bench" ]; then
  packages+=(
    prometheus-cpp-dev   # bench/exposition: the C++ client library as the peer of our render
    wrk                  # bench/exposition: HTTP load on /metrics
  )
fi

missing=()
# The web UI's assets are built from its npm lockfile. Any Node.js >= 18 will do, also one that
# did not come from Debian (its own npm then conflicts with Debian's): check the commands.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
for p in "${packages[@]}"; do
  [[ "$p" == \#* ]] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
